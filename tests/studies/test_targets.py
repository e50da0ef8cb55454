"""Targets are judged from the tables, never typed in: pass, fail and "no data" by construction."""

from __future__ import annotations

import json

import polars as pl
import pytest

from lifelab.lab.results import ResultsSchemaError, read_table, write_table
from lifelab.studies.targets import (
    PLAIN_TABLES,
    TABLE_VERSION,
    TARGETS,
    check_targets,
    load_tables,
    run_import_trials,
)


def _trial(events, metrics_every, ticks_per_s, *, capacity=10_000, ratio=None):
    return {
        "status": "ok",
        "events_per_tick": events,
        "memory_capacity": capacity,
        "batch_size": 64,
        "gc_mode": "default",
        "config_json": json.dumps({"metrics_every": metrics_every}),
        "ticks_per_s": ticks_per_s,
        "events_per_s": ticks_per_s * events,
        "last_decile_ratio": ratio,
    }


def _tables(fast: bool) -> dict[str, pl.DataFrame]:
    scale = 10.0 if fast else 1.0
    targets = pl.DataFrame(
        [
            _trial(1.0, 32, 30_000 * scale),
            _trial(1.0, 32, 31_000 * scale),
            _trial(1.0, 0, 31_000 * scale if fast else 40_000),  # metrics off
            _trial(64.0, 32, 4_000 * scale),
            _trial(1.0, 32, 20_000, capacity=100_000, ratio=0.99 if fast else 0.8),
        ]
    )
    io = pl.DataFrame(
        {
            "status": ["ok", "ok"],
            "config_json": [json.dumps({"snapshot_every": 1000}), "{}"],
            "tick_p99_us": [120.0 if fast else 400.0, 100.0],
        }
    )
    memory = pl.DataFrame(
        {
            "entries": [1_000, 1_000_000],
            "bytes_per_slot": [64, 64 if fast else 70],
            "decay_ms": [0.01, 2.0 if fast else 4.0],
            "archive_search_p99_ms": [0.1, 1.0 if fast else 9.0],
        }
    )
    realtime = pl.DataFrame(
        {
            "lateness_p99_ms": [0.5 if fast else 3.0] * 3,
            "drift_intervals": [0.1, 0.2, 0.1 if fast else 1.5],
            "cpu_percent": [0.5 if fast else 4.0] * 3,
        }
    )
    imports = pl.DataFrame({"import_ms": [20.0, 25.0, 30.0 if fast else 400.0]})
    machine = [1.0, 1.6, 0.8, 1.3, 1.1, 0.9, 1.5]  # a noisy machine: each round its own speed
    start = [1e6 * m for m in machine]
    degradation = pl.DataFrame(
        {
            "round": list(range(1, 8)),
            "start_ticks_per_s": start,
            "end_ticks_per_s": [s * (1.0 if fast else 0.8) for s in start],
        }
    )
    return {
        "degradation": degradation,
        "targets": targets,
        "io": io,
        "memory_scaling": memory,
        "realtime": realtime,
        "import_time": imports if fast else imports.with_columns(pl.col("import_ms") * 10),
    }


def test_every_target_passes_on_good_tables_and_fails_on_bad_ones():
    good = check_targets(_tables(fast=True))
    bad = check_targets(_tables(fast=False))
    assert good.height == bad.height == len(TARGETS)
    assert good["verdict"].to_list() == ["pass"] * len(TARGETS), good
    assert bad["verdict"].to_list() == ["fail"] * len(TARGETS), bad


def test_no_tables_means_no_data_not_a_pass():
    table = check_targets({})
    assert set(table["verdict"]) == {"no data"}
    assert table["measured"].null_count() == len(TARGETS)


def test_measured_values_come_from_the_tables():
    table = check_targets(_tables(fast=False))
    got = dict(zip(table["target"], table["measured"], strict=True))
    assert got["ticks/s, 1 event per tick"] == 30_500  # median of 30 000 and 31 000
    assert got["p99 tick with persistence on / off"] == pytest.approx(4.0)
    assert got["real-time 100 Hz: drift"] == 1.5  # the worst repeat
    assert got["import lifelab, cold"] == 250.0  # median of 200, 250, 4 000
    assert got["metrics overhead"] == pytest.approx(1 - 30_500 / 40_000)


def test_the_issue_7_thresholds():
    by_name = {t.name: t for t in TARGETS}
    assert by_name["ticks/s, 1 event per tick"].threshold == 250_000
    assert by_name["events/s, 64 per tick in batches of 64"].threshold == 1_500_000
    assert by_name["no degradation over a long run"].threshold == 0.97
    assert by_name["archive search p99 (type + time, limit 100)"].threshold == 5.0
    assert by_name["p99 tick with persistence on / off"].threshold == 1.5
    assert by_name["import lifelab, cold"].threshold == 150.0


