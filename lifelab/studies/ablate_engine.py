"""Engine ablations: the compiled tick (numba) against the interpreted Python tick, measured.

lifelab ticks with one of two engines (DESIGN §4): the Python engine, the readable reference,
and the compiled engine, the whole tick in one numba function, which ships as the default. Four
A/B tables are the evidence, each measured in this process with its variants interleaved
(:mod:`lifelab.studies.ablation`):

- ``engine_throughput``: wall µs per tick and ns per event at 1, 16, 64 and 256 events per tick.
- ``engine_memory``: with active memory held full at N entries, the median tick and the median
  decay pass over N.
- ``engine_gc``: each engine under the GC modes default, off and freeze, at one event per tick.
- ``engine_stages``: where each engine's tick goes, stage by stage (mean µs per sampled tick),
  next to the wall-clock tick of the same runs, at 1 and 64 events per tick.

Before anything is timed, each ablation builds both engines from one configuration, runs them
the same ticks and checks that they reached the same organism (equal ``life.digest()``) and that
the compiled variant really runs compiled (numba falls back to the Python engine when missing);
otherwise it raises :class:`~lifelab.studies.ablation.AblationError`. The compiled kernel is loaded
first (:func:`lifelab.studies.scaling.load_kernel`), so no sample pays numba's cache load.

A sample is one fresh Life from that configuration: ``warmup`` ticks untimed, then the timed
ticks. So every sample of a variant times the same ticks of the same organism (the check above
covers exactly those warm-up ticks), one sample's garbage is collected before the next Life is
built, and the archive a long run keeps in RAM stays bounded. The warm-up is long (3 000 ticks
by default: memory filled, some 40 learning and 30 adaptation passes behind) so that samples
time a grown organism rather than a newborn's first ticks. The timed ticks per variant are
calibrated once, on the checked Life, so that a sample's ticks take about ``target_s``. A
sample is one ``life.run`` call less the fixed cost of a call (measured with ``life.run(0)``
right after), which a long run pays once.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.config import LifeConfig
from lifelab.observe.gcmode import apply_gc_mode, parse_gc_mode
from lifelab.observe.metrics import STAGES
from lifelab.studies.ablation import (
    DEFAULT_ROOT,
    AblationError,
    Sample,
    ablation_table,
    interleave,
    write_ablation,
)
from lifelab.studies.scaling import load_kernel, measure_tick

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

    from lifelab.life.loop import Life

__all__ = [
    "COMPILED",
    "GC_MODES",
    "PYTHON",
    "QUESTIONS",
    "TIMED_STAGES",
    "engine_gc",
    "engine_memory",
    "engine_stages",
    "engine_throughput",
    "gc_effects",
    "gc_variant",
    "plot_stage_shares",
    "run_all",
]

QUESTIONS: dict[str, str] = {
    "engine_throughput": (
        "How much faster does the compiled engine (the whole tick in one numba function) run "
        "the organism than the interpreted Python engine, per tick and per event, at 1 to 256 "
        "events per tick?"
    ),
    "engine_memory": (
        "With active memory held full at N entries (every tick spills one at capacity), how do "
        "the median tick and one decay pass over N compare between the engines?"
    ),
    "engine_gc": (
        "Do the garbage collector's settings (default, off, freeze) change the tick's cost for "
        "either engine, at one event per tick?"
    ),
    "engine_stages": (
        "Where does each engine's tick spend its time? Mean µs per sampled tick of each stage "
        "(life.metrics), next to the wall-clock µs per tick of the same runs, at 1 and 64 "
        "events per tick."
    ),
}

PYTHON = "python (interpreted)"
COMPILED = "compiled (numba)"
_ENGINES = {"python": PYTHON, "compiled": COMPILED}  # LifeConfig.engine -> variant
GC_MODES = ("default", "off", "freeze")
# No run directory, so no I/O: the compiled engine records its io stage as exactly 0.
TIMED_STAGES = tuple(s for s in STAGES if s != "io")
_UNITS = {"tick_us": "µs", "event_ns": "ns", "tick_p50_us": "µs", "decay_us": "µs"}
_UNITS.update({f"stage_{s}_mean_us": "µs" for s in TIMED_STAGES})
_PROBE_FROM = 8  # first probe run of the calibration, in ticks


def gc_variant(engine: str, mode: str) -> str:
    """The ``engine_gc`` variant name, e.g. ``"compiled, gc off"`` (engine: python|compiled)."""
    return f"{engine}, gc {mode}"


# -- building and checking lives ---------------------------------------------------------------


def _life(engine: str, seed: int, **fields: Any) -> Life:
    """A Life of ``engine`` (``"python"`` or ``"compiled"``): every variant but memory's."""
    from lifelab.life.loop import Life

    return Life(LifeConfig(seed=seed, engine=engine, **fields))


