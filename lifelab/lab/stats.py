"""Statistics of results tables: per-cell summaries, baseline/candidate comparisons, and the one
bootstrap of the project.

A cell is one set of parameters, repeated (see :mod:`lifelab.lab.schema`). Trial times are noisy
and skewed, so everything here is built on the median: :func:`summarize` reports its spread and a
bootstrap confidence interval, :func:`compare` the ratio of medians with a bootstrap interval and a
verdict. A change is called only when the interval excludes 1 *and* the change is at least
``min_effect``: statistically real but tiny changes are not worth a red CI build. The default
minimum depends on what the metric measures (:func:`metric_measure`): 5 % for wall-clock times,
memory and counts, 1 % for instruction counts, which repeat within 0.4 % where wall clock on a
shared machine swings 15-30 %. Where a cell has instruction counts on both sides, they decide
and its wall-clock throughput is shown but does not decide (see :func:`compare`).

:func:`median_ci` is the one bootstrap interval of a median in lifelab: the summaries here, the
error bars of :mod:`lifelab.lab.plots`, the report's tables and the ablation tables all call it.
Intervals are percentile intervals taken conservatively (the order statistics just outside the
nominal quantiles, no interpolation, widened if need be to contain the sample median). Each
sample draws from its own generator seeded from ``seed`` and the sample's labels (cell, metric),
so a cell's numbers do not depend on which other cells or metrics are in the table, and the same
inputs and seed always give the same table.

Why not SciPy: ``scipy.stats.bootstrap`` and ``mannwhitneyu`` are the field's well-kept
versions, but measured here (SciPy 1.17.1, CPython 3.11, this 2-core VM) ``import scipy.stats``
costs about 0.9 s on top of numpy (898, 905 and 961 ms in three runs, where this whole module,
numpy and polars included, loads in about 0.3 s), and its wheel is 35 MB (113 MB installed):
every ``lifelab compare``, ``lifelab report`` and notebook would pay that for about twenty lines
of numpy. On the same samples ``bootstrap(..., method="percentile")`` gives the same interval as
:func:`median_ci` to within one order statistic, but it refuses n = 1 (a cell run once needs its
point interval), interpolates between order statistics, and has no 0/0 or x/0 rule for a ratio
of medians. We judge medians and their ratio, not rank shifts, so ``mannwhitneyu`` would answer
another question. Revisit if lifelab ever needs BCa intervals or rank tests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lifelab.exceptions import ConfigError
from lifelab.lab.load import LOADED, LOADED_RULE, with_loaded
from lifelab.lab.results import ResultsSchemaError
from lifelab.lab.schema import PARAM_COLUMNS

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_RESAMPLES",
    "INSTRUCTIONS_MIN_EFFECT",
    "LOADED_CHOICES",
    "MIN_EFFECT",
    "compare",
    "compare_files",
    "compare_summary",
    "comparison_table",
    "format_table",
    "higher_is_better",
    "median_ci",
    "metric_measure",
    "paired_ratio_ci",
    "regressions",
    "summarize",
    "unmatched_cells",
]

DEFAULT_METRICS: tuple[str, ...] = (
    "instructions_per_tick",  # first: where a table has counts, they decide (see compare)
    "ticks_per_s",
    "tick_p50_us",
    "tick_p99_us",
    "peak_rss_mb",
    "gc_pause_ms",
)

DEFAULT_RESAMPLES = 2000  # bootstrap resamples: the interval's ends move < 1 % between seeds
# The smallest |ratio - 1| called a change when compare is given none: instruction counts repeat
# within 0.002 % (Python engine) and 0.4 % (compiled), so 1 % is far outside their noise and a
# 3 % change is seen; wall clock on this machine swings 15-30 %, so anything else needs 5 %.
MIN_EFFECT = 0.05
INSTRUCTIONS_MIN_EFFECT = 0.01
# What to do with trials that ran on a loaded machine (lifelab.lab.load.is_loaded).
LOADED_CHOICES = ("keep", "drop")

FASTER, SLOWER, NO_CHANGE = "faster", "slower", "no significant change"
TOO_FEW = "too few trials"  # the verdict reads "too few trials (n = 2 < 5)"
# The parameters that best name a cell, first; comparison_table keeps these over linked ones.
_CELL_ORDER = ("engine", "batch_size", "gc_mode", "memory_capacity", "events_per_tick")
BETTER, WORSE, SAME = "better", "worse", "none"
# What a metric measures (metric_measure): each verdict names it.
INSTRUCTION_COUNT, WALL_CLOCK, MEMORY, COUNT = "instruction count", "wall clock", "memory", "count"
_MEASURES = (INSTRUCTION_COUNT, WALL_CLOCK, MEMORY, COUNT)

# Instruction counts per unit of work (lifelab.lab.instructions): fewer is better.
_INSTRUCTIONS_PREFIX = "instructions_per_"
# Which way is good and what is measured, by the unit suffix of the metric name; the first
# matching suffix wins, so "_per_s" must come before "_s". Names without a unit suffix are
# listed in _LOWER_IS_BETTER.
_BY_SUFFIX: tuple[tuple[str, bool, str], ...] = (
    ("_per_s", True, WALL_CLOCK),  # throughput: ticks_per_s, events_per_s, rate_decile_*_per_s
    ("_ratio", True, WALL_CLOCK),  # last_decile_ratio: late rate / early rate, < 1 = slowing
    ("_us", False, WALL_CLOCK),  # latency
    ("_ms", False, WALL_CLOCK),  # pauses
    ("_s", False, WALL_CLOCK),  # wall time
    ("_mb", False, MEMORY),
    ("_share", False, WALL_CLOCK),  # a stage's share of the tick (shares sum to 1: read with care)
)
_LOWER_IS_BETTER = {
    "gc_collections": COUNT,
    "gc_gen0": COUNT,
    "gc_gen1": COUNT,
    "gc_gen2": COUNT,
    "memory_active": MEMORY,
    "archive_size": MEMORY,
}
# Wall-clock throughput: in a cell whose instructions_per_tick was compared, these rows are
# shown but do not decide (compare).
_THROUGHPUT = frozenset({"ticks_per_s", "events_per_s"})
_THROUGHPUT_PREFIX = "rate_decile_"
_DECIDING_COUNT = "instructions_per_tick"  # the count that, compared in a cell, overrules them


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement (throughput) or a worsening.

    Instruction counts (``instructions_per_tick``, ``instructions_per_event``, any
    ``instructions_per_*``) are better lower, like times, sizes and counts.

    Raises:
        ConfigError: the name has no known unit suffix, so its direction cannot be told.
    """
    return _kind(metric)[0]


