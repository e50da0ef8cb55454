"""The ``lifelab`` command: one table of commands that parse, call the library and print.

:data:`COMMANDS` lists every command once — its name, help, a function adding its options and a
handler — and :func:`build_parser` is a loop over it. argparse lives here only (with the value
types of :mod:`lifelab._argtypes`): the library takes plain keyword arguments. Handlers import
what they need when they run, so ``lifelab --help`` loads no numpy, polars or numba.

Every command has ``--help``; ``--json`` prints one JSON object as the last line of stdout.
Errors print one line to stderr. The exit status says what happened (:func:`exit_code`):

    0    ok
    1    a check failed: ``compare`` found a regression, ``soak --strict`` missed a target
    2    bad usage or input: argparse refused the command line, a value is out of range
         (ConfigError and other ValueError/TypeError), a file is missing, damaged or would be
         overwritten
    3    a trial or run failed: a sweep with failed trials, a trial, profiler or benchmark process
         that crashed or timed out, a run that raised or could not write (disk full, I/O error)
    130  ``run``/``resume`` stopped by SIGINT, after a clean shutdown (143: by SIGTERM; see
         :data:`SIGNAL_EPILOG`)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import FrameType
from typing import Any

from lifelab import __version__
from lifelab._argtypes import (
    ENGINE_HELP,
    add_engine_option,
    add_set_option,
    config_overrides,
    engine_choice,
    finite_number,
    fraction,
    int_at_least,
    positive_number,
    sweep_grid,
)
from lifelab.exceptions import LifelabError

__all__ = ["COMMANDS", "Command", "Exit", "build_parser", "exit_code", "main"]

Handler = Callable[[argparse.Namespace], Any]
"""Runs a command: returns its result (a dict), or ``(result, exit status)``."""

SIGNAL_EPILOG = (
    "Signals: SIGINT (Ctrl-C) or SIGTERM stops the organism at the next tick boundary and shuts "
    "down cleanly (final snapshot, logs flushed, archive committed), prints the summary and exits "
    "with status 130 (SIGINT) or 143 (SIGTERM). A second signal during the shutdown ends the "
    "process at once, as the signal's default action does (the shell also shows 130 or 143); "
    "nothing is corrupted and `lifelab resume` continues from the newest intact snapshot."
)
EXIT_EPILOG = """\
exit status:
  0        ok
  1        a check failed: compare found a regression, soak --strict missed a target
  2        bad usage or input: a bad option or value, a missing, damaged or existing file
  3        a trial or run failed: failed sweep trials, a crashed or timed-out worker, an I/O
           failure while running
  130/143  run or resume stopped by SIGINT/SIGTERM, after a clean shutdown"""


# -- exit codes ------------------------------------------------------------------------------------


class Exit(IntEnum):
    """The exit status by meaning (module docstring); 130 and 143 come from signals."""

    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    RUN_FAILED = 3


# A path named on the command line that is missing, in the way or not allowed: bad input.
_BAD_PATH = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def exit_code(exc: BaseException) -> Exit:
    """The exit status of a command that raised ``exc`` (the one place errors become codes).

    Bad input (2): ValueError and TypeError (ConfigError, SnapshotError, ExperimentError…),
    ImportError (an optional dependency the options need), and the OSErrors that name a path: the
    built-in ones above and lifelab's own (RunDirError, ArchiveError: a run directory or archive
    that is missing or damaged; ResultsExistsError). Anything else failed while running (3):
    TrialFailed, ExperimentFailed (a notebook that raised), ProfileError, BenchProcessError, a
    StageError, a disk that filled up…
    """
    if isinstance(exc, ValueError | TypeError | ImportError):
        return Exit.BAD_INPUT
    if isinstance(exc, _BAD_PATH) or (isinstance(exc, OSError) and isinstance(exc, LifelabError)):
        return Exit.BAD_INPUT
    return Exit.RUN_FAILED


# -- helpers ---------------------------------------------------------------------------------------


_positive_int = int_at_least(1)
_count = int_at_least(0)
_number = finite_number()


def _progress(total: int, desc: str, unit: str = "tick") -> Any:
    """A tqdm.auto bar: text on stderr (hidden when not a terminal), a widget in Jupyter."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=None, leave=False)


def _print_table(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for key, value in result.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        elif isinstance(value, list) and value and isinstance(value[0], float):
            text = " ".join(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in value)
        else:
            text = str(value)
        print(f"{key:<{width}}  {text}")


def _no_arguments(p: argparse.ArgumentParser) -> None:
    """A command without options of its own (``--json`` is added to every command)."""


# -- run and resume --------------------------------------------------------------------------------


_LIFE_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    # flag: (type, default for run, help)
    "--seed": (int, 0, "seed of the organism's generator (0)"),
    "--events-per-tick": (_number, 1.0, "mean events the environment emits per tick (1)"),
    "--batch-size": (_positive_int, 64, "most events drained per tick (64)"),
    "--memory-capacity": (_positive_int, 10_000, "active memory capacity (10000)"),
    "--snapshot-every": (int, 1000, "ticks between snapshots, 0 for none (1000)"),
    "--log-every": (int, 1000, "ticks between tick-summary log lines, 0 for none (1000)"),
    "--dt": (_number, 1.0, "simulated seconds per tick (1.0)"),
    "--interval": (_number, 0.01, "seconds between ticks with --realtime (0.01)"),
}
_CONFIG_FIELD = {
    "seed": "seed",
    "events_per_tick": "events_per_tick",
    "batch_size": "batch_size",
    "memory_capacity": "memory_capacity",
    "snapshot_every": "snapshot_every",
    "log_every": "log_every",
    "dt": "dt",
    "interval": "tick_interval",
    "engine": "engine",
}


