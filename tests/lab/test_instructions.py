"""Instruction counts under valgrind: parsing, differencing, a real run, the missing-tool error."""

import json
import shutil

import pytest

from lifelab.cli import main
from lifelab.lab import instructions
from lifelab.lab.instructions import (
    VALGRIND_MISSING,
    InstructionRun,
    ValgrindMissing,
    aa_ratio,
    bench_loop_instructions,
    bench_memory_instructions,
    loop_runs,
    parse_cachegrind,
    per_op,
    repeatability,
    spread,
)

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason=VALGRIND_MISSING)

OUT_FILE = """\
desc: I1 cache:         32768 B, 64 B, 8-way associative
desc: D1 cache:         32768 B, 64 B, 8-way associative
desc: LL cache:         268435456 B, 64 B, direct-mapped
cmd: /usr/bin/python3 -m lifelab.lab._instructions_worker {}
events: Ir
fl=/build/python3.11/Python/ceval.c
fn=_PyEval_EvalFrameDefault
1 17
summary: 1000581472
"""
MANY_EVENTS = "events: Dr Ir Dw\nsummary: 5 1234 7\n"
STDERR = """\
==24777== Cachegrind, a cache and branch-prediction profiler
==24777== Command: /work/main/.venv/bin/python t.py python 1000
==24777==
--24777-- warning: L3 cache found, using its data for the LL simulation.
==24777==
==24777== I   refs:      1,000,581,472
"""
STDERR_NEW = "==1== I refs:        2,949,646,903\n"  # valgrind >= 3.21 spacing


def test_the_out_file_summary_is_the_total():
    """The ``summary:`` line gives the total, in the column of ``Ir``."""
    assert parse_cachegrind(OUT_FILE) == 1_000_581_472
    assert parse_cachegrind(MANY_EVENTS) == 1234


def test_the_stderr_i_refs_line_is_the_total():
    """valgrind's ``I refs`` line on stderr, with thousands separators, old and new spacing."""
    assert parse_cachegrind(STDERR) == 1_000_581_472
    assert parse_cachegrind(STDERR_NEW) == 2_949_646_903


def test_output_without_a_total_is_refused():
    with pytest.raises(ValueError, match="no instruction total"):
        parse_cachegrind("==1== Command: python\n")


def test_differencing_cancels_start_up():
    """(I(n2) - I(n1)) / (n2 - n1), and per event over the events of the extra ticks."""
    start_up, per_tick = 900_000_000, 80_000
    short = InstructionRun(2_000, start_up + 2_000 * per_tick, events=2_049)
    long = InstructionRun(12_000, start_up + 12_000 * per_tick, events=12_289)
    out = per_op(short, long)
    assert out["instructions_per_op"] == per_tick
    assert out["instructions_per_event"] == pytest.approx(10_000 * per_tick / 10_240)


def test_per_event_is_none_without_events():
    out = per_op(InstructionRun(2, 100), InstructionRun(12, 200))
    assert out == {"instructions_per_op": 10.0, "instructions_per_event": None}


def test_the_long_run_must_do_more():
    with pytest.raises(ValueError, match="more ops"):
        per_op(InstructionRun(5, 100), InstructionRun(5, 200))


def test_loop_runs_defaults_and_ticks():
    """``ticks`` sets n2 - n1; each engine has its own defaults."""
    assert loop_runs("python") == instructions.DEFAULT_LOOP_RUNS["python"]
    assert loop_runs("compiled") == instructions.DEFAULT_LOOP_RUNS["compiled"]
    n1, n2 = loop_runs("python", 500)
    assert n2 - n1 == 500
    assert loop_runs("python", 500, 100) == (100, 600)
    with pytest.raises(ValueError, match="ticks"):
        loop_runs("python", 0)


def test_spread_repeatability_and_aa():
    """min/median/max and the relative spread; A/A is the ratio of two batches' medians."""
    assert spread([3.0, 1.0, 2.0]) == {
        "values": [3.0, 1.0, 2.0],
        "min": 1.0,
        "median": 2.0,
        "max": 3.0,
        "relative_spread": 1.0,
    }
    values = iter([10.0, 11.0, 9.0, 10.0])
    out = repeatability(lambda: next(values), repeats=4)
    assert out["median"] == 10.0 and out["relative_spread"] == pytest.approx(0.2)
    series = iter([100.0, 102.0, 100.0, 102.0, 100.0, 102.0])
    aa = aa_ratio(lambda: next(series), repeats=3)
    assert aa["a"]["values"] == [100.0] * 3
    assert aa["ratio_of_medians"] == pytest.approx(1.02)


def test_missing_valgrind_is_one_line_and_bad_input(monkeypatch, capsys):
    """Without valgrind: ValgrindMissing (an ImportError), and the CLI exits 2 with one line."""
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(ValgrindMissing, match="apt-get install valgrind") as caught:
        bench_loop_instructions(engine="python", ticks=10)
    assert isinstance(caught.value, ImportError)
    assert str(caught.value) == VALGRIND_MISSING
    assert main(["bench", "loop", "--instructions", "--engine", "python"]) == 2
    err = capsys.readouterr().err
    assert err == f"lifelab bench loop: error: {VALGRIND_MISSING}\n"
    assert main(["bench", "memory", "--instructions"]) == 2


