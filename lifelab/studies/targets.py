"""The project's performance targets, checked against the recorded results tables.

Each target is named by what it measures and carries its unit, its threshold and how to find
the rows that measure it. ``check_targets`` answers pass / fail / no data for every one of them
from what is under ``data/results/`` — never from a number typed in by hand.
``run_target_trials`` produces the trials the throughput targets need (suite ``targets``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEGRADATION_VERSION",
    "PLAIN_TABLES",
    "TABLE_VERSION",
    "TARGETS",
    "Target",
    "check_targets",
    "noise_summary",
    "recommendations",
    "run_degradation_trials",
    "run_import_trials",
    "run_noise_trials",
    "run_realtime_trials",
    "run_target_trials",
]

# Tables that are not sweeps, by file stem (the newest file of each name is read). Each is written
# by lifelab.lab.results.write_table with its stem as its kind; older files have no kind (plain).
PLAIN_TABLES = (
    "memory_scaling",
    "snapshot_costs",
    "snapshot_formats",
    "tick_scaling",
    "realtime",
    "import_time",
    "degradation",
    "noise",
)
# The version of those tables' columns, as write_table records it; the first written with one.
TABLE_VERSION = 1
# The degradation table's, since its columns changed. 1: one row per timed round (round,
# start_ticks_per_s, end_ticks_per_s, ticks, sample_ticks, memory_capacity). 2: adds the
# instruction counts of the run, the same on every row and null when not counted
# (_DEGRADATION_INSTRUCTIONS); a version 1 table reads with them null.
DEGRADATION_VERSION = 2
_DEGRADATION_INSTRUCTIONS = (
    ("instructions_per_tick_start", "Float64"),
    ("instructions_per_tick_end", "Float64"),
    ("instructions_ratio", "Float64"),
    ("instructions_tool", "String"),
    ("instruction_ticks", "Int64"),
)


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what it measures (``name``), how (``measure`` on the tables, ``how`` in words),
    and the threshold the measured value must reach or stay under."""

    name: str
    unit: str
    threshold: float
    higher_is_better: bool
    measure: Callable[[dict[str, pl.DataFrame]], float | None]
    how: str
    # The measured value's 95 % interval, when the tables give one: the verdict is then "pass"
    # or "fail" only when the whole interval is on one side of the threshold, else "undecided".
    interval: Callable[[dict[str, pl.DataFrame]], tuple[float, float] | None] | None = None
    # What else the tables say about it, added to ``how`` when there is something (e.g. the
    # instruction counts beside a wall-clock verdict); never part of the verdict.
    note: Callable[[dict[str, pl.DataFrame]], str | None] | None = None


def _median(
    df: pl.DataFrame | None, metric: str, *, config: dict[str, Any] | None = None, **where: Any
) -> float | None:
    """Median of a metric over the newest sweep's ok rows matching ``where`` and ``config``."""
    import polars as pl

    if df is None or df.height == 0 or metric not in df.columns:
        return None
    sub = df.filter(pl.col("status") == "ok") if "status" in df.columns else df
    for column, value in where.items():
        sub = sub.filter(pl.col(column) == value)
    if config:
        keep = [
            all(json.loads(text).get(k, 0) == v for k, v in config.items())
            for text in sub["config_json"].to_list()
        ]
        sub = sub.filter(pl.Series(keep, dtype=pl.Boolean))
    sub = sub.filter(pl.col(metric).is_not_null())
    if "sweep_id" in sub.columns and sub.height:
        # The newest sweep that measured it: a record keeps older sweeps (other commits), and
        # pooling them would judge today's code by yesterday's numbers.
        sub = sub.filter(pl.col("sweep_id") == sub["sweep_id"].max())
    values = sub[metric]
    return float(values.median()) if len(values) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _last(df: pl.DataFrame | None, metric: str) -> float | None:
    if df is None or df.height == 0 or metric not in df.columns:
        return None
    return float(df.sort("entries")[metric].drop_nulls()[-1])


_BASE = {"batch_size": 64, "gc_mode": "default"}


def _throughput(metric: str, events: float, metrics_every: int) -> Callable[..., float | None]:
    def measure(t: dict[str, pl.DataFrame]) -> float | None:
        return _median(
            t.get("targets"),
            metric,
            events_per_tick=events,
            memory_capacity=10_000,
            config={"metrics_every": metrics_every},
            **_BASE,
        )

    return measure