def metric_measure(metric: str) -> str:
    """What ``metric`` measures, which each :func:`compare` verdict names.

    "instruction count" (``instructions_per_*``), "wall clock" (``*_per_s``, ``*_us``, ``*_ms``,
    ``*_s``, ``*_ratio``, ``*_share``), "memory" (``*_mb``, ``memory_active``, ``archive_size``)
    or "count" (``gc_collections``, ``gc_gen*``).

    Raises:
        ConfigError: the name has no known unit suffix, so what it measures cannot be told.
    """
    return _kind(metric)[1]


def _kind(metric: str) -> tuple[bool, str]:
    """(higher is better, measure) of ``metric``, from its prefix, name or unit suffix."""
    if metric.startswith(_INSTRUCTIONS_PREFIX):
        return False, INSTRUCTION_COUNT
    if metric in _LOWER_IS_BETTER:
        return False, _LOWER_IS_BETTER[metric]
    for suffix, higher, measure in _BY_SUFFIX:
        if metric.endswith(suffix):
            return higher, measure
    suffixes = ", ".join(s for s, _, _ in _BY_SUFFIX)
    raise ConfigError(
        f"metric {metric!r}: cannot tell whether higher is better; name it with a unit suffix "
        f"({suffixes}), start it with {_INSTRUCTIONS_PREFIX!r} or use one of "
        f"{sorted(_LOWER_IS_BETTER)}"
    )


# -- the bootstrap ---------------------------------------------------------------------------------


def median_ci(
    values: Any,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    stream: Sequence[Any] = (),
) -> tuple[float, float, float]:
    """The median of the finite ``values`` and a percentile-bootstrap interval of it.

    Returns ``(median, ci_low, ci_high)``: NaN and infinities are skipped, no finite value gives
    ``(nan, nan, nan)`` and one value the point interval ``[value, value]``. The interval takes
    the order statistics just outside the nominal quantiles of ``resamples`` bootstrap medians
    and always contains the median. ``stream`` labels the sample (e.g. its cell and metric) and
    is mixed into ``seed``: each labelled sample draws its own reproducible stream, so its
    interval does not depend on what else is computed, or in which order.

    Raises:
        ConfigError: ``confidence`` not in (0, 1), ``resamples`` < 1 or ``seed`` < 0.
    """
    _check_options(confidence=confidence, resamples=resamples, seed=seed)
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    median = float(np.median(v))
    if v.size == 1:
        return (median, median, median)
    low, high = _interval(_boot_medians(v, resamples, _rng(seed, *stream)), confidence)
    return (median, min(low, median), max(high, median))


