"""Static figures of a results table: throughput, latency, memory, stage shares, degradation.

Each function takes a results DataFrame (one row per trial, see :mod:`lifelab.lab.schema`), keeps
the trials whose status is "ok", and returns a :class:`matplotlib.figure.Figure` built without
pyplot: no global state, no backend choice, nothing to close, and the same figure whether it is
shown in a notebook, saved by ``lifelab report`` or made in a headless run.

How a figure reads:

- **Series.** A plot never pools different cells: besides the columns named in ``by``, every
  other sweep parameter that varies in the table splits the lines too. A parameter that moves
  with the x axis (``events_per_tick`` when a sweep links it to ``batch_size``), or with another
  series key, names no cell of its own and never splits a line; constant parameters name none
  either. Filter the table first to plot a slice.
- **Points.** Each point is the median over the repeats of its cell; a series' points are joined
  in x order. An error bar (95 % bootstrap interval of :func:`lifelab.lab.stats.median_ci`,
  seeded, so the same table always gives the same figure) is drawn only where a point has n ≥ 2;
  the title says what n is and claims an interval only when bars are drawn.
- **Colours.** A GC mode or an engine has one colour in every figure (:data:`COLOURS`); a
  second varying parameter gets line styles, any further ones markers.
- **Legends.** Up to :data:`MAX_LEGEND` entries, one per series with its n; beyond that the
  legend is grouped (one entry per colour, per line style, per marker) and drawn outside the axes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter, NullLocator, PercentFormatter

from lifelab.lab.stats import median_ci

__all__ = [
    "COLOURS",
    "DECILE_COLUMNS",
    "MAX_LEGEND",
    "SWEEP_PARAMS",
    "colour",
    "format_param",
    "latency_percentiles",
    "loglog_fit",
    "memory_growth",
    "partition",
    "rate_by_decile",
    "spread_by_metric",
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

# matplotlib's tab10, spelled out so a figure's colours do not depend on the rcParams cycle.
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: One colour per GC mode and per engine, the same in every figure of every notebook.
COLOURS: dict[str, dict[str, str]] = {
    "gc_mode": {"default": "#1f77b4", "off": "#d62728", "freeze": "#2ca02c", "tuned": "#ff7f0e"},
    "engine": {"compiled": "#9467bd", "python": "#8c564b"},
}
# Other values of those columns (e.g. explicit thresholds "700,10,10") take one of these by a
# stable hash of the value: still the same colour in every figure.
_SPARE_COLOURS = ("#e377c2", "#bcbd22", "#17becf", "#7f7f7f")
_FIXED_LINESTYLES = {"engine": {"compiled": "-", "python": "--"}}
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Most legend entries with one entry per series; more series get a grouped legend.
MAX_LEGEND = 8
_LEGEND_INSIDE = 6  # most legend entries drawn inside the axes

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
# Short parameter names for legend labels ("gc=freeze").
_KEY_NAMES = {
    "gc_mode": "gc",
    "memory_capacity": "capacity",
    "batch_size": "batch",
    "events_per_tick": "events/tick",
    "warmup_ticks": "warmup",
    "config_json": "config",
}
# Unit by name suffix (schema rule: units live in the names); "_per_s" must precede "_s".
_UNITS = (("_per_s", "/s"), ("_us", "µs"), ("_ms", "ms"), ("_mb", "MB"), ("_s", "s"))
_LOG_SPAN = 8.0  # use a log axis when the positive values span at least this factor
_FIGSIZE = (6.4, 4.2)


def colour(key: str, value: Any, index: int = 0) -> str:
    """The colour of a series whose ``key`` column has ``value``.

    GC modes and engines have fixed colours (:data:`COLOURS`); any other column takes the
    ``index``-th colour of matplotlib's tab10 palette.
    """
    fixed = COLOURS.get(key)
    if fixed is None:
        return _PALETTE[index % len(_PALETTE)]
    if value in fixed:
        return fixed[value]
    digest = hashlib.blake2b(str(value).encode(), digest_size=2).digest()
    return _SPARE_COLOURS[int.from_bytes(digest, "little") % len(_SPARE_COLOURS)]


# -- public plots ----------------------------------------------------------------------------------


def throughput_vs_batch(
    df: pl.DataFrame, *, metric: str = "events_per_s", by: str | Sequence[str] | None = "gc_mode"
) -> Figure:
    """``metric`` against batch size (log x), one line per series (see the module docstring).

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    x = "batch_size"
    data = _ok_rows(df, [x, metric, *_as_list(by)])
    layout = _layout(data, by, x=x)
    fig, (ax,) = _figure()
    positions = _setup_x(ax, data, x)
    ns: list[int] = []
    for values, part in partition(data, layout.keys):
        ns += _draw_series(ax, part, x, metric, positions, layout, values)
    _maybe_log_y(ax, data[metric])
    ax.set_xlabel(_x_label(x, layout))
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{_short(metric)} vs batch size ({_n_note(ns)})")
    _legend(fig, [ax], layout)
    return fig


