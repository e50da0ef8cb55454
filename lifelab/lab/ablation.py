"""A/B tables: one optimisation against the design it replaced, measured in the same process.

The reference plan asked for specific techniques (batched decay, asynchronous archiving, archive
indexes, columnar storage instead of pooled objects, memoisation, serialisation formats,
asynchronous snapshot/log I/O). Each is answered by an *ablation*: the variants run interleaved
(A, B, A, B…, so a noisy neighbour hurts both alike), each timing is one sample, and the table
keeps the median, a 95 % bootstrap interval and the ratio to the baseline variant at the same
size and metric. Tables go to ``data/results/ablations/<ablation>.parquet`` with the machine,
Python and commit in their parquet metadata; ``lifelab report`` turns them into a paragraph each.

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

import numpy as np

from lifelab.exceptions import LifelabError

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
METADATA_KEY = "lifelab_ablation"
ABLATION_VERSION = 1
_RESAMPLES = 2_000
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
    ("lo", "Float64"),  # 95 % bootstrap interval of the median
    ("hi", "Float64"),
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
    rng = np.random.default_rng(seed)
    rows = []
    for (variant, size, metric), values in sorted(groups.items()):
        arr = np.asarray(values)
        median = float(np.median(arr))
        boots = np.median(arr[rng.integers(0, arr.size, (_RESAMPLES, arr.size))], axis=1)
        tail = (1 - _CONFIDENCE) / 2
        base = groups.get((baseline, size, metric))
        base_median = float(np.median(base)) if base else None
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
                "n": arr.size,
                "median": median,
                "lo": float(np.quantile(boots, tail, method="lower")),
                "hi": float(np.quantile(boots, 1 - tail, method="higher")),
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
        overlap = not (row["hi"] < b["lo"] or b["hi"] < row["lo"])
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
) -> Path:
    """Write ``table`` to ``root/<ablation>.parquet`` (replacing it: the newest measurement).

    The parquet metadata holds the question answered and the environment (CPU, Python, commit).
    """
    from lifelab.lab.env import capture_environment

    _check(table)
    ablations = table["ablation"].unique().to_list()
    if len(ablations) != 1:
        raise AblationError(f"one ablation per table, got {sorted(ablations)}")
    path = Path(root) / f"{name or ablations[0]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = capture_environment()
    metadata = {
        METADATA_KEY: str(ABLATION_VERSION),
        "question": question,
        "environment": json.dumps(
            {k: env[k] for k in ("cpu_model", "cpu_count", "python_version", "git_commit")}
            | {"git_dirty": env["git_dirty"]},
            sort_keys=True,
        ),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    table.write_parquet(tmp, metadata=metadata)
    tmp.replace(path)
    return path


def read_ablation(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """An ablation table and its metadata (``question``, ``environment``).

    Raises:
        AblationError: the file is not an ablation table of a version this lifelab reads.
    """
    import polars as pl

    path = Path(path)
    meta = pl.read_parquet_metadata(path)
    if meta.get(METADATA_KEY) != str(ABLATION_VERSION):
        raise AblationError(f"{path} is not a lifelab ablation table (v{ABLATION_VERSION})")
    table = _check(pl.read_parquet(path))
    env = json.loads(meta.get("environment", "{}"))
    return table, {"question": meta.get("question", ""), "environment": env}


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
