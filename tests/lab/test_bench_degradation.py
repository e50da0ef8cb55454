"""lifelab bench degradation: the first and last tenth of a run, resumed and timed side by side."""

from __future__ import annotations

import json
import shutil

import pytest

from lifelab.cli import main
from lifelab.lab import bench_degradation as module
from lifelab.lab import instructions
from lifelab.lab.bench_degradation import INSTRUCTION_TICKS_MAX, bench_degradation
from lifelab.lab.instructions import VALGRIND_MISSING, InstructionRun, ValgrindMissing

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason=VALGRIND_MISSING)
INSTRUCTION_KEYS = (
    "instructions_per_tick_start",
    "instructions_per_tick_end",
    "instructions_ratio",
    "instructions_tool",
    "instruction_ticks",
    "instruction_runs",
)


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
    assert all(out[key] is None for key in INSTRUCTION_KEYS)  # not counted unless asked


def _fake_valgrind(monkeypatch, per_tick):
    """Instruction counts without valgrind: ``per_tick[state]`` instructions a tick after a
    start-up of 10**9; returns the specs the counts were asked for."""
    asked = []

    def count_window(spec, key, n1, n2, **_):
        asked.append((spec, key, n1, n2))
        name = spec["run_dir"].rsplit("/", 1)[-1]
        runs = [InstructionRun(n, 10**9 + per_tick[name] * n, 2 * n) for n in (n1, n2)]
        return runs[0], runs[1], {"ops": n2, "events": 2 * n2, "engine": "python"}

    monkeypatch.setattr(instructions, "valgrind_version", lambda: "3.19.0")
    monkeypatch.setattr(instructions, "warm_up", lambda spec: ({}, {"engine": "python"}))
    monkeypatch.setattr(instructions, "count_window", count_window)
    return asked


def test_instructions_compare_both_states_over_one_window(monkeypatch, tmp_path):
    """Each state resumed and counted over ticks n1..n2; the ratio is start / end, so 0.8 when
    the end state does 1.25x the work (valgrind faked). Three more progress steps."""
    asked = _fake_valgrind(monkeypatch, {"start": 1_000, "end": 1_250})
    steps = []
    out = bench_degradation(
        ticks=1000,
        memory_capacity=50,
        engine="python",
        rounds=2,
        root=tmp_path,
        instructions=True,
        progress=steps.append,
    )
    assert [(spec["kind"], spec["run_dir"]) for spec, *_ in asked] == [
        ("resume", str(tmp_path / "start")),
        ("resume", str(tmp_path / "end")),
    ]
    assert {(key, n1, n2) for _, key, n1, n2 in asked} == {("ticks", 100, 200)}
    assert out["instructions_per_tick_start"] == 1_000
    assert out["instructions_per_tick_end"] == 1_250
    assert out["instructions_ratio"] == pytest.approx(0.8)
    assert out["instruction_ticks"] == 100 and out["instructions_tool"] == "cachegrind 3.19.0"
    assert [r["ops"] for r in out["instruction_runs"]["end"]] == [100, 200]
    assert len(steps) == 2 + 3 + 3  # rounds + 3, and the warm-up and two counts


def test_the_counted_window_is_the_sample_capped_by_engine():
    """n2 - n1 is sample_ticks up to the engine's cap, after 1 000 ticks (or the window)."""
    assert module._window("python", 100) == (100, 200)
    assert module._window("python", 2_000) == (1_000, 3_000)
    assert module._window("python", 50_000) == (1_000, 1_000 + INSTRUCTION_TICKS_MAX["python"])
    assert module._window("compiled", 50_000) == (1_000, 51_000)
    assert module._window("compiled", 10**6) == (1_000, 1_000 + INSTRUCTION_TICKS_MAX["compiled"])


def test_cli_instructions_json_keys(monkeypatch, capsys):
    """``bench degradation --instructions --json`` carries the instruction keys."""
    _fake_valgrind(monkeypatch, {"start": 2_000, "end": 2_000})
    argv = ["bench", "degradation", "--ticks", "400", "--memory-capacity", "50", "--rounds", "2"]
    assert main([*argv, "--engine", "python", "--instructions", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(INSTRUCTION_KEYS) <= set(out)
    assert out["instructions_ratio"] == 1.0 and out["instruction_ticks"] == 40


def test_missing_valgrind_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    """Without valgrind: ValgrindMissing before the long run; the CLI exits 2 with one line."""
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(ValgrindMissing):
        bench_degradation(ticks=1000, root=tmp_path / "never", instructions=True)
    assert not (tmp_path / "never").exists()
    argv = ["bench", "degradation", "--ticks", "400", "--rounds", "2", "--instructions"]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"lifelab bench degradation: error: {VALGRIND_MISSING}\n"


@needs_valgrind
@pytest.mark.slow
def test_a_real_count_of_a_short_run_is_near_one():
    """The Python engine under valgrind (~30 s): both states' counts are positive and, on a run
    this short (the memory far from full), about equal."""
    out = bench_degradation(
        ticks=1000, memory_capacity=10_000, engine="python", rounds=2, instructions=True
    )
    assert out["instruction_ticks"] == 100
    assert out["instructions_per_tick_start"] > 10_000
    assert out["instructions_per_tick_end"] > 10_000
    # ±1 % at the bench's usual windows; this one is 100 ticks, where the archive writer's
    # wake-ups (~0.1 M instructions each) move a count by a few percent
    assert 0.85 < out["instructions_ratio"] < 1.15
    assert out["instructions_tool"].startswith("cachegrind 3.")
