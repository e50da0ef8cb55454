"""The ``lifelab`` command: thin subcommands that parse, call the library and print.

Every command has ``--help``; ``--json`` prints one JSON object as the last line of stdout.
Errors print one line to stderr and exit with status 2 (bad input) or 1 (failure). ``run`` and
``resume`` stop cleanly on SIGINT or SIGTERM and then exit 130 or 143 (see :data:`SIGNAL_EPILOG`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from lifelab import __version__
from lifelab._argtypes import (
    add_engine_option,
    add_set_option,
    config_overrides,
    engine_choice,
    finite_number,
    int_at_least,
)
from lifelab.exceptions import LifelabError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], Any]

SIGNAL_EPILOG = (
    "Signals: SIGINT (Ctrl-C) or SIGTERM stops the organism at the next tick boundary and shuts "
    "down cleanly (final snapshot, logs flushed, archive committed), prints the summary and exits "
    "with status 130 (SIGINT) or 143 (SIGTERM). A second signal during the shutdown ends the "
    "process at once, as the signal's default action does (the shell also shows 130 or 143); "
    "nothing is corrupted and `lifelab resume` continues from the newest intact snapshot."
)


# -- helpers ---------------------------------------------------------------------------------------


_positive_int = int_at_least(1)
_number = finite_number()


def _progress(total: int, desc: str) -> Any:
    """A tqdm.auto bar: text on stderr (hidden when not a terminal), a widget in Jupyter."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tick", unit_scale=True, disable=None, leave=False)


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


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


# -- run -----------------------------------------------------------------------------------------


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
        out["metrics"] = life.metrics.summary()
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
    from lifelab.observe.bench import bench_loop
    from lifelab.observe.gcmode import parse_gc_mode

    parse_gc_mode(args.gc)  # refuse a bad mode before any work
    extra = config_overrides(args.set)
    engine = engine_choice(args.engine, extra)
    if args.snapshot_every:
        extra["snapshot_every"] = args.snapshot_every
    if args.log_every:
        extra["log_every"] = args.log_every
    if args.persisted:
        from lifelab.observe.bench import bench_persisted

        with _progress(2 * args.rounds * args.ticks, "bench loop --persisted") as bar:
            return bench_persisted(
                ticks=args.ticks,
                rounds=args.rounds,
                events_per_tick=args.events_per_tick,
                batch_size=args.batch_size,
                memory_capacity=args.memory_capacity,
                seed=args.seed,
                engine=engine,
                snapshot_every=args.snapshot_every or 10_000,
                log_every=args.log_every or 1_000,
                progress=bar.update,
                **extra,
            )
    with _progress(args.ticks, "bench loop") as bar:
        return bench_loop(
            ticks=args.ticks,
            events_per_tick=args.events_per_tick,
            batch_size=args.batch_size,
            memory_capacity=args.memory_capacity,
            gc=args.gc,
            seed=args.seed,
            engine=engine,
            baseline=args.baseline,
            progress=bar.update,
            **extra,
        )


