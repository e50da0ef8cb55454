"""``lifelab sweep``: expand a grid into trials, run each in a fresh process, keep one table.

The sweep is data first: :func:`lifelab.lab.spec.expand` makes the ordered list of trials (repeats
interleaved), then an executor runs them and every trial becomes one row of the results schema —
a failed trial too, with ``status="failed"`` and its error, so one bad cell never loses the rest.

Executors:
    local: the trials run one after another in subprocesses of this process. Timing trials
        should not share the CPU; ``workers > 1`` runs several at once (threads that each wait on
        a subprocess) and warns that the timings will then interfere.
    dask: dask.distributed runs the trials — ``workers=N`` starts a LocalCluster of N
        single-threaded worker processes (closed afterwards); ``scheduler=ADDRESS`` joins an
        existing cluster, whose workers must have lifelab installed. Every task still calls
        :func:`lifelab.lab.runner.run_trial`, so each trial is a fresh subprocess on its worker.
        A Dask scheduler runs whatever code its clients send: keep it on a trusted network, or
        pass ``security`` (a ``distributed.security.Security``) to use TLS.

Cancelling: pass ``cancel=threading.Event()`` and set it from another thread (a notebook button,
a signal handler). No trial starts after that; a local trial that is running has its worker
killed; on Dask, the pending trials are cancelled when the next trial comes back (running tasks
finish on their workers). A cancelled sweep writes nothing and raises :class:`SweepCancelled`,
which says how many trials had completed: a results file is always a whole sweep.

Nothing here starts processes or changes settings at import time.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.results import DEFAULT_RESULTS_ROOT, ResultsExistsError, write_results
from lifelab.lab.runner import TrialCancelled, TrialFailed, failed_row, run_trial
from lifelab.lab.schema import ALL_COLUMNS, polars_schema
from lifelab.lab.spec import TrialSpec, expand

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "EXECUTORS",
    "MissingDependencyError",
    "SweepCancelled",
    "TrialHook",
    "default_results_path",
    "label_rows",
    "new_sweep_id",
    "rows_to_frame",
    "run_sweep",
    "run_trial_row",
    "sweep_summary",
]

EXECUTORS = ("local", "dask")

TrialHook = Callable[[int, int, dict[str, Any]], None]
"""``on_trial(done, total, row)``: called after each trial (see :func:`run_sweep`)."""


class MissingDependencyError(LifelabError, ImportError):
    """An optional dependency (e.g. dask.distributed for ``executor="dask"``) is not installed."""


class SweepCancelled(LifelabError, RuntimeError):
    """A sweep stopped because its ``cancel`` event was set; no results file was written.

    Attributes:
        completed: Trials that had finished (ok or failed) when the sweep stopped.
        total: Trials the sweep planned.
    """

    def __init__(self, completed: int, total: int) -> None:
        super().__init__(
            f"sweep cancelled after {completed}/{total} trials; no results were written"
        )
        self.completed = completed
        self.total = total


def new_sweep_id() -> str:
    """``<UTC timestamp>-<8 hex>``: sorts by time, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def default_results_path(suite: str, sweep_id: str, root: Path = DEFAULT_RESULTS_ROOT) -> Path:
    """``data/results/<suite>/<sweep_id>.parquet``."""
    return root / suite / f"{sweep_id}.parquet"


