"""bench loop: keys, engines and where the tick latency comes from; nothing asserts on speed."""

from __future__ import annotations

import json
import math

import pytest

from lifelab.cli import main
from lifelab.config import LifeConfig
from lifelab.lab.bench import KERNEL_LATENCY, PYTHON_LATENCY, bench_loop, measure
from lifelab.life.loop import Life

KEYS = {
    "engine",
    "latency_source",
    "latency_samples",
    "ticks",
    "events",
    "wall_s",
    "ticks_per_s",
    "events_per_s",
    "tick_p50_us",
    "tick_p99_us",
    "tick_max_us",
    "peak_rss_mb",
    "gc_collections",
    "gc_pause_ms",
    "rate_by_decile",
}
SOURCES = {"python": PYTHON_LATENCY, "compiled": KERNEL_LATENCY}


def _check_latency(out: dict) -> None:
    for key in ("tick_p50_us", "tick_p99_us", "tick_max_us"):
        assert isinstance(out[key], float) and math.isfinite(out[key]) and out[key] > 0, key
    assert out["tick_p50_us"] <= out["tick_p99_us"] <= out["tick_max_us"]
    assert isinstance(out["latency_samples"], int) and out["latency_samples"] > 0


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_cli_bench_loop_reports_engine_and_latency_source(engine, capsys):
    """bench loop --engine E --json has every key, the engine that ran and its latency source."""
    assert main(["bench", "loop", "--engine", engine, "--ticks", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= KEYS
    assert out["engine"] == engine
    assert out["latency_source"] == SOURCES[engine]
    assert out["ticks"] == 200 and len(out["rate_by_decile"]) == 10
    _check_latency(out)


def test_python_latency_times_every_tick_of_the_pass():
    """The Python engine's latency pass times each of its ticks from Python."""
    out = bench_loop(ticks=100, warmup=10, latency_ticks=50, engine="python")
    assert out["latency_source"] == PYTHON_LATENCY
    assert out["latency_samples"] == 50
    _check_latency(out)


def test_compiled_latency_comes_from_the_kernels_sampled_ticks():
    """The compiled engine's percentiles are the kernel's own samples (about 1 tick in k)."""
    out = bench_loop(ticks=2_000, warmup=100, latency_ticks=2_000, engine="compiled")
    assert out["engine"] == "compiled"
    assert out["latency_source"] == KERNEL_LATENCY
    # metrics_every=32: gaps average 32 ticks over the 4 000 measured ticks, never every tick
    assert 0 < out["latency_samples"] < 4_000
    _check_latency(out)


def test_compiled_without_sampling_falls_back_to_the_python_timer():
    """metrics_every=0 leaves the kernel nothing to report: the Python timer is used."""
    out = bench_loop(ticks=100, warmup=10, latency_ticks=20, engine="compiled", metrics_every=0)
    assert out["engine"] == "compiled"
    assert out["latency_source"] == PYTHON_LATENCY and out["latency_samples"] == 20


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_baseline_works_for_both_engines(engine):
    """--baseline adds the bare CPython loop's rate and the ratio, whatever the engine."""
    out = bench_loop(ticks=100, warmup=10, latency_ticks=20, engine=engine, baseline=True)
    assert out["baseline_ticks_per_s"] > 0
    assert out["ratio_to_baseline"] == pytest.approx(
        out["ticks_per_s"] / out["baseline_ticks_per_s"]
    )


def test_cli_engine_and_set_engine_must_agree(capsys):
    """--engine and --set engine=… may both be given only if they agree (else exit 2)."""
    argv = ["bench", "loop", "--ticks", "10", "--engine", "python", "--set", "engine=compiled"]
    assert main(argv) == 2
    assert "disagree" in capsys.readouterr().err
    assert main(["bench", "loop", "--ticks", "10", "--set", "engine=python", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["engine"] == "python"


def test_bench_persisted_interleaves_runs_without_and_with_a_run_directory():
    """Both runs are timed in each round; the ratio is the ratio of the two medians; the
    persisted runs archived rows (so the run directory was really there)."""
    from lifelab.lab.bench import bench_persisted

    out = bench_persisted(ticks=2_000, rounds=2, snapshot_every=500, log_every=100, seed=3)
    assert out["rounds"] == 2 and len(out["round_ratios"]) == 2
    assert out["persist_ratio"] == out["persisted_ticks_per_s"] / out["ticks_per_s"]
    assert out["archive_rows_per_s"] > 0
    assert (out["snapshot_every"], out["log_every"]) == (500, 100)
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        bench_persisted(ticks=100, rounds=0)


def test_measure_runs_a_built_organism_as_bench_loop_does():
    """``measure``: no warm-up when asked, ten equal chunks, the latency pass on top."""
    life = Life(LifeConfig(seed=3, engine="python"))
    chunks = []
    try:
        out = measure(life, 105, warmup=0, latency_ticks=7, progress=chunks.append)
        assert set(out) >= KEYS
        assert out["ticks"] == 100 and chunks == [10] * 10 and len(out["rate_by_decile"]) == 10
        assert out["latency_source"] == PYTHON_LATENCY and out["latency_samples"] == 7
        assert life.state.ticks == 107
    finally:
        life.close()


def test_cli_bench_loop_variants_measure_the_workload_asked_for(monkeypatch, capsys):
    """Plain, --persisted and --instructions take the same workload options from the command
    line (events per tick, batch size, capacity, seed, engine)."""
    from lifelab.lab import bench, instructions

    seen = {}

    def record(name):
        def fake(**kw):
            seen[name] = kw
            return {"engine": kw.get("engine")}

        return fake

    monkeypatch.setattr(bench, "bench_loop", record("plain"))
    monkeypatch.setattr(bench, "bench_persisted", record("persisted"))
    monkeypatch.setattr(instructions, "bench_loop_instructions", record("instructions"))
    workload = ["--events-per-tick", "3", "--batch-size", "8", "--memory-capacity", "500"]
    common = ["bench", "loop", "--ticks", "100", *workload, "--seed", "7", "--engine", "python"]
    for extra in ([], ["--persisted"], ["--instructions"]):
        assert main([*common, *extra, "--json"]) == 0
    capsys.readouterr()
    for name in ("plain", "persisted", "instructions"):
        kw = seen[name]
        assert (kw["events_per_tick"], kw["batch_size"], kw["memory_capacity"]) == (3.0, 8, 500)
        assert (kw["seed"], kw["engine"], kw["ticks"]) == (7, "python", 100), name
