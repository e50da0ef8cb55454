"""Tests of lifelab.lab.stats: summaries, bootstrap intervals, comparisons and the compare command.

All data is synthetic (seeded numpy generators); nothing is timed. Trial noise is lognormal, as
timings are: a ``spread`` of 0.05 is about 5 % relative noise.
"""

import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab import cli
from lifelab.exceptions import ConfigError
from lifelab.lab import stats


def _trials(
    metrics: dict[str, np.ndarray | list[float]],
    *,
    batch_size: int = 64,
    gc_mode: str = "default",
    status: str = "ok",
) -> pl.DataFrame:
    """Rows of one cell with the id, parameter and status columns the lab writes."""
    n = len(next(iter(metrics.values())))
    return pl.DataFrame(
        {
            "cell": [f"b{batch_size}-{gc_mode}"] * n,
            "repeat": list(range(n)),
            "batch_size": [batch_size] * n,
            "gc_mode": [gc_mode] * n,
            **{name: np.asarray(values, dtype=float) for name, values in metrics.items()},
            "status": [status] * n,
        }
    )


def _noisy(seed: int, n: int, *, median: float = 1000.0, spread: float = 0.05) -> np.ndarray:
    return median * np.random.default_rng(seed).lognormal(0.0, spread, n)


def _one(table: pl.DataFrame, **where: object) -> dict:
    rows = table.filter(**where).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


# -- summarize -------------------------------------------------------------------------------------


def test_summary_statistics_match_numpy():
    """median, mean, std (ddof=1), unscaled MAD, IQR (linear quantiles), min, max match numpy."""
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    row = _one(stats.summarize(_trials({"ticks_per_s": x}), ["ticks_per_s"]))
    median = np.median(x)
    q25, q75 = np.percentile(x, [25, 75])
    assert row["n"] == x.size
    assert row["median"] == pytest.approx(median)
    assert row["mean"] == pytest.approx(x.mean())
    assert row["std"] == pytest.approx(x.std(ddof=1))
    assert row["mad"] == pytest.approx(np.median(np.abs(x - median)))
    assert row["iqr"] == pytest.approx(q75 - q25)
    assert (row["min"], row["max"]) == (1.0, 9.0)
    assert row["ci_low"] <= median <= row["ci_high"]


def test_summary_is_long_one_row_per_cell_and_metric():
    """Default grouping is the parameter columns; each metric gets its own row, in `metric`."""
    df = pl.concat(
        [
            _trials({"ticks_per_s": _noisy(1, 5), "tick_p99_us": _noisy(2, 5)}, batch_size=b)
            for b in (16, 64)
        ]
    )
    table = stats.summarize(df, ["ticks_per_s", "tick_p99_us"])
    assert table.columns[:3] == ["batch_size", "gc_mode", "metric"]
    assert table.height == 4
    assert set(zip(table["batch_size"], table["metric"], strict=True)) == {
        (b, m) for b in (16, 64) for m in ("ticks_per_s", "tick_p99_us")
    }
    assert table.schema["batch_size"] == pl.Int64


def test_summary_by_overrides_grouping():
    """`by` picks the grouping columns, e.g. the cell hash alone."""
    df = pl.concat([_trials({"ticks_per_s": _noisy(b, 4)}, batch_size=b) for b in (16, 64)])
    table = stats.summarize(df, ["ticks_per_s"], by=["cell"])
    assert table.columns[:2] == ["cell", "metric"]
    assert sorted(table["cell"]) == ["b16-default", "b64-default"]


def test_summary_default_metrics_skip_absent_columns():
    """The default metric list keeps the metrics the table has; named metrics must exist."""
    df = _trials({"ticks_per_s": _noisy(0, 5), "tick_p99_us": _noisy(1, 5)})
    assert stats.summarize(df)["metric"].to_list() == ["ticks_per_s", "tick_p99_us"]
    with pytest.raises(ConfigError, match="peak_rss_mb"):
        stats.summarize(df, ["ticks_per_s", "peak_rss_mb"])


def test_single_value_has_a_point_interval_and_no_std():
    """n = 1 gives the interval [value, value] and a null sample std."""
    row = _one(stats.summarize(_trials({"ticks_per_s": [123.0]}), ["ticks_per_s"]))
    assert (row["n"], row["ci_low"], row["ci_high"]) == (1, 123.0, 123.0)
    assert row["std"] is None
    assert row["mad"] == 0.0


def test_failed_rows_and_missing_values_are_ignored():
    """Only status "ok" rows count; nulls and NaN are skipped; a cell with no value is omitted."""
    ok = _trials({"ticks_per_s": [10.0, 20.0, 30.0, float("nan")]})
    failed = _trials({"ticks_per_s": [1e9, 1e9]}, status="failed")
    dead = _trials({"ticks_per_s": [5.0]}, batch_size=16, status="failed")
    table = stats.summarize(pl.concat([ok, failed, dead]), ["ticks_per_s"])
    row = _one(table)
    assert (row["batch_size"], row["n"], row["median"], row["max"]) == (64, 3, 20.0, 30.0)