def paired_ratio_ci(
    numerator: Any,
    denominator: Any,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    stream: Sequence[Any] = (),
) -> tuple[float, float, float]:
    """median(numerator) / median(denominator) and a bootstrap interval, resampling in pairs.

    For measurements taken in pairs (round i timed both states, one after the other): each
    bootstrap resample draws rounds, keeping both values of a round together, so a round on a
    slow machine moves both medians and the ratio keeps what the pairing cancelled. Pairs with
    a NaN or infinite value are left out. Returns ``(ratio, ci_low, ci_high)``; no pair gives
    NaNs and one pair a point interval. ``stream`` labels the sample as in :func:`median_ci`.

    Raises:
        ValueError: the two sequences differ in length.
        ConfigError: ``confidence`` not in (0, 1), ``resamples`` < 1 or ``seed`` < 0.
    """
    _check_options(confidence=confidence, resamples=resamples, seed=seed)
    a = np.asarray(numerator, dtype=float).ravel()
    b = np.asarray(denominator, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0:
        return (math.nan, math.nan, math.nan)
    ratio = float(_ratio(np.array([np.median(a)]), np.array([np.median(b)]))[0])
    if a.size == 1:
        return (ratio, ratio, ratio)
    index = _rng(seed, "paired", *stream).integers(0, a.size, size=(resamples, a.size))
    boot = _ratio(np.median(a[index], axis=1), np.median(b[index], axis=1))
    low, high = _interval(boot, confidence)
    return (ratio, min(low, ratio), max(high, ratio))


# -- summaries -------------------------------------------------------------------------------------


def summarize(
    df: pl.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    loaded: str = "keep",
) -> pl.DataFrame:
    """Per-cell statistics of each metric over the trials whose status is "ok".

    Returns one row per (cell, metric): the ``by`` columns (default: the parameter columns present
    in ``df``), ``metric``, ``n``, ``median``, ``mean``, ``std`` (sample, ddof=1; null when n = 1),
    ``mad`` (median absolute deviation, unscaled), ``iqr`` (numpy's linear quantiles), ``min``,
    ``max`` and a bootstrap interval of the median (``ci_low``, ``ci_high``; [value, value] when
    n = 1). Null and NaN values are skipped; cells with no value for a metric are omitted.

    With the default ``metrics``, those absent from ``df`` are skipped; a metric named explicitly
    must be a column.

    ``loaded="drop"`` leaves out the trials that ran on a loaded machine
    (:func:`lifelab.lab.load.is_loaded`; trials without load readings are kept) and adds
    ``n_dropped`` after ``n``: how many of the cell's ok trials were left out. A cell whose
    every trial was loaded has no row. ``"keep"`` (the default) uses every trial.
    """
    _check_options(confidence=confidence, resamples=resamples, seed=seed)
    _check_loaded(loaded)
    keys = _group_columns([df], by)
    names = _metric_columns([df], metrics)
    dropped: dict[tuple[Any, ...], int] = {}
    if loaded == "drop":
        df, gone = _split_loaded(df)
        for row in _ok(gone).group_by(keys).len().iter_rows():
            dropped[tuple(row[:-1])] = row[-1]
    rows = []
    for key, metric, values in _samples(df, keys, names):
        median, low, high = median_ci(
            values,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
            stream=("summary", metric, key),
        )
        q25, q75 = np.percentile(values, [25, 75])
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "metric": metric,
                "n": values.size,
                **({"n_dropped": dropped.get(key, 0)} if loaded == "drop" else {}),
                "median": float(median),
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if values.size > 1 else None,
                "mad": float(np.median(np.abs(values - median))),
                "iqr": float(q75 - q25),
                "min": float(values.min()),
                "max": float(values.max()),
                "ci_low": low,
                "ci_high": high,
            }
        )
    stats = ["median", "mean", "std", "mad", "iqr", "min", "max", "ci_low", "ci_high"]
    schema = {
        **{k: df.schema[k] for k in keys},
        "metric": pl.String,
        "n": pl.Int64,
        **({"n_dropped": pl.Int64} if loaded == "drop" else {}),
        **dict.fromkeys(stats, pl.Float64),
    }
    return pl.DataFrame(rows, schema=schema)


