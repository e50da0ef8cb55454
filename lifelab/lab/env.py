"""The environment a trial ran in: every ENV column of the results schema (DESIGN §3).

Captured inside the worker, after the trial, so ``gc_threshold`` is the one the GC mode left.
Nothing here imports polars, numpy or scalene: package versions come from their metadata.
"""

from __future__ import annotations

import gc
import hashlib
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from lifelab.lab.schema import ENV_COLUMNS
from lifelab.lab.spawn import SOURCE_ROOT

__all__ = ["CHECKED_ENVIRONMENT", "PER_TRIAL_COLUMNS", "capture_environment"]

# Environment columns that must match for rows to be compared (pyperf's "checked metadata").
CHECKED_ENVIRONMENT = ("cpu_model", "python_version")
# ENV columns that describe one trial, filled by the runner, not by capture_environment.
PER_TRIAL_COLUMNS = ("started_at", "duration_s", "status", "error")

_GIT_TIMEOUT_S = 5.0
_PACKAGES = (
    ("numpy_version", "numpy"),
    ("polars_version", "polars"),
    ("scalene_version", "scalene"),
)


def capture_environment() -> dict[str, Any]:
    """Every ENV column; the per-trial ones (started_at, duration_s, status, error) are None."""
    from lifelab import __version__

    commit, dirty = git_state()
    out: dict[str, Any] = {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "lifelab_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "hostname_hash": hashlib.blake2b(socket.gethostname().encode("utf-8")).hexdigest()[:12],
        "gc_threshold": ",".join(str(t) for t in gc.get_threshold()),
    }
    for column, package in _PACKAGES:
        out[column] = package_version(package)
    for column in PER_TRIAL_COLUMNS:
        out[column] = None
    # Keep the schema's order, and fail loudly if the schema grows a column this module misses.
    return {name: out[name] for name, _ in ENV_COLUMNS}


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``"missing"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor(), else unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    value = " ".join(value.split())
                    if value:
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


_NOT_CODE = (":(exclude)data",)  # pathspecs git status ignores for "dirty"


def git_state(root: Path = SOURCE_ROOT) -> tuple[str, bool]:
    """(commit, dirty) of the lifelab checkout at ``root``; ("unknown", False) if it is not one.

    Dirty: a file other than under ``data/`` is modified, staged or untracked.
    Only a repository whose top level is ``root`` itself counts, so an installed copy that happens
    to sit inside some other repository does not report that repository's commit.
    """
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return "unknown", False
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return "unknown", False
    # Dirty means the code differs from the commit: results and runs written under data/ (a
    # sweep's own tables among them) are left out, or every trial after a sweep's first table
    # appeared would read as dirty and be reported apart from its own sweep's first trials.
    status = _git(root, "status", "--porcelain", "--untracked-files=normal", "--", ".", *_NOT_CODE)
    return commit, bool(status)


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()