def test_bootstrap_interval_contains_the_true_median():
    """For well-behaved lognormal samples the 95 % interval covers the true median (1000)."""
    for seed in range(5):
        df = _trials({"ticks_per_s": _noisy(seed, 40)})
        row = _one(stats.summarize(df, ["ticks_per_s"], seed=seed))
        assert row["ci_low"] < 1000.0 < row["ci_high"]


def test_bootstrap_interval_shrinks_with_n():
    """More repeats give a narrower interval of the median (about 1/sqrt(n))."""

    def width(n: int) -> float:
        row = _one(stats.summarize(_trials({"ticks_per_s": _noisy(7, n)}), ["ticks_per_s"]))
        return row["ci_high"] - row["ci_low"]

    assert width(400) < width(100) < width(10)
    assert width(400) < 0.5 * width(10)


def test_summary_is_reproducible_with_the_same_seed():
    """The same data and seed give an identical table; another seed moves the interval."""
    df = _trials({"ticks_per_s": _noisy(3, 15), "tick_p99_us": _noisy(4, 15)})
    metrics = ["ticks_per_s", "tick_p99_us"]
    first = stats.summarize(df, metrics, seed=11)
    assert first.equals(stats.summarize(df, metrics, seed=11))
    other = stats.summarize(df, metrics, seed=12)
    assert first.drop("ci_low", "ci_high").equals(other.drop("ci_low", "ci_high"))
    assert not first.equals(other)


def test_a_cells_interval_does_not_depend_on_the_other_cells():
    """Each cell draws from its own generator, so adding cells leaves its numbers unchanged."""
    alone = _trials({"ticks_per_s": _noisy(5, 12)})
    more = pl.concat([_trials({"ticks_per_s": _noisy(6, 12)}, batch_size=16), alone])
    row_alone = _one(stats.summarize(alone, ["ticks_per_s"]))
    row_more = _one(stats.summarize(more, ["ticks_per_s"]), batch_size=64)
    assert row_alone == row_more


@given(st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_summary_bounds_hold_for_any_sample(values):
    """min <= ci_low <= median <= ci_high <= max, and the spreads fit inside the range."""
    row = _one(stats.summarize(_trials({"ticks_per_s": values}), ["ticks_per_s"], resamples=200))
    eps = 1e-9 * max(1.0, row["max"])
    assert row["min"] - eps <= row["ci_low"] <= row["median"] + eps
    assert row["median"] - eps <= row["ci_high"] <= row["max"] + eps
    assert 0 <= row["mad"] <= row["max"] - row["min"] + eps
    assert 0 <= row["iqr"] <= row["max"] - row["min"] + eps


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=30))
def test_median_ci_brackets_the_median(values):
    """median_ci: the median, an interval that contains it, the same numbers on every call."""
    median, low, high = stats.median_ci(values, resamples=200)
    assert median == pytest.approx(float(np.median(values)))
    assert min(values) <= low <= median <= high <= max(values)
    assert stats.median_ci(values, resamples=200) == (median, low, high)


def test_median_ci_skips_non_finite_values_and_handles_tiny_samples():
    """NaN and inf are skipped; no value gives NaNs, one value a point interval."""
    assert all(math.isnan(x) for x in stats.median_ci([math.nan, math.inf]))
    assert stats.median_ci([math.nan, 4.0, -math.inf]) == (4.0, 4.0, 4.0)
    values = _noisy(8, 20)
    assert stats.median_ci([*values, math.nan]) == stats.median_ci(values)


def test_median_ci_streams_are_seeded_by_seed_and_labels():
    """The stream labels and the seed pick the generator; summarize is median_ci per cell."""
    values = _noisy(9, 15)
    one = stats.median_ci(values, stream=("a",))
    assert one == stats.median_ci(values, stream=("a",))
    # An interval is two order statistics of the sample, so streams differ only now and then.
    assert len({stats.median_ci(values, resamples=50, stream=(i,)) for i in range(10)}) > 1
    assert len({stats.median_ci(values, resamples=50, seed=i) for i in range(10)}) > 1
    row = _one(stats.summarize(_trials({"ticks_per_s": values}), ["ticks_per_s"], seed=4))
    stream = ("summary", "ticks_per_s", (64, "default"))  # the cell: batch_size, gc_mode
    assert stats.median_ci(values, seed=4, stream=stream) == (
        row["median"],
        row["ci_low"],
        row["ci_high"],
    )
    with pytest.raises(ConfigError, match="resamples"):
        stats.median_ci(values, resamples=0)


def test_bad_options_are_refused():
    """confidence, resamples and seed are validated, and ConfigError is also a ValueError."""
    df = _trials({"ticks_per_s": [1.0, 2.0]})
    for kw in ({"confidence": 1.0}, {"resamples": 0}, {"seed": -1}):
        with pytest.raises(ValueError):
            stats.summarize(df, ["ticks_per_s"], **kw)
    with pytest.raises(ConfigError, match="no_such"):
        stats.summarize(df, ["ticks_per_s"], by=["no_such"])


