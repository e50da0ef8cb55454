"""Tests of lifelab.lab.load: /proc parsing, steal and iowait shares, the loaded rule."""

import math

import polars as pl
import pytest

from lifelab import cli
from lifelab.lab import load
from lifelab.lab.schema import LOAD_COLUMNS

# A 2-CPU guest, trimmed from a real /proc/stat: the aggregate line, then per-CPU lines.
STAT_START = """\
cpu  1000 20 300 8000 100 5 15 60 40 0
cpu0 500 10 150 4000 50 2 7 30 20 0
cpu1 500 10 150 4000 50 3 8 30 20 0
intr 123456 0 9 0
ctxt 987654
btime 1700000000
"""
# 1000 jiffies later: 40 of them stolen, 30 waiting on I/O.
STAT_END = """\
cpu  1500 20 400 8330 130 5 15 100 90 0
cpu0 750 10 200 4165 65 2 7 50 45 0
cpu1 750 10 200 4165 65 3 8 50 45 0
"""
LOADAVG = "0.52 0.40 0.31 2/345 6789\n"


def test_parse_loadavg_reads_the_one_minute_average():
    """The first field of /proc/loadavg is the 1-minute load average."""
    assert load.parse_loadavg(LOADAVG) == 0.52
    with pytest.raises(ValueError):
        load.parse_loadavg("")
    with pytest.raises(ValueError):
        load.parse_loadavg("load 1 2")


def test_parse_proc_stat_reads_the_aggregate_line_without_guest_time():
    """total sums user..steal (guest is inside user already); iowait and steal are fields 5, 8."""
    times = load.parse_proc_stat(STAT_START)
    assert times == load.CpuTimes(
        total=1000 + 20 + 300 + 8000 + 100 + 5 + 15 + 60, iowait=100, steal=60
    )


def test_parse_proc_stat_old_kernels_and_bad_text():
    """Fewer fields (no steal) count as 0; text without a cpu line is refused."""
    assert load.parse_proc_stat("cpu 10 0 5 85\n") == load.CpuTimes(total=100, iowait=0, steal=0)
    with pytest.raises(ValueError, match="no aggregate"):
        load.parse_proc_stat("cpu0 1 2 3 4\nintr 5\n")
    with pytest.raises(ValueError):
        load.parse_proc_stat("cpu 1 x 3 4\n")


def test_readers_take_a_path_and_return_none_without_one(tmp_path):
    """Readers parse the file at a path; a missing or malformed file is None, never an error."""
    (tmp_path / "loadavg").write_text(LOADAVG)
    (tmp_path / "stat").write_text(STAT_START)
    (tmp_path / "junk").write_text("nothing here\n")
    assert load.read_loadavg(tmp_path / "loadavg") == 0.52
    assert load.read_cpu_times(tmp_path / "stat") == load.parse_proc_stat(STAT_START)
    assert load.read_loadavg(tmp_path / "junk") is None
    assert load.read_cpu_times(tmp_path / "junk") is None
    assert load.read_cpu_times(tmp_path / "missing") is None
    missing = load.sample(loadavg_path=tmp_path / "junk", stat_path=tmp_path / "missing")
    assert missing.load_avg_1m is None and missing.cpu is None
    assert missing.process_cpu_s >= 0


def test_cpu_shares_are_deltas_over_all_jiffies():
    """Between the samples 1000 jiffies passed: 40 stolen (4 %), 30 in iowait (3 %)."""
    start, end = load.parse_proc_stat(STAT_START), load.parse_proc_stat(STAT_END)
    assert end.total - start.total == 1000
    steal, iowait = load.cpu_shares(start, end)
    assert steal == pytest.approx(4.0) and iowait == pytest.approx(3.0)
    assert load.cpu_shares(start, start) == (None, None)  # no time passed
    short = load.CpuTimes(total=start.total + 99, iowait=start.iowait, steal=start.steal + 9)
    assert load.cpu_shares(start, short) == (None, None)  # under MIN_SHARE_JIFFIES: too coarse
    assert load.MIN_SHARE_JIFFIES == 100
    assert load.cpu_shares(end, start) == (None, None)  # counters went back (a reboot)
    back = load.CpuTimes(total=end.total, iowait=start.iowait - 5, steal=end.steal)
    assert load.cpu_shares(start, back)[1] == 0.0  # a stepping-back iowait is clamped