def _filled(entries: int, seed: int, engine: str, **fields: Any) -> Life:
    """A Life of ``engine`` with active memory held full at ``entries`` (the memory variants)."""
    from lifelab.studies.io_bench import filled_life

    return filled_life(entries, seed, engine=engine, **fields)


def _check_same(ablation: str, lives: Mapping[str, Life], ticks: int) -> None:
    """Run every life ``ticks`` ticks; raise unless each runs its own engine and the digests agree.

    ``lives`` maps LifeConfig.engine (``"python"``, ``"compiled"``) to a Life built from one
    configuration otherwise.
    """
    digests = {}
    for engine, life in lives.items():
        if life.engine != engine:
            raise AblationError(
                f"{ablation}: the {_ENGINES[engine]} variant runs the {life.engine} engine "
                "(the compiled engine needs numba: pip install numba)"
            )
        life.run(ticks)
        digests[engine] = life.digest()
    first, *others = digests
    for other in others:
        if digests[other] != digests[first]:
            raise AblationError(
                f"{ablation}: {_ENGINES[first]} and {_ENGINES[other]} reached different "
                f"organisms after {ticks} ticks (digest {digests[first][:12]} vs "
                f"{digests[other][:12]}): the engines no longer compute the same thing"
            )


def _run_ns(life: Life, ticks: int) -> int:
    """Wall ns of ``life.run(ticks)`` beyond what any call costs: ``life.run(0)`` right after.

    A call has a fixed cost that does not tick: the summary it returns (with the organism's
    digest) and, in the compiled engine, packing the state into the kernel's arrays and settling
    it back into Python objects (~0.4 ms at one event per tick, ~6 ms at 256, where thousands of
    feedback entries are pending). A long run or ``start()`` pays it once; subtracting it leaves
    the ticks' own cost. At least 1 ns.
    """
    t0 = time.perf_counter_ns()
    life.run(ticks)
    t1 = time.perf_counter_ns()
    life.run(0)
    t2 = time.perf_counter_ns()
    return max(1, (t1 - t0) - (t2 - t1))


def _calibrate(life: Life, target_s: float) -> int:
    """Ticks whose own cost is about ``target_s`` on ``life`` (probe runs growing 4x from 8)."""
    n = _PROBE_FROM
    while True:
        s = _run_ns(life, n) / 1e9
        if s >= target_s / 10 or n >= 1 << 30:
            return max(1, math.ceil(n * target_s / s))
        n *= 4


@contextlib.contextmanager
def _gc_mode(mode: str) -> Iterator[None]:
    """Apply a GC mode (:func:`~lifelab.observe.gcmode.apply_gc_mode`); restore the former one.

    Restored: enabled or not, the thresholds, and a freeze undone (frozen objects go back to the
    oldest generation).
    """
    enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        apply_gc_mode(parse_gc_mode(mode))
        yield
    finally:
        if gc.get_freeze_count() > frozen:
            gc.unfreeze()
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
        else:
            gc.disable()


class _Workload:
    """One engine on one configuration: a fresh, warmed Life per sample, its timed ticks fixed.

    ``ticks`` is calibrated on the Life that passed the digest check (already warmed).
    """

    def __init__(
        self, engine: str, seed: int, fields: Mapping[str, Any], warmup: int, ticks: int
    ) -> None:
        self.engine = engine
        self.seed = seed
        self.fields = dict(fields)
        self.warmup = warmup
        self.ticks = ticks

    def sample(self, *, gc_mode: str = "default", stages: bool = False) -> dict[str, float]:
        """Wall µs per tick and ns per event of the timed ticks (and the stage means)."""
        gc.collect()  # the previous sample's Life: its garbage is not this sample's to pay
        life = _life(self.engine, self.seed, **self.fields)
        try:
            life.run(self.warmup)
            life.metrics.reset()
            events = life.events_processed
            with _gc_mode(gc_mode):
                ns = _run_ns(life, self.ticks)
            events = life.events_processed - events
            out = {"tick_us": ns / self.ticks / 1e3, "event_ns": ns / max(events, 1)}
            if stages:
                hists = life.metrics.stages
                if not hists["respond"].count:
                    raise AblationError(
                        f"engine_stages: {self.ticks} ticks of {_ENGINES[self.engine]} sampled "
                        "no tick: time more ticks"
                    )
                out.update({f"stage_{s}_mean_us": hists[s].mean / 1e3 for s in TIMED_STAGES})
            return out
        finally:
            life.close()