# -- comparisons -----------------------------------------------------------------------------------


def compare(
    baseline: pl.DataFrame,
    candidate: pl.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    min_effect: float | None = None,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    by: Sequence[str] | None = None,
    min_n: int = 5,
    loaded: str = "keep",
) -> pl.DataFrame:
    """Compare the median of each metric, cell by cell, between two results tables.

    Only cells with "ok" trials in both tables are compared (list the others with
    :func:`unmatched_cells`). Returns one row per (cell, metric): the ``by`` columns (default: the
    parameter columns present in both tables), ``metric``, ``measure`` (:func:`metric_measure`:
    "instruction count", "wall clock", "memory" or "count"), ``n_baseline``, ``n_candidate``,
    ``baseline_median``, ``candidate_median``, ``ratio`` (candidate / baseline), a bootstrap
    interval of the ratio (``ci_low``, ``ci_high``; each side resampled independently), ``verdict``
    ("faster", "slower", "no significant change" or "too few trials (n = 2 < 5)"), ``change``
    ("better", "worse" or "none") and ``decides`` (whether the row counts in :func:`regressions`).

    A change is significant when the interval excludes 1, ``|ratio - 1| >= min_effect`` and both
    sides have at least ``min_n`` values; its direction comes from :func:`higher_is_better`: a
    lower ``ticks_per_s`` or a higher ``tick_p99_us`` or ``instructions_per_tick`` is "slower".
    ``min_effect=None`` takes :data:`INSTRUCTIONS_MIN_EFFECT` (1 %) for instruction counts and
    :data:`MIN_EFFECT` (5 %) for every other metric; a number applies to all metrics. Below about
    five values a side the bootstrap interval of a median is little more than the sample's range
    and calls far more than its nominal share of A/A comparisons significant (about a third at
    n = 2, 5-9 % at n = 3-4 with min_effect 0.05), so such cells get no verdict whatever the
    data: their verdict says "too few trials" and the smaller n, so it is never mistaken for a
    measured "no change". "faster"/"slower" is the verdict for every metric, memory included;
    ``change`` says the same in words that also fit memory and counts.

    Instruction counts decide where present: in a cell where ``instructions_per_tick`` was
    compared with a verdict (both sides have at least ``min_n`` counts), the wall-clock
    throughput rows (``ticks_per_s``, ``events_per_s``, ``rate_decile_*``) are computed and
    shown but have ``decides`` False, so :func:`regressions` leaves them out. Both answer "how
    much work is a tick", and the counts see 3 % where throughput on a shared machine swings
    15-30 %. Every other row decides: latency, memory and GC rows (tails, pauses and memory are
    not in the counts), and throughput in a cell without counts on both sides, or when
    ``instructions_per_tick`` is not among ``metrics``.

    ``loaded="drop"`` leaves out, on both sides, the trials that ran on a loaded machine
    (:func:`lifelab.lab.load.is_loaded`); :func:`compare_summary` says how many.
    """
    _check_options(confidence=confidence, resamples=resamples, seed=seed)
    _check_loaded(loaded)
    if loaded == "drop":
        baseline, candidate = _split_loaded(baseline)[0], _split_loaded(candidate)[0]
    if min_effect is not None and not (min_effect >= 0 and math.isfinite(min_effect)):
        raise ConfigError(f"min_effect must be a finite number >= 0, got {min_effect!r}")
    if min_n < 1:
        raise ConfigError(f"min_n must be >= 1, got {min_n!r}")
    keys = _group_columns([baseline, candidate], by)
    names = _metric_columns([baseline, candidate], metrics)
    kinds = {m: _kind(m) for m in names}
    effects = {m: _min_effect(kinds[m][1], min_effect) for m in names}
    base = {(key, m): v for key, m, v in _samples(baseline, keys, names)}
    rows = []
    for key, metric, cand in _samples(candidate, keys, names):
        ref = base.get((key, metric))
        if ref is None:
            continue
        ref_boot = _boot_medians(ref, resamples, _rng(seed, "baseline", metric, key))
        cand_boot = _boot_medians(cand, resamples, _rng(seed, "candidate", metric, key))
        ref_median, cand_median = float(np.median(ref)), float(np.median(cand))
        ratio = float(_ratio(np.array([cand_median]), np.array([ref_median]))[0])
        low, high = _interval(_ratio(cand_boot, ref_boot), confidence)
        n = min(ref.size, cand.size)
        significant = (low > 1 or high < 1) and abs(ratio - 1) >= effects[metric]
        if n < min_n:
            verdict, change = f"{TOO_FEW} (n = {n} < {min_n})", SAME
        elif not significant:
            verdict, change = NO_CHANGE, SAME
        elif (ratio > 1) == kinds[metric][0]:
            verdict, change = FASTER, BETTER
        else:
            verdict, change = SLOWER, WORSE
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "metric": metric,
                "measure": kinds[metric][1],
                "n_baseline": ref.size,
                "n_candidate": cand.size,
                "baseline_median": ref_median,
                "candidate_median": cand_median,
                "ratio": ratio,
                "ci_low": low,
                "ci_high": high,
                "verdict": verdict,
                "change": change,
            }
        )
    # Counts with a verdict of their own overrule throughput; "too few trials" overrules nothing.
    counted = {
        tuple(row[k] for k in keys)
        for row in rows
        if row["metric"] == _DECIDING_COUNT and not row["verdict"].startswith(TOO_FEW)
    }
    for row in rows:
        row["decides"] = not (
            _is_throughput(row["metric"]) and tuple(row[k] for k in keys) in counted
        )
    schema = {
        **{k: baseline.schema[k] for k in keys},
        "metric": pl.String,
        "measure": pl.String,
        "n_baseline": pl.Int64,
        "n_candidate": pl.Int64,
        **dict.fromkeys(["baseline_median", "candidate_median", "ratio"], pl.Float64),
        **dict.fromkeys(["ci_low", "ci_high"], pl.Float64),
        "verdict": pl.String,
        "change": pl.String,
        "decides": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema)


