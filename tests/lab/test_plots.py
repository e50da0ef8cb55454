"""Tests of lifelab.lab.plots on synthetic results tables (no trial is run)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from support.synthetic import make_results

from lifelab.lab import plots
from lifelab.lab.schema import STAGE_NAMES, polars_schema
from lifelab.lab.stats import median_ci


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


def _series(ax) -> dict[str, Line2D]:
    """The labelled data lines of an axes, by legend label."""
    return {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}


def _linked(repeats: int = 3, engines: tuple[str, ...] = ("compiled",)) -> pl.DataFrame:
    """Notebook 03's grid: events_per_tick moves with batch_size (linked axes)."""
    df = make_results(gc_modes=("default", "off", "freeze"), repeats=repeats)
    df = df.with_columns(events_per_tick=pl.col("batch_size").cast(pl.Float64))
    return pl.concat([df.with_columns(engine=pl.lit(e)) for e in engines])


def test_throughput_one_joined_line_per_gc_mode():
    """throughput_vs_batch draws one line per GC mode through the batch sizes in order, log x."""
    fig = plots.throughput_vs_batch(make_results())
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = _series(ax)
    assert list(lines) == ["gc=default (n=3)", "gc=freeze (n=3)"]
    assert all(list(line.get_xdata()) == [1, 16, 64] for line in lines.values())
    assert all(line.get_linestyle() == "-" for line in lines.values())  # points are joined
    assert _legend_texts(ax) == list(lines)
    assert ax.get_xscale() == "log"
    assert "events/s" in ax.get_ylabel() and "batch size" in ax.get_xlabel()
    assert "n=3" in ax.get_title() and "95 % CI" in ax.get_title()


def test_throughput_other_metric_and_no_by():
    """Another metric and by=None give one line when nothing else varies."""
    df = make_results(gc_modes=("default",))
    fig = plots.throughput_vs_batch(df, metric="ticks_per_s", by=None)
    (ax,) = fig.axes
    assert len(_errorbars(ax)) == 1 and ax.get_legend() is None
    assert "ticks/s" in ax.get_ylabel()


def test_lines_never_pool_cells():
    """A parameter that varies besides `by` splits the lines too and is named in the labels."""
    df = make_results(capacities=(1000, 100_000))
    (ax,) = plots.throughput_vs_batch(df).axes
    assert len(_errorbars(ax)) == 4
    assert "gc=freeze · capacity=100000 (n=3)" in _legend_texts(ax)
    # Colour tells the GC mode, the line style the capacity.
    lines = _series(ax)
    assert (
        lines["gc=freeze · capacity=1000 (n=3)"].get_color() == plots.COLOURS["gc_mode"]["freeze"]
    )
    assert len({line.get_linestyle() for line in lines.values()}) == 2


def test_linked_column_does_not_split_lines():
    """events_per_tick moving with batch_size (03's linked axes) is not a series key."""
    df = _linked()
    for fig in (
        plots.throughput_vs_batch(df, metric="events_per_s", by=["engine", "gc_mode"]),
        plots.latency_percentiles(df, by=["engine", "gc_mode"], x="batch_size"),
    ):
        for ax in fig.axes:
            lines = _series(ax)
            assert len(lines) == 3  # one per GC mode; the constant engine names none
            assert all(len(line.get_xdata()) == 3 for line in lines.values())
            assert not any("events/tick" in label for label in lines)
        assert len(fig.axes[-1].get_legend().get_texts()) == 3
        assert "offered load" in fig.axes[0].get_xlabel()  # named as moving with x


def test_a_varying_column_that_is_not_linked_still_splits():
    """A column that varies independently of x is a key (the linked check is not too eager)."""
    df = make_results(gc_modes=("default", "off", "freeze"))
    df = pl.concat([df, df.with_columns(events_per_tick=pl.lit(16.0))])
    (ax,) = plots.throughput_vs_batch(df).axes
    assert len(_series(ax)) == 6