# -- direction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "higher"),
    [
        ("ticks_per_s", True),
        ("events_per_s", True),
        ("rate_decile_9_ticks_per_s", True),
        ("last_decile_ratio", True),
        ("tick_p99_us", False),
        ("gc_pause_ms", False),
        ("wall_s", False),
        ("peak_rss_mb", False),
        ("gc_collections", False),
        ("archive_size", False),
        ("stage_io_share", False),
        ("instructions_per_tick", False),
        ("instructions_per_event", False),
        ("instructions_per_decay", False),
    ],
)
def test_higher_is_better_follows_the_unit_suffix(metric, higher):
    """Throughput (`_per_s`) is better higher; times, sizes, counts and instructions lower."""
    assert stats.higher_is_better(metric) is higher


def test_higher_is_better_refuses_a_name_without_a_unit():
    """A metric whose direction is unknown is an error, not a guess."""
    with pytest.raises(ConfigError, match="unit suffix"):
        stats.higher_is_better("events")
    with pytest.raises(ConfigError, match="unit suffix"):
        stats.metric_measure("instructions_tool")  # the tool's name, not a measurement


@pytest.mark.parametrize(
    ("metric", "measure"),
    [
        ("instructions_per_tick", "instruction count"),
        ("instructions_per_event", "instruction count"),
        ("ticks_per_s", "wall clock"),
        ("rate_decile_3_ticks_per_s", "wall clock"),
        ("tick_p99_us", "wall clock"),
        ("gc_pause_ms", "wall clock"),
        ("wall_s", "wall clock"),
        ("last_decile_ratio", "wall clock"),
        ("stage_io_share", "wall clock"),
        ("peak_rss_mb", "memory"),
        ("memory_active", "memory"),
        ("archive_size", "memory"),
        ("gc_collections", "count"),
        ("gc_gen2", "count"),
    ],
)
def test_metric_measure_names_what_each_metric_measures(metric, measure):
    """Instruction counts, wall-clock times, memory and GC counts are told apart by name."""
    assert stats.metric_measure(metric) == measure


# -- compare ---------------------------------------------------------------------------------------


def test_a_a_comparisons_rarely_find_a_change():
    """Same-distribution samples (10 repeats, 5 % noise) are called different in <= 5 % of cases."""
    # A 95 % interval is wrong 5 % of the time by design, so "never" would be a promise the method
    # does not make: over 40 A/A comparisons at most 2 may be flagged (these seeds flag exactly 1).
    verdicts = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a, b = (
            _trials(
                {
                    "ticks_per_s": 1000 * rng.lognormal(0, 0.05, 10),
                    "tick_p99_us": 50 * rng.lognormal(0, 0.05, 10),
                }
            )
            for _ in range(2)
        )
        verdicts += stats.compare(a, b, ["ticks_per_s", "tick_p99_us"], seed=seed)[
            "verdict"
        ].to_list()
    assert len(verdicts) == 40
    assert sum(v != "no significant change" for v in verdicts) <= 2


def test_a_twenty_percent_slowdown_is_detected():
    """Throughput 20 % lower with 5 % noise is "slower", "worse", and listed as a regression."""
    base = _trials({"ticks_per_s": _noisy(1, 10)})
    cand = _trials({"ticks_per_s": _noisy(2, 10, median=800.0)})
    row = _one(stats.compare(base, cand, ["ticks_per_s"]))
    assert (row["verdict"], row["change"]) == ("slower", "worse")
    assert row["ratio"] == pytest.approx(0.8, abs=0.05)
    assert row["ci_low"] <= row["ratio"] <= row["ci_high"] < 1
    assert row["ratio"] == pytest.approx(row["candidate_median"] / row["baseline_median"])
    assert stats.regressions(stats.compare(base, cand, ["ticks_per_s"])).height == 1


def test_a_twenty_percent_speedup_is_detected():
    """Throughput 20 % higher with 5 % noise is "faster", "better", and no regression."""
    base = _trials({"ticks_per_s": _noisy(1, 10)})
    cand = _trials({"ticks_per_s": _noisy(2, 10, median=1200.0)})
    table = stats.compare(base, cand, ["ticks_per_s"])
    row = _one(table)
    assert (row["verdict"], row["change"]) == ("faster", "better")
    assert 1 < row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert stats.regressions(table).is_empty()


def test_a_small_real_change_is_below_min_effect():
    """A 2 % slowdown with 0.5 % noise is real (interval excludes 1) but under min_effect."""
    base = _trials({"ticks_per_s": _noisy(1, 10, spread=0.005)})
    cand = _trials({"ticks_per_s": _noisy(2, 10, median=980.0, spread=0.005)})
    row = _one(stats.compare(base, cand, ["ticks_per_s"]))
    assert row["ci_high"] < 1
    assert row["verdict"] == "no significant change"
    strict = _one(stats.compare(base, cand, ["ticks_per_s"], min_effect=0.01))
    assert strict["verdict"] == "slower"


def test_latency_direction_is_reversed():
    """For a latency metric, higher is "slower" and lower is "faster"."""
    base = _trials({"tick_p99_us": _noisy(1, 10, median=50.0)})
    up = _trials({"tick_p99_us": _noisy(2, 10, median=60.0)})
    down = _trials({"tick_p99_us": _noisy(3, 10, median=40.0)})
    assert _one(stats.compare(base, up, ["tick_p99_us"]))["verdict"] == "slower"
    assert _one(stats.compare(base, down, ["tick_p99_us"]))["verdict"] == "faster"
    assert stats.regressions(stats.compare(base, up, ["tick_p99_us"])).height == 1


