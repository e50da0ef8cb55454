"""Run directories: one folder holds everything a run writes.

Layout::

    <run_dir>/
      run.json                 # format version, lifelab version, the LifeConfig, creation time
      snapshots/snap-<tick>.lls
      archive/                 # the durable archive: columnar segments (format 2)
      archive.sqlite           # ... or, in runs of format version 1, one SQLite file
      logs/life.jsonl          # structured logs, rotated by size
      metrics/                 # metric dumps (observability)

Nothing is created at import time, and nothing is written outside the run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelab._files import fsync_dir, write_atomic
from lifelab.exceptions import LifelabError

__all__ = ["DEFAULT_ROOT", "RUN_FORMAT_VERSION", "RunDir", "RunDirError"]

DEFAULT_ROOT = Path("data") / "runs"
# 1: run.json + snapshots/ + archive.sqlite + logs/ + metrics/ (lifelab 0.1; still read, resumed
#    and extended with the SQLite archive). 2: the archive is the archive/ segment directory.
RUN_FORMAT_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
RUN_FILE = "run.json"


class RunDirError(LifelabError, OSError):
    """A run directory is missing, not a lifelab run, or would be overwritten."""


@dataclass(frozen=True, slots=True)
class RunDir:
    """Paths of one run directory."""

    path: Path
    version: int = RUN_FORMAT_VERSION

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def archive(self) -> Path:
        """The archive: the segment directory, or the SQLite file of a version 1 run."""
        return self.path / ("archive.sqlite" if self.version == 1 else "archive")

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics"

    @classmethod
    def default_path(cls, life_id: str, root: Path | str = DEFAULT_ROOT) -> Path:
        """``<root>/<UTC timestamp>-<first 8 hex of life_id>``."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        return Path(root) / f"{stamp}-{life_id[:8]}"

    @classmethod
    def create(cls, path: Path | str, config: dict[str, Any], *, life_id: str) -> RunDir:
        """Make a new run directory; refuses one that already holds a run (never overwrite)."""
        from lifelab import __version__

        run = cls(Path(path))
        if run.run_file.exists():
            raise RunDirError(
                f"{run.path} already holds a run; resume it (lifelab resume) or pick another dir"
            )
        for folder in (run.path, run.snapshots, run.logs, run.metrics):
            folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": RUN_FORMAT_VERSION,
            "lifelab_version": __version__,
            "life_id": life_id,
            "created_unix_s": time.time(),
            "config": config,
        }
        _atomic_write_text(run.run_file, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return run

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        """An existing run directory, checked for its run file and format version."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise RunDirError(f"no run directory at {run.path}")
        meta = run.read_meta()
        version = meta.get("format_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise RunDirError(
                f"{run.run_file}: run format version {version!r} is not supported "
                f"(this lifelab reads versions {sorted(READABLE_VERSIONS)})"
            )
        return cls(run.path, version)

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.run_file.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{self.path} is not a lifelab run (no {RUN_FILE})") from None
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.run_file} is unreadable: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise RunDirError(f"{self.run_file} is not a lifelab run file")
        return meta


def _atomic_write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))
    fsync_dir(path.parent)