def latency_percentiles(
    df: pl.DataFrame, *, by: str | Sequence[str] | None = "gc_mode", x: str = "batch_size"
) -> Figure:
    """Tick latency p50 (left panel) and p99 (right panel, same y scale) against ``x``.

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    p50, p99 = "tick_p50_us", "tick_p99_us"
    data = _ok_rows(df, [x, p50, p99, *_as_list(by)])
    layout = _layout(data, by, x=x)
    fig, axes = _figure(ncols=2, width=_FIGSIZE[0] * 1.6, sharey=True)
    ns: list[int] = []
    for ax, metric in zip(axes, (p50, p99), strict=True):
        positions = _setup_x(ax, data, x)
        for values, part in partition(data, layout.keys):
            ns += _draw_series(ax, part, x, metric, positions, layout, values)
        ax.set_xlabel(_x_label(x, layout))
        ax.set_title(metric.removeprefix("tick_").removesuffix("_us"))
    _maybe_log_y(axes[0], pl.concat([data[p50], data[p99]]))
    axes[0].set_ylabel("tick latency (µs)")
    fig.suptitle(f"tick latency vs {_short(x)} ({_n_note(ns)})")
    _legend(fig, axes, layout)
    return fig


def memory_growth(
    df: pl.DataFrame, *, x: str = "memory_capacity", by: str | Sequence[str] | None = None
) -> Figure:
    """Peak RSS against ``x`` (log-log when the values span a decade), and active memory entries
    in a second panel when the table has them.

    Raises:
        ValueError: no "ok" trial, or a needed column is missing or empty.
    """
    data = _ok_rows(df, [x, "peak_rss_mb", *_as_list(by)])
    metrics = ["peak_rss_mb"]
    if "memory_active" in data.columns and data["memory_active"].drop_nulls().len() > 0:
        metrics.append("memory_active")
    layout = _layout(data, by, x=x)
    fig, axes = _figure(ncols=len(metrics), width=_FIGSIZE[0] * (1 + 0.6 * (len(metrics) - 1)))
    ns: list[int] = []
    for ax, metric in zip(axes, metrics, strict=True):
        rows = data.drop_nulls(metric)
        positions = _setup_x(ax, data, x)
        for values, part in partition(rows, layout.keys):
            ns += _draw_series(ax, part, x, metric, positions, layout, values)
        # On a log x, a log y too whenever it can: the slope then reads as the growth exponent.
        _maybe_log_y(ax, rows[metric], span=1.0 if ax.get_xscale() == "log" else 2 * _LOG_SPAN)
        ax.set_xlabel(_x_label(x, layout))
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(_short(metric))
    fig.suptitle(f"memory vs {_short(x)} ({_n_note(ns)})")
    _legend(fig, axes, layout)
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
    layout = _layout(data, by)
    cells = partition(data, layout.keys)
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
        ax.barh(ypos, means[:, j], left=left, label=name, color=_PALETTE[k % len(_PALETTE)])
        left += means[:, j]
    if other.max() > 0.005:  # below half a percent it is rounding, not a missing stage
        ax.barh(ypos, other, left=left, label="other", color="0.8")
    labels = [_label(layout.keys, values) or "all trials" for values, _ in cells]
    ax.set_yticks(ypos, labels=labels)
    ax.invert_yaxis()  # first cell on top, like a table
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlim(0, max(1.0, float((left + other).max())))
    ax.set_xlabel("share of tick time (%, mean over repeats)")
    ns = [part.height for _, part in cells]
    ax.set_title(f"where a tick spends its time ({_n_note(ns, stat='mean', ci=False)})")
    ax.legend(title="stage", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def rate_by_decile(df: pl.DataFrame, *, by: str | Sequence[str] | None = None) -> Figure:
    """Tick rate in each tenth of the measured run, one line per cell: a flat line is a run that
    does not degrade. Median over the repeats, with a shaded 95 % CI where n ≥ 2.

    Raises:
        ValueError: no "ok" trial, or the rate_decile columns are missing or empty.
    """
    data = _ok_rows(df, [*DECILE_COLUMNS, *_as_list(by)])
    layout = _layout(data, by)
    fig, (ax,) = _figure()
    deciles = np.arange(1, 11)
    ns: list[int] = []
    for values, part in partition(data, layout.keys):
        stats = np.array([median_ci(part[c].to_numpy()) for c in DECILE_COLUMNS])
        style = layout.style(values)
        ns.append(part.height)
        label = _label(layout.keys, values, [part.height])
        ax.plot(deciles, stats[:, 0], ms=3, label=label or None, **style)
        if part.height >= 2:
            ax.fill_between(
                deciles, stats[:, 1], stats[:, 2], color=style["color"], alpha=0.2, lw=0
            )
    _maybe_log_y(ax, pl.concat([data[c] for c in DECILE_COLUMNS]))
    ax.set_xticks(deciles, labels=[str(10 * d) for d in deciles])
    ax.set_xlabel("progress through the measured ticks (%, end of each decile)")
    ax.set_ylabel(_axis_label("ticks_per_s"))
    ax.set_title(f"tick rate over a run ({_n_note(ns)})")
    _legend(fig, [ax], layout)
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


def spread_by_metric(
    df: pl.DataFrame, *, metric: str = "metric", value: str = "relative", title: str = ""
) -> Figure:
    """One column of dots per metric: each repeat's ``value`` (e.g. value / the metric's
    median), so measures of different units show their spread on one axis; a line at 1."""
    groups = sorted(df[metric].unique().to_list())
    fig, (ax,) = _figure(width=6.0, height=3.2)
    for i, name in enumerate(groups):
        values = df.filter(pl.col(metric) == name)[value].to_numpy()
        spread = (values.max() - values.min()) if values.size else float("nan")
        jitter = np.linspace(-0.08, 0.08, values.size) if values.size > 1 else np.zeros(1)
        ax.plot(i + jitter, values, "o", ms=5, label=f"{name}: spread {spread:.2%}")
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.set_xticks(range(len(groups)), [_short(g) for g in groups])
    ax.set_ylabel(_axis_label(value))
    ax.set_title(title or "repeats of one workload, relative to each measure's median")
    ax.legend(fontsize="small")
    return fig


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


def _determines(data: pl.DataFrame, a: str, b: str) -> bool:
    """Whether each value of column ``a`` goes with one value of ``b`` (b is a function of a)."""
    return int(data.group_by(a).agg(pl.col(b).n_unique()).get_column(b).max() or 0) <= 1


@dataclass(frozen=True)
class _Layout:
    """What splits the series of a figure, and how each series is drawn.

    ``keys`` name the series (values in this order); ``linked`` are varying parameters left out
    because they move with x (parameters that move with a key are left out silently: the key
    names them). Colour comes from ``colour_key`` (a GC mode or engine
    when one varies), line style from ``style_key``, markers from the ``marker_keys``.
    """

    keys: list[str]
    linked: list[str]
    colour_key: str | None = None
    style_key: str | None = None
    marker_keys: list[str] = field(default_factory=list)
    levels: dict[str, list[Any]] = field(default_factory=dict)  # sorted distinct values per key

    def style(self, values: tuple[Any, ...]) -> dict[str, str]:
        named = dict(zip(self.keys, values, strict=True))
        out = {"color": _PALETTE[0], "ls": "-", "marker": _MARKERS[0]}
        if self.colour_key is not None:
            value = named[self.colour_key]
            out["color"] = colour(self.colour_key, value, self._index(self.colour_key, value))
        if self.style_key is not None:
            value = named[self.style_key]
            fixed = _FIXED_LINESTYLES.get(self.style_key, {})
            index = self._index(self.style_key, value)
            out["ls"] = fixed.get(value, _LINESTYLES[index % len(_LINESTYLES)])
        if self.marker_keys:
            combo = tuple(named[k] for k in self.marker_keys)
            out["marker"] = _MARKERS[self._marker_index(combo) % len(_MARKERS)]
        return out

    def _index(self, key: str, value: Any) -> int:
        return self.levels[key].index(value)

    def _marker_index(self, combo: tuple[Any, ...]) -> int:
        return self.levels["\0markers"].index(combo)

    def grouped_handles(self) -> list[tuple[Line2D, str]]:
        """Legend proxies: one per colour, per line style and per marker value."""
        out: list[tuple[Line2D, str]] = []
        if self.colour_key is not None:
            for i, v in enumerate(self.levels[self.colour_key]):
                handle = Line2D([], [], color=colour(self.colour_key, v, i), lw=2.5)
                out.append((handle, _label([self.colour_key], (v,))))
        if self.style_key is not None:
            fixed = _FIXED_LINESTYLES.get(self.style_key, {})
            for i, v in enumerate(self.levels[self.style_key]):
                ls = fixed.get(v, _LINESTYLES[i % len(_LINESTYLES)])
                out.append((Line2D([], [], color="0.35", ls=ls), _label([self.style_key], (v,))))
        if self.marker_keys:
            for i, combo in enumerate(self.levels["\0markers"]):
                handle = Line2D([], [], color="0.35", ls="none", marker=_MARKERS[i % len(_MARKERS)])
                out.append((handle, _label(self.marker_keys, combo)))
        return out


def _layout(data: pl.DataFrame, by: str | Sequence[str] | None, x: str | None = None) -> _Layout:
    """The series keys of ``data``: ``by`` plus every other sweep parameter that varies, less the
    constant ones and those that move with ``x`` or with a key already taken (linked axes)."""
    requested = [k for k in _as_list(by) if k != x]
    extra = [c for c in SWEEP_PARAMS if c in data.columns and c not in requested and c != x]
    keys: list[str] = []
    linked: list[str] = []
    for column in [*requested, *extra]:
        if data[column].n_unique() <= 1:
            continue  # constant: it names no series
        if x is not None and _determines(data, x, column):
            linked.append(column)
            continue
        if any(_determines(data, k, column) for k in keys):
            continue
        keys.append(column)
    levels = {k: data[k].unique().sort(nulls_last=True).to_list() for k in keys}
    colour_key = next((k for k in ("gc_mode", "engine") if k in keys), keys[0] if keys else None)
    rest = [k for k in keys if k != colour_key]
    style_key = "engine" if "engine" in rest else (rest[0] if rest else None)
    marker_keys = [k for k in rest if k != style_key]
    if marker_keys:
        combos = data.select(marker_keys).unique().sort(marker_keys, nulls_last=True)
        levels["\0markers"] = [tuple(r) for r in combos.iter_rows()]
    return _Layout(keys, linked, colour_key, style_key, marker_keys, levels)


def partition(
    data: pl.DataFrame, keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """(key values, rows) per distinct combination of ``keys``, sorted by the keys (nulls last).

    Rows keep their order within a part. No keys: one part, ``((), data)``. The cells of a sweep
    are ``partition(ok_rows, varying_parameters)``, in figures and in ``lifelab report`` alike.
    """
    if not keys:
        return [((), data)]
    keys = list(keys)
    ordered = data.sort(keys, nulls_last=True, maintain_order=True)
    parts = ordered.partition_by(keys, as_dict=True, maintain_order=True)
    return list(parts.items())


def _series(
    part: pl.DataFrame, x: str, metric: str, positions: dict[Any, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per x value of one series: position, median, CI low, CI high and n (sorted by x)."""
    rows = []
    for (value,), cell in partition(part, [x]):
        values = cell[metric].to_numpy()
        n = int(np.count_nonzero(np.isfinite(np.asarray(values, dtype=float))))
        rows.append((positions[value], *median_ci(values), n))
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4].astype(int)


