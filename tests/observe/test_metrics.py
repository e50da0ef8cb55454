"""Built-in metrics: log histograms, stage timings, GC accounting, the metrics frame."""

from __future__ import annotations

import gc
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.observe.gcmode import GcWatch
from lifelab.observe.metrics import N_MARKS, STAGES, LogHistogram, end_mark


def test_bucket_edges_contain_their_values():
    """Every value lands in the bucket whose [low, high) holds it; buckets are ordered."""
    for value in [0, 1, 7, 15, 16, 17, 31, 32, 100, 1_000, 123_456, 10**9, 2**40]:
        low, high = LogHistogram.bounds(LogHistogram.index(value))
        assert low <= value < high
    lows = [LogHistogram.bounds(i)[0] for i in range(300)]
    assert lows == sorted(lows) and len(set(lows)) == len(lows)


def test_bucket_width_is_at_most_one_eighth_of_its_low_edge():
    """Relative resolution: each bucket above 16 is ≤ 1/8 of its lower bound wide."""
    for i in range(16, 300):
        low, high = LogHistogram.bounds(i)
        assert (high - low) / low <= 1 / 8 + 1e-12


@given(st.lists(st.integers(0, 10**8), min_size=50, max_size=400))
def test_percentiles_match_numpy_within_bucket_resolution(values):
    """p50/p90/p99 agree with numpy's to the histogram's 12.5 % bucket resolution."""
    h = LogHistogram()
    for v in values:
        h.record(v)
    assert h.count == len(values) and h.total == sum(values) and h.max == max(values)
    for q in (50, 90, 99):
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        got = h.percentile(q)
        assert got <= max(values)
        assert abs(got - exact) <= max(2.0, 0.13 * exact), (q, got, exact)


def test_empty_histogram_reads_zero():
    """An empty histogram has percentiles and mean of zero, not an error."""
    h = LogHistogram()
    assert h.percentile(99) == 0.0 and h.mean == 0.0


def test_merge_adds_counts():
    """Merging two histograms equals recording both streams into one."""
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    for v in range(0, 5000, 7):
        a.record(v)
        both.record(v)
    for v in range(3, 90_000, 113):
        b.record(v)
        both.record(v)
    a.merge(b)
    assert a.counts == both.counts and a.total == both.total and a.max == both.max


def test_gc_watch_counts_collections_and_pause():
    """GcWatch counts a forced collection per generation and the pause they took."""
    with GcWatch() as watch:
        gc.collect(0)
        gc.collect(2)
    assert watch.collections[0] >= 1 and watch.collections[2] >= 1
    assert watch.pause_ms > 0.0  # two full passes over a live heap take some time
    assert not watch.installed


def test_life_samples_stages_and_frames():
    """A run fills stage histograms; frame() has one row per measured metric, units in names."""
    life = Life(LifeConfig(seed=1, metrics_every=4, events_per_tick=2))
    life.run(2_000)
    m = life.metrics
    assert 250 < m.tick.count < 800  # ~ticks / 4, drawn gaps
    assert all(m.stages[s].count == m.tick.count for s in STAGES)
    shares = [m.summary()[f"stage_{s}_share"] for s in STAGES]
    assert math.isclose(sum(shares), 1.0, rel_tol=1e-9)
    frame = m.frame()
    assert frame.schema == pl.Schema({"metric": pl.String, "value": pl.Float64})
    names = frame["metric"].to_list()
    assert len(names) == len(set(names))
    for name in ("tick_p99_us", "stage_io_share", "rss_mb", "gc_pause_ms"):
        assert name in names
    values = dict(zip(names, frame["value"].to_list(), strict=True))
    assert all(math.isfinite(v) and v >= 0 for v in values.values())
    stages = m.stage_frame()
    assert stages["stage"].to_list() == list(STAGES)


def test_metrics_keep_only_what_they_measure():
    """Metrics hold timings, RSS and GC; the organism's counters come from Life, not from them."""
    life = Life(LifeConfig(seed=1, metrics_every=4, events_per_tick=2))
    life.run(500)
    measured = life.metrics.summary()
    assert "events_processed" not in measured and "ticks" not in measured
    summary = life.metrics_summary()
    assert summary.items() >= {k: v for k, v in measured.items() if "rss" not in k}.items()
    assert summary["ticks"] == 500
    assert summary["events_processed"] == life.events_processed
    assert summary["memory_active"] == len(life.memory)