def test_load_tables_reads_plain_tables_by_name(tmp_path):
    (tmp_path / "targets").mkdir()
    run_import_trials(repeats=1, out=tmp_path / "targets")
    pl.DataFrame({"entries": [1], "decay_ms": [1.0]}).write_parquet(
        tmp_path / "memory_scaling.parquet"
    )
    tables = load_tables(tmp_path)
    assert {"import_time", "memory_scaling"} <= set(tables)
    assert tables["import_time"]["import_ms"][0] > 0
    assert {"import_time", "realtime", "tick_scaling"} <= set(PLAIN_TABLES)


def test_target_tables_are_versioned_and_replace_only_their_own_kind(tmp_path):
    """run_import_trials writes through write_table (kind import_time) and replaces the last."""
    path = tmp_path / "import_time.parquet"
    pl.DataFrame({"import_ms": [1.0]}).write_parquet(path)  # an older, unversioned table
    run_import_trials(repeats=1, out=tmp_path)
    stored = read_table(path)
    assert (stored.kind, stored.version) == ("import_time", TABLE_VERSION)
    run_import_trials(repeats=1, out=tmp_path)  # the newest measurement replaces the last
    newer = tmp_path / "newer" / "import_time.parquet"
    write_table(stored.data, newer, kind="import_time", version=TABLE_VERSION + 1)
    with pytest.raises(ResultsSchemaError, match="newer than this lifelab reads"):
        load_tables(tmp_path)


def test_only_the_newest_sweep_that_measured_a_target_counts():
    """An old sweep (another commit) in the record never dilutes today's figure."""
    old = pl.DataFrame([_trial(1.0, 32, 1_000_000.0)]).with_columns(sweep_id=pl.lit("20260101T0"))
    new = pl.DataFrame([_trial(1.0, 32, 50_000.0)]).with_columns(sweep_id=pl.lit("20261127T0"))
    table = check_targets({"targets": pl.concat([old, new])})
    row = table.filter(pl.col("target") == "ticks/s, 1 event per tick").row(0, named=True)
    assert (row["measured"], row["verdict"]) == (50_000.0, "fail")


def test_the_long_run_target_is_undecided_while_its_interval_straddles_the_threshold():
    """Paired rounds whose end / start ratios scatter around 0.97: no verdict either way; the
    same scatter around 1.0 passes and around 0.8 fails. The decile ratio no longer decides."""

    def verdict(ratios):
        start = [1e6, 2e6, 1.5e6, 1.2e6, 1.8e6, 0.9e6, 1.1e6]
        table = pl.DataFrame(
            {
                "start_ticks_per_s": start,
                "end_ticks_per_s": [s * r for s, r in zip(start, ratios, strict=True)],
            }
        )
        rows = check_targets({"degradation": table}).filter(
            pl.col("target") == "no degradation over a long run"
        )
        return rows["verdict"][0], rows["measured"][0]

    scatter = [-0.08, 0.05, -0.03, 0.0, 0.07, -0.06, 0.02]
    assert verdict([0.97 + d for d in scatter])[0] == "undecided"
    assert verdict([1.10 + d / 4 for d in scatter])[0] == "pass"
    assert verdict([0.80 + d / 4 for d in scatter]) == ("fail", pytest.approx(0.8, abs=0.01))
    assert (
        check_targets({"targets": pl.DataFrame({"last_decile_ratio": [0.5]})}).filter(
            pl.col("target") == "no degradation over a long run"
        )["verdict"][0]
        == "no data"
    )


def test_noise_summary_and_its_figure():
    """The spread of each measure, relative to its median, and one dot per repeat."""
    from lifelab.lab.plots import spread_by_metric
    from lifelab.studies.targets import noise_summary

    df = pl.DataFrame(
        {
            "metric": ["wall_ns_per_tick"] * 3 + ["instructions_per_tick"] * 3,
            "value": [90.0, 100.0, 120.0, 1000.0, 1000.0, 1001.0],
        }
    ).with_columns(relative=pl.col("value") / pl.col("value").median().over("metric"))
    summary = {r["metric"]: r for r in noise_summary(df).iter_rows(named=True)}
    assert summary["wall_ns_per_tick"]["relative_spread"] == pytest.approx(0.3)
    assert summary["instructions_per_tick"]["relative_spread"] == pytest.approx(0.001)
    assert summary["wall_ns_per_tick"]["n"] == 3
    fig = spread_by_metric(df)
    (ax,) = fig.axes
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["instructions per tick", "wall ns per tick"]
    dots, _unit_line = ax.lines[:2], ax.lines[2]
    assert [len(line.get_xdata()) for line in dots] == [3, 3]
    assert [line.get_label() for line in dots] == [
        "instructions_per_tick: spread 0.10%",
        "wall_ns_per_tick: spread 30.00%",
    ]