def run_sweep(
    grid: Mapping[str, Any],
    *,
    repeats: int = 3,
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    suite: str = "adhoc",
    out: str | Path | None = None,
    base: TrialSpec | Mapping[str, Any] | None = None,
    progress: bool = True,
    timeout_s: float = 600.0,
    security: Any = None,
    cancel: threading.Event | None = None,
    on_trial: TrialHook | None = None,
    instructions: bool = False,
) -> pl.DataFrame:
    """Run every trial of a grid and return (and write) the results table.

    Args:
        grid: Parameter -> value or list of values (see :func:`lifelab.lab.spec.expand`).
        repeats: Runs per cell, interleaved.
        executor: ``"local"`` or ``"dask"``.
        workers: Trials run at once (local), or LocalCluster worker processes (dask).
        scheduler: Address of an existing Dask scheduler (dask only; excludes ``workers``).
        suite: Name of the suite: the folder under ``data/results/``.
        out: Parquet path to write (default ``data/results/<suite>/<sweep_id>.parquet``), or
            an existing directory to write ``<out>/<sweep_id>.parquet`` into; an existing file
            is refused before anything runs.
        base: Values of the parameters the grid leaves out (TrialSpec or mapping).
        progress: Show a ``tqdm.auto`` bar: a widget in Jupyter, text on stderr in a terminal
            (hidden there when stderr is not a terminal); False hides it everywhere.
        timeout_s: Seconds each trial may take, unless ``base`` or the grid sets ``timeout_s``.
        security: Passed to dask's Client/LocalCluster (e.g. a TLS ``Security``).
        cancel: Set this event (from any thread) to stop the sweep: no further trial starts and
            a running local trial is killed (see the module docstring for Dask).
        on_trial: Called as ``on_trial(done, total, row)`` after each trial, in the thread that
            called run_sweep: ``done`` trials of ``total`` have finished and ``row`` is a copy
            of the one that just did (its ``status`` is "ok" or "failed"; the id columns other
            than ``cell`` are not filled yet). An exception it raises stops the sweep.
        instructions: Also count each trial's measured ticks under valgrind (the instruction
            columns; :attr:`lifelab.lab.spec.TrialSpec.instructions`). valgrind must be
            installed where the trials run: on this machine it is checked before any trial.

    Returns:
        One row per trial in execution order, columns exactly schema.ALL_COLUMNS.

    Raises:
        SweepCancelled: ``cancel`` was set before every trial had run; nothing was written.
        lifelab.lab.instructions.ValgrindMissing: ``instructions`` without valgrind here.
    """
    df, _ = _sweep(
        grid,
        repeats=repeats,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        suite=suite,
        out=out,
        base=base,
        progress=progress,
        timeout_s=timeout_s,
        security=security,
        cancel=cancel,
        on_trial=on_trial,
        instructions=instructions,
    )
    return df


def _sweep(
    grid: Mapping[str, Any],
    *,
    repeats: int,
    executor: str,
    workers: int,
    scheduler: str | None,
    suite: str,
    out: str | Path | None,
    base: TrialSpec | Mapping[str, Any] | None,
    progress: bool,
    timeout_s: float,
    security: Any,
    cancel: threading.Event | None = None,
    on_trial: TrialHook | None = None,
    instructions: bool = False,
) -> tuple[pl.DataFrame, Path]:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError("scheduler= joins a Dask cluster: it needs executor='dask'")
    if scheduler is not None and workers != 1:
        raise ValueError("give either workers= (start a local cluster) or scheduler=, not both")
    if not suite or "/" in suite or suite.startswith("."):
        raise ValueError(f"suite must be a plain folder name, got {suite!r}")
    if isinstance(base, Mapping) and "timeout_s" not in base:
        base = {**base, "timeout_s": timeout_s}
    elif base is None:
        base = {"timeout_s": timeout_s}
    specs = expand(grid, repeats=repeats, base=base)
    if instructions:
        specs = [dataclasses.replace(spec, instructions=True) for spec in specs]
    if any(spec.instructions for spec in specs) and scheduler is None:
        from lifelab.lab.instructions import valgrind_path

        valgrind_path()  # the trials run here: refuse now, not once per trial
    sweep_id = new_sweep_id()
    path = Path(out) if out is not None else default_results_path(suite, sweep_id)
    if path.is_dir():
        path = path / f"{sweep_id}.parquet"
    if path.exists():
        raise ResultsExistsError(f"{path} already exists; results are never overwritten")

    bar = _progress_bar(len(specs), progress)
    failed = finished = 0

    def done(row: dict[str, Any]) -> None:
        nonlocal failed, finished
        finished += 1
        failed += row["status"] != "ok"
        bar.update(1)
        bar.set_postfix(failed=failed, refresh=False)
        if on_trial is not None:
            on_trial(finished, len(specs), dict(row))

    try:
        if executor == "local":
            rows = _run_local(specs, workers, done, cancel)
        else:
            rows = _run_dask(specs, workers, scheduler, security, done, cancel)
    finally:
        bar.close()
    if len(rows) < len(specs):  # only a cancel leaves trials unrun
        raise SweepCancelled(len(rows), len(specs))

    label_rows(specs, rows, suite=suite, sweep_id=sweep_id)
    df = rows_to_frame(rows)
    write_results(df, path, suite=suite, sweep_id=sweep_id)
    return df, path