def _workloads(
    ablation: str,
    seed: int,
    fields: Mapping[str, Any],
    *,
    warmup: int,
    target_s: float | None = None,
    ticks: int = 0,
) -> dict[str, _Workload]:
    """Both engines on ``fields``, checked equal over ``warmup`` ticks.

    Their timed ticks: ``ticks`` for both, or calibrated per engine to ``target_s``.
    """
    lives = {engine: _life(engine, seed, **fields) for engine in _ENGINES}
    try:
        _check_same(ablation, lives, warmup)
        return {
            engine: _Workload(
                engine, seed, fields, warmup, ticks or _calibrate(life, target_s or 0.05)
            )
            for engine, life in lives.items()
        }
    finally:
        for life in lives.values():
            life.close()


def _samples(rounds: Mapping[str, list[Any]], size: int, metrics: Sequence[str]) -> list[Sample]:
    """Samples from :func:`interleave`'s returns (a metric -> value mapping per call)."""
    return [
        Sample(variant, metric, float(values[metric]), size=size, unit=_UNITS[metric])
        for variant, results in rounds.items()
        for values in results
        for metric in metrics
    ]


def _check_args(ablation: str, sizes: Sequence[int], **counts: float) -> list[int]:
    if isinstance(sizes, str | bytes) or not len(sizes):
        raise AblationError(f"{ablation}: sizes must be a non-empty sequence of ints >= 1")
    out = []
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AblationError(f"{ablation}: every size must be an int >= 1, got {n!r}")
        out.append(n)
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise AblationError(f"{ablation}: {name} must be a number > 0, got {value!r}")
    return out


# -- engine_throughput ---------------------------------------------------------------------------


def engine_throughput(
    sizes: Sequence[int] = (1, 16, 64, 256),
    *,
    repeats: int = 5,
    warmup: int = 3_000,
    target_s: float = 0.05,
    seed: int = 0,
) -> pl.DataFrame:
    """``tick_us`` (wall µs per tick) and ``event_ns`` (ns per event processed) per engine.

    Size: events per tick; each workload is LifeConfig's defaults with ``events_per_tick`` and
    ``batch_size`` set to it (memory_capacity 10 000, metrics sampled every ~32 ticks as
    shipped), so a tick drains exactly what the world emits. A sample times one ``life.run``
    of ~``target_s`` and subtracts the fixed cost of a call (``life.run(0)`` right after: the
    summary and digest it returns; the compiled engine's packing and settling of its state), so
    the figure is what each tick of a long run costs. The wall clock covers everything else a
    run does: for the compiled engine also what happens between kernel calls in Python (spilled
    rows handed to the archive, stage samples folded). Events include the organism's own memory
    echoes. Baseline: python; chosen: compiled.
    """
    samples: list[Sample] = []
    load_kernel()
    for k in _check_args("engine_throughput", sizes, warmup=warmup, target_s=target_s):
        fields = {"events_per_tick": float(k), "batch_size": k}
        loads = _workloads("engine_throughput", seed, fields, warmup=warmup, target_s=target_s)
        rounds = interleave(
            {_ENGINES[e]: w.sample for e, w in loads.items()}, repeats=repeats, warmup=1
        )
        samples += _samples(rounds, k, ("tick_us", "event_ns"))
    return ablation_table("engine_throughput", samples, baseline=PYTHON, chosen=COMPILED, seed=seed)


# -- engine_memory -------------------------------------------------------------------------------


