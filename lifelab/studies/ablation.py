"""A/B tables: one optimisation against the design it replaced, measured in the same process.

The reference plan asked for specific techniques (batched decay, asynchronous archiving, archive
indexes, columnar storage instead of pooled objects, memoisation, serialisation formats,
asynchronous snapshot/log I/O). Each is answered by an *ablation*: the variants run interleaved
(A, B, A, B…, so a noisy neighbour hurts both alike), each timing is one sample, and the table
keeps the median, a 95 % bootstrap interval (:func:`lifelab.lab.stats.median_ci`) and the ratio
to the baseline variant at the same size and metric. Tables go to
``data/results/ablations/<ablation>.parquet`` through :func:`lifelab.lab.results.write_table`
(kind ``ablation``), with the question, machine, Python and commit in their parquet metadata;
``lifelab report`` turns them into a paragraph each.

Table versions:
    1 — the interval in columns ``lo`` and ``hi``, the version under the ``lifelab_ablation`` key.
    2 — the interval in ``ci_low`` and ``ci_high``, the spelling of every lifelab table, and the
        common table keys. Version-1 tables (the committed ones) read with the columns renamed.

A variant that is not lifelab's design (an object-per-entry memory, a synchronous writer…) lives
inside its experiment module only: it exists to be measured against.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.stats import median_ci

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ABLATION_COLUMNS",
    "AblationError",
    "Sample",
    "ablation_table",
    "interleave",
    "load_ablations",
    "plot_ablation",
    "read_ablation",
    "timed_ms",
    "verdict",
    "write_ablation",
]

DEFAULT_ROOT = "data/results/ablations"
KIND = "ablation"  # the table kind in the parquet metadata (lifelab.lab.results.write_table)
ABLATION_VERSION = 2
_CONFIDENCE = 0.95

# Column -> polars dtype name; the one definition every ablation table follows.
ABLATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ablation", "String"),  # what is compared, e.g. "decay"
    ("variant", "String"),  # e.g. "batched (numpy)" or "per-entry (python loop)"
    ("baseline", "Boolean"),  # the variant the ratios are relative to
    ("chosen", "Boolean"),  # the variant lifelab ships
    ("size", "Int64"),  # the work size (entries, rows, events…); 0 when there is none
    ("metric", "String"),  # e.g. "decay_ms"
    ("unit", "String"),
    ("lower_is_better", "Boolean"),
    ("n", "Int64"),  # samples behind the median
    ("median", "Float64"),
    ("ci_low", "Float64"),  # 95 % bootstrap interval of the median
    ("ci_high", "Float64"),
    ("ratio", "Float64"),  # median / the baseline's median (same ablation, size, metric)
)


class AblationError(LifelabError, ValueError):
    """An ablation table is malformed (missing columns, no baseline, no samples)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value of one variant."""

    variant: str
    metric: str
    value: float
    size: int = 0
    unit: str = ""
    lower_is_better: bool = True


def interleave(
    variants: Mapping[str, Callable[[], float | Mapping[str, float]]],
    *,
    repeats: int,
    warmup: int = 1,
) -> dict[str, list[Any]]:
    """Run each variant ``warmup`` times untimed, then ``repeats`` rounds A, B, C, A, B, C…

    Each callable returns one value (or a mapping of metric -> value) per call; the result is
    every variant's list of returns, in round order. The order within a round rotates so no
    variant always runs right after the same other one.
    """
    if repeats < 1:
        raise AblationError(f"repeats must be >= 1, got {repeats}")
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    out: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def timed_ms(fn: Callable[[], Any]) -> float:
    """Wall milliseconds of one call (perf_counter_ns)."""
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1e6


def ablation_table(
    ablation: str,
    samples: Iterable[Sample],
    *,
    baseline: str,
    chosen: str,
    seed: int = 0,
) -> pl.DataFrame:
    """Summarise raw samples into the ablation schema: median, interval, ratio to ``baseline``.

    Raises:
        AblationError: no samples, or ``baseline`` / ``chosen`` is not one of the variants.
    """
    import polars as pl

    groups: dict[tuple[str, int, str], list[float]] = {}
    info: dict[str, tuple[str, bool]] = {}
    for s in samples:
        if not math.isfinite(s.value):
            raise AblationError(f"{ablation}: {s.variant} {s.metric} is {s.value!r}")
        groups.setdefault((s.variant, int(s.size), s.metric), []).append(float(s.value))
        info[s.metric] = (s.unit, s.lower_is_better)
    if not groups:
        raise AblationError(f"{ablation}: no samples")
    variants = {key[0] for key in groups}
    for role, name in (("baseline", baseline), ("chosen", chosen)):
        if name not in variants:
            raise AblationError(f"{ablation}: {role} {name!r} is not one of {sorted(variants)}")
    # Each (variant, size, metric) draws its own stream, so adding a variant moves no interval.
    cis = {
        key: median_ci(values, confidence=_CONFIDENCE, seed=seed, stream=(ablation, *key))
        for key, values in sorted(groups.items())
    }
    rows = []
    for (variant, size, metric), (median, low, high) in cis.items():
        base = cis.get((baseline, size, metric))
        base_median = base[0] if base else None
        unit, lower = info[metric]
        rows.append(
            {
                "ablation": ablation,
                "variant": variant,
                "baseline": variant == baseline,
                "chosen": variant == chosen,
                "size": size,
                "metric": metric,
                "unit": unit,
                "lower_is_better": lower,
                "n": len(groups[variant, size, metric]),
                "median": median,
                "ci_low": low,
                "ci_high": high,
                "ratio": None if not base_median else median / base_median,
            }
        )
    schema = {name: getattr(pl, dtype) for name, dtype in ABLATION_COLUMNS}
    return pl.DataFrame(rows, schema=schema)


def verdict(table: pl.DataFrame) -> list[str]:
    """One sentence per (metric, size): the chosen variant against the baseline, from the data.

    When the baseline is what ships, every other variant is compared with it instead.
    """
    _check(table)
    chosen = table.filter(table["chosen"])
    challengers = table.filter(~table["baseline"]) if chosen["baseline"].all() else chosen
    out = []
    for row in challengers.sort(["metric", "size", "variant"]).iter_rows(named=True):
        same = (table["metric"] == row["metric"]) & (table["size"] == row["size"])
        base = table.filter(table["baseline"] & same)
        if base.height == 0 or not row["ratio"]:
            continue
        b = base.row(0, named=True)
        factor = row["ratio"] if not row["lower_is_better"] else 1 / row["ratio"]
        overlap = not (row["ci_high"] < b["ci_low"] or b["ci_high"] < row["ci_low"])
        size = f" at {row['size']:,}" if row["size"] else ""
        word = "better" if factor > 1 else "worse"
        how = f"{factor:.3g}× {word}" if factor >= 1 else f"{1 / factor:.3g}× {word}"
        if abs(factor - 1.0) < 0.005:
            how = "the same"
        tail = " (intervals overlap: no clear difference)" if overlap else ""
        out.append(
            f"{row['metric']}{size}: {row['variant']} {_fmt(row['median'])} {row['unit']} vs "
            f"{b['variant']} {_fmt(b['median'])} {b['unit']}: {how}{tail}."
        )
    return out


def write_ablation(
    table: pl.DataFrame,
    *,
    question: str,
    root: str | Path = DEFAULT_ROOT,
    name: str | None = None,
    replace: bool = True,
) -> Path:
    """Write ``table`` to ``root/<ablation>.parquet`` and return the path.

    The file holds the newest measurement of its ablation, so by default it replaces an earlier
    ablation table of that name (never a table of another kind); ``replace=False`` refuses any
    existing file. The parquet metadata holds the question answered and the environment (CPU,
    Python, commit).

    Raises:
        AblationError: the table is malformed or holds more than one ablation.
        lifelab.lab.results.ResultsExistsError: the file exists and may not be replaced.
    """
    from lifelab.lab.env import capture_environment
    from lifelab.lab.results import write_table

    _check(table)
    ablations = table["ablation"].unique().to_list()
    if len(ablations) != 1:
        raise AblationError(f"one ablation per table, got {sorted(ablations)}")
    path = Path(root) / f"{name or ablations[0]}.parquet"
    env = capture_environment()
    metadata = {
        "question": question,
        "environment": json.dumps(
            {k: env[k] for k in ("cpu_model", "cpu_count", "python_version", "git_commit")}
            | {"git_dirty": env["git_dirty"]},
            sort_keys=True,
        ),
    }
    return write_table(
        table, path, kind=KIND, version=ABLATION_VERSION, metadata=metadata, replace=replace
    )


def read_ablation(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """An ablation table, upgraded to the current columns, and its ``question`` and
    ``environment``.

    Raises:
        AblationError: the file is not an ablation table of a version this lifelab reads.
    """
    from lifelab.lab.results import ResultsSchemaError, read_table

    path = Path(path)
    try:
        stored = read_table(path, kind=KIND, max_version=ABLATION_VERSION)
    except ResultsSchemaError as exc:
        raise AblationError(f"{path} is not a lifelab ablation table: {exc}") from exc
    if stored.kind != KIND:
        raise AblationError(
            f"{path} is not a lifelab ablation table (no table kind in its parquet metadata)"
        )
    table = stored.data
    if stored.version == 1:  # the interval was spelled lo / hi
        table = table.rename({"lo": "ci_low", "hi": "ci_high"}, strict=False)
    table = _check(table)
    env = json.loads(stored.metadata.get("environment", "{}"))
    return table, {"question": stored.metadata.get("question", ""), "environment": env}


def load_ablations(root: str | Path = DEFAULT_ROOT) -> list[tuple[pl.DataFrame, dict[str, Any]]]:
    """Every ablation table under ``root`` (sorted by name) with its metadata."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [read_ablation(p) for p in sorted(root.glob("*.parquet"))]