def test_compare_ignores_failed_rows():
    """Failed trials with wild values change neither the medians nor the verdict."""
    base = _trials({"ticks_per_s": _noisy(1, 10)})
    cand = _trials({"ticks_per_s": _noisy(2, 10)})
    junk = _trials({"ticks_per_s": [1.0, 1.0, 1.0]}, status="failed")
    clean = stats.compare(base, cand, ["ticks_per_s"])
    dirty = stats.compare(base, pl.concat([cand, junk]), ["ticks_per_s"])
    assert clean.equals(dirty)
    assert _one(dirty)["n_candidate"] == 10


def test_cells_in_one_table_only_are_excluded_and_listed():
    """compare keeps the cells found in both; unmatched_cells names the others and their side."""
    base = pl.concat([_trials({"ticks_per_s": _noisy(b, 6)}, batch_size=b) for b in (16, 64)])
    cand = pl.concat(
        [_trials({"ticks_per_s": _noisy(b + 1, 6)}, batch_size=b) for b in (64, 256)]
        + [_trials({"ticks_per_s": [1.0] * 6}, batch_size=16, status="failed")]
    )
    table = stats.compare(base, cand, ["ticks_per_s"])
    assert table["batch_size"].to_list() == [64]
    unmatched = stats.unmatched_cells(base, cand)
    assert set(zip(unmatched["batch_size"], unmatched["side"], strict=True)) == {
        (16, "baseline only"),
        (256, "candidate only"),
    }


def test_too_few_trials_get_no_verdict():
    """Below min_n trials a side the verdict says so, with the smaller n, whatever the change."""
    base = _trials({"ticks_per_s": [1000.0, 1010.0, 990.0]})
    cand = _trials({"ticks_per_s": [700.0, 705.0]})
    row = _one(stats.compare(base, cand, ["ticks_per_s"]))
    assert (row["verdict"], row["change"]) == ("too few trials (n = 2 < 5)", "none")
    assert row["verdict"] != "no significant change"  # not to be read as a measured no-change
    assert stats.regressions(stats.compare(base, cand, ["ticks_per_s"])).is_empty()
    assert _one(stats.compare(base, cand, ["ticks_per_s"], min_n=2))["verdict"] == "slower"
    same = _trials({"ticks_per_s": [1000.0, 1005.0]})
    row = _one(stats.compare(base, same, ["ticks_per_s"], min_n=3))
    assert row["verdict"] == "too few trials (n = 2 < 3)"


def test_comparison_table_labels_rows_by_the_varying_parameters():
    """comparison_table keeps the parameters that vary (not constant nor linked ones)."""
    base = pl.concat(
        [
            _trials({"ticks_per_s": _noisy(b, 6)}, batch_size=b, gc_mode=g)
            for b in (16, 64)
            for g in ("default", "freeze")
        ]
    )
    base = base.with_columns(events_per_tick=pl.col("batch_size") * 1.0, engine=pl.lit("compiled"))
    cand = base.with_columns(ticks_per_s=pl.col("ticks_per_s") * 0.7)
    table = stats.compare(base, cand, ["ticks_per_s"], min_n=5)
    view = stats.comparison_table(table)
    assert view.columns == [
        "batch_size",
        "gc_mode",
        "metric",
        "measure",
        "n",
        "baseline_median",
        "candidate_median",
        "ratio",
        "ci_low",
        "ci_high",
        "verdict",
        "decides",
    ]
    assert view.height == 4 and set(view["verdict"]) == {"slower"}
    assert view["n"].to_list() == [6] * 4
    assert set(view["measure"]) == {"wall clock"} and view["decides"].all()


def test_ratio_from_zero_is_one_or_infinite():
    """0 -> 0 is no change (ratio 1); 0 -> positive is an infinite ratio and a regression."""
    base = _trials({"gc_pause_ms": [0.0] * 6})
    same = _one(stats.compare(base, _trials({"gc_pause_ms": [0.0] * 6}), ["gc_pause_ms"]))
    assert (same["ratio"], same["verdict"]) == (1.0, "no significant change")
    worse = _one(
        stats.compare(base, _trials({"gc_pause_ms": _noisy(1, 6, median=3.0)}), ["gc_pause_ms"])
    )
    assert math.isinf(worse["ratio"]) and worse["change"] == "worse"


def test_compare_is_reproducible():
    """The same inputs and seed give the same table."""
    base = _trials({"ticks_per_s": _noisy(1, 8), "tick_p99_us": _noisy(2, 8)})
    cand = _trials({"ticks_per_s": _noisy(3, 8), "tick_p99_us": _noisy(4, 8)})
    metrics = ["ticks_per_s", "tick_p99_us"]
    assert stats.compare(base, cand, metrics, seed=5).equals(
        stats.compare(base, cand, metrics, seed=5)
    )