def engine_memory(
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    *,
    repeats: int = 5,
    ticks: int = 1_000,
    warmup: int = 200,
    decay_ticks: int = 200,
    decay_warmup: int = 20,
    check_ticks: int = 100,
    seed: int = 0,
) -> pl.DataFrame:
    """``tick_p50_us`` and ``decay_us`` with active memory held full at N, both engines.

    Each sample is two fresh lives per engine from :func:`lifelab.studies.scaling.measure_tick`
    (the ``tick_scaling`` study's measurement: N entries, capacity N, ``min_weight`` 0 so
    nothing decays out and every tick spills at capacity), every tick timed stage by stage by
    ``life.metrics``, the instrument both engines feed (``perf_counter_ns`` in Python, the CPU's
    cycle counter in the kernel; each clock's own reads are inside its ticks):

    - ``tick_p50_us``: the median of ``ticks`` ticks after ``warmup``, LifeConfig's decay every
      10 ticks (the median is a tick without decay). The compiled engine hands spilled rows to
      the archive in Python between kernel calls, outside any tick; the Python engine appends
      them inside its policy stage. ``engine_throughput``'s wall clock counts both.
    - ``decay_us``: the median of the ``periodic`` stage with ``decay_every=1``, so that stage
      is one decay pass over N on every tick (learning every 75 and adaptation every 100 ticks
      join it on few enough ticks to leave the median alone). The stage, not a difference of
      two runs: with decay on every tick, the victim list of the capacity spill is rebuilt on
      every tick too (O(N), in the policy stage), which a subtraction would charge to decay.
      Decay passes stay below ~1 000 per life: after that many, the weights of the least
      significant entries turn subnormal and every pass slows down.

    Both engines run the same ticks, checked equal first (``check_ticks`` ticks, in both
    configurations). Baseline: python; chosen: compiled.
    """
    samples: list[Sample] = []
    load_kernel()
    for n in _check_args(
        "engine_memory",
        sizes,
        ticks=ticks,
        warmup=warmup,
        decay_ticks=decay_ticks,
        decay_warmup=decay_warmup,
        check_ticks=check_ticks,
    ):
        for fields in ({}, {"decay_every": 1}):
            lives = {engine: _filled(n, seed, engine, **fields) for engine in _ENGINES}
            try:
                _check_same("engine_memory", lives, check_ticks)
            finally:
                for life in lives.values():
                    life.close()
            del lives

        def sample(engine: str, n: int = n) -> dict[str, float]:
            gc.collect()
            tick = measure_tick(n, ticks, seed, engine=engine, warmup=warmup)
            gc.collect()
            decay = measure_tick(
                n, decay_ticks, seed, engine=engine, warmup=decay_warmup, decay_every=1
            )
            return {"tick_p50_us": tick["tick_p50_us"], "decay_us": decay["stage_periodic_p50_us"]}

        rounds = interleave(
            {label: (lambda e=e: sample(e)) for e, label in _ENGINES.items()},
            repeats=repeats,
            warmup=1,
        )
        samples += _samples(rounds, n, ("tick_p50_us", "decay_us"))
    return ablation_table("engine_memory", samples, baseline=PYTHON, chosen=COMPILED, seed=seed)


# -- engine_gc -----------------------------------------------------------------------------------


def engine_gc(
    *,
    modes: Sequence[str] = GC_MODES,
    repeats: int = 7,
    warmup: int = 3_000,
    target_s: float = 0.05,
    seed: int = 0,
) -> pl.DataFrame:
    """``tick_us`` at one event per tick, each engine under each GC mode; size 1 (events/tick).

    The mode is applied after the warm-up, right before the timed ticks (``freeze`` collects,
    then freezes what is alive), and the former mode is restored after every sample. Variants
    ``"<engine>, gc <mode>"``; baseline: ``python, gc default``; chosen: ``compiled, gc
    default``. :func:`gc_effects` compares each mode with its own engine's default.
    """
    for mode in modes:
        if mode not in ("default", "off", "freeze", "tuned"):
            raise AblationError(f"engine_gc: modes must be GC mode names, got {mode!r}")
    if "default" not in modes:
        raise AblationError(f"engine_gc: modes must include 'default', got {list(modes)}")
    _check_args("engine_gc", (1,), warmup=warmup, target_s=target_s)
    load_kernel()
    fields = {"events_per_tick": 1.0, "batch_size": 1}
    loads = _workloads("engine_gc", seed, fields, warmup=warmup, target_s=target_s)
    variants: dict[str, Callable[[], dict[str, float]]] = {}
    for engine, load in loads.items():
        for mode in modes:
            variants[gc_variant(engine, mode)] = lambda w=load, m=mode: w.sample(gc_mode=m)
    rounds = interleave(variants, repeats=repeats, warmup=1)
    return ablation_table(
        "engine_gc",
        _samples(rounds, 1, ("tick_us",)),
        baseline=gc_variant("python", "default"),
        chosen=gc_variant("compiled", "default"),
        seed=seed,
    )


