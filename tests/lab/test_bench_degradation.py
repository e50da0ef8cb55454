"""lifelab bench degradation: the first and last tenth of a run, resumed and timed side by side."""

from __future__ import annotations

import json

import pytest

from lifelab.cli import main
from lifelab.lab.bench_degradation import bench_degradation


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_both_states_are_timed_in_every_round(engine, tmp_path):
    """Start (tick 0, empty memory) and end (tick 900, memory full) are each timed `rounds`
    times; the ratio is the median rates' and lies in its interval."""
    out = bench_degradation(
        ticks=1000,
        memory_capacity=200,
        events_per_tick=2.0,
        engine=engine,
        rounds=3,
        root=tmp_path,
    )
    assert out["sample_ticks"] == 100 and out["end_tick"] == 900 and out["start_tick"] == 0
    assert out["start_memory_active"] == 0 and out["start_archive_size"] == 0
    assert 150 < out["end_memory_active"] <= 200 and out["end_archive_size"] > 1000
    assert len(out["round_ratios"]) == 3 and all(r > 0 for r in out["round_ratios"])
    assert out["ratio"] == pytest.approx(out["end_ticks_per_s"] / out["start_ticks_per_s"])
    assert out["ratio_ci_low"] <= out["ratio"] <= out["ratio_ci_high"]
    # the run directories were copies: the kept states are untouched by the timed rounds
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "end",
        "round-0",
        "round-1",
        "round-2",
        "round-3",
        "start",
    ]
    assert not any((tmp_path / "round-1").iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ticks": 10}, "ticks"),
        ({"ticks": 1000, "rounds": 1}, "rounds"),
        ({"ticks": 1000, "sample_ticks": 600}, "sample_ticks"),
        ({"ticks": 1000, "memory_capacity": -1}, "memory_capacity"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        bench_degradation(root=tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()


def test_cli_prints_one_json_object(capsys):
    argv = [
        "bench",
        "degradation",
        "--ticks",
        "400",
        "--memory-capacity",
        "50",
        "--rounds",
        "2",
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ticks"] == 400 and out["rounds"] == 2 and out["memory_capacity"] == 50
    assert {"ratio", "ratio_ci_low", "ratio_ci_high", "round_ratios"} <= set(out)