def test_compare_refuses_bad_arguments():
    """A negative min_effect or a metric missing from one table is a ConfigError."""
    base = _trials({"ticks_per_s": _noisy(1, 5)})
    with pytest.raises(ConfigError, match="min_effect"):
        stats.compare(base, base, ["ticks_per_s"], min_effect=-0.1)
    with pytest.raises(ConfigError, match="tick_p99_us"):
        stats.compare(base, base, ["tick_p99_us"])


# -- instruction counts ----------------------------------------------------------------------------
# Counts repeat within 0.002 % (Python engine) and 0.4 % (compiled); wall clock swings 15-30 %.


def _counted(seed: int, *, instructions: float = 79_000.0, ticks: float = 1000.0, **kw):
    """Ten trials of one cell with instruction counts (0.001 % noise) and 20 %-noisy ticks/s."""
    return _trials(
        {
            "instructions_per_tick": _noisy(seed, 10, median=instructions, spread=1e-5),
            "ticks_per_s": _noisy(seed + 100, 10, median=ticks, spread=0.2),
            "tick_p99_us": _noisy(seed + 200, 10, median=50.0, spread=0.05),
        },
        **kw,
    )


def test_instruction_counts_see_three_percent_where_wall_clock_cannot():
    """3 % more instructions is "slower" and a regression; 20 %-noisy ticks/s is no change, and
    does not decide in a cell with counts, while latency still does."""
    table = stats.compare(_counted(1), _counted(2, instructions=79_000.0 * 1.03))
    assert table["metric"].to_list() == ["instructions_per_tick", "ticks_per_s", "tick_p99_us"]
    counts = _one(table, metric="instructions_per_tick")
    assert (counts["measure"], counts["verdict"], counts["change"]) == (
        "instruction count",
        "slower",
        "worse",
    )
    assert counts["ratio"] == pytest.approx(1.03, abs=1e-4) and counts["decides"]
    ticks = _one(table, metric="ticks_per_s")
    assert (ticks["measure"], ticks["verdict"], ticks["decides"]) == (
        "wall clock",
        "no significant change",
        False,
    )
    assert _one(table, metric="tick_p99_us")["decides"]
    assert stats.regressions(table)["metric"].to_list() == ["instructions_per_tick"]


def test_throughput_that_instruction_counts_overrule_is_no_regression():
    """Wall clock reading 40 % slower in a cell whose counts did not move is shown, not counted;
    without the counts the same rows decide and it is a regression."""
    base, cand = _counted(1), _counted(2, ticks=600.0)
    table = stats.compare(base, cand)
    ticks = _one(table, metric="ticks_per_s")
    assert ticks["verdict"] == "slower" and not ticks["decides"]
    assert _one(table, metric="instructions_per_tick")["verdict"] == "no significant change"
    assert stats.regressions(table).is_empty()
    plain = stats.compare(base.drop("instructions_per_tick"), cand.drop("instructions_per_tick"))
    assert plain["decides"].all()
    assert stats.regressions(plain)["metric"].to_list() == ["ticks_per_s"]
    # Counts named but throughput not: nothing to overrule; throughput alone: it decides.
    alone = stats.compare(base, cand, ["ticks_per_s"])
    assert stats.regressions(alone).height == 1


def test_throughput_decides_in_cells_without_counts_on_both_sides():
    """Only a cell whose instructions_per_tick was compared hands the decision to the counts."""
    base = pl.concat([_counted(1, batch_size=16), _counted(3, batch_size=64)])
    cand = pl.concat(
        [
            _counted(2, ticks=600.0, batch_size=16),
            _counted(4, ticks=600.0, batch_size=64).with_columns(
                instructions_per_tick=pl.lit(None, dtype=pl.Float64)
            ),
        ]
    )
    table = stats.compare(base, cand, ["instructions_per_tick", "ticks_per_s"])
    assert table.select("batch_size", "metric", "decides").rows() == [
        (16, "instructions_per_tick", True),
        (16, "ticks_per_s", False),
        (64, "ticks_per_s", True),
    ]
    assert stats.regressions(table)["batch_size"].to_list() == [64]


def test_counts_too_few_for_a_verdict_overrule_nothing():
    """Two counted trials a side ("too few trials") leave the decision to the ten timed ones."""
    base, cand = _counted(1), _counted(2, ticks=600.0)
    keep_two = pl.int_range(pl.len()) < 2
    few_base, few_cand = (
        t.with_columns(instructions_per_tick=pl.when(keep_two).then("instructions_per_tick"))
        for t in (base, cand)
    )
    table = stats.compare(few_base, few_cand)
    assert _one(table, metric="instructions_per_tick")["verdict"].startswith("too few trials")
    assert _one(table, metric="ticks_per_s")["decides"]
    assert stats.regressions(table)["metric"].to_list() == ["ticks_per_s"]


def test_a_a_instruction_counts_and_wall_clock_both_say_no_change():
    """The same code twice (counts equal within 0.01 %, ticks/s 20 % noise): no significant
    change on both metrics, and the counts never call one over 20 seeds."""
    table = stats.compare(_counted(1), _counted(2))
    assert set(table["verdict"]) == {"no significant change"}
    assert stats.regressions(table).is_empty()
    for seed in range(20):
        a, b = (
            _trials({"instructions_per_tick": _noisy(s, 5, median=79_000.0, spread=1e-4)})
            for s in (2 * seed, 2 * seed + 1)
        )
        assert _one(stats.compare(a, b))["verdict"] == "no significant change"


