"""Static figures of a results table: throughput, latency, memory, stage shares, degradation.

Each function takes a results DataFrame (one row per trial, see :mod:`lifelab.lab.schema`), keeps
the trials whose status is "ok", and returns a :class:`matplotlib.figure.Figure` built without
pyplot: no global state, no backend choice, nothing to close, and the same figure whether it is
shown in a notebook, saved by ``lifelab report`` or made in a headless run.

Points are medians over the repeats of a cell with 95 % percentile-bootstrap confidence intervals
(seeded, so the same table always gives the same figure). A plot never pools different cells:
besides the columns named in ``by``, every other sweep parameter that varies in the table also
splits the lines (and is named in the legend). Filter the table first to plot a slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator, PercentFormatter

__all__ = [
    "latency_percentiles",
    "loglog_fit",
    "memory_growth",
    "rate_by_decile",
    "stage_shares",
    "throughput_vs_batch",
]

# Parameters a sweep varies, in the order they name a cell. seed is left out on purpose: repeats
# of one cell may use different seeds, and those must pool.
SWEEP_PARAMS = (
    "suite",
    "engine",
    "batch_size",
    "gc_mode",
    "memory_capacity",
    "events_per_tick",
    "ticks",
    "warmup_ticks",
    "config_json",
)
STAGE_PREFIX, STAGE_SUFFIX = "stage_", "_share"
DECILE_COLUMNS = tuple(f"rate_decile_{i}_ticks_per_s" for i in range(10))

_LABELS = {
    "batch_size": "batch size (events drained per tick)",
    "memory_capacity": "memory capacity (entries)",
    "events_per_tick": "offered load (events/tick)",
    "events_per_s": "throughput (events/s)",
    "ticks_per_s": "tick rate (ticks/s)",
    "tick_p50_us": "tick latency p50 (µs)",
    "tick_p99_us": "tick latency p99 (µs)",
    "tick_max_us": "longest tick (µs)",
    "peak_rss_mb": "peak RSS (MB)",
    "gc_pause_ms": "GC pause (ms)",
    "memory_active": "active memory (entries)",
    "archive_size": "archive (entries)",
    "last_decile_ratio": "last/first decile rate (ratio)",
}
# Unit by name suffix (schema rule: units live in the names); "_per_s" must precede "_s".
_UNITS = (("_per_s", "/s"), ("_us", "µs"), ("_ms", "ms"), ("_mb", "MB"), ("_s", "s"))
_LOG_SPAN = 8.0  # use a log axis when the positive values span at least this factor
_FIGSIZE = (6.4, 4.2)
_MARKERS = ("o", "s", "^", "D", "v")
_LEGEND_INSIDE = 6  # most legend entries drawn inside the axes


# -- public plots ----------------------------------------------------------------------------------


def throughput_vs_batch(
    df: pl.DataFrame, *, metric: str = "events_per_s", by: str | Sequence[str] | None = "gc_mode"
) -> Figure:
    """``metric`` against batch size (log x), one line per ``by`` value, median with 95 % CI.

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    x = "batch_size"
    data = _ok_rows(df, [x, metric, *_as_list(by)])
    keys = _split_keys(data, by, exclude={x})
    fig, (ax,) = _figure()
    positions = _setup_x(ax, data, x)
    for i, (values, part) in enumerate(_groups(data, keys)):
        xs, med, lo, hi = _series(part, x, metric, positions)
        _errorbar(ax, xs, med, lo, hi, label=_label(values), **_style(i))
    _maybe_log_y(ax, data[metric])
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{_short(metric)} vs batch size (median, 95 % CI)")
    _legend(ax, keys)
    return fig


