"""The manager side of a trial: one fresh worker process per trial (the pyperf model).

:func:`run_trial` writes the spec to the worker's stdin, waits with a timeout (the worker is
killed when it expires), checks the exit status and reads the worker's last stdout line as JSON.
Anything wrong raises :class:`TrialFailed` with the exit status and the tail of the worker's
stderr; a trial stopped through its ``cancel`` event raises :class:`TrialCancelled` (its worker is
killed: the worker starts no processes of its own, so killing it leaves nothing behind). A result
is a plain dict: one row of the results schema (schema.ALL_COLUMNS) whose id columns other than
``cell`` are left for the sweep to fill.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifelab.exceptions import LifelabError
from lifelab.lab.schema import ALL_COLUMNS
from lifelab.lab.spec import TrialSpec

__all__ = ["WORKER_MODULE", "TrialCancelled", "TrialFailed", "failed_row", "run_trial"]

WORKER_MODULE = "lifelab.lab._worker"
STDERR_TAIL_CHARS = 2_000
CANCEL_POLL_S = 0.1  # how often a cancellable trial looks at its cancel event

_SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the lifelab package


class TrialFailed(LifelabError, RuntimeError):
    """A trial's worker timed out, exited with an error, or printed no readable result.

    Attributes:
        spec: The trial that failed.
        exit_code: The worker's exit status (negative: killed by that signal; None: not started).
        stderr_tail: The last ~2 000 characters of the worker's stderr.
        timed_out: True when the worker was killed at its timeout.
    """

    def __init__(
        self,
        message: str,
        *,
        spec: TrialSpec | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.spec = spec
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


class TrialCancelled(LifelabError, RuntimeError):
    """A trial was stopped because its ``cancel`` event was set; its worker, if any, was killed.

    Attributes:
        spec: The trial that was cancelled.
    """

    def __init__(self, message: str, *, spec: TrialSpec | None = None) -> None:
        super().__init__(message)
        self.spec = spec


def run_trial(
    spec: TrialSpec,
    *,
    python: str | None = None,
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Run one trial in a fresh worker process and return its results row.

    Args:
        spec: The trial.
        python: Interpreter for the worker (default: ``sys.executable`` of this process — on a
            Dask worker that is the worker's own interpreter).
        timeout_s: Seconds before the worker is killed (default: ``spec.timeout_s``).
        cancel: When given, the trial is not started if the event is already set, and a running
            worker is killed within about :data:`CANCEL_POLL_S` seconds of it being set (the
            manager then polls instead of blocking; timeout semantics are unchanged).

    Returns:
        A dict with every column of schema.ALL_COLUMNS: parameters from the spec, metrics and
        environment from the worker, ``started_at``/``duration_s`` measured here,
        ``status="ok"``, ``error=""``, ``cell`` set and the other id columns None.

    Raises:
        TrialFailed: The worker timed out, failed, or printed no valid result.
        TrialCancelled: ``cancel`` was set before the worker finished.
    """
    limit = spec.timeout_s if timeout_s is None else float(timeout_s)
    cmd = [python or sys.executable, "-m", WORKER_MODULE]
    if cancel is not None and cancel.is_set():
        raise TrialCancelled(f"trial {spec.cell}: cancelled before it started", spec=spec)
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_worker_env(),
            text=True,
        )
    except OSError as exc:
        raise TrialFailed(
            f"trial {spec.cell}: could not start the worker ({cmd[0]}): {exc}", spec=spec
        ) from exc
    try:
        stdout, stderr = _communicate(proc, spec.to_json() + "\n", limit, cancel)
    except TrialCancelled:
        proc.kill()
        proc.communicate()  # reap the worker and close its pipes
        raise TrialCancelled(
            f"trial {spec.cell}: cancelled; its worker was killed", spec=spec
        ) from None
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        tail = _tail(stderr)
        raise TrialFailed(
            f"trial {spec.cell}: the worker did not finish within {limit:g} s and was killed; "
            f"give it a larger timeout_s or fewer ticks. stderr tail:\n{tail}",
            spec=spec,
            exit_code=proc.returncode,
            stderr_tail=tail,
            timed_out=True,
        ) from None
    except BaseException:
        proc.kill()  # e.g. KeyboardInterrupt: never leave a worker running behind us
        proc.wait()
        raise
    duration_s = time.perf_counter() - t0
    tail = _tail(stderr)
    if proc.returncode != 0:
        raise TrialFailed(
            f"trial {spec.cell}: the worker exited with status {proc.returncode}. "
            f"stderr tail:\n{tail}",
            spec=spec,
            exit_code=proc.returncode,
            stderr_tail=tail,
        )
    result = _parse_result(stdout, spec, tail)
    row = _empty_row(spec)
    row.update(result)
    row.update(started_at=started_at, duration_s=duration_s, status="ok", error="")
    return row


