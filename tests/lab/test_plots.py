"""Tests of lifelab.lab.plots on synthetic results tables (no trial is run)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from support.synthetic import make_results

from lifelab.lab import plots
from lifelab.lab.schema import STAGE_NAMES, polars_schema


def _failed(df: pl.DataFrame) -> pl.DataFrame:
    """Failed copies of the first rows, with absurd metrics that must never show."""
    return df.head(2).with_columns(
        status=pl.lit("failed"),
        gc_mode=pl.lit("broken"),
        events_per_s=pl.lit(1e15),
        tick_p50_us=pl.lit(1e15),
        error=pl.lit("trial timed out after 60 s\nTraceback ..."),
    )


def _errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_throughput_one_errorbar_line_per_gc_mode():
    """throughput_vs_batch draws one median+CI line per GC mode over the batch sizes, log x."""
    fig = plots.throughput_vs_batch(make_results())
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    bars = _errorbars(ax)
    assert len(bars) == 2
    assert all(list(b.lines[0].get_xdata()) == [1, 16, 64] for b in bars)
    assert _legend_texts(ax) == ["default", "freeze"]
    assert ax.get_xscale() == "log"
    assert "events/s" in ax.get_ylabel() and "batch size" in ax.get_xlabel()
    assert ax.get_title()


def test_throughput_other_metric_and_no_by():
    """Another metric and by=None give one line when nothing else varies."""
    df = make_results(gc_modes=("default",))
    fig = plots.throughput_vs_batch(df, metric="ticks_per_s", by=None)
    (ax,) = fig.axes
    assert len(_errorbars(ax)) == 1
    assert "ticks/s" in ax.get_ylabel()


def test_lines_never_pool_cells():
    """A parameter that varies besides `by` splits the lines too and is named in the legend."""
    df = make_results(capacities=(1000, 100_000))
    (ax,) = plots.throughput_vs_batch(df).axes
    assert len(_errorbars(ax)) == 4
    assert ax.get_legend().get_title().get_text() == "gc_mode · memory_capacity"


def test_median_points_lie_within_their_intervals():
    """Each plotted median sits inside its CI bar, and the median is the repeats' median."""
    df = make_results()
    (ax,) = plots.throughput_vs_batch(df).axes
    line = _errorbars(ax)[0].lines[0]
    expected = (
        df.filter(pl.col("gc_mode") == "default")
        .group_by("batch_size")
        .agg(pl.col("events_per_s").median())
        .sort("batch_size")["events_per_s"]
        .to_list()
    )
    assert np.allclose(line.get_ydata(), expected)


def test_latency_percentiles_two_lines_per_group():
    """latency_percentiles draws p50 and p99 for each GC mode, labelled, on a µs axis."""
    fig = plots.latency_percentiles(make_results())
    (ax,) = fig.axes
    assert len(_errorbars(ax)) == 4
    assert _legend_texts(ax) == ["default p50", "default p99", "freeze p50", "freeze p99"]
    assert "µs" in ax.get_ylabel() and ax.get_xlabel()


def test_memory_growth_log_log_with_active_panel():
    """memory_growth plots peak RSS and active entries against capacity on log-log axes."""
    df = make_results(batch_sizes=(64,), capacities=(1000, 10_000, 100_000))
    fig = plots.memory_growth(df)
    assert len(fig.axes) == 2
    rss, active = fig.axes
    assert "MB" in rss.get_ylabel() and "entries" in active.get_ylabel()
    assert rss.get_xscale() == "log" and rss.get_yscale() == "log"
    assert len(_errorbars(rss)) == 2 and len(_errorbars(active)) == 2


def test_memory_growth_without_active_column():
    """Without memory_active values there is a single peak-RSS panel."""
    df = make_results(batch_sizes=(64,), capacities=(1000, 100_000))
    df = df.with_columns(memory_active=pl.lit(None, dtype=pl.Int64))
    assert len(plots.memory_growth(df).axes) == 1