def latency_percentiles(
    df: pl.DataFrame, *, by: str | Sequence[str] | None = "gc_mode", x: str = "batch_size"
) -> Figure:
    """p50 (solid) and p99 (dashed) tick latency against ``x``, median with 95 % CI.

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    p50, p99 = "tick_p50_us", "tick_p99_us"
    data = _ok_rows(df, [x, p50, p99, *_as_list(by)])
    keys = _split_keys(data, by, exclude={x})
    fig, (ax,) = _figure()
    positions = _setup_x(ax, data, x)
    for i, (values, part) in enumerate(_groups(data, keys)):
        name = _label(values)
        for metric, ls in ((p50, "-"), (p99, "--")):
            xs, med, lo, hi = _series(part, x, metric, positions)
            tag = metric.removeprefix("tick_").removesuffix("_us")
            label = f"{name} {tag}" if name else tag
            _errorbar(ax, xs, med, lo, hi, label=label, ls=ls, **_style(i))
    _maybe_log_y(ax, pl.concat([data[p50], data[p99]]))
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel("tick latency (µs)")
    ax.set_title(f"tick latency p50 and p99 vs {_short(x)} (median, 95 % CI)")
    _legend(ax, keys)
    return fig


def memory_growth(
    df: pl.DataFrame, *, x: str = "memory_capacity", by: str | Sequence[str] | None = None
) -> Figure:
    """Peak RSS against ``x`` (log-log when the values span a decade), and active memory entries
    in a second panel when the table has them; median with 95 % CI.

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    data = _ok_rows(df, [x, "peak_rss_mb", *_as_list(by)])
    metrics = ["peak_rss_mb"]
    if "memory_active" in data.columns and data["memory_active"].drop_nulls().len() > 0:
        metrics.append("memory_active")
    keys = _split_keys(data, by, exclude={x})
    fig, axes = _figure(ncols=len(metrics), width=_FIGSIZE[0] * (1 + 0.6 * (len(metrics) - 1)))
    for ax, metric in zip(axes, metrics, strict=True):
        rows = data.drop_nulls(metric)
        positions = _setup_x(ax, data, x)
        for i, (values, part) in enumerate(_groups(rows, keys)):
            xs, med, lo, hi = _series(part, x, metric, positions)
            _errorbar(ax, xs, med, lo, hi, label=_label(values), **_style(i))
        # On a log x, a log y too whenever it can: the slope then reads as the growth exponent.
        _maybe_log_y(ax, rows[metric], span=1.0 if ax.get_xscale() == "log" else 2 * _LOG_SPAN)
        ax.set_xlabel(_axis_label(x))
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(f"{_short(metric)} vs {_short(x)}")
        _legend(ax, keys)
    return fig