def cmd_bench_realtime(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.observe.bench_realtime import bench_realtime

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


def cmd_bench_import(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.observe.bench_realtime import BenchProcessError, bench_import

    try:
        return bench_import(repeats=args.repeats)
    except BenchProcessError as exc:  # a failed interpreter is a failure, not bad input
        raise OSError(str(exc)) from exc


def cmd_bench_compile(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.observe.bench_realtime import BenchProcessError, bench_compile

    try:
        return bench_compile()
    except BenchProcessError as exc:
        raise OSError(str(exc)) from exc


# -- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelab",
        description="lifelab: run, measure and study a continuously-living agent runtime.",
    )
    parser.add_argument("--version", action="version", version=f"lifelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="live N ticks and print the summary",
        description="Live N ticks (simulated clock unless --realtime).",
        epilog=SIGNAL_EPILOG,
    )
    p.add_argument("--ticks", type=_positive_int, default=10_000, help="ticks to live (10000)")
    _add_life_options(p)
    p.add_argument(
        "--metrics",
        action="store_true",
        help="also print the built-in metrics (stage timings, counters, GC)",
    )
    _add_json(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "resume",
        help="live N more ticks from a run's newest intact snapshot",
        description="Resume a run directory from its newest intact snapshot; "
        "options given here override the run's config.",
        epilog=SIGNAL_EPILOG,
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--ticks", type=_positive_int, default=10_000, help="ticks to live (10000)")
    _add_life_options(p, resume=True)
    _add_json(p)
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser(
        "inspect",
        help="what a run directory holds (read-only)",
        description="Report ticks, digest, snapshots, memory and archive sizes "
        "and corrupt files of a run directory without changing it.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _add_json(p)
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser(
        "search",
        help="search a run's archive (read-only)",
        description="Search the archived memories of a run directory.",
    )
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
    _add_json(p)
    p.set_defaults(handler=cmd_search)

    bench = sub.add_parser(
        "bench",
        help="benchmarks of the loop and the memory",
        description="Benchmarks; timings are medians of the machine you run.",
    )
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    p = bsub.add_parser(
        "loop",
        help="ticks/s, latency, RSS and GC of the tick loop",
        description="Throughput and latency of the loop on the simulated clock. Tick "
        "latency (latency_source): the python engine times every tick with a Python timer; the "
        "compiled engine reports the kernel's own cycle-counter timings of the sampled ticks "
        "(every metrics_every-th on average), since a Python timer around one kernel call "
        "would mostly measure the call.",
    )
    p.add_argument("--ticks", type=_positive_int, default=200_000, help="measured ticks (200000)")
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
    add_engine_option(p)
    add_set_option(p)
    _add_json(p)
    p.set_defaults(handler=cmd_bench_loop)

    p = bsub.add_parser(
        "realtime",
        help="lateness, drift and CPU on the real-time clock",
        description="Live at 1/interval Hz on the drift-free real-time clock; report how late "
        "ticks start (p50/p99/max), the drift of the last tick and the CPU used.",
    )
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
    _add_json(p)
    p.set_defaults(handler=cmd_bench_realtime)

    p = bsub.add_parser(
        "import",
        help="cold `import lifelab` time in fresh interpreters",
        description="Time `import lifelab` in fresh interpreters (median of --repeats).",
    )
    p.add_argument("--repeats", type=_positive_int, default=15, help="fresh interpreters (15)")
    _add_json(p)
    p.set_defaults(handler=cmd_bench_import)

    p = bsub.add_parser(
        "compile",
        help="start-up cost of the compiled engine: cold compile, warm start, import",
        description="Time the compiled engine's start-up in fresh interpreters: "
        "`Life(LifeConfig()).run(1)` with an empty numba cache (first_compile_s, import "
        "included), again with the cache it filled (warm_start_s), and a plain `import "
        "lifelab` (import_s), which must not import numba. The cold run compiles the kernel "
        "(~20 s); its cache goes to a temporary folder, removed afterwards.",
    )
    _add_json(p)
    p.set_defaults(handler=cmd_bench_compile)

    from lifelab.observe.bench_memory import add_bench_memory_arguments, run_bench_memory_command

    p = bsub.add_parser(
        "memory",
        help="bytes/entry, append, decay, spill, archive search",
        description="Active memory and archive costs at N entries.",
    )
    add_bench_memory_arguments(p)
    _add_json(p)
    p.set_defaults(handler=run_bench_memory_command)

    exp = sub.add_parser(
        "experiment",
        help="run named experiments (notebooks via papermill)",
        description="Experiments are TOML files naming a notebook and its "
        "parameters (see experiments/).",
    )
    esub = exp.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    p = esub.add_parser(
        "run",
        help="execute an experiment's notebook headless",
        description="Execute the notebook with papermill; the executed notebook "
        "and a record go to data/runs/experiments/, tables to data/results/.",
    )
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
    _add_json(p)
    p.set_defaults(handler=cmd_experiment_run)
    from lifelab.observe.profile import add_profile_arguments

    p = sub.add_parser(
        "profile",
        help="profile the loop with cProfile or Scalene",
        description="Run a representative workload under a profiler in a fresh "
        "process; write the raw profile, polars tables (parquet) and an analysis.",
    )
    add_profile_arguments(p)
    _add_json(p)
    p.set_defaults(handler=cmd_profile)

    from lifelab.lab.sweep import add_sweep_arguments, run_sweep_command

    p = sub.add_parser(
        "sweep",
        help="trials over a parameter grid, one fresh process each",
        description="Run a sweep (Cartesian product of the options, repeats "
        "interleaved) and write one parquet table, a row per trial.",
    )
    add_sweep_arguments(p)
    _add_json(p)
    p.set_defaults(handler=run_sweep_command)

    from lifelab.lab.report import add_report_arguments, run_report_command

    p = sub.add_parser(
        "report",
        help="rebuild docs/performance from data/results",
        description="Render the performance documentation (markdown and PNG "
        "figures) from every results table.",
    )
    add_report_arguments(p)
    p.set_defaults(handler=run_report_command)

    from lifelab.lab.stats import add_compare_arguments, run_compare_command

    p = sub.add_parser(
        "compare",
        help="compare two results tables; non-zero on a regression",
        description="Ratio of medians per cell and metric with a bootstrap CI and "
        "a verdict; exits 1 when any significant regression is found (a CI gate).",
    )
    add_compare_arguments(p)
    p.set_defaults(handler=run_compare_command)

    p = esub.add_parser("list", help="list the experiment files")
    _add_json(p)
    p.set_defaults(handler=cmd_experiment_list)
    return parser


def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.observe.profile import ProfileError, run_profile_command

    try:
        result = run_profile_command(args)
    except ProfileError as exc:  # a failed profiler run is a failure, not bad input
        raise OSError(str(exc)) from exc
    if not args.json:
        print(result["summary"])
        for spot in result["hot_spots"][:10]:
            print("  ", {k: v for k, v in spot.items() if v is not None})
        return {k: result[k] for k in ("tool", "profile_path", "table_path", "wall_s")}
    return result


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    status = 0
    try:
        result = handler(args)
        if isinstance(result, tuple):  # (output, exit status), e.g. compare as a CI gate
            result, status = result
    except OSError as exc:  # first: an I/O failure (ArchiveError, RunDirError…) is not bad input
        print(f"lifelab {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (LifelabError, ValueError, TypeError) as exc:
        print(f"lifelab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.json:
            print(json.dumps(result, default=str))
        elif result and args.command != "compare":
            _print_table(result)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `lifelab ... | head`: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