def test_stage_shares_one_bar_per_cell():
    """stage_shares stacks one bar per cell for each stage with time, plus "other"."""
    fig = plots.stage_shares(make_results())
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    with_time = [s for j, s in enumerate(STAGE_NAMES) if j % 4]
    assert len(bars) == len(with_time) + 1  # other = the 10 % the stages do not cover
    assert all(len(b.patches) == 6 for b in bars)
    assert _legend_texts(ax) == [*with_time, "other"]
    assert len(ax.get_yticklabels()) == 6 and ax.get_xlabel()


def test_rate_by_decile_one_line_per_cell():
    """rate_by_decile draws ten points per cell with a ticks/s axis."""
    fig = plots.rate_by_decile(make_results())
    (ax,) = fig.axes
    assert len(ax.lines) == 6
    assert all(len(line.get_xdata()) == 10 for line in ax.lines)
    assert "ticks/s" in ax.get_ylabel() and ax.get_xlabel()


def test_failed_rows_are_ignored():
    """Failed trials never appear in a plot, however wild their numbers."""
    df = make_results()
    df = pl.concat([df, _failed(df)])
    (ax,) = plots.throughput_vs_batch(df).axes
    assert _legend_texts(ax) == ["default", "freeze"]
    assert max(max(b.lines[0].get_ydata()) for b in _errorbars(ax)) < 1e6
    (ax,) = plots.latency_percentiles(df).axes
    assert len(_errorbars(ax)) == 4


@pytest.mark.parametrize(
    "plot",
    [
        plots.throughput_vs_batch,
        plots.latency_percentiles,
        plots.memory_growth,
        plots.stage_shares,
        plots.rate_by_decile,
    ],
)
def test_empty_or_all_failed_input_raises_value_error(plot):
    """An empty table, or one where every trial failed, raises a clear ValueError."""
    with pytest.raises(ValueError, match="empty"):
        plot(pl.DataFrame(schema=polars_schema()))
    failed = make_results().with_columns(status=pl.lit("failed"))
    with pytest.raises(ValueError, match="status 'ok'"):
        plot(failed)


def test_missing_column_raises_value_error():
    """Naming a column the table lacks raises ValueError naming it."""
    with pytest.raises(ValueError, match="no_such_metric"):
        plots.throughput_vs_batch(make_results(), metric="no_such_metric")


def test_loglog_fit_recovers_exponent():
    """y = 3·x^1.5 with 1 % noise fits slope ≈ 1.5 and intercept ≈ log10 3."""
    rng = np.random.default_rng(1)
    x = np.geomspace(10, 100_000, 25)
    y = 3.0 * x**1.5 * rng.normal(1.0, 0.01, x.size)
    fig, slope, intercept = plots.loglog_fit(x, y, label="synthetic")
    assert isinstance(fig, Figure)
    assert slope == pytest.approx(1.5, abs=0.01)
    assert intercept == pytest.approx(np.log10(3.0), abs=0.03)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and len(ax.lines) == 2


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1, 2, 3], [1, 2], "x has 3"),
        ([1, 2, 0], [1, 2, 3], "x value"),
        ([1, 2, 3], [1, float("nan"), 3], "y value"),
        ([5, 5, 5], [1, 2, 3], "distinct"),
    ],
)
def test_loglog_fit_refuses_bad_input(x, y, match):
    """loglog_fit raises ValueError on mismatched, non-positive or degenerate input."""
    with pytest.raises(ValueError, match=match):
        plots.loglog_fit(x, y, label="bad")


def test_plots_register_no_pyplot_figures():
    """Figures are built without pyplot, so nothing is left open in its registry."""
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.throughput_vs_batch(make_results())
    plots.stage_shares(make_results())
    assert plt.get_fignums() == before


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=30))
def test_median_ci_brackets_the_median(values):
    """The bootstrap interval always contains the median and is reproducible."""
    median, lo, hi = plots._median_ci(values)
    assert median == pytest.approx(float(np.median(values)))
    assert lo <= median <= hi
    assert plots._median_ci(values) == (median, lo, hi)