def _metrics_cost(t: dict[str, pl.DataFrame]) -> float | None:
    on = _throughput("ticks_per_s", 1.0, 32)(t)
    off = _throughput("ticks_per_s", 1.0, 0)(t)
    return None if on is None or off is None else 1 - on / off


def _plain(name: str, metric: str, how: str = "median") -> Callable[..., float | None]:
    """A statistic of one column of a plain table (realtime, import_time)."""

    def measure(t: dict[str, pl.DataFrame]) -> float | None:
        df = t.get(name)
        if df is None or df.height == 0 or metric not in df.columns:
            return None
        values = df[metric].drop_nulls()
        if not len(values):
            return None
        return float(values.median() if how == "median" else values.max())

    return measure


TARGETS: tuple[Target, ...] = (
    Target(
        "ticks/s, 1 event per tick",
        "ticks/s",
        250_000,
        True,
        _throughput("ticks_per_s", 1.0, 32),
        "targets sweep, 1 event/tick, batch 64, default GC, metrics on",
    ),
    Target(
        "events/s, 64 per tick in batches of 64",
        "events/s",
        1_500_000,
        True,
        _throughput("events_per_s", 64.0, 32),
        "targets sweep, 64 events/tick, batch 64",
    ),
    Target(
        "no degradation over a long run",
        "last/first tenth",
        0.97,
        True,
        lambda t: _paired(t)[0],
        "bench degradation: the first and last tenth of a run at memory capacity 100 000, "
        "resumed from snapshots and timed side by side (1 M ticks with --full)",
        interval=lambda t: _paired(t)[1],
        note=lambda t: _instruction_note(t),
    ),
    Target(
        "bytes per active entry",
        "bytes",
        64,
        False,
        lambda t: _last(t.get("memory_scaling"), "bytes_per_slot"),
        "bench memory at the largest size (column bytes per slot)",
    ),
    Target(
        "decay pass at the largest size",
        "ms",
        3.0,
        False,
        lambda t: _last(t.get("memory_scaling"), "decay_ms"),
        "bench memory at the largest size measured (1 M with --full)",
    ),
    Target(
        "archive search p99 (type + time, limit 100)",
        "ms",
        5.0,
        False,
        lambda t: _last(t.get("memory_scaling"), "archive_search_p99_ms"),
        "bench memory archive at the largest size measured (1 M with --full)",
    ),
    Target(
        "p99 tick with persistence on / off",
        "ratio",
        1.5,
        False,
        lambda t: _ratio(
            _median(t.get("io"), "tick_p99_us", config={"snapshot_every": 1000}),
            _median(t.get("io"), "tick_p99_us", config={"snapshot_every": 0}),
        ),
        "io sweep: snapshot every 1 000 ticks + logs + archive vs none",
    ),
    Target(
        "real-time 100 Hz: lateness p99",
        "ms",
        1.0,
        False,
        _plain("realtime", "lateness_p99_ms"),
        "bench realtime, 100 Hz (median over repeats)",
    ),
    Target(
        "real-time 100 Hz: drift",
        "intervals",
        1.0,
        False,
        _plain("realtime", "drift_intervals", "max"),
        "bench realtime, 100 Hz (worst repeat)",
    ),
    Target(
        "real-time 100 Hz: CPU",
        "% of a core",
        1.0,
        False,
        _plain("realtime", "cpu_percent"),
        "bench realtime, 100 Hz (median; baseline_cpu_percent is a bare wait loop's)",
    ),
    Target(
        "metrics overhead",
        "fraction of ticks/s lost",
        0.03,
        False,
        _metrics_cost,
        "targets sweep, metrics_every 32 vs 0 (noisy machines: read with its CI)",
    ),
    Target(
        "import lifelab, cold",
        "ms",
        150.0,
        False,
        _plain("import_time", "import_ms"),
        "bench import: fresh interpreters (median)",
    ),
)


def _paired(t: dict[str, pl.DataFrame]) -> tuple[float | None, tuple[float, float] | None]:
    """The degradation table's end / start ratio of median ticks/s and its paired interval."""
    from lifelab.lab.stats import paired_ratio_ci

    df = t.get("degradation")
    if df is None or df.height == 0:
        return None, None
    ratio, low, high = paired_ratio_ci(
        df["end_ticks_per_s"].to_numpy(), df["start_ticks_per_s"].to_numpy(), stream=("degr",)
    )
    if ratio != ratio:  # NaN: no finite pair
        return None, None
    return ratio, (low, high)