def _degradation_run(**kwargs):
    """What bench_degradation returns, without running it (3 rounds; counts when asked)."""
    counted = kwargs.get("instructions", False)
    return {
        "start_rates": [1.0e6, 1.2e6, 0.9e6],
        "end_rates": [0.99e6, 1.2e6, 0.9e6],
        "sample_ticks": kwargs["ticks"] // 10,
        "instructions_per_tick_start": 2_000.0 if counted else None,
        "instructions_per_tick_end": 2_040.0 if counted else None,
        "instructions_ratio": 2_000 / 2_040 if counted else None,
        "instructions_tool": "cachegrind 3.19.0" if counted else None,
        "instruction_ticks": 20_000 if counted else None,
    }


@pytest.mark.parametrize("counted", [True, False])
def test_the_degradation_table_round_trips_with_and_without_counts(counted, monkeypatch, tmp_path):
    """run_degradation_trials stores the instruction columns (null when not counted); the
    long-run target's verdict is the rounds', its "measured by" names the counts when present."""
    from lifelab.lab import bench_degradation, instructions
    from lifelab.studies.targets import DEGRADATION_VERSION, run_degradation_trials

    monkeypatch.setattr(bench_degradation, "bench_degradation", _degradation_run)
    monkeypatch.setattr(instructions.shutil, "which", lambda name: "/usr/bin/valgrind")
    written = run_degradation_trials(
        ticks=200_000, rounds=3, instructions=counted, out=tmp_path / "targets"
    )
    stored = read_table(tmp_path / "targets" / "degradation.parquet")
    assert (stored.kind, stored.version, stored.verified) == ("degradation", 2, True)
    assert DEGRADATION_VERSION == 2
    tables = load_tables(tmp_path)
    assert tables["degradation"].equals(written)
    assert tables["degradation"]["instructions_ratio"].dtype == pl.Float64
    assert tables["degradation"]["instruction_ticks"].dtype == pl.Int64
    row = check_targets(tables).filter(pl.col("target") == "no degradation over a long run")
    how = next(t.how for t in TARGETS if t.name == "no degradation over a long run")
    assert row["verdict"][0] in ("pass", "undecided", "fail")
    if counted:
        assert tables["degradation"]["instructions_ratio"].to_list() == [2_000 / 2_040] * 3
        assert row["measured_by"][0] == (
            f"{how}; instructions per tick (valgrind, ticks 20,000 of each state): "
            "2,000 start, 2,040 end, ratio 0.980"
        )
    else:
        assert tables["degradation"]["instructions_ratio"].null_count() == 3
        assert row["measured_by"][0] == how


def test_a_version_1_degradation_table_reads_with_null_counts(tmp_path):
    """Tables written before the instruction columns still read, with the columns null, and
    judge the target as before; a version newer than this lifelab reads is refused."""
    start = [1.0e6, 1.1e6, 0.9e6]
    old = pl.DataFrame(
        {
            "round": [1, 2, 3],
            "start_ticks_per_s": start,
            "end_ticks_per_s": [s * 0.8 for s in start],
            "ticks": [1_000_000] * 3,
            "sample_ticks": [100_000] * 3,
            "memory_capacity": [100_000] * 3,
        }
    )
    write_table(old, tmp_path / "targets" / "degradation.parquet", kind="degradation", version=1)
    df = load_tables(tmp_path)["degradation"]
    assert df["instructions_per_tick_start"].null_count() == 3
    assert df["instructions_tool"].dtype == pl.String
    assert df.drop(
        "instructions_per_tick_start",
        "instructions_per_tick_end",
        "instructions_ratio",
        "instructions_tool",
        "instruction_ticks",
    ).equals(old)
    row = check_targets({"degradation": df}).filter(
        pl.col("target") == "no degradation over a long run"
    )
    assert (row["verdict"][0], row["measured"][0]) == ("fail", pytest.approx(0.8))
    newer = tmp_path / "z-newer" / "degradation.parquet"  # sorts last: the one read
    write_table(old, newer, kind="degradation", version=3)
    with pytest.raises(ResultsSchemaError, match="newer than this lifelab reads"):
        load_tables(tmp_path)


def test_degradation_trials_without_valgrind_warn_and_time(monkeypatch, tmp_path):
    """instructions=True without valgrind: a warning, the rounds alone, null counts."""
    from lifelab.lab import bench_degradation, instructions
    from lifelab.studies.targets import run_degradation_trials

    monkeypatch.setattr(bench_degradation, "bench_degradation", _degradation_run)
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="apt-get install valgrind"):
        df = run_degradation_trials(ticks=200_000, rounds=3, instructions=True)
    assert df["instructions_ratio"].null_count() == 3 and df.height == 3