def gc_effects(table: pl.DataFrame) -> pl.DataFrame:
    """Each engine's GC modes against that engine's ``gc default`` (from ``engine_gc``).

    Columns: ``engine``, ``gc``, ``median_us`` with ``ci_low``/``ci_high``, ``vs_default``
    (median over the default's) and ``overlaps_default`` (the 95 % intervals overlap: no clear
    difference).
    """
    import polars as pl

    rows = []
    for row in table.sort("variant").iter_rows(named=True):
        engine, _, mode = row["variant"].partition(", gc ")
        rows.append(
            {"engine": engine, "gc": mode, **{k: row[k] for k in ("median", "ci_low", "ci_high")}}
        )
    df = pl.DataFrame(rows).rename({"median": "median_us"})
    default = df.filter(pl.col("gc") == "default").select(
        "engine",
        pl.col("median_us").alias("_m"),
        pl.col("ci_low").alias("_lo"),
        pl.col("ci_high").alias("_hi"),
    )
    return (
        df.join(default, on="engine")
        .with_columns(
            (pl.col("median_us") / pl.col("_m")).alias("vs_default"),
            ~((pl.col("ci_high") < pl.col("_lo")) | (pl.col("_hi") < pl.col("ci_low"))).alias(
                "overlaps_default"
            ),
        )
        .drop("_m", "_lo", "_hi")
        .sort("engine", "gc")
    )


# -- engine_stages -------------------------------------------------------------------------------


def engine_stages(
    sizes: Sequence[int] = (1, 64),
    *,
    repeats: int = 5,
    warmup: int = 3_000,
    ticks: int = 9_600,
    seed: int = 0,
) -> pl.DataFrame:
    """Each stage's mean µs per sampled tick (``stage_<name>_mean_us``) and ``tick_us``.

    The workloads of :func:`engine_throughput` (size: events per tick), both engines timing the
    same ``ticks`` after the same warm-up, ``life.metrics`` emptied in between. Metrics samples
    one tick in ~32 as shipped, at gaps drawn from one fixed sequence, so both engines time the
    very same ticks (9 600 ticks: ~300 of them) and a sampled decay, learning or adaptation
    tick weighs the same in both; every repeat samples those ticks again (the repeats measure
    timing noise, not sampling noise). ``io`` is left out: without a run directory there is
    none (the compiled engine records it as 0).

    A stage's share of the tick is its mean over ``tick_us`` (the wall clock of the same run,
    as in :func:`engine_throughput`). What the stages leave of ``tick_us`` is work between
    stages and ticks: the Python engine's loop; for the compiled engine, what Python does
    between kernel calls (spilled rows handed to the archive, stage samples folded) —
    :func:`plot_stage_shares` draws both. The Python engine's stage times include its ~8
    ``perf_counter_ns`` reads per sampled tick, the kernel's its ~8 cycle-counter reads.
    """
    samples: list[Sample] = []
    load_kernel()
    metrics = (*(f"stage_{s}_mean_us" for s in TIMED_STAGES), "tick_us")
    for k in _check_args("engine_stages", sizes, warmup=warmup, ticks=ticks):
        fields = {"events_per_tick": float(k), "batch_size": k}
        loads = _workloads("engine_stages", seed, fields, warmup=warmup, ticks=ticks)
        rounds = interleave(
            {_ENGINES[e]: (lambda w=w: w.sample(stages=True)) for e, w in loads.items()},
            repeats=repeats,
            warmup=1,
        )
        samples += _samples(rounds, k, metrics)
    return ablation_table("engine_stages", samples, baseline=PYTHON, chosen=COMPILED, seed=seed)