def test_errorbars_only_where_n_is_at_least_two():
    """n = 1 gives joined points, no error bars and a title without a CI claim."""
    (ax,) = plots.throughput_vs_batch(make_results(repeats=1)).axes
    assert _errorbars(ax) == [] and len(_series(ax)) == 2
    assert "median of n=1" in ax.get_title() and "CI" not in ax.get_title()
    assert _legend_texts(ax) == ["gc=default", "gc=freeze"]
    # Mixed: one batch size with a single trial left.
    df = make_results(repeats=2)
    df = df.filter(~((pl.col("batch_size") == 64) & (pl.col("repeat") == 1)))
    (ax,) = plots.throughput_vs_batch(df).axes
    bars = _errorbars(ax)
    assert len(bars) == 2
    assert all(len(b.lines[2][0].get_segments()) == 2 for b in bars)  # 2 of the 3 points
    assert "n=1–2" in ax.get_title() and "where n ≥ 2" in ax.get_title()
    assert "gc=default (n=1–2)" in _legend_texts(ax)


def test_colours_are_fixed_per_gc_mode_and_engine():
    """A GC mode has the same colour in every figure, whichever other modes are present."""
    a = make_results(gc_modes=("default", "freeze"))
    b = make_results(gc_modes=("freeze", "off", "tuned"))
    (ax_a,) = plots.throughput_vs_batch(a).axes
    (ax_b,) = plots.latency_percentiles(b).axes[:1]
    freeze_a = _series(ax_a)["gc=freeze (n=3)"].get_color()
    freeze_b = _series(ax_b)["gc=freeze (n=3)"].get_color()
    assert freeze_a == freeze_b == plots.colour("gc_mode", "freeze")
    colours = {line.get_color() for line in _series(ax_b).values()}
    assert len(colours) == 3
    engines = _linked(engines=("compiled", "python")).filter(pl.col("gc_mode") == "default")
    (ax,) = plots.throughput_vs_batch(engines, by="engine").axes
    assert {line.get_color() for line in _series(ax).values()} == {
        plots.COLOURS["engine"]["compiled"],
        plots.COLOURS["engine"]["python"],
    }


def test_engine_and_gc_mode_colour_and_line_style():
    """With both varying: colour per GC mode, line style per engine; 6 series, 6 entries."""
    df = _linked(engines=("compiled", "python"))
    (ax,) = plots.throughput_vs_batch(df, by=["engine", "gc_mode"]).axes
    lines = _series(ax)
    assert len(lines) == 6 and len(_legend_texts(ax)) == 6
    python = [line for label, line in lines.items() if "engine=python" in label]
    assert {line.get_linestyle() for line in python} == {"--"}
    assert len({line.get_color() for line in python}) == 3


def test_many_series_get_a_grouped_legend_of_few_entries():
    """Past MAX_LEGEND series the legend has one entry per colour, style and marker, outside."""
    df = make_results(gc_modes=("default", "off", "freeze", "tuned"), capacities=(1000, 100_000))
    df = pl.concat([df.with_columns(engine=pl.lit(e)) for e in ("compiled", "python")])
    fig = plots.throughput_vs_batch(df, by=["engine", "gc_mode"])
    (ax,) = fig.axes
    assert len(_series(ax)) == 16
    texts = _legend_texts(ax)
    assert len(texts) <= plots.MAX_LEGEND
    assert "gc=tuned" in texts and "engine=python" in texts and "capacity=1000" in texts
    assert "16 series" in ax.get_legend().get_title().get_text()


def test_median_points_are_the_repeats_median():
    """Each plotted point is the median of its cell's repeats, inside its CI bar."""
    df = make_results()
    (ax,) = plots.throughput_vs_batch(df).axes
    line = _series(ax)["gc=default (n=3)"]
    expected = (
        df.filter(pl.col("gc_mode") == "default")
        .group_by("batch_size")
        .agg(pl.col("events_per_s").median())
        .sort("batch_size")["events_per_s"]
        .to_list()
    )
    assert np.allclose(line.get_ydata(), expected)
    bar = _errorbars(ax)[0]
    for (x, y), segment in zip(
        zip(line.get_xdata(), line.get_ydata(), strict=True),
        bar.lines[2][0].get_segments(),
        strict=True,
    ):
        assert segment[0][0] == x and segment[0][1] <= y <= segment[1][1]