def plot_ablation(table: pl.DataFrame, *, title: str | None = None) -> Any:
    """Each variant's median relative to the baseline, one panel per metric, sizes on x (log).

    Below 1 is less of the metric than the replaced design (better for times and bytes).
    """
    from matplotlib.figure import Figure

    _check(table)
    metrics = sorted(table["metric"].unique().to_list())
    fig = Figure(figsize=(3.2 * len(metrics) + 0.5, 3.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        sub = table.filter(table["metric"] == metric).sort("size")
        for variant in sorted(sub["variant"].unique().to_list()):
            rows = sub.filter(sub["variant"] == variant)
            sizes = [max(x, 1) for x in rows["size"].to_list()]
            style = "k--" if rows["baseline"][0] else ("o-" if rows["chosen"][0] else "s:")
            ax.plot(sizes, rows["ratio"].to_list(), style, label=variant)
        ax.set_xscale("log")
        ax.set_yscale("log")
        lower = bool(sub["lower_is_better"][0])
        ax.set_title(f"{metric} ({'lower' if lower else 'higher'} is better)", fontsize=9)
        ax.set_xlabel("size")
    axes[0].set_ylabel("median / baseline median")
    axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _check(table: pl.DataFrame) -> pl.DataFrame:
    want = dict(ABLATION_COLUMNS)
    have = {name: str(dtype) for name, dtype in table.schema.items()}
    missing = [n for n in want if n not in have]
    wrong = [n for n in want if n in have and have[n] != want[n]]
    if missing or wrong:
        raise AblationError(f"ablation table: missing columns {missing}, wrong dtypes {wrong}")
    if table.height == 0 or not table["baseline"].any() or not table["chosen"].any():
        raise AblationError("ablation table: needs rows, a baseline and a chosen variant")
    return table


def _fmt(x: float) -> str:
    if x == 0 or 0.01 <= abs(x) < 1e6:
        return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{x:.3g}"