# -- drawing -------------------------------------------------------------------------------------


def _figure(
    *,
    ncols: int = 1,
    width: float = _FIGSIZE[0],
    height: float = _FIGSIZE[1],
    sharey: bool = False,
) -> tuple[Figure, Sequence[Axes]]:
    # Figure() rather than pyplot.figure(): no global figure registry, nothing leaks or needs
    # closing, and any backend (or none) works.
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, list(axes)


def _draw_series(
    ax: Axes,
    part: pl.DataFrame,
    x: str,
    metric: str,
    positions: dict[Any, float],
    layout: _Layout,
    values: tuple[Any, ...],
) -> list[int]:
    """One series: medians joined by a line in x order, error bars where n ≥ 2. Returns the n of
    each point."""
    xs, med, lo, hi, n = _series(part, x, metric, positions)
    style = layout.style(values)
    label = _label(layout.keys, values, n.tolist())
    ax.plot(xs, med, label=label or None, ms=4, **style)
    bars = n >= 2
    if bars.any():
        yerr = np.vstack([med[bars] - lo[bars], hi[bars] - med[bars]])
        ax.errorbar(
            xs[bars], med[bars], yerr=yerr, fmt="none", ecolor=style["color"], capsize=3, lw=1
        )
    return n.tolist()


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
        ax.set_xticks(list(positions.values()), labels=[format_param(v) for v in values])
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