def plot_stage_shares(table: pl.DataFrame, *, title: str | None = None) -> Figure:
    """Where the tick goes: one bar per engine and size, each stage's share of the wall tick.

    Shares are median stage means over the median ``tick_us`` (``engine_stages``); the hatched
    rest is time outside the timed stages. Bars read in %, labelled with µs per tick.
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    bars = []
    for (variant, size), rows in sorted(
        table.group_by("variant", "size"), key=lambda g: (g[0][1], g[0][0] != PYTHON)
    ):
        medians = dict(zip(rows["metric"].to_list(), rows["median"].to_list(), strict=True))
        tick = medians["tick_us"]
        shares = [medians[f"stage_{s}_mean_us"] / tick for s in TIMED_STAGES]
        bars.append((f"{variant}\n{size} event{'s' if size != 1 else ''}/tick", tick, shares))
    fig = Figure(figsize=(9, 0.8 * len(bars) + 1.4), layout="constrained")
    ax = fig.subplots()
    colours = mpl.colormaps["tab10"].colors
    outside_labelled = False
    for y, (_, tick, shares) in enumerate(bars):
        left = 0.0
        for j, (stage, share) in enumerate(zip(TIMED_STAGES, shares, strict=True)):
            ax.barh(y, share, left=left, color=colours[j], label=stage if y == 0 else None)
            left += share
        rest = 1.0 - left
        if rest > 0:
            ax.barh(
                y,
                rest,
                left=left,
                color="white",
                edgecolor="0.5",
                hatch="//",
                label=None if outside_labelled else "outside the stages",
            )
            outside_labelled = True
        ax.text(max(left, 1.0) + 0.01, y, f"{tick:,.3g} µs/tick", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25)
    ax.xaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of the wall-clock tick (median stage mean / median µs per tick)")
    ax.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    if title:
        fig.suptitle(title)
    return fig


# -- all four ------------------------------------------------------------------------------------

_ABLATIONS: dict[str, Callable[..., pl.DataFrame]] = {
    "engine_throughput": engine_throughput,
    "engine_memory": engine_memory,
    "engine_gc": engine_gc,
    "engine_stages": engine_stages,
}
# Arguments by scale: "quick" uses each function's defaults (under two minutes), "full" is for a
# quiet machine, "smoke" only checks that everything runs (CI, the experiment's [smoke] table).
_SMOKE: dict[str, dict[str, Any]] = {
    "engine_throughput": {"sizes": (1, 16), "repeats": 2, "warmup": 50, "target_s": 0.005},
    "engine_memory": {
        "sizes": (500,),
        "repeats": 2,
        "ticks": 100,
        "warmup": 20,
        "decay_ticks": 20,
        "decay_warmup": 5,
        "check_ticks": 30,
    },
    "engine_gc": {"repeats": 2, "warmup": 50, "target_s": 0.005},
    "engine_stages": {"sizes": (1,), "repeats": 2, "warmup": 50, "ticks": 640},
}
_FULL: dict[str, dict[str, Any]] = {
    "engine_throughput": {
        "sizes": (1, 16, 64, 256),
        "repeats": 11,
        "warmup": 3_000,
        "target_s": 0.2,
    },
    "engine_memory": {
        # A million entries held full took over 20 minutes here (the Python engine's ticks at
        # that size, and building each sample's memory): run it alone when you need it,
        # engine_memory(sizes=(1_000_000,), repeats=3, ticks=500, warmup=50, decay_ticks=100).
        "sizes": (1_000, 10_000, 100_000),
        "repeats": 7,
        "ticks": 2_000,
        "warmup": 200,
        "decay_ticks": 300,
        "decay_warmup": 20,
        "check_ticks": 100,
    },
    "engine_gc": {"repeats": 11, "warmup": 3_000, "target_s": 0.2},
    "engine_stages": {"sizes": (1, 64), "repeats": 9, "warmup": 3_000, "ticks": 32_000},
}


def run_all(
    root: str | Path = DEFAULT_ROOT,
    *,
    scale: str = "quick",
    progress: bool = True,
    seed: int = 0,
) -> list[Path]:
    """Run the four engine ablations and write each table to ``root/<ablation>.parquet``.

    ``scale``: "quick" (small sizes, few repeats: under two minutes), "full" (memory to 10⁵
    entries, longer samples: a quiet machine, 5 to 10 minutes) or "smoke" (tiny: checks that it
    runs). Returns the paths written, in :data:`QUESTIONS` order.
    """
    scales = {"smoke": _SMOKE, "quick": {key: {} for key in _ABLATIONS}, "full": _FULL}
    if scale not in scales:
        raise AblationError(f"scale must be one of {sorted(scales)}, got {scale!r}")
    from tqdm.auto import tqdm

    load_kernel()
    paths = []
    with tqdm(total=len(_ABLATIONS), desc="ablate engine", disable=not progress) as bar:
        for name, fn in _ABLATIONS.items():
            bar.set_postfix_str(name)
            table = fn(**scales[scale][name], seed=seed)
            paths.append(write_ablation(table, question=QUESTIONS[name], root=root))
            bar.update()
    return paths


if __name__ == "__main__":  # python -m lifelab.studies.ablate_engine [smoke|quick|full]
    import sys

    for written in run_all(scale=sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(written)