def _add_life_options(p: argparse.ArgumentParser, *, resume: bool = False) -> None:
    for flag, (kind, default, text) in _LIFE_OPTIONS.items():
        if resume and flag == "--seed":
            continue
        p.add_argument(flag, type=kind, default=None if resume else default, help=text)
    if resume:
        add_engine_option(p, "default: the run's own")
    else:
        add_engine_option(p)
    p.add_argument(
        "--poisson",
        action="store_true",
        default=None,
        help="draw the number of events per tick from a Poisson law",
    )
    if not resume:
        p.add_argument(
            "--run-dir",
            default=None,
            help="run directory (default: data/runs/<timestamp>-<life id>)",
        )
        p.add_argument("--realtime", action="store_true", help="pace ticks on the wall clock")


def _config_from(args: argparse.Namespace) -> Any:
    from lifelab.config import LifeConfig

    values = {field: getattr(args, dest) for dest, field in _CONFIG_FIELD.items()}
    if values["engine"] is None:  # not given: LifeConfig's default
        del values["engine"]
    return LifeConfig(
        clock="realtime" if args.realtime else "simulated",
        events_mode="poisson" if args.poisson else "fixed",
        run_dir=args.run_dir,
        **values,
    )


def _overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the options given on the command line (resume keeps the run's own config)."""
    out = {
        field: getattr(args, dest)
        for dest, field in _CONFIG_FIELD.items()
        if getattr(args, dest, None) is not None
    }
    if args.poisson:
        out["events_mode"] = "poisson"
    return out


class _SignalStop:
    """SIGINT and SIGTERM during ``run``/``resume``: stop at a tick boundary, shut down cleanly.

    The first signal records itself and asks the organism to stop (``Life.request_stop``, safe
    in a handler: it sets an event); the handlers then fall back to the default action, so a
    second signal ends the process at once, even inside a long system call. That is safe because
    every file lifelab writes survives a kill at any moment (DESIGN §2, invariant 7). Installed
    only for the command's duration and only in the main thread; the previous handlers are
    restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.life: Any = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalStop:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)

    def attach(self, life: Any) -> None:
        """Stop this organism on a signal (at once if one came while it was being built)."""
        self.life = life
        if self.signum is not None:
            life.request_stop()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        for sig in self._previous:
            signal.signal(sig, signal.SIG_DFL)  # a second signal: the default action, at once
        if self.life is not None:
            self.life.request_stop()

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def finish(self, life: Any, out: dict[str, Any]) -> Any:
        """The command's result: ``out``, or ``(out, 128 + signal)`` after a signal."""
        if self.signum is None:
            return out
        print(
            f"{self.name}: stopped cleanly at tick {life.state.ticks} "
            f"(final snapshot written, logs flushed, archive committed)",
            file=sys.stderr,
        )
        out["signal"] = self.name
        return out, 128 + self.signum


def _live(life: Any, ticks: int, stop: _SignalStop) -> dict[str, Any]:
    """Run ``ticks`` ticks in chunks under a progress bar, until done or a signal came."""
    if life.config.clock == "realtime":
        return _live_realtime(life, ticks)
    chunk = max(1, min(10_000, ticks // 100 or 1))
    start = life.state.ticks
    with _progress(ticks, "living") as bar:
        done = 0
        while done < ticks and life.alive and stop.signum is None:
            life.run(min(chunk, ticks - done))
            step = life.state.ticks - start - done  # fewer than asked when a signal stopped it
            done += step
            bar.update(step)
    return life.summary()


def _live_realtime(life: Any, ticks: int) -> dict[str, Any]:
    """Real time: one ``run(ticks)`` in a worker thread, on one schedule (each run() begins a new
    one, and returns a summary with a digest); this thread keeps the progress bar and the signal
    handlers, whose request_stop() ends the run at the next tick boundary.

    (Chunks of run() cost ~8 % of a core at 100 Hz for 500 ticks, a digest every 5 ticks; this
    thread wakes once a second, as a bar needs no more.)
    """
    start = life.state.ticks
    failed: list[BaseException] = []

    def target() -> None:
        try:
            life.run(ticks)
        except BaseException as exc:  # re-raised in this thread
            failed.append(exc)

    worker = threading.Thread(target=target, name="lifelab-run", daemon=True)
    with _progress(ticks, "living") as bar:
        worker.start()
        shown = 0
        while worker.is_alive():
            worker.join(1.0)
            done = life.state.ticks - start
            bar.update(done - shown)
            shown = done
    if failed:
        raise failed[0]
    return life.summary()


def _shut_down(life: Any, stop: _SignalStop) -> None:
    """Close the organism; after a signal, log it first so the log shows why the run ended."""
    if stop.signum is not None and life.persistence is not None:
        life.persistence.log("signal", life.state.ticks, signal=stop.name)
    life.close()


def cmd_run(args: argparse.Namespace) -> Any:
    from lifelab.life.loop import Life

    config = _config_from(args)
    with _SignalStop() as stop:
        life = Life(config) if config.run_dir else Life.create_run(config)
        stop.attach(life)
        try:
            _live(life, args.ticks, stop)
        finally:
            _shut_down(life, stop)
    out = life.summary()
    out["engine"] = life.engine  # what ran (numba missing: the Python fallback)
    if args.metrics:
        out["metrics"] = life.metrics_summary()
        if not args.json:
            print(life.metrics.stage_frame())
    return stop.finish(life, out)


def cmd_resume(args: argparse.Namespace) -> Any:
    import warnings

    from lifelab.life.loop import Life

    with _SignalStop() as stop:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            life = Life.resume(args.run_dir, **_overrides_from(args))
        stop.attach(life)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        try:
            _live(life, args.ticks, stop)
        finally:
            _shut_down(life, stop)
    out = life.summary()
    out["engine"] = life.engine
    out["corrupt_files"] = [str(p) for p in life.corrupt_files]
    return stop.finish(life, out)


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ticks", type=_positive_int, default=10_000, help="ticks to live (10000)")
    _add_life_options(p)
    p.add_argument(
        "--metrics",
        action="store_true",
        help="also print the built-in metrics (stage timings, counters, GC)",
    )


def _resume_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--ticks", type=_positive_int, default=10_000, help="ticks to live (10000)")
    _add_life_options(p, resume=True)


# -- inspect and search ----------------------------------------------------------------------------


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")


def _search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--type", default=None, help="event type name")
    p.add_argument("--min-sig", type=_number, default=None, help="lowest significance")
    p.add_argument("--max-sig", type=_number, default=None, help="highest significance")
    p.add_argument("--since", type=_number, default=None, help="earliest life-clock timestamp")
    p.add_argument("--until", type=_number, default=None, help="latest life-clock timestamp")
    p.add_argument("--limit", type=int, default=20, help="most rows (20)")
    p.add_argument(
        "--sort",
        choices=("timestamp", "significance", "weight"),
        default="timestamp",
        help="sort key (timestamp)",
    )
    p.add_argument("--desc", action="store_true", help="sort descending")


def cmd_inspect(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.store.inspect import inspect_run

    return inspect_run(args.run_dir)


def cmd_search(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.store.inspect import search_run

    result = search_run(
        args.run_dir,
        event_type=args.type,
        min_sig=args.min_sig,
        max_sig=args.max_sig,
        since=args.since,
        until=args.until,
        limit=args.limit,
        sort=args.sort,
        descending=args.desc,
    )
    if not args.json:
        _print_rows(result["rows"])
        print(f"({result['count']} rows)")
    return result


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    cells = [[_cell(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# -- bench -----------------------------------------------------------------------------------------


def cmd_bench_loop(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench import bench_loop
    from lifelab.observe.gcmode import parse_gc_mode

    parse_gc_mode(args.gc)  # refuse a bad mode before any work
    extra = config_overrides(args.set)
    engine = engine_choice(args.engine, extra)
    if args.instructions:
        return _bench_loop_instructions(args, engine, extra)
    if args.snapshot_every:
        extra["snapshot_every"] = args.snapshot_every
    if args.log_every:
        extra["log_every"] = args.log_every
    if args.persisted:
        from lifelab.lab.bench import bench_persisted

        with _progress(2 * args.rounds * args.ticks, "bench loop --persisted") as bar:
            return bench_persisted(
                ticks=args.ticks,
                rounds=args.rounds,
                **_workload(args, engine),
                snapshot_every=args.snapshot_every or 10_000,
                log_every=args.log_every or 1_000,
                progress=bar.update,
                **extra,
            )
    with _progress(args.ticks, "bench loop") as bar:
        return bench_loop(
            ticks=args.ticks,
            **_workload(args, engine),
            gc=args.gc,
            baseline=args.baseline,
            progress=bar.update,
            **extra,
        )


def _workload(args: argparse.Namespace, engine: str | None) -> dict[str, Any]:
    """The organism every ``bench loop`` variant measures, from its options."""
    return {
        "events_per_tick": args.events_per_tick,
        "batch_size": args.batch_size,
        "memory_capacity": args.memory_capacity,
        "seed": args.seed,
        "engine": engine,
    }


def _bench_loop_instructions(
    args: argparse.Namespace, engine: str | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """``bench loop --instructions``: instructions per tick and per event under valgrind."""
    from lifelab.lab.instructions import bench_loop_instructions

    if args.persisted or args.baseline or args.snapshot_every or args.log_every:
        raise ValueError(
            "--instructions counts the bare loop: drop --persisted, --baseline, "
            "--snapshot-every and --log-every"
        )
    # Two steps: the warm-up, then both valgrind runs at once.
    with _progress(2, "bench loop --instructions", "step") as bar:
        result = bench_loop_instructions(
            ticks=None if isinstance(args.ticks, _Default) else args.ticks,  # engine's default
            **_workload(args, engine),
            gc=args.gc,
            progress=_step(bar),
            **extra,
        )
        bar.update()
    return result


def _step(bar: Any) -> Any:
    """A progress callback for benches that report steps by name as each starts (bench
    degradation, perfcheck, the --instructions benches): the bar shows the step being done and
    counts the ones finished; the caller counts the last one when the bench returns."""
    started = False

    def step(text: str) -> None:
        nonlocal started
        if started:
            bar.update()
        started = True
        bar.set_postfix_str(text)

    return step


def cmd_bench_realtime(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench_realtime import bench_realtime

    extra = config_overrides(args.set)
    engine = engine_choice(args.engine, extra)
    if engine is not None:
        extra["engine"] = engine
    ticks = round(args.seconds / args.interval)
    with _progress(ticks, "bench realtime") as bar:
        return bench_realtime(
            seconds=args.seconds,
            interval=args.interval,
            seed=args.seed,
            baseline=args.baseline,
            run_dir=args.run_dir,
            persist=args.persist,
            progress=bar.update,
            **extra,
        )


def cmd_bench_degradation(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench_degradation import bench_degradation

    # The captures and the untimed round, the rounds; with --instructions a warm-up and a
    # count of each state (bench_degradation's progress steps).
    steps = args.rounds + 3 + (3 if args.instructions else 0)
    with _progress(steps, "bench degradation", "step") as bar:
        result = bench_degradation(
            ticks=args.ticks,
            memory_capacity=args.memory_capacity,
            events_per_tick=args.events_per_tick,
            engine=args.engine or "compiled",
            seed=args.seed,
            rounds=args.rounds,
            sample_ticks=args.sample_ticks,
            instructions=args.instructions,
            progress=_step(bar),
        )
        bar.update()
    return result


def cmd_bench_import(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench_realtime import bench_import

    return bench_import(repeats=args.repeats)


def cmd_bench_compile(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench_realtime import bench_compile

    return bench_compile()


def cmd_bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.bench_memory import bench_memory, progress_total

    if args.instructions:
        from lifelab.lab.instructions import MEMORY_ENTRIES, bench_memory_instructions

        entries = MEMORY_ENTRIES if isinstance(args.entries, _Default) else args.entries
        # Per op (decay, spill, search): a warm-up, then its two valgrind runs at once.
        with _progress(6, "bench memory --instructions", "step") as bar:
            result = bench_memory_instructions(entries=entries, seed=args.seed, progress=_step(bar))
            bar.update()
        return result
    with _progress(progress_total(args.entries, args.archive), "bench memory", "entry") as bar:
        return bench_memory(
            entries=args.entries,
            seed=args.seed,
            archive=args.archive,
            searches=args.searches,
            progress=bar.update,
        )


class _Default(int):
    """An option's default that a handler can tell from the same value given on the command
    line (``--instructions`` has smaller defaults for ``--ticks`` and ``--entries``)."""


def _bench_loop_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ticks",
        type=_positive_int,
        default=_Default(200_000),
        help="measured ticks (200000; with --instructions n2 - n1 of the two runs, default "
        "10000 python, 200000 compiled)",
    )
    p.add_argument("--events-per-tick", type=_number, default=1.0, help="events per tick (1)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (64)")
    p.add_argument(
        "--memory-capacity",
        type=_positive_int,
        default=10_000,
        help="active memory capacity (10000)",
    )
    p.add_argument(
        "--gc",
        default="default",
        help="GC mode after warm-up: default|off|freeze|tuned|T0,T1,T2 (default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.add_argument(
        "--baseline", action="store_true", help="also time a bare minimal loop and report the ratio"
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=0,
        help="snapshot every K ticks into a temporary run directory (0: off)",
    )
    p.add_argument(
        "--log-every", type=int, default=0, help="log a tick summary every K ticks (0: off)"
    )
    p.add_argument(
        "--persisted",
        action="store_true",
        help="time the same run without and with a run directory (snapshots every "
        "--snapshot-every or 10000, logs every --log-every or 1000), interleaved, and report "
        "the ratio of the medians (persist_ratio)",
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds for --persisted (5)")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind instead of timing: two fresh runs (n1, n2 ticks) "
        "differenced, instructions_per_tick and instructions_per_event (with a cold numba cache "
        "the compiled engine compiles first, outside valgrind)",
    )
    add_engine_option(p)
    add_set_option(p)


def _bench_realtime_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=_number, default=60.0, help="how long to live (60)")
    p.add_argument("--interval", type=_number, default=0.01, help="seconds per tick (0.01)")
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also time a bare pacing loop on the organism's own wait (up to 10 s, half before, "
        "half after): baseline_cpu_percent and cpu_ratio",
    )
    persist = p.add_mutually_exclusive_group()
    persist.add_argument(
        "--run-dir",
        metavar="DIR",
        help="live with a run directory (new, kept): snapshots every 1000 ticks, tick logs every "
        "1000 (change with --set); implies --baseline",
    )
    persist.add_argument(
        "--persist",
        action="store_true",
        help="as --run-dir, in a temporary directory removed afterwards",
    )
    add_engine_option(p)
    add_set_option(p, "events_per_tick=4")


def _bench_degradation_arguments(p: argparse.ArgumentParser) -> None:
    from lifelab.lab.bench_degradation import (  # stdlib-only at import
        DEFAULT_ROUNDS,
        INSTRUCTION_TICKS_MAX,
    )

    p.add_argument(
        "--ticks", type=int_at_least(20), default=1_000_000, help="length of the run (1000000)"
    )
    p.add_argument(
        "--memory-capacity", type=_positive_int, default=100_000, help="active entries (100000)"
    )
    p.add_argument("--events-per-tick", type=_number, default=1.0, help="world rate (1.0)")
    p.add_argument(
        "--rounds",
        type=int_at_least(2),
        default=DEFAULT_ROUNDS,
        help=f"timed rounds, each state once per round (ABBA order) ({DEFAULT_ROUNDS})",
    )
    p.add_argument(
        "--sample-ticks",
        type=_positive_int,
        default=None,
        help="ticks timed per state and round (a tenth of --ticks)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="after the timed rounds, also count each state's instructions per tick under "
        "valgrind over the same window (--sample-ticks, at most "
        f"{INSTRUCTION_TICKS_MAX['python']} python, {INSTRUCTION_TICKS_MAX['compiled']} "
        "compiled) and report instructions_ratio (start / end; below 1 the end does more work "
        "per tick)",
    )
    add_engine_option(p)


def _bench_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=_positive_int, default=15, help="fresh interpreters (15)")


def _bench_memory_arguments(p: argparse.ArgumentParser) -> None:
    # The range of --entries (at least bench_memory.MIN_ENTRIES) is bench_memory's to check:
    # importing it here would load numpy for every --help.
    p.add_argument(
        "--entries",
        type=_positive_int,
        default=_Default(1_000_000),
        help="entries in active memory and in the archive (1000000; 100000 with --instructions)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data generator (0)")
    p.add_argument(
        "--searches",
        type=_positive_int,
        default=200,
        help="timed archive searches (200)",
    )
    p.add_argument(
        "--no-archive",
        dest="archive",
        action="store_false",
        help="skip the SQLite archive (its keys are then null)",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind instead of timing: per decay pass, per spilled "
        "entry and per search, each from two fresh runs differenced",
    )


# -- experiments -----------------------------------------------------------------------------------


def _experiment_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="experiments/NAME.toml")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="override a parameter (VALUE parsed as JSON, else a string)",
    )
    p.add_argument("--full", action="store_true", help="merge the file's [full] table")
    p.add_argument(
        "--smoke", action="store_true", help="merge the file's [smoke] table (tiny sizes, for CI)"
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="write result tables here (inside data/; default data/results/<suite>)",
    )


def cmd_experiment_run(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.experiment import run_experiment

    overrides = {}
    for key, text in args.parameter or []:
        try:
            overrides[key] = json.loads(text)
        except ValueError:
            overrides[key] = text
    return run_experiment(
        args.file,
        overrides,
        full=args.full,
        smoke=args.smoke,
        results_dir=args.results_dir,
        progress=not args.json,
    )


def cmd_experiment_list(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.lab.experiment import list_experiments

    found = list_experiments()
    if not args.json:
        for exp in found:
            print(f"{exp.name:<22} {exp.source}  {exp.description}")
        return {"count": len(found)}
    return {
        "experiments": [
            {"name": e.name, "file": str(e.source), "notebook": str(e.notebook), "suite": e.suite}
            for e in found
        ]
    }


# -- profile ---------------------------------------------------------------------------------------


def _profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tool",
        choices=("cprofile", "scalene"),
        default="cprofile",
        help="profiler: cprofile or scalene (cprofile)",
    )
    p.add_argument("--ticks", type=_positive_int, default=50_000, help="profiled ticks (50000)")
    p.add_argument(
        "--warmup", type=_count, default=2_000, help="unprofiled warm-up ticks first (2000)"
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: data/runs/profiles/<UTC timestamp>-<tool>/)",
    )
    p.add_argument(
        "--timeout",
        type=positive_number,
        default=None,
        help="seconds the worker may take (generous)",
    )
    p.add_argument(
        "--cpu-only", action="store_true", help="scalene: profile CPU only, no memory (faster)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.add_argument(
        "--events-per-tick", type=finite_number(0.0), default=1.0, help="events per tick (1)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (64)")
    p.add_argument(
        "--memory-capacity", type=_positive_int, default=10_000, help="active memory (10000)"
    )
    p.add_argument(
        "--realtime", action="store_true", help="pace ticks on the wall clock (reports sleeping)"
    )
    p.add_argument(
        "--interval",
        type=positive_number,
        default=0.01,
        help="seconds between ticks with --realtime",
    )
    add_engine_option(p)
    add_set_option(p)


def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.config import LifeConfig
    from lifelab.lab.profile import profile

    values: dict[str, Any] = {
        "seed": args.seed,
        "events_per_tick": args.events_per_tick,
        "batch_size": args.batch_size,
        "memory_capacity": args.memory_capacity,
        "clock": "realtime" if args.realtime else "simulated",
        "tick_interval": args.interval,
    }
    overrides = config_overrides(args.set)
    engine = engine_choice(args.engine, overrides)
    if engine is not None:
        values["engine"] = engine
    values.update(overrides)
    result = profile(
        LifeConfig.from_mapping(values),
        tool=args.tool,
        ticks=args.ticks,
        out=args.out,
        warmup=args.warmup,
        timeout=args.timeout,
        cpu_only=args.cpu_only,
    ).to_json()
    if not args.json:
        print(result["summary"])
        for spot in result["hot_spots"][:10]:
            print("  ", {k: v for k, v in spot.items() if v is not None})
        return {k: result[k] for k in ("tool", "profile_path", "table_path", "wall_s")}
    return result


# -- sweep, report, compare ------------------------------------------------------------------------


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from lifelab.lab.sweep import EXECUTORS  # no heavy import: the module loads polars lazily

    axes = p.add_argument_group("grid (comma-separated lists make axes)")
    axes.add_argument(
        "--batch-size", default="64", metavar="B[,B…]", help="events drained per tick (64)"
    )
    axes.add_argument(
        "--gc",
        action="append",
        metavar="MODE[,MODE…]",
        help="GC modes: default, off, freeze, tuned or T0,T1,T2 (default); "
        "repeat the option or separate with commas",
    )
    axes.add_argument(
        "--engine",
        default=None,
        metavar="E[,E…]",
        help=f"engines, comma-separated: {ENGINE_HELP} (compiled, the LifeConfig default)",
    )
    axes.add_argument(
        "--memory-capacity",
        default="10000",
        metavar="C[,C…]",
        help="active memory capacity (10000)",
    )
    axes.add_argument(
        "--events-per-tick", default="1", metavar="R[,R…]", help="mean events per tick (1)"
    )
    axes.add_argument(
        "--ticks",
        default="100000",
        metavar="N[,N…]",
        help="measured ticks per trial, a multiple of 10 (100000)",
    )
    axes.add_argument(
        "--warmup-ticks",
        default=None,
        metavar="N[,N…]",
        help="warm-up ticks (default: a tenth of --ticks within [1000, 20000])",
    )
    axes.add_argument("--seed", default="0", metavar="S[,S…]", help="organism seed (0)")
    axes.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE[,VALUE…]",
        help="another LifeConfig field, one value or an axis (JSON values)",
    )
    run = p.add_argument_group("execution")
    run.add_argument("--repeats", type=int, default=3, help="runs per cell, interleaved (3)")
    run.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local subprocesses (default) or dask.distributed",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=1,
        help="trials at once (local; >1 makes timings interfere) or local Dask workers (1)",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="join this Dask scheduler (trusted network only) instead",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SEC",
        help="seconds one trial may take before it is killed (600)",
    )
    run.add_argument(
        "--instructions",
        action="store_true",
        help="also count each trial's measured ticks under valgrind (two more processes per "
        "trial, after the timed one); compare then decides speed by instruction count",
    )
    run.add_argument(
        "--suite", default="adhoc", help="suite name: the folder under data/results/ (adhoc)"
    )
    run.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="parquet to write (default data/results/<suite>/<sweep_id>.parquet)",
    )


def cmd_sweep(args: argparse.Namespace) -> tuple[dict[str, Any], Exit]:
    """The sweep's summary; a sweep with failed trials still writes its table, and exits 3."""
    from lifelab.lab.sweep import sweep_summary

    grid = sweep_grid(
        ticks=args.ticks,
        seed=args.seed,
        events_per_tick=args.events_per_tick,
        batch_size=args.batch_size,
        memory_capacity=args.memory_capacity,
        gc=args.gc,
        engine=args.engine,
        warmup_ticks=args.warmup_ticks,
        sets=args.set,
    )
    summary = sweep_summary(
        grid,
        repeats=args.repeats,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        suite=args.suite,
        out=args.out,
        timeout_s=args.timeout,
        instructions=args.instructions,
    )
    if summary["failed"]:
        print(
            f"lifelab sweep: {summary['failed']} of {summary['rows']} trials failed "
            f"(their errors are in the error column of {summary['path']})",
            file=sys.stderr,
        )
        return summary, Exit.RUN_FAILED
    return summary, Exit.OK


def _report_arguments(p: argparse.ArgumentParser) -> None:
    from lifelab.studies.report import DEFAULT_OUT, DEFAULT_RESULTS  # stdlib-only at import

    p.add_argument(
        "--results",
        default=DEFAULT_RESULTS,
        metavar="DIR",
        help=f"folder searched for results parquet files ({DEFAULT_RESULTS})",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for README.md and the figures ({DEFAULT_OUT})",
    )
    p.add_argument(
        "--no-timestamp",
        action="store_true",
        help="omit the 'generated at' line (identical results give identical files)",
    )


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.studies.report import report_summary

    return report_summary(args.results, args.out, timestamp=not args.no_timestamp)


# The metrics lifelab.lab.stats.DEFAULT_METRICS names, for --help only: importing stats here would
# load polars and numpy for every --help (tests/test_cli.py checks the two agree).
COMPARE_DEFAULT_METRICS = (
    "instructions_per_tick",
    "ticks_per_s",
    "tick_p50_us",
    "tick_p99_us",
    "peak_rss_mb",
    "gc_pause_ms",
)


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    from pathlib import Path

    p.add_argument("baseline", type=Path, help="results parquet of the baseline")
    p.add_argument("candidate", type=Path, help="results parquet of the candidate")
    p.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        metavar="M",
        help="metric column to compare; repeat for several "
        f"(default: {' '.join(COMPARE_DEFAULT_METRICS)})",
    )
    p.add_argument(
        "--min-effect",
        type=fraction,
        default=None,
        help="smallest |ratio - 1| that counts as a change, for every metric (default: 0.01 for "
        "instruction counts, which repeat within 0.4 %%; 0.05 for the others)",
    )
    p.add_argument(
        "--min-n",
        type=int,
        default=5,
        help="fewest ok trials a side needs for a verdict (5; fewer calls too many false changes)",
    )
    p.add_argument(
        "--drop-loaded",
        action="store_true",
        help="leave out trials that ran on a loaded machine (load > cores or steal > 5 %%)",
    )


def cmd_compare(args: argparse.Namespace) -> tuple[dict[str, Any], Exit]:
    """The comparison; a significant regression in a row that decides exits 1 (a CI gate)."""
    from lifelab.lab.stats import compare_summary

    result, text = compare_summary(
        args.baseline,
        args.candidate,
        metrics=args.metrics,
        min_effect=args.min_effect,
        min_n=args.min_n,
        loaded="drop" if args.drop_loaded else "keep",
    )
    if not args.json:
        print(text)
    return result, Exit.CHECK_FAILED if result["regressions"] else Exit.OK


# -- perfcheck -------------------------------------------------------------------------------------


def _perfcheck_arguments(p: argparse.ArgumentParser) -> None:
    from lifelab.lab.perfcheck import DEFAULT_BASELINE, DEFAULT_THRESHOLD  # stdlib-only

    p.add_argument(
        "--baseline",
        default=str(DEFAULT_BASELINE),
        metavar="FILE",
        help=f"the committed counts ({DEFAULT_BASELINE})",
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        default=DEFAULT_THRESHOLD,
        help=f"growth of instructions per tick that is a regression ({DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--update", action="store_true", help="write this commit's counts as the new baseline"
    )


def cmd_perfcheck(args: argparse.Namespace) -> tuple[dict[str, Any], Exit]:
    """Instruction counts of the fixed workloads; a regression past the threshold exits 1."""
    from lifelab.lab.perfcheck import WORKLOADS, perfcheck

    with _progress(len(WORKLOADS), "perfcheck", "workload") as bar:
        result = perfcheck(
            baseline=args.baseline,
            threshold=args.threshold,
            update=args.update,
            progress=_step(bar),
        )
        bar.update()
    if not args.json:
        print(f"instructions per tick vs {result['baseline']} (threshold {args.threshold:.0%})")
        for name, row in result["workloads"].items():
            before = "-" if row["baseline"] is None else f"{row['baseline']:,.0f}"
            ratio = "" if row["ratio"] is None else f"{row['ratio']:.4f}"
            after = f"{row['current']:,.0f}"
            print(f"  {name:<20} {before:>8} -> {after:>8}  {ratio:>6}  {row['verdict']}")
        print("baseline written" if result["updated"] else f"{result['regressions']} regression(s)")
    return result, Exit.CHECK_FAILED if result["regressions"] else Exit.OK


# -- soak ------------------------------------------------------------------------------------------


def _soak_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--realtime-seconds", type=float, default=600.0, help="real-time phase (600)")
    p.add_argument("--interval", type=float, default=0.01, help="real-time tick interval (0.01)")
    p.add_argument("--sim-ticks", type=int, default=10_000_000, help="simulated ticks (1e7)")
    p.add_argument("--samples", type=int, default=60, help="sample points per phase (60)")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of samples ignored (0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--events-per-tick", type=float, default=1.0)
    p.add_argument("--memory-capacity", type=int, default=10_000)
    p.add_argument("--snapshot-every", type=int, default=10_000, help="ticks (10000)")
    p.add_argument("--snapshot-keep", type=int, default=3)
    p.add_argument("--log-every", type=int, default=10, help="ticks between log lines (10)")
    p.add_argument("--log-max-bytes", type=int, default=1 << 20, help="log rotation size (1 MiB)")
    p.add_argument("--log-max-files", type=int, default=3)
    p.add_argument("--root", default=None, help="where the run directories go (a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")


def cmd_soak(args: argparse.Namespace) -> tuple[dict[str, Any], Exit]:
    from lifelab.studies.soak import run_soak

    report = run_soak(
        realtime_seconds=args.realtime_seconds,
        interval=args.interval,
        sim_ticks=args.sim_ticks,
        samples=args.samples,
        warmup=args.warmup,
        root=args.root,
        keep=args.keep,
        seed=args.seed,
        events_per_tick=args.events_per_tick,
        memory_capacity=args.memory_capacity,
        snapshot_every=args.snapshot_every,
        snapshot_keep=args.snapshot_keep,
        log_every=args.log_every,
        log_max_bytes=args.log_max_bytes,
        log_max_files=args.log_max_files,
    )
    return report, Exit.CHECK_FAILED if args.strict and not report["ok"] else Exit.OK


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the table.

    Attributes:
        name: What the user types after ``lifelab``; "bench loop" is ``loop`` in :data:`GROUPS`
            "bench".
        help: One line in the command list.
        arguments: Adds the command's options to its parser (``--json`` is added to every one).
        handler: Runs the command (:data:`Handler`).
        description: The paragraph at the top of the command's ``--help``.
        epilog: The paragraph at the end of it.
        output: What is printed without ``--json``: "table", the result as key/value lines;
            "own", nothing more (the handler printed it); "json", the JSON object anyway.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Handler
    description: str | None = None
    epilog: str | None = None
    output: str = "table"


@dataclass(frozen=True, slots=True)
class Group:
    """A command that only holds sub-commands (``bench``, ``experiment``)."""

    help: str
    description: str
    dest: str
    metavar: str


GROUPS = {
    "bench": Group(
        help="benchmarks of the loop and the memory",
        description="Benchmarks; timings are medians of the machine you run.",
        dest="bench_command",
        metavar="BENCH",
    ),
    "experiment": Group(
        help="run named experiments (notebooks via papermill)",
        description="Experiments are TOML files naming a notebook and its "
        "parameters (see experiments/).",
        dest="experiment_command",
        metavar="ACTION",
    ),
}

COMMANDS: tuple[Command, ...] = (
    Command(
        "run",
        "live N ticks and print the summary",
        _run_arguments,
        cmd_run,
        description="Live N ticks (simulated clock unless --realtime).",
        epilog=SIGNAL_EPILOG,
    ),
    Command(
        "resume",
        "live N more ticks from a run's newest intact snapshot",
        _resume_arguments,
        cmd_resume,
        description="Resume a run directory from its newest intact snapshot; "
        "options given here override the run's config.",
        epilog=SIGNAL_EPILOG,
    ),
    Command(
        "inspect",
        "what a run directory holds (read-only)",
        _inspect_arguments,
        cmd_inspect,
        description="Report ticks, digest, snapshots, memory and archive sizes "
        "and corrupt files of a run directory without changing it.",
    ),
    Command(
        "search",
        "search a run's archive (read-only)",
        _search_arguments,
        cmd_search,
        description="Search the archived memories of a run directory.",
    ),
    Command(
        "bench loop",
        "ticks/s, latency, RSS and GC of the tick loop",
        _bench_loop_arguments,
        cmd_bench_loop,
        description="Throughput and latency of the loop on the simulated clock. Tick "
        "latency (latency_source): the python engine times every tick with a Python timer; the "
        "compiled engine reports the kernel's own cycle-counter timings of the sampled ticks "
        "(every metrics_every-th on average), since a Python timer around one kernel call "
        "would mostly measure the call. --instructions counts instead: two fresh "
        "interpreters under valgrind (cachegrind), n1 and n2 ticks, differenced so start-up "
        "cancels; instructions per tick and per event repeat within 0.002 % (python) and "
        "0.4 % (compiled) where ticks/s swings 15-30 % on a shared machine.",
    ),
    Command(
        "bench realtime",
        "lateness, drift and CPU on the real-time clock",
        _bench_realtime_arguments,
        cmd_bench_realtime,
        description="Live at 1/interval Hz on the drift-free real-time clock; report how late "
        "ticks start (p50/p99/max), the drift of the last tick and the CPU used.",
    ),
    Command(
        "bench degradation",
        "the first and last tenth of a long run, timed side by side",
        _bench_degradation_arguments,
        cmd_bench_degradation,
        description="Keep the organism's state at the start of the first tenth and of the "
        "last tenth of a --ticks run (snapshots), then resume and time both alternately, "
        "--rounds times each, in one process; report the ratio of median ticks/s (end / "
        "start; 1.0 is no degradation) with a bootstrap interval over the paired rounds. "
        "Unlike bench loop's decile ratio, a slow minute of the machine falls on both. "
        "--instructions also counts each state's instructions per tick under valgrind "
        "(instructions_ratio = start / end), shown beside the verdict.",
    ),
    Command(
        "bench import",
        "cold `import lifelab` time in fresh interpreters",
        _bench_import_arguments,
        cmd_bench_import,
        description="Time `import lifelab` in fresh interpreters (median of --repeats).",
    ),
    Command(
        "bench compile",
        "start-up cost of the compiled engine: cold compile, warm start, import",
        _no_arguments,
        cmd_bench_compile,
        description="Time the compiled engine's start-up in fresh interpreters: "
        "`Life(LifeConfig()).run(1)` with an empty numba cache (first_compile_s, import "
        "included), again with the cache it filled (warm_start_s), and a plain `import "
        "lifelab` (import_s), which must not import numba. The cold run compiles the kernel "
        "(~20 s); its cache goes to a temporary folder, removed afterwards.",
    ),
    Command(
        "bench memory",
        "bytes/entry, append, decay, spill, archive search",
        _bench_memory_arguments,
        cmd_bench_memory,
        description="Active memory and archive costs at N entries. --instructions counts "
        "instructions per decay pass, per spilled entry and per search under valgrind.",
    ),
    Command(
        "experiment run",
        "execute an experiment's notebook headless",
        _experiment_run_arguments,
        cmd_experiment_run,
        description="Execute the notebook with papermill; the executed notebook "
        "and a record go to data/runs/experiments/, tables to data/results/.",
    ),
    Command("experiment list", "list the experiment files", _no_arguments, cmd_experiment_list),
    Command(
        "profile",
        "profile the loop with cProfile or Scalene",
        _profile_arguments,
        cmd_profile,
        description="Run a representative workload under a profiler in a fresh "
        "process; write the raw profile, polars tables (parquet) and an analysis.",
    ),
    Command(
        "sweep",
        "trials over a parameter grid, one fresh process each",
        _sweep_arguments,
        cmd_sweep,
        description="Run a sweep (Cartesian product of the options, repeats "
        "interleaved) and write one parquet table, a row per trial. --instructions also "
        "counts each trial's measured ticks under valgrind (instructions_per_tick), which "
        "lifelab compare then decides speed by.",
    ),
    Command(
        "report",
        "rebuild docs/performance from data/results",
        _report_arguments,
        cmd_report,
        description="Render the performance documentation (markdown and PNG "
        "figures) from every results table.",
    ),
    Command(
        "compare",
        "compare two results tables; non-zero on a regression",
        _compare_arguments,
        cmd_compare,
        description="Ratio of medians per cell and metric with a bootstrap CI and "
        "a verdict; exits 1 when any significant regression is found (a CI gate).",
        output="own",
    ),
    Command(
        "soak",
        "live long in real and simulated time; watch RSS and disk",
        _soak_arguments,
        cmd_soak,
        description="Soak a Life in real time and in simulated time; print one JSON report.",
        output="json",
    ),
    Command(
        "perfcheck",
        "instruction counts of fixed workloads vs the committed baseline",
        _perfcheck_arguments,
        cmd_perfcheck,
        description="Count instructions per tick (valgrind) of a fixed set of workloads and "
        "compare with data/results/perfcheck/baseline.json; exits 1 when one grew by more than "
        "--threshold. Not timing: it means the same on a busy machine. Needs valgrind.",
        output="own",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``lifelab`` parser, one sub-parser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="lifelab",
        description="lifelab: run, measure and study a continuously-living agent runtime.",
        epilog=EXIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the exit table's lines
    )
    parser.add_argument("--version", action="version", version=f"lifelab {__version__}")
    subparsers = {"": parser.add_subparsers(dest="command", required=True, metavar="COMMAND")}
    for command in COMMANDS:
        group, _, leaf = command.name.rpartition(" ")
        if group not in subparsers:
            g = GROUPS[group]
            holder = subparsers[""].add_parser(group, help=g.help, description=g.description)
            subparsers[group] = holder.add_subparsers(dest=g.dest, required=True, metavar=g.metavar)
        p = subparsers[group].add_parser(
            leaf, help=command.help, description=command.description, epilog=command.epilog
        )
        command.arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.set_defaults(cli_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (argparse exits 2 itself on bad usage)."""
    args = build_parser().parse_args(argv)
    command: Command = args.cli_command
    status: int = Exit.OK
    try:
        result = command.handler(args)
    except (LifelabError, OSError, ValueError, TypeError) as exc:  # others: a bug, a traceback
        print(f"lifelab {command.name}: error: {exc}", file=sys.stderr)
        return int(exit_code(exc))
    if isinstance(result, tuple):  # (output, exit status): a check, failed trials, a signal
        result, status = result
    try:
        if args.json or command.output == "json":
            print(json.dumps(result, default=str))
        elif result and command.output == "table":
            _print_table(result)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `lifelab ... | head`: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return int(status)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