def _legend(fig: Figure, axes: Sequence[Axes], layout: _Layout) -> None:
    """One legend for the figure, on its last axes: an entry per series up to MAX_LEGEND, else
    grouped (an entry per colour, line style and marker). Long legends go beside the axes."""
    ax = axes[-1]
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return
    title = None
    if len(labels) > MAX_LEGEND:
        pairs = layout.grouped_handles()
        handles, labels = [h for h, _ in pairs], [t for _, t in pairs]
        title = f"{len(ax.get_legend_handles_labels()[1])} series, grouped"
    if len(labels) > _LEGEND_INSIDE or len(axes) > 1 or title:
        ax.legend(
            handles,
            labels,
            title=title,
            fontsize="small",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
        )
        # Widen the figure by about the legend's width so the axes keep theirs.
        chars = max(len(t) for t in [*labels, title or ""])
        fig.set_figwidth(fig.get_figwidth() + 0.6 + 0.075 * chars)
    else:
        ax.legend(handles, labels, fontsize="small")


def _n_note(ns: Sequence[int], *, stat: str = "median", ci: bool = True) -> str:
    """What a point is, for a title: "median of n=3, 95 % CI", "median of n=1", ..."""
    if not ns:
        return stat
    lo, hi = min(ns), max(ns)
    n = f"n={lo}" if lo == hi else f"n={lo}–{hi}"
    if not ci or hi < 2:
        return f"{stat} of {n}"
    if lo >= 2:
        return f"{stat} of {n}, 95 % CI"
    return f"{stat} of {n}; 95 % CI where n ≥ 2"