def regressions(table: pl.DataFrame) -> pl.DataFrame:
    """The rows of a :func:`compare` table whose change is a significant worsening and decides.

    A throughput row that instruction counts overrule (``decides`` False) is not a regression,
    however slow it reads.
    """
    return table.filter(pl.col("decides") & (pl.col("change") == WORSE))


def unmatched_cells(
    baseline: pl.DataFrame, candidate: pl.DataFrame, *, by: Sequence[str] | None = None
) -> pl.DataFrame:
    """Cells with "ok" trials in only one of the two tables, which :func:`compare` leaves out.

    Returns the ``by`` columns and ``side`` ("baseline only" or "candidate only"). A cell whose
    trials all failed on one side shows up here too.
    """
    keys = _group_columns([baseline, candidate], by)
    base, cand = (_ok(t).select(keys).unique(maintain_order=True) for t in (baseline, candidate))
    only = [
        a.join(b, on=keys, how="anti", nulls_equal=True).with_columns(side=pl.lit(side))
        for a, b, side in ((base, cand, "baseline only"), (cand, base, "candidate only"))
    ]
    return pl.concat(only, how="vertical_relaxed")


# -- files and the command -------------------------------------------------------------------------


def read_table(path: str | Path) -> pl.DataFrame:
    """A table as stored, read by :func:`lifelab.lab.results.read_table` (any kind or version).

    Kept for ``lifelab compare``, which compares any two tables with the parameter columns;
    new code calls :func:`lifelab.lab.results.read_table` itself.
    """
    from lifelab.lab.results import read_table

    return read_table(path).data


def compare_files(baseline_path: str | Path, candidate_path: str | Path, **kw: Any) -> pl.DataFrame:
    """:func:`compare` two results parquet files; keywords are passed through."""
    return compare(read_table(baseline_path), read_table(candidate_path), **kw)


