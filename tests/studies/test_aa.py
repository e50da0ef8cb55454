"""The A/A study: two arms interleaved into two tables, their verdicts on both measures, and the
report's A/A section."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support.synthetic import make_results

from lifelab.lab.instructions import ValgrindMissing
from lifelab.lab.results import write_results
from lifelab.studies import aa, report

PAIR = "20260101T000000Z-0000abcd"


def _arm(arm: str, instructions: float | None, *, seed: int, events_per_tick: float = 8.0):
    """One arm of five trials of one cell: wall clock with ~10 % noise, counts within 0.001 %."""
    df = make_results(
        batch_sizes=(16,),
        gc_modes=("default",),
        repeats=5,
        seed=seed,
        suite=aa.SUITE,
        sweep_id=f"{PAIR}-{arm}",
    )
    rng = np.random.default_rng(seed)
    df = df.with_columns(
        ticks_per_s=pl.Series(1_000.0 * np.exp(rng.normal(0.0, 0.1, df.height))),
        events_per_tick=pl.lit(events_per_tick),
        seed=pl.lit(0, pl.Int64),  # one cell: the organism's seed is the same in every repeat
    )
    if instructions is not None:
        counts = instructions * (1.0 + rng.normal(0.0, 1e-5, df.height))
        df = df.with_columns(
            instructions_per_tick=pl.Series(counts),
            instructions_tool=pl.lit("cachegrind 3.19.0"),
        )
    return df


def _write_pair(folder, a, b):
    for arm, df in zip(aa.ARMS, (a, b), strict=True):
        write_results(
            df, folder / f"{PAIR}-{arm}.parquet", suite=aa.SUITE, sweep_id=f"{PAIR}-{arm}"
        )


def test_an_aa_pair_says_no_change_on_both_measures(tmp_path):
    """Identical counts and noisy wall clock: no significant change on both, each naming its
    measure; the wall clock does not decide where counts exist."""
    _write_pair(tmp_path, _arm("A", instructions=78_800.0, seed=1), _arm("B", 78_800.0, seed=2))
    assert aa.find_pairs(tmp_path) == [PAIR]
    pair = aa.load_pair(tmp_path)
    table = aa.verdicts(pair)
    rows = {r["metric"]: r for r in table.iter_rows(named=True)}
    assert set(rows) == set(aa.METRICS)
    assert rows["instructions_per_tick"]["measure"] == "instruction count"
    assert rows["ticks_per_s"]["measure"] == "wall clock"
    assert {r["verdict"] for r in rows.values()} == {"no significant change"}
    assert rows["instructions_per_tick"]["decides"] and not rows["ticks_per_s"]["decides"]
    lines = aa.sentences(table)
    assert lines[0].startswith("instructions_per_tick (instruction count): B/A 1.0000")
    assert "not deciding" in lines[1] and "(wall clock)" in lines[1]


def test_a_planted_three_percent_is_called_on_the_instruction_count(tmp_path):
    """Arm B with 3 % more work per tick: "slower" by instruction count; the wall clock, noisy,
    cannot call it. Cells differ in events_per_tick, so they are matched by engine and batch."""
    a = _arm("A", instructions=78_800.0, seed=3)
    b = _arm("B", instructions=78_800.0 * 1.03, seed=4, events_per_tick=8.24)
    _write_pair(tmp_path, a, b)
    table = aa.verdicts(aa.load_pair(tmp_path), by=("engine", "batch_size"))
    rows = {r["metric"]: r for r in table.iter_rows(named=True)}
    assert rows["instructions_per_tick"]["verdict"] == "slower"
    assert rows["instructions_per_tick"]["ratio"] == pytest.approx(1.03, rel=1e-4)
    assert rows["ticks_per_s"]["verdict"] == "no significant change"


def test_without_counts_only_the_wall_clock_is_judged(tmp_path):
    _write_pair(tmp_path, _arm("A", instructions=None, seed=1), _arm("B", None, seed=2))
    table = aa.verdicts(aa.load_pair(tmp_path))
    assert table["metric"].to_list() == ["ticks_per_s"]
    assert table["decides"].to_list() == [True]
    assert len(aa.plot_pair(aa.load_pair(tmp_path)).axes) == 1


def test_load_pair_finds_the_newest_whole_pair(tmp_path):
    """Only pairs with both arms count; the newest by id is the default; none is None."""
    assert aa.load_pair(tmp_path) is None and aa.find_pairs(tmp_path / "missing") == []
    _write_pair(tmp_path, _arm("A", instructions=1.0, seed=1), _arm("B", 1.0, seed=2))
    newer = "20270101T000000Z-0000ffff"
    df = _arm("A", instructions=1.0, seed=1)
    write_results(df, tmp_path / f"{newer}-A.parquet", suite=aa.SUITE, sweep_id=f"{newer}-A")
    assert aa.find_pairs(tmp_path) == [PAIR]  # the newer one has no arm B
    assert aa.load_pair(tmp_path).pair == PAIR
    assert aa.load_pair(tmp_path, newer) is None
    assert len(aa.plot_pair(aa.load_pair(tmp_path)).axes) == 2


def test_run_pair_interleaves_the_arms_and_writes_two_tables(tmp_path):
    """Two real trials a side (no valgrind): ABBA order, one table per arm with its own sweep id
    and the suite asked for; b_changes changes arm B only."""
    pair = aa.run_pair(
        tmp_path,
        {"engine": "python"},
        base={"ticks": 100, "warmup_ticks": 10},
        repeats=2,
        b_changes={"batch_size": 32},
        instructions=False,
        suite="aa_planted",
        progress=False,
    )
    assert [p.name for p in pair.paths] == [f"{pair.pair}-A.parquet", f"{pair.pair}-B.parquet"]
    assert all(p.is_file() for p in pair.paths)
    assert pair.a["batch_size"].to_list() == [64, 64] and pair.b["batch_size"].to_list() == [32, 32]
    assert pair.a["suite"].unique().to_list() == ["aa_planted"]
    assert pair.a["sweep_id"][0] == f"{pair.pair}-A" and pair.b["sweep_id"][0] == f"{pair.pair}-B"
    assert (pair.a["status"] == "ok").all() and (pair.b["status"] == "ok").all()
    # ABBA: A ran before B in the first round and after it in the second.
    a0, a1 = pair.a["started_at"].to_list()
    b0, b1 = pair.b["started_at"].to_list()
    assert a0 < b0 < b1 < a1
    assert pair.a["instructions_per_tick"].null_count() == 2
    assert aa.load_pair(tmp_path).pair == pair.pair


def test_run_pair_without_valgrind_writes_nothing(monkeypatch, tmp_path):
    from lifelab.lab import instructions

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(ValgrindMissing):
        aa.run_pair(tmp_path / "out", {"engine": "python"}, base={"ticks": 100}, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_report_has_an_aa_section_only_with_a_pair(tmp_path):
    """The report's A/A section gives both measures' verdicts, and the planted run's; a results
    folder without an A/A run has no such section."""
    root = tmp_path / "results"
    other = make_results(batch_sizes=(16,), gc_modes=("default",), repeats=2)
    write_results(other, root / "batch_gc" / "x.parquet", suite="batch_gc", sweep_id="x")
    readme = report.build_report(root, tmp_path / "out", timestamp=False)
    assert "## A/A check" not in readme.read_text(encoding="utf-8")
    _write_pair(root / "aa", _arm("A", instructions=78_800.0, seed=1), _arm("B", 78_800.0, seed=2))
    planted = root / "aa" / "planted"
    b = _arm("B", instructions=78_800.0 * 1.03, seed=4, events_per_tick=8.24)
    _write_pair(planted, _arm("A", instructions=78_800.0, seed=3), b)
    text = report.build_report(root, tmp_path / "out", timestamp=False).read_text(encoding="utf-8")
    section = text[text.index("## A/A check") : text.index("## Sources")]
    assert "- instructions_per_tick (instruction count): B/A 1.0000" in section
    assert "- ticks_per_s (wall clock):" in section
    assert "arm B lives 3.0% more events per tick" in section
    assert section.count(": slower") == 1


def test_the_smoke_experiment_is_registered():
    """The A/A experiment is part of the smoke suite with counts and five trials a side."""
    from lifelab.lab.experiment import find_root, load_experiment

    experiment = load_experiment(find_root() / "experiments" / "aa_check.toml")
    assert experiment.suite == aa.SUITE
    smoke = {**experiment.parameters, **experiment.smoke}
    assert smoke["MEASURE"] is True and smoke["REPEATS"] >= 5