def test_instructions_refuse_a_run_directory():
    with pytest.raises(ValueError, match="without a run directory"):
        bench_loop_instructions(engine="python", snapshot_every=100)


@needs_valgrind
def test_a_real_run_is_positive_and_repeats():
    """The Python engine's instructions per tick, twice, agree within 2 % (PYTHONHASHSEED=0)."""
    options = {"engine": "python", "ticks": 400, "short_ticks": 100, "warmup": 50}
    a = bench_loop_instructions(**options)
    b = bench_loop_instructions(**options)
    assert a["engine"] == "python"
    assert a["instructions_per_tick"] > 0 and a["instructions_per_event"] > 0
    assert b["instructions_per_tick"] == pytest.approx(a["instructions_per_tick"], rel=0.02)
    assert [r["ticks"] for r in a["instruction_runs"]] == [100, 500]
    assert a["instructions_tool"].startswith("cachegrind 3.")


@needs_valgrind
def test_cli_bench_loop_instructions_json_keys(monkeypatch, capsys):
    """``bench loop --instructions --json``: the instruction keys (valgrind runs faked here)."""

    def fake(spec, **_):
        run = InstructionRun(spec["ticks"], 10**9 + 5_000 * spec["ticks"], 2 * spec["ticks"])
        return run, {"ops": spec["ticks"], "events": run.events, "engine": "python"}

    monkeypatch.setattr(instructions, "count_instructions", fake)
    code = main(["bench", "loop", "--instructions", "--engine", "python", "--ticks", "50"])
    assert code == 0
    main(["bench", "loop", "--instructions", "--engine", "python", "--ticks", "50", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "instructions_per_tick",
        "instructions_per_event",
        "instructions_tool",
        "instruction_runs",
    ):
        assert key in out
    assert out["instructions_per_tick"] == 5_000
    assert out["instructions_per_event"] == 2_500
    assert out["ticks"] == 50 and len(out["instruction_runs"]) == 2
    main(["bench", "loop", "--instructions", "--engine", "python", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    n1, n2 = instructions.DEFAULT_LOOP_RUNS["python"]
    assert out["ticks"] == n2 - n1  # without --ticks: the engine's default, not 200 000


def test_cli_bench_memory_instructions_entries(monkeypatch, capsys):
    """``bench memory --instructions`` defaults to MEMORY_ENTRIES; ``--entries`` overrides."""
    seen = []
    monkeypatch.setattr(
        instructions, "bench_memory_instructions", lambda **kw: seen.append(kw) or {"ok": 1}
    )
    assert main(["bench", "memory", "--instructions", "--json"]) == 0
    assert main(["bench", "memory", "--instructions", "--entries", "1000000", "--json"]) == 0
    assert [kw["entries"] for kw in seen] == [instructions.MEMORY_ENTRIES, 1_000_000]


def test_cli_refuses_instructions_with_persistence(capsys):
    args = ["bench", "loop", "--instructions", "--engine", "python", "--snapshot-every", "10"]
    assert main(args) == 2
    assert "--instructions counts the bare loop" in capsys.readouterr().err


@needs_valgrind
@pytest.mark.slow
def test_memory_ops_are_counted():
    """Decay passes and spilled entries on a small store: positive, per-entry decay below 1 k."""
    out = bench_memory_instructions(entries=2_000, ops=("decay", "spill"))
    assert out["instructions_per_decay_pass"] > 0
    assert 0 < out["instructions_per_decay_entry"] < 1_000
    assert out["instructions_per_spilled_entry"] > 0
    assert out["instructions_per_search"] is None
    assert set(out["instruction_runs"]) == {"decay", "spill"}


def test_the_resume_worker_repeats_the_same_ticks_from_the_same_bytes(tmp_path, capsys):
    """Kind ``resume``: a run of 60 ticks does the 30 of a shorter run and 30 more, as one
    continuous resume does, and the kept state is not changed (each run resumes a copy)."""
    from lifelab.config import LifeConfig
    from lifelab.lab import _instructions_worker as worker
    from lifelab.life.loop import Life

    state = tmp_path / "state"
    config = LifeConfig(
        engine="python",
        memory_capacity=200,
        events_per_tick=2.0,
        snapshot_every=0,
        log_every=0,
        run_dir=str(state),
    )
    with Life(config) as life:
        life.run(300)  # memory full: rows spill to the archive every tick

    def contents():
        return {p.relative_to(state): p.read_bytes() for p in state.rglob("*") if p.is_file()}

    kept = contents()
    short = worker.run_resume({"kind": "resume", "run_dir": str(state), "ticks": 30})
    long = worker.run_resume({"kind": "resume", "run_dir": str(state), "ticks": 60})
    assert contents() == kept
    shutil.copytree(state, tmp_path / "copy")
    with Life.resume(tmp_path / "copy") as life:
        start = life.events_processed
        life.run(30)
        first = life.events_processed - start
        life.run(30)
        both = life.events_processed - start
    assert (short["ops"], short["events"]) == (30, first)
    assert (long["ops"], long["events"]) == (60, both)
    assert 0 < first < both and short["engine"] == long["engine"] == "python"
    assert short["writer_wakeups"] >= 1  # the archive writer took the spilled rows
    spec = {"kind": "resume", "run_dir": str(state), "ticks": 30}
    assert worker.main([json.dumps(spec)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (printed["ops"], printed["events"]) == (30, first)