def _instruction_note(t: dict[str, pl.DataFrame]) -> str | None:
    """The degradation table's instruction counts in words, when it has them."""
    df = t.get("degradation")
    if df is None or "instructions_ratio" not in df.columns:
        return None
    counted = df.drop_nulls("instructions_ratio")
    if counted.height == 0:
        return None
    row = counted.row(0, named=True)  # one run: the same counts on every row
    return (
        f"instructions per tick (valgrind, ticks {row['instruction_ticks']:,} of each state): "
        f"{row['instructions_per_tick_start']:,.0f} start, {row['instructions_per_tick_end']:,.0f}"
        f" end, ratio {row['instructions_ratio']:.3f}"
    )


def _verdict(target: Target, value: float, interval: tuple[float, float] | None) -> str:
    """pass / fail; with an interval, "undecided" while it straddles the threshold."""
    low, high = interval if interval is not None else (value, value)
    if target.higher_is_better:
        if low >= target.threshold:
            return "pass"
        return "fail" if high < target.threshold else "undecided"
    if high <= target.threshold:
        return "pass"
    return "fail" if low > target.threshold else "undecided"


def check_targets(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per target: measured value, threshold, and pass / fail / no data."""
    import polars as pl

    rows = []
    for t in TARGETS:
        try:
            value = t.measure(tables)
            interval = t.interval(tables) if t.interval is not None else None
        except Exception:  # a table of an unexpected shape is "no data", not a crash
            value, interval = None, None
        verdict = "no data" if value is None else _verdict(t, value, interval)
        try:
            note = t.note(tables) if t.note is not None else None
        except Exception:  # likewise: no note rather than no report
            note = None
        rows.append(
            {
                "target": t.name,
                "measured": value,
                "threshold": float(t.threshold),
                "unit": t.unit,
                "direction": ">=" if t.higher_is_better else "<=",
                "verdict": verdict,
                "measured_by": t.how if note is None else f"{t.how}; {note}",
            }
        )
    return pl.DataFrame(rows, schema_overrides={"measured": pl.Float64})


def load_tables(root: str | Path = "data/results") -> dict[str, pl.DataFrame]:
    """Results tables by suite, plus the named tables that notebooks 04 and 05 and the target
    trials write (:data:`PLAIN_TABLES`; any version, unversioned ones included)."""
    import warnings

    import polars as pl

    from lifelab.lab.results import load_results, null_columns, read_table, table_files

    root = Path(root)
    out: dict[str, pl.DataFrame] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plain (non-trial) tables are read just below
        results = load_results(root, match_environment=False) if root.is_dir() else None
    if results is not None and results.height:
        for suite in results["suite"].unique().to_list():
            out[suite] = results.filter(pl.col("suite") == suite)
    for name in PLAIN_TABLES:
        files = table_files(root, f"{name}.parquet")
        if files:
            version = DEGRADATION_VERSION if name == "degradation" else TABLE_VERSION
            out[name] = read_table(files[-1], kind=name, max_version=version).data
    if "degradation" in out:
        out["degradation"] = null_columns(out["degradation"], _DEGRADATION_INSTRUCTIONS)
    return out


def recommendations(tables: dict[str, pl.DataFrame]) -> list[str]:
    """Plain-language advice drawn from the batch × GC sweep, if there is one."""
    import polars as pl

    df = tables.get("batch_gc")
    if df is None or df.height == 0:
        return ["Run the batch × GC sweep (make run) to get recommendations."]
    ok = df.filter(pl.col("status") == "ok")
    med = ok.group_by("batch_size", "gc_mode").agg(
        pl.col("events_per_s").median(),
        pl.col("tick_p99_us").median(),
        pl.col("peak_rss_mb").median(),
    )
    out = []
    for batch in sorted(med["batch_size"].unique().to_list()):
        cell = med.filter(pl.col("batch_size") == batch).sort("events_per_s", descending=True)
        best = cell.row(0, named=True)
        default = cell.filter(pl.col("gc_mode") == "default")
        if default.height and best["gc_mode"] != "default":
            gain = best["events_per_s"] / default["events_per_s"][0] - 1
            rss = best["peak_rss_mb"] - default["peak_rss_mb"][0]
            out.append(
                f"Batch {batch}: GC mode '{best['gc_mode']}' gave {gain:+.0%} events/s "
                f"over the default ({rss:+.1f} MB peak RSS); check the CI before adopting."
            )
        else:
            out.append(f"Batch {batch}: the default GC is as fast as any other mode measured.")
    by_batch = med.filter(pl.col("gc_mode") == "default").sort("batch_size")
    if by_batch.height >= 2:
        lo, hi = by_batch.row(0, named=True), by_batch.row(-1, named=True)
        out.append(
            f"Throughput: batches of {hi['batch_size']} reach "
            f"{hi['events_per_s'] / lo['events_per_s']:.1f}× the events/s of batches of "
            f"{lo['batch_size']}; for latency prefer small batches (p99 "
            f"{lo['tick_p99_us']:.0f} µs vs {hi['tick_p99_us']:.0f} µs)."
        )
    return out


def run_target_trials(
    *,
    ticks: int = 20_000,
    long_ticks: int = 100_000,
    repeats: int = 3,
    out: str | Path | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """The trials the throughput targets need, as one sweep of suite ``targets``."""
    import polars as pl

    from lifelab.lab.sweep import run_sweep

    short = run_sweep(
        {
            "batch_size+events_per_tick": [(64, 1.0), (64, 64.0)],
            "metrics_every": [32, 0],
            "ticks": ticks,
        },
        repeats=repeats,
        suite="targets",
        out=out,
        progress=progress,
    )
    long = run_sweep(
        {"memory_capacity": 100_000, "ticks": long_ticks, "metrics_every": 32},
        repeats=1,
        suite="targets",
        out=out,
        progress=progress,
    )
    return pl.concat([short, long])


def run_realtime_trials(
    *,
    seconds: float = 60.0,
    interval: float = 0.01,
    repeats: int = 3,
    out: str | Path | None = None,
) -> pl.DataFrame:
    """``bench realtime`` ``repeats`` times (each with its bare-pacing baseline), one row each.

    With ``out`` the table is written to ``out/realtime.parquet`` (kind ``realtime``), replacing
    the last one of that kind.
    """
    import polars as pl

    from lifelab.lab.bench_realtime import bench_realtime
    from lifelab.lab.results import write_table

    rows = [
        {"repeat": r, **bench_realtime(seconds=seconds, interval=interval, baseline=True)}
        for r in range(repeats)
    ]
    df = pl.DataFrame(rows)
    if out is not None:
        path = Path(out) / "realtime.parquet"
        write_table(df, path, kind="realtime", version=TABLE_VERSION, replace=True)
    return df


def run_import_trials(*, repeats: int = 15, out: str | Path | None = None) -> pl.DataFrame:
    """Cold ``import lifelab`` times in fresh interpreters, one row each.

    With ``out`` the table is written to ``out/import_time.parquet`` (kind ``import_time``),
    replacing the last one of that kind.
    """
    import polars as pl

    from lifelab.lab.bench_realtime import bench_import
    from lifelab.lab.results import write_table

    df = pl.DataFrame({"import_ms": bench_import(repeats=repeats)["import_ms"]})
    if out is not None:
        path = Path(out) / "import_time.parquet"
        write_table(df, path, kind="import_time", version=TABLE_VERSION, replace=True)
    return df


def run_degradation_trials(
    *,
    ticks: int = 1_000_000,
    memory_capacity: int = 100_000,
    rounds: int = 7,
    instructions: bool = False,
    out: str | Path | None = None,
) -> pl.DataFrame:
    """``bench degradation`` once: one row per timed round (start and end ticks/s).

    With ``instructions`` each state's instructions per tick are counted too (valgrind; the
    columns of :data:`DEGRADATION_VERSION` 2, the same on every row; null without it). Without
    valgrind only the rounds are measured (a warning says how to install it). With ``out`` the
    table is written to ``out/degradation.parquet`` (kind ``degradation``), replacing the last
    one of that kind. The long-run target reads it: its verdict is the rounds' paired
    interval, the instruction ratio is shown beside it.
    """
    import warnings

    import polars as pl

    from lifelab.lab.bench_degradation import bench_degradation
    from lifelab.lab.results import write_table

    if instructions:
        from lifelab.lab.instructions import ValgrindMissing, valgrind_path

        try:
            valgrind_path()
        except ValgrindMissing as exc:
            warnings.warn(f"instruction counts skipped: {exc}", stacklevel=2)
            instructions = False
    run = bench_degradation(
        ticks=ticks, memory_capacity=memory_capacity, rounds=rounds, instructions=instructions
    )
    df = pl.DataFrame(
        {
            "round": list(range(1, rounds + 1)),
            "start_ticks_per_s": run["start_rates"],
            "end_ticks_per_s": run["end_rates"],
            "ticks": [ticks] * rounds,
            "sample_ticks": [run["sample_ticks"]] * rounds,
            "memory_capacity": [memory_capacity] * rounds,
            **{name: [run[name]] * rounds for name, _ in _DEGRADATION_INSTRUCTIONS},
        },
        schema_overrides={name: getattr(pl, dtype) for name, dtype in _DEGRADATION_INSTRUCTIONS},
    )
    if out is not None:
        path = Path(out) / "degradation.parquet"
        write_table(df, path, kind="degradation", version=DEGRADATION_VERSION, replace=True)
    return df


def run_noise_trials(
    *,
    engine: str = "python",
    repeats: int = 5,
    ticks: int = 20_000,
    instruction_ticks: int | None = None,
    instruction_short_ticks: int | None = None,
    out: str | Path | None = None,
) -> pl.DataFrame:
    """One workload measured both ways, ``repeats`` times each, interleaved: wall-clock ns per
    tick (``bench loop``, in this process) and instructions per tick (valgrind, fresh processes).

    One row per (metric, repeat) with the value and ``relative`` = value / the metric's median,
    so both spreads share one axis. ``instruction_ticks``/``instruction_short_ticks`` are
    ``bench_loop_instructions``' ``ticks``/``short_ticks`` (None: its defaults). Without
    valgrind only the wall-clock rows are measured (a warning says how to install it). With
    ``out`` the table goes to ``out/noise.parquet`` (kind ``noise``), replacing the last one of
    that kind.
    """
    import warnings

    import polars as pl

    from lifelab.lab.bench import bench_loop
    from lifelab.lab.instructions import ValgrindMissing, bench_loop_instructions
    from lifelab.lab.results import write_table

    rows: list[dict[str, Any]] = []
    counting = True
    for r in range(repeats):
        wall = bench_loop(ticks=ticks, engine=engine)
        rows.append({"metric": "wall_ns_per_tick", "repeat": r, "value": 1e9 / wall["ticks_per_s"]})
        if not counting:
            continue
        try:
            run = bench_loop_instructions(
                engine=engine, ticks=instruction_ticks, short_ticks=instruction_short_ticks
            )
        except ValgrindMissing as exc:
            warnings.warn(f"instruction counts skipped: {exc}", stacklevel=2)
            counting = False
            continue
        rows.append(
            {"metric": "instructions_per_tick", "repeat": r, "value": run["instructions_per_tick"]}
        )
    df = pl.DataFrame(rows, schema={"metric": pl.String, "repeat": pl.Int64, "value": pl.Float64})
    df = df.with_columns(
        relative=pl.col("value") / pl.col("value").median().over("metric"),
        engine=pl.lit(engine),
    )
    if out is not None:
        path = Path(out) / "noise.parquet"
        write_table(df, path, kind="noise", version=TABLE_VERSION, replace=True)
    return df


def noise_summary(df: pl.DataFrame) -> pl.DataFrame:
    """Per metric: n, median, and the relative spread (max − min) / median of the noise table."""
    import polars as pl

    return (
        df.group_by("metric", maintain_order=True)
        .agg(
            n=pl.len(),
            median=pl.col("value").median(),
            relative_spread=(pl.col("value").max() - pl.col("value").min())
            / pl.col("value").median(),
        )
        .sort("metric")
    )


def describe(tables: dict[str, pl.DataFrame]) -> str:
    """Which tables were found (for the notebook's first cell of output)."""
    return json.dumps({name: df.height for name, df in sorted(tables.items())})


def compare_to_baseline(root: str | Path, suite: str, **kw: Any) -> pl.DataFrame | None:
    """Compare a suite's newest sweep with its recorded baseline (its oldest sweep on disk).

    None when the suite has fewer than two sweeps. Keyword arguments go to stats.compare.
    """
    from lifelab.lab.results import read_results
    from lifelab.lab.stats import compare

    files = sorted(Path(root, suite).glob("*.parquet"), key=lambda p: p.name)
    sweeps = []
    for path in files:
        try:
            sweeps.append(read_results(path))
        except Exception:  # plain tables in the folder are not sweeps
            continue
    if len(sweeps) < 2:
        return None
    return compare(sweeps[0], sweeps[-1], **kw)