def compare_summary(
    baseline_path: str | Path,
    candidate_path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    min_effect: float | None = None,
    min_n: int = 5,
    loaded: str = "keep",
) -> tuple[dict[str, Any], str]:
    """Compare two results files as ``lifelab compare`` does: its ``--json`` object and its text.

    The object counts ``regressions`` (a CI gate fails when it is not 0) and ``improvements``
    among the rows that decide (see :func:`compare`), and comparisons with ``too_few_trials``;
    ``by_metric`` gives per metric its ``measure``, the ``cells`` compared, how many were
    ``slower``, ``faster``, ``no_change`` or ``too_few``, and in how many it ``decides``;
    ``min_effect`` is the number given, or by measure the defaults used; ``rows`` and
    ``unmatched`` hold every compared and unmatched row. The text is the aligned table and the
    closing lines the command prints without ``--json``, one per metric and a total. With
    ``loaded="drop"`` trials that ran on a loaded machine are left out of both files (as in
    ``lifelab compare --drop-loaded``) and ``dropped_loaded`` counts them per side.

    Raises:
        ConfigError: no cell has "ok" trials in both files, or a bad metric name.
        ResultsSchemaError: a file is not a readable parquet table.
    """
    _check_loaded(loaded)
    baseline, candidate = _read_input(baseline_path), _read_input(candidate_path)
    dropped = {"baseline": 0, "candidate": 0}
    if loaded == "drop":
        (baseline, gone_base), (candidate, gone_cand) = map(_split_loaded, (baseline, candidate))
        dropped = {"baseline": _ok(gone_base).height, "candidate": _ok(gone_cand).height}
    metrics = tuple(metrics) if metrics else DEFAULT_METRICS
    table = compare(baseline, candidate, metrics, min_effect=min_effect, min_n=min_n)
    unmatched = unmatched_cells(baseline, candidate)
    if table.is_empty():
        raise ConfigError(
            f"no cell has ok trials in both {baseline_path} and {candidate_path}: nothing to "
            f"compare ({unmatched.height} cells in one file only)"
        )
    worse = regressions(table).height
    too_few = table.filter(pl.min_horizontal("n_baseline", "n_candidate") < min_n).height
    names = sorted(set(table["metric"]), key=list(metrics).index)
    by_metric = {name: _metric_counts(table.filter(pl.col("metric") == name)) for name in names}
    result = {
        "baseline": str(baseline_path),
        "candidate": str(candidate_path),
        "metrics": names,
        "min_effect": (
            min_effect if min_effect is not None else {m: _min_effect(m, None) for m in _MEASURES}
        ),
        "compared": table.height,
        "regressions": worse,
        "improvements": table.filter(pl.col("decides") & (pl.col("change") == BETTER)).height,
        "too_few_trials": too_few,
        "by_metric": by_metric,
        "loaded": loaded,
        "dropped_loaded": dropped,
        "rows": _json_rows(table),
        "unmatched": _json_rows(unmatched),
    }
    # Label compared and unmatched cells together, so each label tells its cell apart.
    keys = table.columns[: table.columns.index("metric")]
    labels = _cell_labels(
        pl.concat([table.select(keys), unmatched.select(keys)], how="vertical_relaxed")
    )
    lines = [format_table(table, labels=labels[: table.height])]
    for label, side in zip(labels[table.height :], unmatched["side"], strict=True):
        lines.append(f"not compared ({side}): {label}")
    if too_few:
        lines.append(f"no verdict for {too_few} comparisons with fewer than {min_n} ok trials")
    if loaded == "drop":
        lines.append(
            f"left out {dropped['baseline']} baseline and {dropped['candidate']} candidate "
            f"trials that ran on a loaded machine ({LOADED_RULE})"
        )
    for name, counts in by_metric.items():
        lines.append(_metric_line(name, counts))
    overruled = table.filter(~pl.col("decides")).height
    total = f"{worse} significant regressions in {table.height} comparisons"
    if overruled:
        total += f" ({overruled} not deciding: instruction counts decide)"
    lines.append(total)
    return result, "\n".join(lines)


def _metric_counts(rows: pl.DataFrame) -> dict[str, Any]:
    """The ``by_metric`` entry of one metric's rows of a :func:`compare` table."""
    verdicts = rows["verdict"].to_list()
    return {
        "measure": rows["measure"][0],
        "cells": rows.height,
        "slower": verdicts.count(SLOWER),
        "faster": verdicts.count(FASTER),
        "no_change": verdicts.count(NO_CHANGE),
        "too_few": sum(v.startswith(TOO_FEW) for v in verdicts),
        "decides": int(rows["decides"].sum()),
    }


def _metric_line(metric: str, counts: dict[str, Any]) -> str:
    """One closing line of ``lifelab compare``: a metric's verdicts, counted over its cells."""
    cells = counts["cells"]
    line = (
        f"{metric} ({counts['measure']}): {cells} {'cell' if cells == 1 else 'cells'}, "
        f"{counts['slower']} slower, {counts['faster']} faster, "
        f"{counts['no_change']} no significant change"
    )
    if counts["too_few"]:
        line += f", {counts['too_few']} too few trials"
    if counts["decides"] < cells:
        line += f"; not deciding in {cells - counts['decides']} (instruction counts decide)"
    return line