def test_compiled_engine_counts_call_three_percent_but_not_their_noise():
    """At the compiled engine's 0.4 % repeatability, 1 % is outside the noise and 3 % is seen."""
    for seed in range(20):
        a, b, c = (
            _trials({"instructions_per_tick": _noisy(3 * seed + i, 5, median=m, spread=0.002)})
            for i, m in enumerate((1850.0, 1850.0, 1850.0 * 0.97))
        )
        assert _one(stats.compare(a, b))["verdict"] == "no significant change"
        assert _one(stats.compare(a, c))["verdict"] == "faster"


def test_min_effect_defaults_by_measure_and_a_number_applies_to_all():
    """None: 1 % for instruction counts, 5 % for wall clock; a number is used for every metric."""
    assert (stats.MIN_EFFECT, stats.INSTRUCTIONS_MIN_EFFECT) == (0.05, 0.01)
    base = _trials(
        {
            "instructions_per_tick": _noisy(1, 10, median=79_000.0, spread=1e-5),
            "tick_p99_us": _noisy(2, 10, median=50.0, spread=0.002),
        }
    )
    cand = base.with_columns(pl.col("instructions_per_tick", "tick_p99_us") * 1.03)
    default = stats.compare(base, cand)
    assert default["verdict"].to_list() == ["slower", "no significant change"]
    assert stats.compare(base, cand, min_effect=0.05)["verdict"].to_list() == [
        "no significant change",
        "no significant change",
    ]
    assert stats.compare(base, cand, min_effect=0.02)["verdict"].to_list() == ["slower"] * 2


def test_an_all_null_count_column_is_skipped_like_an_absent_one():
    """Tables written without counting (null counts) compare as tables without the column."""
    base, cand = (
        _trials({"ticks_per_s": _noisy(s, 6), "tick_p99_us": _noisy(s + 1, 6, median=50.0)})
        for s in (1, 3)
    )
    nulls = pl.lit(None, dtype=pl.Float64).alias("instructions_per_tick")
    plain = stats.compare(base, cand)
    assert plain.equals(stats.compare(base.with_columns(nulls), cand.with_columns(nulls)))
    assert plain["metric"].to_list() == ["ticks_per_s", "tick_p99_us"]
    assert plain["decides"].all()
    summary = stats.summarize(base.with_columns(nulls))
    assert summary["metric"].to_list() == ["ticks_per_s", "tick_p99_us"]


def test_format_table_verdicts_name_their_measure():
    """Each verdict says what it rests on; overruled rows say they do not decide."""
    table = stats.compare(_counted(1), _counted(2, instructions=79_000.0 * 1.03, ticks=600.0))
    text = stats.format_table(table)
    lines = {line.split()[1]: line for line in text.splitlines()[1:]}
    assert lines["instructions_per_tick"].endswith("SLOWER (instruction count)")
    assert lines["ticks_per_s"].endswith(
        "slower (wall clock; not deciding: instruction counts decide)"
    )
    assert lines["tick_p99_us"].endswith("no significant change (wall clock)")
    few = stats.compare(
        _trials({"peak_rss_mb": [40.0, 41.0]}), _trials({"peak_rss_mb": [80.0, 81.0]})
    )
    assert stats.format_table(few).splitlines()[1].endswith("too few trials (n = 2 < 5; memory)")


# -- files and the command -------------------------------------------------------------------------


def _write_pair(tmp_path, candidate_median: float) -> tuple[str, str]:
    base = pl.concat(
        [
            _trials(
                {"ticks_per_s": _noisy(b, 10), "tick_p99_us": _noisy(b + 1, 10, median=50.0)},
                batch_size=b,
            )
            for b in (16, 64)
        ]
    )
    cand = pl.concat(
        [
            _trials(
                {
                    "ticks_per_s": _noisy(b + 2, 10, median=candidate_median),
                    "tick_p99_us": _noisy(b + 3, 10, median=50.0),
                },
                batch_size=b,
            )
            for b in (16, 64)
        ]
    )
    paths = str(tmp_path / "base.parquet"), str(tmp_path / "cand.parquet")
    base.write_parquet(paths[0])
    cand.write_parquet(paths[1])
    return paths


def test_compare_files_reads_parquet(tmp_path):
    """compare_files gives the same table as compare on the frames, keywords passed through."""
    a, b = _write_pair(tmp_path, 800.0)
    table = stats.compare_files(a, b, metrics=["ticks_per_s"], min_effect=0.1)
    expected = stats.compare(
        pl.read_parquet(a), pl.read_parquet(b), ["ticks_per_s"], min_effect=0.1
    )
    assert table.equals(expected)
    assert table["verdict"].to_list() == ["slower", "slower"]