def stage_shares(df: pl.DataFrame, *, by: str | Sequence[str] | None = None) -> Figure:
    """Stacked horizontal bars of the ``stage_*_share`` columns, one bar per cell.

    Bars stack the *mean* share over the repeats (means add up, medians do not); what the
    stage timers did not cover is drawn as "other". Stages with no time in any cell are left out.

    Raises:
        ValueError: no "ok" trial, or no stage share column with values.
    """
    stages = [c for c in df.columns if c.startswith(STAGE_PREFIX) and c.endswith(STAGE_SUFFIX)]
    if not stages:
        raise ValueError("the table has no stage_*_share columns; is it a lifelab results table?")
    data = _ok_rows(df, _as_list(by))
    data = data.filter(pl.any_horizontal(pl.col(stages).is_not_null()))
    if data.height == 0:
        raise ValueError("no 'ok' trial has stage shares (stage_*_share columns are all null)")
    keys = _split_keys(data, by, exclude=set())
    cells = _groups(data, keys)
    means = np.array(
        [[part[s].fill_nan(None).mean() or 0.0 for s in stages] for _, part in cells], dtype=float
    )
    shown = [j for j in range(len(stages)) if means[:, j].max() > 0]
    other = np.clip(1.0 - means.sum(axis=1), 0.0, None)

    fig, (ax,) = _figure(height=max(2.6, 1.4 + 0.32 * len(cells)))
    ypos = np.arange(len(cells), dtype=float)
    left = np.zeros(len(cells))
    for k, j in enumerate(shown):
        name = stages[j].removeprefix(STAGE_PREFIX).removesuffix(STAGE_SUFFIX)
        ax.barh(ypos, means[:, j], left=left, label=name, color=f"C{k}")
        left += means[:, j]
    if other.max() > 0.005:  # below half a percent it is rounding, not a missing stage
        ax.barh(ypos, other, left=left, label="other", color="0.8")
    ax.set_yticks(ypos, labels=[_label(values) or "all trials" for values, _ in cells])
    ax.invert_yaxis()  # first cell on top, like a table
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlim(0, max(1.0, float((left + other).max())))
    ax.set_xlabel("share of tick time (%, mean over repeats)")
    ax.set_ylabel(" · ".join(keys) if keys else "")
    ax.set_title("where a tick spends its time")
    ax.legend(title="stage", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def rate_by_decile(df: pl.DataFrame, *, by: str | Sequence[str] | None = None) -> Figure:
    """Tick rate in each tenth of the measured run, one line per cell: a flat line is a run that
    does not degrade. Median over the repeats with a shaded 95 % CI.

    Raises:
        ValueError: no "ok" trial, or the rate_decile columns are missing or empty.
    """
    data = _ok_rows(df, [*DECILE_COLUMNS, *_as_list(by)])
    keys = _split_keys(data, by, exclude=set())
    fig, (ax,) = _figure()
    deciles = np.arange(1, 11)
    for i, (values, part) in enumerate(_groups(data, keys)):
        stats = np.array([_median_ci(part[c].to_numpy()) for c in DECILE_COLUMNS])
        style = _style(i)
        ax.plot(deciles, stats[:, 0], ms=3, label=_label(values), **style)
        ax.fill_between(deciles, stats[:, 1], stats[:, 2], color=style["color"], alpha=0.2, lw=0)
    _maybe_log_y(ax, pl.concat([data[c] for c in DECILE_COLUMNS]))
    ax.set_xticks(deciles, labels=[str(10 * d) for d in deciles])
    ax.set_xlabel("progress through the measured ticks (%, end of each decile)")
    ax.set_ylabel(_axis_label("ticks_per_s"))
    ax.set_title("tick rate over a run (median, 95 % CI)")
    _legend(ax, keys)
    return fig


def loglog_fit(
    x: Any, y: Any, *, label: str, xlabel: str = "work", ylabel: str = "cost"
) -> tuple[Figure, float, float]:
    """Fit ``log10 y = slope · log10 x + intercept`` and plot points and fit on log-log axes.

    The slope is the exponent of cost against work (1 = linear, 2 = quadratic); the fit is
    ``y = 10**intercept · x**slope``. ``x`` and ``y`` are any 1-d array-likes of equal length.

    Raises:
        ValueError: lengths differ, a value is not positive and finite, or fewer than two
            distinct x values.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"loglog_fit: x has {xa.size} values but y has {ya.size}")
    for name, arr in (("x", xa), ("y", ya)):
        bad = int(np.count_nonzero(~(np.isfinite(arr) & (arr > 0))))
        if bad:
            raise ValueError(f"loglog_fit: {bad} {name} value(s) not positive and finite")
    if np.unique(xa).size < 2:
        raise ValueError("loglog_fit: needs at least two distinct x values")
    slope, intercept = np.polyfit(np.log10(xa), np.log10(ya), 1)
    slope, intercept = float(slope), float(intercept)

    fig, (ax,) = _figure()
    ax.plot(xa, ya, "o", ms=4, label=label)
    grid = np.geomspace(xa.min(), xa.max(), 50)
    ax.plot(grid, 10**intercept * grid**slope, "-", label=f"fit: ∝ {xlabel}^{slope:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{label}: exponent {slope:.2f}")
    ax.legend()
    return fig, slope, intercept


# -- rows, cells and statistics --------------------------------------------------------------------


def _ok_rows(df: pl.DataFrame, columns: Sequence[str] = ()) -> pl.DataFrame:
    """The trials with status "ok" that have a finite value in every one of ``columns``."""
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"expected a polars DataFrame of results, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the results table has no column(s) {missing}")
    if df.height == 0:
        raise ValueError("the results table is empty: run a sweep first (lifelab sweep)")
    data = df.filter(pl.col("status") == "ok") if "status" in df.columns else df
    if data.height == 0:
        raise ValueError(
            f"none of the {df.height} trials has status 'ok' (see their 'error' column)"
        )
    data = data.drop_nulls(list(columns))
    floats = [c for c in columns if data.schema[c].is_float()]
    if floats:
        data = data.filter(pl.all_horizontal(pl.col(floats).is_finite()))
    if data.height == 0:
        raise ValueError(f"no 'ok' trial has finite values in all of {list(columns)}")
    return data


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _split_keys(data: pl.DataFrame, by: str | Sequence[str] | None, exclude: set[str]) -> list[str]:
    """``by`` plus every other sweep parameter that varies in ``data``, so no cells pool."""
    keys = [k for k in _as_list(by) if k not in exclude]
    taken = set(keys) | exclude
    extra = [c for c in SWEEP_PARAMS if c in data.columns and c not in taken]
    return keys + [c for c in extra if data[c].n_unique() > 1]


def _groups(data: pl.DataFrame, keys: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """(key values, rows) per distinct combination of ``keys``, in sorted order."""
    if not keys:
        return [((), data)]
    ordered = data.sort(keys, nulls_last=True, maintain_order=True)
    parts = ordered.partition_by(keys, as_dict=True, maintain_order=True)
    return list(parts.items())


def _median_ci(
    values: Any, *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Median and percentile-bootstrap CI of the median of the finite ``values``.

    NaNs are skipped; no value gives (nan, nan, nan) and one value a zero-width interval. The
    generator is seeded so a table always gives the same numbers.
    """
    # stats.summarize (lifelab.lab.stats) computes the same per (cell, metric) and more; this
    # small copy keeps plots usable on their own and can be swapped for it.
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (np.nan, np.nan, np.nan)
    median = float(np.median(v))
    if v.size == 1:
        return (median, median, median)
    rng = np.random.default_rng(seed)
    boot = np.median(v[rng.integers(0, v.size, size=(resamples, v.size))], axis=1)
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return (median, min(float(lo), median), max(float(hi), median))


def _series(
    part: pl.DataFrame, x: str, metric: str, positions: dict[Any, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per x value of one line: position, median, CI low, CI high (x in sorted order)."""
    rows = []
    for (value,), cell in _groups(part, [x]):
        rows.append((positions[value], *_median_ci(cell[metric].to_numpy())))
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


# -- drawing -------------------------------------------------------------------------------------


def _figure(
    *, ncols: int = 1, width: float = _FIGSIZE[0], height: float = _FIGSIZE[1]
) -> tuple[Figure, Sequence[Axes]]:
    # Figure() rather than pyplot.figure(): no global figure registry, nothing leaks or needs
    # closing, and any backend (or none) works.
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _errorbar(
    ax: Axes,
    xs: np.ndarray,
    med: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    label: str,
    color: str,
    marker: str,
    ls: str = "-",
) -> None:
    yerr = np.vstack([med - lo, hi - med])
    ax.errorbar(
        xs, med, yerr=yerr, label=label or None, color=color, ls=ls, marker=marker, ms=4, capsize=3
    )


def _setup_x(ax: Axes, data: pl.DataFrame, x: str) -> dict[Any, float]:
    """Place the x values: numbers where they are (log scale when they span a decade or so),
    anything else as evenly spaced categories. Ticks sit on the values that occur."""
    values = data[x].drop_nulls().unique().sort().to_list()
    if data.schema[x].is_numeric():
        positions = {v: float(v) for v in values}
        if values and values[0] > 0 and values[-1] / values[0] >= _LOG_SPAN:
            ax.set_xscale("log")
    else:
        positions = {v: float(i) for i, v in enumerate(values)}
    if len(values) <= 12:
        ax.set_xticks(list(positions.values()), labels=[_fmt_value(v) for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
    return positions


def _maybe_log_y(ax: Axes, column: pl.Series, *, span: float = 2 * _LOG_SPAN) -> None:
    """Log y when every value is positive and they span at least ``span``."""
    v = column.drop_nulls().to_numpy().astype(float)
    v = v[np.isfinite(v)]
    if v.size and v.min() > 0 and v.max() / v.min() >= span:
        ax.set_yscale("log")
        # Plain numbers ("200", "3000") read better than "2×10²" on a span of a decade or two.
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(1, 0.4)))


def _style(i: int) -> dict[str, str]:
    """Colour from the property cycle; past its ten colours the marker changes too."""
    return {"color": f"C{i % 10}", "marker": _MARKERS[(i // 10) % len(_MARKERS)]}


def _legend(ax: Axes, keys: list[str]) -> None:
    labels = ax.get_legend_handles_labels()[1]
    if not labels:
        return
    title = " · ".join(keys) or None
    if len(labels) > _LEGEND_INSIDE:  # a long legend would hide the lines: put it beside
        ax.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        # Widen the figure by about the legend's width so the axes keep theirs.
        chars = max(len(t) for t in [*labels, title or ""])
        fig = ax.get_figure()
        fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.075 * chars)
    else:
        ax.legend(title=title, fontsize="small")


def _label(values: tuple[Any, ...]) -> str:
    return " · ".join(_fmt_value(v) for v in values)


def _fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.3g}"
    return str(value)


def _axis_label(column: str) -> str:
    """A human axis label with the unit, from the table above or the column's unit suffix."""
    if column in _LABELS:
        return _LABELS[column]
    for suffix, unit in _UNITS:
        if column.endswith(suffix):
            return f"{column.removesuffix(suffix).replace('_', ' ')} ({unit})"
    return column.replace("_", " ")


def _short(column: str) -> str:
    """The axis label without its unit, for titles."""
    return _axis_label(column).split(" (")[0]