def _communicate(
    proc: subprocess.Popen[str], text: str, limit: float, cancel: threading.Event | None
) -> tuple[str, str]:
    """``proc.communicate(text, timeout=limit)``, woken every CANCEL_POLL_S to look at ``cancel``.

    Raises:
        subprocess.TimeoutExpired: ``limit`` seconds passed (the caller kills the worker).
        TrialCancelled: ``cancel`` was set first (the caller kills the worker).
    """
    if cancel is None:
        return proc.communicate(text, timeout=limit)
    deadline = time.monotonic() + limit
    pending: str | None = text
    while True:
        wait_s = min(CANCEL_POLL_S, deadline - time.monotonic())
        try:
            # communicate() may be called again after a timeout: it keeps the input not yet
            # written and the output read so far, so polling loses nothing; the input is given
            # on the first call only (it refuses new input once communication has started).
            return proc.communicate(pending, timeout=max(wait_s, 0.0))
        except subprocess.TimeoutExpired:
            pending = None
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, limit) from None
            if cancel.is_set():
                raise TrialCancelled("cancelled") from None  # run_trial names the trial


def failed_row(
    spec: TrialSpec, error: BaseException | str, *, started_at: datetime, duration_s: float
) -> dict[str, Any]:
    """The results row of a trial that failed: parameters, null metrics, the error text.

    The environment is captured in this (the calling) process, since the worker gave none;
    ``gc_threshold`` is left empty because the trial's GC mode was never known to apply.
    """
    from lifelab.lab.env import PER_TRIAL_COLUMNS, capture_environment

    row = _empty_row(spec)
    env = capture_environment()
    row.update((k, v) for k, v in env.items() if k not in PER_TRIAL_COLUMNS)
    row.update(
        gc_threshold="",
        started_at=started_at,
        duration_s=duration_s,
        status="failed",
        error=error if isinstance(error, str) else (str(error) or type(error).__name__),
    )
    return row


def _empty_row(spec: TrialSpec) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(name for name, _ in ALL_COLUMNS)
    row.update(spec.params())
    row["cell"] = spec.cell
    return row


def _parse_result(stdout: str, spec: TrialSpec, tail: str) -> dict[str, Any]:
    from lifelab.lab._worker import RESULT_KEYS

    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        last = lines[-1][:200] if lines else "(no output)"
        raise TrialFailed(
            f"trial {spec.cell}: the worker's last stdout line is not a JSON object: {last!r}. "
            f"stderr tail:\n{tail}",
            spec=spec,
            exit_code=0,
            stderr_tail=tail,
        )
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        raise TrialFailed(
            f"trial {spec.cell}: the worker's result lacks {missing} (a different lifelab in "
            f"the worker's interpreter?). stderr tail:\n{tail}",
            spec=spec,
            exit_code=0,
            stderr_tail=tail,
        )
    rate = result["ticks_per_s"]
    if not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        raise TrialFailed(
            f"trial {spec.cell}: the worker reported ticks_per_s={rate!r}",
            spec=spec,
            exit_code=0,
            stderr_tail=tail,
        )
    return {k: result[k] for k in RESULT_KEYS}


def _worker_env() -> dict[str, str]:
    """The parent's environment, with this lifelab's source folder first on the worker's path."""
    env = dict(os.environ)
    paths = [str(_SOURCE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _tail(text: str | None, chars: int = STDERR_TAIL_CHARS) -> str:
    if not text or not text.strip():
        return "(no stderr)"
    text = text.rstrip()
    return text if len(text) <= chars else "…" + text[-chars:]
