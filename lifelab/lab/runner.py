"""The manager side of a trial: one fresh worker process per trial (the pyperf model).

:func:`run_trial` starts the worker through :func:`lifelab.lab.spawn.run_worker` with the spec as
its argument, waits with a timeout (the worker's process group is killed when it expires), checks
the exit status and reads the worker's last stdout line as JSON. Anything wrong raises
:class:`TrialFailed` with the exit status and the tail of the worker's stderr; a trial stopped
through its ``cancel`` event raises :class:`TrialCancelled` (its worker is killed). A result is a
plain dict: one row of the results schema (schema.ALL_COLUMNS) whose id columns other than
``cell`` are left for the sweep to fill.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from lifelab.exceptions import LifelabError
from lifelab.lab.schema import ALL_COLUMNS
from lifelab.lab.spawn import (
    WorkerCancelled,
    WorkerError,
    WorkerStartError,
    WorkerTimeout,
    run_worker,
)
from lifelab.lab.spec import TrialSpec

__all__ = ["WORKER_MODULE", "TrialCancelled", "TrialFailed", "failed_row", "run_trial"]

WORKER_MODULE = "lifelab.lab._worker"


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
            worker is killed within about :data:`lifelab.lab.spawn.CANCEL_POLL_S` seconds of it
            being set (timeout semantics are unchanged).

    Returns:
        A dict with every column of schema.ALL_COLUMNS: parameters from the spec, metrics,
        environment and load (null where the worker's system has no /proc) from the worker,
        ``started_at``/``duration_s`` measured here (the instruction count included),
        ``status="ok"``, ``error=""``, ``cell`` set and the other id columns None. With
        ``spec.instructions`` the instruction columns come from
        :func:`lifelab.lab.instructions.count_trial`, run after the timed worker has exited (two
        valgrind processes at once: counts do not depend on load, timings would); else null.

    Raises:
        TrialFailed: The worker timed out, failed, or printed no valid result.
        TrialCancelled: ``cancel`` was set before the worker finished.
    """
    limit = spec.timeout_s if timeout_s is None else float(timeout_s)
    cmd = [python or sys.executable, "-m", WORKER_MODULE, spec.to_json()]
    if cancel is not None and cancel.is_set():
        raise TrialCancelled(f"trial {spec.cell}: cancelled before it started", spec=spec)
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        done = run_worker(cmd, timeout=limit, cancel=cancel, what="the worker")
        result = done.json_line()
    except WorkerCancelled:
        raise TrialCancelled(
            f"trial {spec.cell}: cancelled; its worker was killed", spec=spec
        ) from None
    except WorkerStartError as exc:
        raise TrialFailed(f"trial {spec.cell}: {exc}", spec=spec) from exc
    except WorkerTimeout as exc:
        raise TrialFailed(
            f"trial {spec.cell}: {exc.reason}; give it a larger timeout_s or fewer ticks. "
            f"stderr tail:\n{exc.stderr_tail}",
            spec=spec,
            exit_code=exc.exit_code,
            stderr_tail=exc.stderr_tail,
            timed_out=True,
        ) from None
    except WorkerError as exc:  # a failed exit, or no JSON on the last stdout line
        raise TrialFailed(
            f"trial {spec.cell}: {exc}",
            spec=spec,
            exit_code=exc.exit_code,
            stderr_tail=exc.stderr_tail,
        ) from None
    row = _empty_row(spec)
    row.update(_check_result(result, spec, done.stderr_tail))
    if spec.instructions:
        row.update(_count(spec, python, cancel))
    duration_s = time.perf_counter() - t0
    row.update(started_at=started_at, duration_s=duration_s, status="ok", error="")
    return row


def _count(spec: TrialSpec, python: str | None, cancel: threading.Event | None) -> dict[str, Any]:
    """The trial's instruction columns (after its timed run, never beside it)."""
    from lifelab.lab.bench_realtime import BenchProcessError
    from lifelab.lab.instructions import ValgrindMissing, count_trial

    try:
        return count_trial(spec, python=python, cancel=cancel)
    except WorkerCancelled:
        raise TrialCancelled(
            f"trial {spec.cell}: cancelled while counting instructions", spec=spec
        ) from None
    except (ValgrindMissing, BenchProcessError) as exc:
        raise TrialFailed(f"trial {spec.cell}: counting instructions: {exc}", spec=spec) from exc


def failed_row(
    spec: TrialSpec, error: BaseException | str, *, started_at: datetime, duration_s: float
) -> dict[str, Any]:
    """The results row of a trial that failed: parameters, null metrics and load, the error text.

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


def _check_result(result: Any, spec: TrialSpec, tail: str) -> dict[str, Any]:
    """The worker's result columns, or TrialFailed if it is not the object this runner expects."""
    from lifelab.lab._worker import RESULT_KEYS

    if not isinstance(result, dict):
        raise TrialFailed(
            f"trial {spec.cell}: the worker's last stdout line is not a JSON object: "
            f"{str(result)[:200]!r}. stderr tail:\n{tail}",
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
