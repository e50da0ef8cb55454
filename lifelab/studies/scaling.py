"""How cost grows with work: memory operations measured at several sizes, fitted on log-log axes.

Each size runs ``lifelab bench memory`` in a fresh subprocess (heap, caches and allocator state
are per process, DESIGN §3; started by :func:`lifelab.lab.spawn.run_worker`), so sizes never
disturb each other. The fitted exponent of a cost against the work it does is the number to
watch: ~1 for a pass over every entry, ~0 for a cost that must not grow, ~log for an indexed
search.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.spawn import WorkerError, run_worker

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

__all__ = [
    "MEMORY_METRICS",
    "SNAPSHOT_METRICS",
    "TICK_METRICS",
    "ScalingError",
    "fit_exponents",
    "load_kernel",
    "measure_tick",
    "memory_scaling",
    "plot_scaling",
    "tick_scaling",
]

MEMORY_METRICS = (
    "append_ns",
    "append_batch_ns",
    "decay_ms",
    "spill_ms",
    "activation_us",
    "archive_search_p50_ms",
    "archive_search_p99_ms",
)

# A tick with active memory held full at N entries: the median tick should not grow with N
# (exponent ~0); the mean carries the decay pass every decay_every ticks, which is O(N).
TICK_METRICS = ("tick_p50_us", "tick_mean_us")
SNAPSHOT_METRICS = ("capture_ms", "encode_ms", "write_ms")


class ScalingError(LifelabError, RuntimeError):
    """A measurement subprocess could not start, timed out, failed or printed no result."""


def memory_scaling(
    sizes: Sequence[int],
    *,
    archive: bool = True,
    searches: int = 100,
    seed: int = 0,
    timeout_s: float = 900.0,
    progress: bool = True,
) -> pl.DataFrame:
    """``bench memory`` at each size, one fresh process per size; one row per size."""
    import polars as pl
    from tqdm.auto import tqdm

    rows = []
    for n in tqdm(list(sizes), desc="memory scaling", disable=not progress):
        cmd = [
            sys.executable,
            "-m",
            "lifelab.cli",
            "bench",
            "memory",
            "--entries",
            str(int(n)),
            "--seed",
            str(seed),
            "--searches",
            str(searches),
            "--json",
        ]
        if not archive:
            cmd.append("--no-archive")
        rows.append(_measure_in_subprocess(cmd, timeout_s, f"bench memory --entries {n}"))
    return pl.DataFrame(rows, infer_schema_length=None)


def tick_scaling(
    sizes: Sequence[int],
    *,
    ticks: int = 2_000,
    seed: int = 0,
    engine: str | None = None,
    timeout_s: float = 900.0,
    progress: bool = True,
) -> pl.DataFrame:
    """Tick latency with active memory held full at each size, one fresh process per size.

    ``engine``: ``"compiled"`` or ``"python"`` (None: LifeConfig's default); see
    :func:`measure_tick`.
    """
    import polars as pl
    from tqdm.auto import tqdm

    rows = []
    for n in tqdm(list(sizes), desc="tick scaling", disable=not progress):
        cmd = [sys.executable, "-m", "lifelab.studies.scaling", str(int(n)), str(ticks), str(seed)]
        if engine is not None:
            cmd.append(engine)
        rows.append(_measure_in_subprocess(cmd, timeout_s, f"tick scaling at {n}"))
    return pl.DataFrame(rows, infer_schema_length=None)


def _measure_in_subprocess(cmd: list[str], timeout_s: float, what: str) -> dict[str, Any]:
    """Run one measurement process; return the JSON object on its last stdout line.

    Raises:
        ScalingError: it could not start, timed out, failed (with its stderr tail) or printed no
            JSON object.
    """
    try:
        result = run_worker(cmd, timeout=timeout_s, what=what).json_line()
    except WorkerError as exc:  # chained to the OSError when it could not start
        raise ScalingError(str(exc)) from exc.__cause__
    if not isinstance(result, dict):
        raise ScalingError(f"{what} printed {result!r}, not a JSON object")
    return result


def load_kernel() -> None:
    """Load (or, with an empty numba cache, compile) the compiled engine before timing anything.

    Builds and runs a throwaway compiled Life. Besides taking the ~0.2 s cache load (~20 s
    compile) out of the first measured Life, it keeps that Life's stage times honest: a compiled
    engine converts kernel cycles to ns with a ratio measured from its creation, and the first
    one in a process starts its wall clock before the cycle counter's own cache load, so its
    times read too high until it has lived many times that long. Does nothing without numba.
    """
    from lifelab.config import LifeConfig
    from lifelab.life.compiled import numba_available
    from lifelab.life.loop import Life

    if numba_available():
        Life(LifeConfig(engine="compiled", metrics_every=1)).run(2)


def measure_tick(
    entries: int,
    ticks: int = 2_000,
    seed: int = 0,
    *,
    engine: str | None = None,
    warmup: int = 200,
    **config: Any,
) -> dict[str, Any]:
    """Per-tick latency of a life whose memory holds ``entries`` (capacity = entries, nothing
    decays out: min_weight 0), so every tick spills at capacity and every tenth decays N.

    After ``warmup`` untimed ticks (past the first decay passes and capacity spills), every one
    of ``ticks`` ticks is timed stage by stage by ``life.metrics`` (``metrics_every=1``): the
    instrument both engines feed, with their own clock each: ``perf_counter_ns`` in the Python
    engine, the CPU's cycle counter in the compiled kernel. Timing single ticks from Python
    would not do for the compiled engine: one kernel call costs more than its tick. The
    percentiles carry the log histogram's resolution (an eighth of an octave, interpolated);
    the mean is exact. ``config`` sets other LifeConfig fields (e.g. ``decay_every``).

    Returns ``tick_p50_us``, ``tick_mean_us``, ``tick_p99_us`` and each stage's median
    (``stage_<name>_p50_us``), with ``engine`` (the one that ran) and ``sampled_ticks``.
    """
    from lifelab.observe.metrics import STAGES
    from lifelab.studies.io_bench import filled_life

    config.setdefault("metrics_every", 1)
    if engine is not None:
        config["engine"] = engine
    if config.get("engine") != "python":
        load_kernel()
    life = filled_life(entries, seed=seed, **config)
    try:
        life.run(warmup)
        life.metrics.reset()
        life.run(ticks)
        tick = life.metrics.tick
        stages = life.metrics.stages
        held = len(life.memory)
        ran = life.engine
    finally:
        life.close()
    return {
        "entries": entries,
        "active_entries": held,
        "ticks": ticks,
        "engine": ran,
        "sampled_ticks": tick.count,
        "tick_p50_us": tick.percentile(50) / 1e3,
        "tick_mean_us": tick.mean / 1e3,
        "tick_p99_us": tick.percentile(99) / 1e3,
        **{f"stage_{name}_p50_us": stages[name].percentile(50) / 1e3 for name in STAGES},
    }


def fit_exponents(
    df: pl.DataFrame, *, x: str = "entries", metrics: Sequence[str] = MEMORY_METRICS
) -> pl.DataFrame:
    """Least-squares slope and intercept of log10(metric) against log10(x), per metric."""
    import numpy as np
    import polars as pl

    out = []
    for metric in metrics:
        if metric not in df.columns:
            continue
        sub = df.select(x, metric).drop_nulls()
        xs = sub[x].to_numpy().astype(float)
        ys = sub[metric].to_numpy().astype(float)
        keep = (xs > 0) & (ys > 0)
        if keep.sum() < 2:
            continue
        slope, intercept = np.polyfit(np.log10(xs[keep]), np.log10(ys[keep]), 1)
        out.append(
            {
                "metric": metric,
                "exponent": float(slope),
                "intercept": float(intercept),
                "points": int(keep.sum()),
            }
        )
    return pl.DataFrame(
        out,
        schema={
            "metric": pl.String,
            "exponent": pl.Float64,
            "intercept": pl.Float64,
            "points": pl.Int64,
        },
    )


def plot_scaling(
    df: pl.DataFrame,
    *,
    x: str = "entries",
    metrics: Sequence[str] = MEMORY_METRICS,
    title: str = "How memory costs grow with the number of entries",
) -> Figure:
    """Log-log lines of each metric against x, with the fitted exponent in the legend."""
    import numpy as np
    from matplotlib.figure import Figure

    fits = {r["metric"]: r for r in fit_exponents(df, x=x, metrics=metrics).iter_rows(named=True)}
    if not fits:
        raise ValueError("no metric has two positive points to plot")
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    xs = df[x].to_numpy().astype(float)
    for metric, fit in fits.items():
        ys = df[metric].to_numpy().astype(float)
        line = ax.loglog(xs, ys, "o", label=f"{metric}  (exponent {fit['exponent']:.2f})")[0]
        grid = np.geomspace(xs.min(), xs.max(), 20)
        ax.loglog(
            grid,
            10 ** (fit["intercept"] + fit["exponent"] * np.log10(grid)),
            "-",
            color=line.get_color(),
            alpha=0.6,
        )
    ax.set_xlabel(f"{x} (log)")
    ax.set_ylabel("cost, in the unit of each metric (log)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


if __name__ == "__main__":  # one tick_scaling measurement, in the fresh process it asked for
    _engine = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(measure_tick(*(int(a) for a in sys.argv[1:4]), engine=_engine)))