def test_load_columns_from_two_samples():
    """The load columns in schema order: the higher load, the shares, the CPU time delta."""
    start = load.LoadSample(0.5, load.parse_proc_stat(STAT_START), 10.0)
    end = load.LoadSample(1.25, load.parse_proc_stat(STAT_END), 12.5)
    out = load.load_columns(start, end)
    assert list(out) == [name for name, _ in LOAD_COLUMNS]
    assert out["load_avg_1m"] == 1.25
    assert out["cpu_steal_pct"] == pytest.approx(4.0)
    assert out["cpu_iowait_pct"] == pytest.approx(3.0)
    assert out["cpu_time_s"] == pytest.approx(2.5)


def test_load_columns_without_proc_are_null():
    """No /proc (macOS): load, steal and iowait are None; the process CPU time is still there."""
    out = load.load_columns(load.LoadSample(None, None, 1.0), load.LoadSample(None, None, 1.5))
    assert out == {
        "load_avg_1m": None,
        "cpu_steal_pct": None,
        "cpu_iowait_pct": None,
        "cpu_time_s": 0.5,
    }


@pytest.mark.parametrize(
    ("values", "cores", "loaded"),
    [
        ({"load_avg_1m": 2.0, "cpu_steal_pct": 5.0}, 2, False),  # both at the limit: not over
        ({"load_avg_1m": 2.01, "cpu_steal_pct": 0.0}, 2, True),
        ({"load_avg_1m": 0.1, "cpu_steal_pct": 5.01}, 2, True),
        ({"load_avg_1m": 3.0, "cpu_steal_pct": 0.0}, 4, False),
        ({"load_avg_1m": 3.0, "cpu_steal_pct": 0.0, "cpu_count": 2}, None, True),  # row's count
        ({"load_avg_1m": 3.0, "cpu_count": 0}, None, False),  # an unknown count judges nothing
        ({"load_avg_1m": None, "cpu_steal_pct": None, "cpu_count": 2}, None, False),
        ({"load_avg_1m": math.nan, "cpu_steal_pct": math.nan, "cpu_count": 2}, None, False),
        ({}, 2, False),
    ],
)
def test_is_loaded_rule_edges(values, cores, loaded):
    """Loaded means load > cores or steal > LOAD_STEAL_PCT; missing readings are no evidence."""
    assert load.LOAD_STEAL_PCT == 5.0
    assert load.is_loaded(values, cores) is loaded


def test_loaded_expr_matches_is_loaded_and_nulls_mean_not_measured():
    """On a table the rule gives True/False where measured and null where nothing was."""
    df = pl.DataFrame(
        {
            "load_avg_1m": [2.5, 1.0, 1.0, None, None, 9.0],
            "cpu_steal_pct": [0.0, 6.0, 1.0, None, 7.0, None],
            "cpu_count": [2, 2, 2, 2, 2, 0],
        }
    )
    flags = load.with_loaded(df)[load.LOADED].to_list()
    assert flags == [True, True, False, None, True, None]
    for row, flag in zip(df.iter_rows(named=True), flags, strict=True):
        assert load.is_loaded(row) is bool(flag)


def test_with_loaded_on_a_table_without_load_columns_is_null():
    """A table from before the load columns gets a null ``loaded``, never an error."""
    old = pl.DataFrame({"ticks_per_s": [1.0, 2.0], "cpu_count": [2, 2]})
    out = load.with_loaded(old)
    assert out.columns == ["ticks_per_s", "cpu_count", "loaded"]
    assert out["loaded"].dtype == pl.Boolean and out["loaded"].null_count() == 2
    assert load.with_loaded(pl.DataFrame({"x": [1]}))["loaded"].to_list() == [None]


def test_compare_help_states_the_rule(capsys):
    """``lifelab compare --help`` describes --drop-loaded with the rule this module applies."""
    with pytest.raises(SystemExit):
        cli.main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert (
        f"--drop-loaded leave out trials that ran on a loaded machine ({load.LOADED_RULE})" in text
    )


def test_tables_before_version_3_read_with_null_load(tmp_path):
    """A version-2 results table (no load columns) reads with the columns null: not measured."""
    from support.synthetic import make_results

    from lifelab.lab.results import read_results, write_results
    from lifelab.lab.schema import METADATA_KEY, polars_schema

    df = make_results(repeats=1)
    old = tmp_path / "v2.parquet"
    df.drop(name for name, _ in LOAD_COLUMNS).write_parquet(old, metadata={METADATA_KEY: "2"})
    back = read_results(old)
    assert back.schema == polars_schema()
    for name, _ in LOAD_COLUMNS:
        assert back[name].null_count() == df.height, name
    assert back.drop(name for name, _ in LOAD_COLUMNS).equals(
        df.drop(name for name, _ in LOAD_COLUMNS)
    )
    new = write_results(df, tmp_path / "v3.parquet", suite="s", sweep_id="w")
    assert read_results(new).equals(df)