def test_compare_command_exits_1_on_a_regression(tmp_path, capsys):
    """A significant slowdown: summary counts it, ``lifelab compare`` prints the table, exits 1."""
    a, b = _write_pair(tmp_path, 800.0)
    metrics = ["ticks_per_s", "tick_p99_us"]
    result, text = stats.compare_summary(a, b, metrics=metrics)
    assert result["regressions"] == 2 and result["compared"] == 4
    assert "batch_size=16" in text and "SLOWER (wall clock)" in text
    assert text.splitlines()[-3:] == [
        "ticks_per_s (wall clock): 2 cells, 2 slower, 0 faster, 0 no significant change",
        "tick_p99_us (wall clock): 2 cells, 0 slower, 0 faster, 2 no significant change",
        "2 significant regressions in 4 comparisons",
    ]
    assert cli.main(["compare", a, b, "--metric", metrics[0], "--metric", metrics[1]]) == 1
    assert capsys.readouterr().out == text + "\n"


def test_compare_command_exits_0_without_a_regression(tmp_path, capsys):
    """No change (or a speedup) exits 0; --json prints only the plain-JSON result."""
    a, b = _write_pair(tmp_path, 1000.0)
    assert cli.main(["compare", a, b, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["metrics"] == ["ticks_per_s", "tick_p99_us"]
    assert result["rows"][0]["verdict"] == "no significant change"
    assert result["rows"][0]["measure"] == "wall clock" and result["rows"][0]["decides"]
    assert result["min_effect"] == {
        "instruction count": 0.01,
        "wall clock": 0.05,
        "memory": 0.05,
        "count": 0.05,
    }
    assert cli.main(["compare", b, a, "--min-effect", "0.5"]) == 0


def _write_counted(tmp_path, **candidate) -> tuple[str, str]:
    """Two cells with instruction counts each side: the candidate's built with ``candidate``."""
    paths = str(tmp_path / "base.parquet"), str(tmp_path / "cand.parquet")
    pl.concat([_counted(b, batch_size=b) for b in (16, 64)]).write_parquet(paths[0])
    pl.concat([_counted(b + 1, batch_size=b, **candidate) for b in (16, 64)]).write_parquet(
        paths[1]
    )
    return paths


def test_compare_command_decides_by_instruction_counts(tmp_path, capsys):
    """3 % more instructions fails the gate and says so per metric, in text and JSON; ticks/s
    reading 40 % slower is shown but does not decide."""
    a, b = _write_counted(tmp_path, instructions=79_000.0 * 1.03, ticks=600.0)
    result, text = stats.compare_summary(a, b)
    assert result["metrics"] == ["instructions_per_tick", "ticks_per_s", "tick_p99_us"]
    assert (result["regressions"], result["improvements"], result["compared"]) == (2, 0, 6)
    assert result["by_metric"]["instructions_per_tick"] == {
        "measure": "instruction count",
        "cells": 2,
        "slower": 2,
        "faster": 0,
        "no_change": 0,
        "too_few": 0,
        "decides": 2,
    }
    assert result["by_metric"]["ticks_per_s"]["slower"] == 2
    assert result["by_metric"]["ticks_per_s"]["decides"] == 0
    assert "SLOWER (instruction count)" in text
    assert "slower (wall clock; not deciding: instruction counts decide)" in text
    assert text.splitlines()[-4:] == [
        "instructions_per_tick (instruction count): 2 cells, 2 slower, 0 faster, "
        "0 no significant change",
        "ticks_per_s (wall clock): 2 cells, 2 slower, 0 faster, 0 no significant change; "
        "not deciding in 2 (instruction counts decide)",
        "tick_p99_us (wall clock): 2 cells, 0 slower, 0 faster, 2 no significant change",
        "2 significant regressions in 6 comparisons (2 not deciding: instruction counts decide)",
    ]
    assert cli.main(["compare", a, b]) == 1
    assert capsys.readouterr().out == text + "\n"
    assert cli.main(["compare", a, b, "--min-effect", "0.05", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["min_effect"] == 0.05 and result["regressions"] == 0
    assert result["by_metric"]["instructions_per_tick"]["no_change"] == 2


def test_compare_command_a_a_with_counts_passes(tmp_path, capsys):
    """The same code twice, with counts: no significant change on both measures, exit 0."""
    a, b = _write_counted(tmp_path)
    assert cli.main(["compare", a, b, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for metric in ("instructions_per_tick", "ticks_per_s"):
        assert result["by_metric"][metric]["no_change"] == 2, metric


def test_compare_summary_refuses_tables_with_no_common_cell(tmp_path):
    """Comparing files that share no cell is an input error, not a silent pass."""
    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    _trials({"ticks_per_s": _noisy(1, 5)}, batch_size=16).write_parquet(a)
    _trials({"ticks_per_s": _noisy(2, 5)}, batch_size=64).write_parquet(b)
    with pytest.raises(ConfigError, match="nothing to compare"):
        stats.compare_summary(a, b)


# -- loaded trials ---------------------------------------------------------------------------------


def _with_load(df: pl.DataFrame, loads: list[float | None], steals: list[float | None]):
    """``df`` with the load columns: on 2 cores, load > 2 or steal > 5 % is a loaded trial."""
    return df.with_columns(
        load_avg_1m=pl.Series(loads, dtype=pl.Float64),
        cpu_steal_pct=pl.Series(steals, dtype=pl.Float64),
        cpu_count=pl.lit(2, pl.Int64),
    )


def test_summarize_keeps_or_drops_loaded_trials():
    """keep uses every trial; drop leaves out the loaded ones and says how many per cell."""
    values = [100.0, 101.0, 102.0, 500.0, 600.0]
    df = _with_load(
        _trials({"ticks_per_s": values}),
        loads=[0.5, 1.0, None, 3.0, 0.5],  # trial 3: load 3 > 2 cores
        steals=[0.0, 1.0, None, 0.0, 9.0],  # trial 4: steal 9 % > 5 %; trial 2 unmeasured
    )
    kept = _one(stats.summarize(df, ["ticks_per_s"]))
    assert kept["n"] == 5 and kept["median"] == 102.0 and "n_dropped" not in kept
    assert stats.summarize(df, ["ticks_per_s"], loaded="keep").equals(
        stats.summarize(df, ["ticks_per_s"])
    )
    table = stats.summarize(df, ["ticks_per_s"], loaded="drop")
    assert table.columns[table.columns.index("n") + 1] == "n_dropped"
    dropped = _one(table)
    assert dropped["n"] == 3 and dropped["n_dropped"] == 2 and dropped["median"] == 101.0


def test_summarize_drop_counts_per_cell_and_ignores_failed_and_unmeasured_trials():
    """Each cell counts its own loaded ok trials; a table without load columns drops none."""
    a = _with_load(_trials({"ticks_per_s": [1.0, 2.0]}, batch_size=16), [3.0, 0.1], [0.0, 0.0])
    b = _with_load(_trials({"ticks_per_s": [5.0, 6.0]}, batch_size=64), [0.1, 0.1], [0.0, 0.0])
    failed = _with_load(
        _trials({"ticks_per_s": [9.0]}, batch_size=64, status="failed"), [5.0], [50.0]
    )
    table = stats.summarize(pl.concat([a, b, failed]), ["ticks_per_s"], loaded="drop")
    assert _one(table, batch_size=16)["n_dropped"] == 1
    assert _one(table, batch_size=64)["n_dropped"] == 0
    plain = _trials({"ticks_per_s": [1.0, 2.0]})
    row = _one(stats.summarize(plain, ["ticks_per_s"], loaded="drop"))
    assert row["n"] == 2 and row["n_dropped"] == 0


def test_compare_drop_loaded_and_bad_choices(tmp_path):
    """compare and compare_summary drop loaded trials on both sides and count them."""
    base = _with_load(_trials({"ticks_per_s": [*_noisy(1, 6), 10.0]}), [0.5] * 6 + [4.0], [0.0] * 7)
    cand = _with_load(
        _trials({"ticks_per_s": [*_noisy(2, 6), 10.0, 10.0]}),
        [0.5] * 8,
        [0.0] * 6 + [20.0, 30.0],
    )
    kept = _one(stats.compare(base, cand, ["ticks_per_s"]))
    assert (kept["n_baseline"], kept["n_candidate"]) == (7, 8)
    row = _one(stats.compare(base, cand, ["ticks_per_s"], loaded="drop"))
    assert (row["n_baseline"], row["n_candidate"]) == (6, 6)
    paths = str(tmp_path / "base.parquet"), str(tmp_path / "cand.parquet")
    base.write_parquet(paths[0])
    cand.write_parquet(paths[1])
    result, text = stats.compare_summary(*paths, metrics=["ticks_per_s"], loaded="drop")
    assert result["dropped_loaded"] == {"baseline": 1, "candidate": 2}
    assert "left out 1 baseline and 2 candidate trials that ran on a loaded machine" in text
    assert stats.compare_summary(*paths)[0]["dropped_loaded"] == {"baseline": 0, "candidate": 0}
    assert cli.main(["compare", *paths, "--drop-loaded", "--json"]) == 0
    for bad in ("yes", "skip"):
        with pytest.raises(ConfigError, match="loaded must be one of"):
            stats.summarize(base, loaded=bad)
        with pytest.raises(ConfigError, match="loaded must be one of"):
            stats.compare(base, cand, loaded=bad)


def test_paired_ratio_ci_keeps_pairs_together():
    """A common factor per round (a slow minute) cancels in the pairing: end is 0.9 × start in
    every round while the rounds themselves vary 2×, so the interval is tight around 0.9; the
    same values unpaired (shuffled) give a wide one."""
    from lifelab.lab.stats import paired_ratio_ci

    rng = np.random.default_rng(1)
    machine = rng.uniform(1.0, 2.0, size=9)
    start = 1000 * machine
    end = 0.9 * start * rng.uniform(0.99, 1.01, size=9)
    ratio, low, high = paired_ratio_ci(end, start)
    assert ratio == pytest.approx(0.9, rel=0.05)
    assert low <= ratio <= high and high - low < 0.05
    _, wide_low, wide_high = paired_ratio_ci(rng.permutation(end), start)
    assert wide_high - wide_low > 3 * (high - low)
    assert paired_ratio_ci([2.0], [4.0]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in paired_ratio_ci([np.nan], [1.0]))
    with pytest.raises(ValueError, match="length"):
        paired_ratio_ci([1.0, 2.0], [1.0])