def test_each_stage_boundary_names_its_stage():
    """The mark constants both engines use are end_mark() of their stage, and every mark after
    the start is written, once, at its stage's place in the Python tick and in the kernel."""
    import inspect

    from lifelab.life import loop
    from lifelab.observe import metrics

    assert len(STAGES) + 1 == N_MARKS
    assert [end_mark(s) for s in STAGES] == list(range(1, N_MARKS))
    assert metrics.MARK_START == 0
    tick = inspect.getsource(loop.Life._tick)
    for stage in STAGES:
        assert getattr(metrics, f"MARK_{stage.upper()}") == end_mark(stage)
        assert getattr(loop, f"MARK_{stage.upper()}") == end_mark(stage)
        assert tick.count(f"m[MARK_{stage.upper()}] = perf_counter_ns()") == 1, stage
    kernel = pytest.importorskip("lifelab.life.kernel")  # needs numba
    assert kernel.MARK_START == 0
    run_ticks = inspect.getsource(kernel)
    for stage in STAGES:
        assert getattr(kernel, f"MARK_{stage.upper()}") == end_mark(stage)
        assert run_ticks.count(f"mk[MARK_{stage.upper()}] = ") == 1, stage


def test_metrics_do_not_change_the_trajectory():
    """Timing every tick, every 16th, or none gives the same digest."""
    digests = set()
    for every in (0, 1, 16):
        life = Life(LifeConfig(seed=9, metrics_every=every, events_per_tick=20))
        life.run(1_500)
        digests.add(life.digest())
    assert len(digests) == 1


def test_metrics_off_records_nothing():
    """metrics_every=0 leaves the histograms empty and installs no gc callback."""
    life = Life(LifeConfig(seed=1, metrics_every=0))
    before = len(gc.callbacks)
    life.run(500)
    assert life.metrics.tick.count == 0
    assert len(gc.callbacks) == before


def test_gc_callback_removed_after_run():
    """The gc callback lives only while the organism runs."""
    life = Life(LifeConfig(seed=1))
    before = list(gc.callbacks)
    life.run(100)
    assert gc.callbacks == before


@pytest.mark.parametrize("every", [1, 7])
def test_sampling_survives_failing_stages(every, monkeypatch):
    """A stage raising on a sampled tick does not stop later sampling."""
    life = Life(LifeConfig(seed=2, metrics_every=every, engine="python"))  # a patched stage
    calls = {"n": 0}
    original = life._maybe_echo

    def flaky():
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("boom")
        original()

    monkeypatch.setattr(life, "_maybe_echo", flaky)
    life.run(300)
    assert life.errors["RuntimeError"] == 100
    assert life.metrics.tick.count > 0


@given(st.lists(st.integers(0, 2**50), min_size=1, max_size=300))
def test_record_many_equals_record_one_by_one(values):
    """The vectorised fold uses exactly the buckets of record()."""
    one, many = LogHistogram(), LogHistogram()
    for v in values:
        one.record(v)
    many.record_many(np.array(values, dtype=np.int64))
    assert one.counts == many.counts
    assert (one.count, one.total, one.max) == (many.count, many.total, many.max)


def test_the_compiled_engine_times_every_stage_of_sampled_ticks():
    """The kernel's cycle-counter samples fill every stage but io, in ns, with sane totals."""
    life = Life(LifeConfig(seed=2, metrics_every=4, events_per_tick=8.0))
    if life.engine != "compiled":
        pytest.skip("numba is not installed")
    life.run(4_000)
    frame = life.metrics.stage_frame()
    assert frame["samples"].min() > 500
    busy = frame.filter(frame["stage"] != "io")
    assert (busy["mean_us"] > 0).all()
    assert abs(frame["share"].sum() - 1.0) < 1e-9
    tick = life.metrics.tick
    assert tick.count == frame["samples"][0]
    assert tick.mean >= sum(h.mean for h in life.metrics.stages.values()) * 0.99