def test_latency_percentiles_p50_and_p99_panels():
    """latency_percentiles draws p50 and p99 side by side, a line per GC mode, on a µs axis."""
    fig = plots.latency_percentiles(make_results())
    p50, p99 = fig.axes
    assert (p50.get_title(), p99.get_title()) == ("p50", "p99")
    assert len(_errorbars(p50)) == len(_errorbars(p99)) == 2
    assert _legend_texts(p99) == ["gc=default (n=3)", "gc=freeze (n=3)"]
    assert p50.get_legend() is None
    assert "µs" in p50.get_ylabel() and p50.get_xlabel()
    assert min(_series(p50)["gc=default (n=3)"].get_ydata()) < max(
        _series(p99)["gc=default (n=3)"].get_ydata()
    )


def test_memory_growth_log_log_with_active_panel():
    """memory_growth plots peak RSS and active entries against capacity on log-log axes."""
    df = make_results(batch_sizes=(64,), capacities=(1000, 10_000, 100_000))
    fig = plots.memory_growth(df)
    assert len(fig.axes) == 2
    rss, active = fig.axes
    assert "MB" in rss.get_ylabel() and "entries" in active.get_ylabel()
    assert rss.get_xscale() == "log" and rss.get_yscale() == "log"
    assert len(_errorbars(rss)) == 2 and len(_errorbars(active)) == 2
    assert len(_series(rss)) == 2 and len(active.get_legend().get_texts()) == 2


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
    assert len(ax.collections) == 6  # a shaded interval per line (n = 3)
    (ax,) = plots.rate_by_decile(make_results(repeats=1)).axes
    assert len(ax.collections) == 0 and "CI" not in ax.get_title()


def test_failed_rows_are_ignored():
    """Failed trials never appear in a plot, however wild their numbers."""
    df = make_results()
    df = pl.concat([df, _failed(df)])
    (ax,) = plots.throughput_vs_batch(df).axes
    assert _legend_texts(ax) == ["gc=default (n=3)", "gc=freeze (n=3)"]
    assert max(max(line.get_ydata()) for line in ax.lines) < 1e6
    p50, p99 = plots.latency_percentiles(df).axes
    assert len(_errorbars(p50)) == len(_errorbars(p99)) == 2


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


def test_error_bars_are_the_stats_bootstrap():
    """A bar spans stats.median_ci of its cell's values: plots keep no bootstrap of their own."""
    df = make_results()
    (ax,) = plots.throughput_vs_batch(df).axes
    bar = _errorbars(ax)[0]  # gc_mode "default", batch sizes in order
    cells = df.filter(pl.col("gc_mode") == "default").sort("batch_size", maintain_order=True)
    for segment, (_, part) in zip(
        bar.lines[2][0].get_segments(),
        cells.group_by("batch_size", maintain_order=True),
        strict=True,
    ):
        _, low, high = median_ci(part["events_per_s"].to_numpy())
        assert (segment[0][1], segment[1][1]) == pytest.approx((low, high))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (64, "64"),
        (100_000, "100000"),
        (64.0, "64"),
        (0.5, "0.5"),
        (1e6, "1e+06"),
        (0.123456, "0.123"),
        ("freeze", "freeze"),
        (None, "—"),
    ],
)
def test_a_parameter_value_is_written_as_it_was_set(value, text):
    """Cell names keep the value a reader would type: no separators, no padding zeros."""
    assert plots.format_param(value) == text


def test_partition_gives_the_cells_in_key_order_nulls_last():
    """One part per key combination, sorted; rows keep their order; no keys: one part."""
    df = pl.DataFrame({"k": [2, None, 1, 2], "v": [1, 2, 3, 4]})
    parts = plots.partition(df, ["k"])
    assert [key for key, _ in parts] == [(1,), (2,), (None,)]
    assert parts[1][1]["v"].to_list() == [1, 4]
    assert plots.partition(df, []) == [((), df)]