def _label(keys: Sequence[str], values: tuple[Any, ...], ns: Sequence[int] = ()) -> str:
    """ "gc=freeze · engine=python (n=3)"; the n part only when some point has n ≥ 2."""
    text = " · ".join(
        f"{_KEY_NAMES.get(k, k)}={format_param(v)}" for k, v in zip(keys, values, strict=True)
    )
    if text and ns and max(ns) >= 2:  # a lone series has no label: the title gives its n
        lo, hi = min(ns), max(ns)
        text += f" (n={lo})" if lo == hi else f" (n={lo}–{hi})"
    return text


def format_param(value: Any) -> str:
    """A parameter value as it names a cell: in legends, tick labels and report headings.

    Short and as it was set: ``64``, ``100000``, ``0.5``, ``1e+06`` (floats in ``g`` form, to 3
    significant digits unless whole), text as it is, None as "—".
    :func:`lifelab.lab.display.format_number` is the other formatter, for measured quantities in
    tables: 3 significant digits and thousands separators (``31,585``, ``0.700``). They differ
    on purpose: ``capacity=100000`` names the setting a reader would type, ``100,000 events/s``
    reads as an amount.
    """
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


def _x_label(x: str, layout: _Layout) -> str:
    """The x axis label, naming the parameters that move with x (linked axes)."""
    label = _axis_label(x)
    if not layout.linked:
        return label
    return f"{label}\n(moves with it: {', '.join(_short(c) for c in layout.linked)})"


def _short(column: str) -> str:
    """The axis label without its unit, for titles."""
    return _axis_label(column).split(" (")[0]