def label_rows(
    specs: list[TrialSpec], rows: list[dict[str, Any]], *, suite: str, sweep_id: str
) -> None:
    """Fill the id columns of a sweep's rows in place: ``rows[i]`` is the trial ``specs[i]``,
    run ``i``-th (``order``); ``repeat`` counts the earlier trials of the same cell."""
    counts: dict[str, int] = {}
    for order, (spec, row) in enumerate(zip(specs, rows, strict=True)):
        repeat = counts.get(spec.cell, 0)
        counts[spec.cell] = repeat + 1
        row.update(
            suite=suite,
            sweep_id=sweep_id,
            trial_id=f"{sweep_id}-{order}",
            cell=spec.cell,
            repeat=repeat,
            order=order,
        )


def rows_to_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A results DataFrame (schema.polars_schema()) from row dicts, values coerced per dtype."""
    import polars as pl

    schema = polars_schema()
    kinds = dict(ALL_COLUMNS)
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    for row in rows:
        for name in schema:
            columns[name].append(_coerce(row.get(name), kinds[name]))
    return pl.DataFrame(columns, schema=schema)


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "Float64":
        value = float(value)
        return value if math.isfinite(value) else None
    if kind == "Int64":
        return int(value)
    if kind == "Boolean":
        return bool(value)
    if kind == "String":
        return str(value)
    return value


# -- one trial, wherever it runs ---------------------------------------------------------------


def run_trial_row(
    spec: TrialSpec, python: str | None = None, cancel: threading.Event | None = None
) -> dict[str, Any]:
    """Run one trial and return its row; a failure becomes a ``status="failed"`` row.

    Module-level (picklable by reference) so Dask workers can run it.

    Raises:
        TrialCancelled: ``cancel`` was set (passed through: a cancelled trial has no row).
    """
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        return run_trial(spec, python=python, cancel=cancel)
    except TrialCancelled:
        raise
    except TrialFailed as exc:
        error: BaseException | str = exc
    except Exception as exc:  # e.g. OSError from a full disk: still one failed row, not a crash
        error = f"{type(exc).__name__}: {exc}"
    return failed_row(spec, error, started_at=started_at, duration_s=time.perf_counter() - t0)


def _run_local(
    specs: list[TrialSpec],
    workers: int,
    done: Callable[[dict[str, Any]], None],
    cancel: threading.Event | None,
) -> list[dict[str, Any]]:
    """The rows of the trials that ran, in ``specs`` order; fewer than ``specs`` if cancelled."""
    if workers == 1:
        rows = []
        for spec in specs:
            try:
                rows.append(run_trial_row(spec, cancel=cancel))
            except TrialCancelled:
                break
            done(rows[-1])
        return rows
    warnings.warn(
        f"running {workers} trials at once on this machine: they compete for CPU and memory "
        "bandwidth, so their timings interfere; use workers=1 for numbers you will compare",
        RuntimeWarning,
        stacklevel=4,
    )
    from concurrent.futures import ThreadPoolExecutor, as_completed

    # Threads only wait on their subprocess; the trials themselves run in fresh processes.
    results: list[dict[str, Any] | None] = [None] * len(specs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lifelab-trial") as pool:
        futures = {
            pool.submit(run_trial_row, spec, cancel=cancel): i for i, spec in enumerate(specs)
        }
        for future in as_completed(futures):
            try:
                row = future.result()
            except TrialCancelled:
                # Trials not started yet raise at once too, so the pool drains quickly.
                continue
            results[futures[future]] = row
            done(row)
    return [row for row in results if row is not None]


def _run_dask(
    specs: list[TrialSpec],
    workers: int,
    scheduler: str | None,
    security: Any,
    done: Callable[[dict[str, Any]], None],
    cancel: threading.Event | None,
) -> list[dict[str, Any]]:
    """The rows of the trials that ran, in ``specs`` order; fewer than ``specs`` if cancelled.

    ``cancel`` (a threading.Event cannot travel to the workers) is looked at each time a trial
    comes back: then the pending trials are cancelled and running ones are left to finish.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise MissingDependencyError(
            "executor='dask' needs dask.distributed: pip install 'lifelab[cluster]'"
        ) from exc
    extra = {} if security is None else {"security": security}
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            **extra,
        )
        client = Client(cluster, **extra)
    else:
        client = Client(scheduler, **extra)
    results: list[dict[str, Any] | None] = [None] * len(specs)
    try:
        index = {}
        futures = []
        token = secrets.token_hex(4)
        for i, spec in enumerate(specs):
            # A key per trial: repeats of a cell are distinct runs, never deduplicated by Dask.
            future = client.submit(run_trial_row, spec, key=f"lifelab-trial-{token}-{i}")
            index[future.key] = i
            futures.append(future)
        for future in as_completed(futures):
            i = index[future.key]
            try:
                row = future.result()
            except Exception as exc:  # the Dask worker itself died or lost the task
                row = failed_row(
                    specs[i],
                    f"dask task failed: {type(exc).__name__}: {exc}",
                    started_at=datetime.now(UTC),
                    duration_s=0.0,
                )
            results[i] = row
            done(row)
            if cancel is not None and cancel.is_set():
                client.cancel([f for f in futures if not f.done()])
                break
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [row for row in results if row is not None]