def _read_input(path: str | Path) -> pl.DataFrame:
    """:func:`read_table`, with a damaged file reported as bad input (polars' errors are not)."""
    try:
        return read_table(path)
    except pl.exceptions.PolarsError as exc:
        raise ResultsSchemaError(f"{path}: not a readable parquet table ({exc})") from None


def format_table(table: pl.DataFrame, *, labels: Sequence[str] | None = None) -> str:
    """A compact aligned text rendering of a :func:`compare` table, one line per row.

    Cells are labelled (unless ``labels`` are given) by the parameters that differ between rows,
    so constant columns, such as a long ``config_json``, do not crowd the screen. Each verdict
    names its measure, e.g. "SLOWER (wall clock)" or "no significant change (instruction
    count)"; significant verdicts of deciding rows are written in capitals (FASTER, SLOWER) so
    they stand out of the column, and rows that do not decide say so.
    """
    if labels is None:
        labels = _cell_labels(table.select(table.columns[: table.columns.index("metric")]))
    head = ["cell", "metric", "baseline", "candidate", "ratio", "interval", "verdict"]
    lines = [head]
    for label, row in zip(labels, table.iter_rows(named=True), strict=True):
        lines.append(
            [
                label,
                row["metric"],
                f"{row['baseline_median']:.4g}",
                f"{row['candidate_median']:.4g}",
                f"{row['ratio']:.3f}",
                f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]",
                _verdict_text(row),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    left = {0, 1, 6}  # text columns; numbers are right-aligned

    def justify(line: list[str]) -> str:
        pairs = enumerate(zip(line, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs).rstrip()

    return "\n".join(justify(line) for line in lines)


def comparison_table(table: pl.DataFrame) -> pl.DataFrame:
    """A :func:`compare` table for reading: each row labelled by the cell parameters that vary.

    Keeps the parameter columns whose values differ between rows (constant ones, such as a long
    ``config_json``, are dropped; "cell" when none varies), then ``metric``, ``measure``, ``n``
    (the smaller side), ``baseline_median``, ``candidate_median``, ``ratio``, ``ci_low``,
    ``ci_high``, ``verdict`` and ``decides`` (False where instruction counts overrule the row),
    sorted by metric then cell. Show it with :func:`lifelab.lab.display.show_table`,
    which also makes the significant verdicts stand out.
    """
    keys = table.columns[: table.columns.index("metric")]
    ordered = sorted(keys, key=lambda c: _CELL_ORDER.index(c) if c in _CELL_ORDER else 99)
    varying: list[str] = []
    for column in ordered:
        # A column that moves with one already kept (events_per_tick linked to batch_size)
        # names no cell of its own.
        if table[column].n_unique() > 1 and not any(_determines(table, k, column) for k in varying):
            varying.append(column)
    varying.sort(key=keys.index)
    label = varying or ([] if table.is_empty() else ["cell"])
    out = table.with_columns(
        n=pl.min_horizontal("n_baseline", "n_candidate"),
        **({"cell": pl.lit("all")} if label == ["cell"] and "cell" not in keys else {}),
    )
    stats = ["baseline_median", "candidate_median", "ratio", "ci_low", "ci_high", "verdict"]
    order = {m: i for i, m in enumerate(dict.fromkeys(table["metric"].to_list()))}
    out = out.with_columns(_order=pl.col("metric").replace_strict(order, default=len(order)))
    return out.sort(["_order", *label], maintain_order=True).select(
        *label, "metric", "measure", "n", *stats, "decides"
    )


# -- internals -------------------------------------------------------------------------------------


def _determines(table: pl.DataFrame, a: str, b: str) -> bool:
    """Whether each value of ``a`` goes with one value of ``b`` (b is a function of a)."""
    return int(table.group_by(a).agg(pl.col(b).n_unique()).get_column(b).max() or 0) <= 1


def _verdict_text(row: dict[str, Any]) -> str:
    """A row's verdict naming its measure: "SLOWER (wall clock)", "too few trials (n = 2 < 5;
    instruction count)", "slower (wall clock; not deciding: instruction counts decide)".

    Only a significant verdict that decides is written in capitals.
    """
    verdict, notes = row["verdict"], [row["measure"]]
    if verdict.endswith(")"):  # "too few trials (n = 2 < 5)": one pair of brackets for all notes
        verdict, _, note = verdict[:-1].partition(" (")
        notes.insert(0, note)
    if not row["decides"]:
        notes.append("not deciding: instruction counts decide")
    elif verdict in (FASTER, SLOWER):
        verdict = verdict.upper()
    return f"{verdict} ({'; '.join(notes)})"


def _min_effect(measure: str, given: float | None) -> float:
    """The smallest change called for a metric of ``measure``: ``given``, or its default."""
    if given is not None:
        return given
    return INSTRUCTIONS_MIN_EFFECT if measure == INSTRUCTION_COUNT else MIN_EFFECT


def _is_throughput(metric: str) -> bool:
    """A wall-clock throughput metric, which instruction counts overrule in :func:`compare`."""
    return metric in _THROUGHPUT or metric.startswith(_THROUGHPUT_PREFIX)


def _check_options(*, confidence: float, resamples: int, seed: int) -> None:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if resamples < 1:
        raise ConfigError(f"resamples must be >= 1, got {resamples!r}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed!r}")


def _check_loaded(loaded: str) -> None:
    if loaded not in LOADED_CHOICES:
        raise ConfigError(f"loaded must be one of {list(LOADED_CHOICES)}, got {loaded!r}")


def _split_loaded(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(trials kept, trials that ran on a loaded machine); unmeasured trials are kept."""
    flagged = with_loaded(df)[LOADED].fill_null(False)
    return df.filter(~flagged), df.filter(flagged)


def _group_columns(tables: Sequence[pl.DataFrame], by: Sequence[str] | None) -> list[str]:
    """The columns that identify a cell: ``by``, or the parameter columns in every table."""
    if by is not None:
        for table in tables:
            missing = [c for c in by if c not in table.columns]
            if missing:
                raise ConfigError(f"by: no column {missing} in the results table")
        return list(by)
    keys = [name for name, _ in PARAM_COLUMNS if all(name in t.columns for t in tables)]
    if not keys and all("cell" in t.columns for t in tables):
        keys = ["cell"]
    if not keys:
        raise ConfigError("by: the table has no parameter columns nor 'cell'; pass by=[...]")
    return keys


def _metric_columns(tables: Sequence[pl.DataFrame], metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str):  # a lone name would otherwise be read as its letters
        metrics = (metrics,)
    present = [m for m in metrics if all(m in t.columns for t in tables)]
    if tuple(metrics) == DEFAULT_METRICS and present:
        return present
    missing = [m for m in metrics if m not in present]
    if missing or not present:
        raise ConfigError(f"metrics: no column {missing or list(metrics)} in the results table")
    return present


def _ok(df: pl.DataFrame) -> pl.DataFrame:
    """The trials that finished (all rows if the table has no status column)."""
    return df.filter(pl.col("status") == "ok") if "status" in df.columns else df


def _samples(
    df: pl.DataFrame, keys: list[str], metrics: list[str]
) -> Iterator[tuple[tuple[Any, ...], str, np.ndarray]]:
    """(cell key, metric, finite float64 values) for each cell and metric with a value."""
    ok = _ok(df).select(*keys, *metrics).sort(keys, nulls_last=True, maintain_order=True)
    for key, group in ok.partition_by(keys, as_dict=True, maintain_order=True).items():
        for metric in metrics:
            values = group[metric].cast(pl.Float64).drop_nulls().to_numpy()
            values = values[np.isfinite(values)]
            if values.size:
                yield key, metric, values


def _rng(seed: int, *parts: Any) -> np.random.Generator:
    """A generator for one (cell, metric): stable across processes (no hash() randomisation)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def _boot_medians(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples, drawn at once as a resamples × n matrix."""
    index = rng.integers(0, values.size, size=(resamples, values.size))
    return np.median(values[index], axis=1)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval; "lower"/"higher" take order statistics, so infinities stay exact."""
    tail = (1 - confidence) / 2
    low = np.quantile(samples, tail, method="lower")
    high = np.quantile(samples, 1 - tail, method="higher")
    return float(low), float(high)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, with 0 / 0 = 1 (no change) and x / 0 = ±inf (a change from 0)."""
    out = np.copysign(np.full(numerator.shape, np.inf), numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    out[(denominator == 0) & (numerator == 0)] = 1.0
    return out


def _cell_labels(keys: pl.DataFrame) -> list[str]:
    """``k=v`` labels of the key columns that vary between rows ("all" when none vary)."""
    varying = [c for c in keys.columns if keys[c].n_unique() > 1]
    return [
        " ".join(f"{c}={row[c]}" for c in varying) or "all" for row in keys.iter_rows(named=True)
    ]


def _json_rows(table: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, with non-finite floats as None so the JSON stays standard."""
    return [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        for row in table.iter_rows(named=True)
    ]