def _progress_bar(total: int, progress: bool) -> Any:
    # tqdm.auto: a widget bar under a Jupyter kernel, where disable=None means "shown" (the
    # notebook bar does not look at the terminal); a text bar on stderr elsewhere, where
    # disable=None hides it when stderr is not a terminal (logs, CI).
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc="sweep",
        unit="trial",
        disable=None if progress else True,
        leave=False,
    )


# -- the command's summary ---------------------------------------------------------------------


def sweep_summary(
    grid: Mapping[str, Any],
    *,
    repeats: int = 3,
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    suite: str = "adhoc",
    out: str | Path | None = None,
    timeout_s: float = 600.0,
    progress: bool = True,
    instructions: bool = False,
) -> dict[str, Any]:
    """Run a sweep as :func:`run_sweep` does and return what ``lifelab sweep --json`` prints.

    Keys: path (the table written), rows, ok, failed (trial counts), sweep_id, suite, cells,
    repeats, executor, instructions (whether trials were counted) and, when they were,
    instructions_per_tick (the median over the ok trials).
    """
    df, path = _sweep(
        grid,
        repeats=repeats,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        suite=suite,
        out=out,
        base=None,
        progress=progress,
        timeout_s=timeout_s,
        security=None,
        instructions=instructions,
    )
    statuses = df["status"].to_list()
    return {
        "path": str(path),
        "rows": df.height,
        "ok": statuses.count("ok"),
        "failed": statuses.count("failed"),
        "sweep_id": df["sweep_id"][0] if df.height else "",
        "suite": suite,
        "cells": df["cell"].n_unique(),
        "repeats": repeats,
        "executor": executor,
        "instructions": instructions,
        **({"instructions_per_tick": df["instructions_per_tick"].median()} if instructions else {}),
    }
