"""Profiles: cProfile and Scalene workers, their tables, tolerant reading and the analysis."""

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest

from lifelab.cli import build_parser, main
from lifelab.config import LifeConfig
from lifelab.lab.profile import (
    FUNCTIONS_FILE,
    FUNCTIONS_KIND,
    LINES_FILE,
    LINES_KIND,
    PROFILE_FORMAT_VERSION,
    SUMMARY_FILE,
    WORKER_MODULE,
    ProfileError,
    _finish,
    _run_worker,
    load_profile,
    profile,
    read_scalene_json,
)
from lifelab.lab.results import (
    CHECKSUM_KEY,
    KIND_KEY,
    PLAIN,
    VERSION_KEY,
    ResultsSchemaError,
    read_metadata,
    read_table,
)
from lifelab.life.loop import Life

TINY = {"ticks": 2_000, "warmup": 200}
JSON_KEYS = {"profile_path", "table_path", "hot_spots", "summary", "tool", "ticks", "engine"}
PYTHON = LifeConfig(engine="python")  # one Python call per stage: the frames these tests read
KERNEL_SENTENCE = "one native frame (the kernel call, run_ticks)"


def test_cprofile_run_gives_function_table_and_loop_hot_spot(tmp_path):
    """A tiny cProfile run is read into a function table with lifelab's loop among the hot spots."""
    result = profile(PYTHON, tool="cprofile", out=tmp_path / "p", **TINY)
    assert result.tool == "cprofile"
    assert result.ticks == TINY["ticks"]
    assert result.profile_path == tmp_path / "p" / "profile.prof"
    assert result.table_path == tmp_path / "p" / FUNCTIONS_FILE
    assert (tmp_path / "p" / SUMMARY_FILE).is_file()
    columns = set(result.functions.columns)
    assert {"file", "line", "function", "ncalls", "tottime_s", "cumtime_s", "share_of_total"} <= (
        columns
    )
    assert {"profiler", "profiler_version"} <= columns
    assert result.functions["profiler"].unique().to_list() == ["cprofile"]
    assert result.functions["share_of_total"].is_between(0.0, 1.0).all()
    tick = result.functions.filter(pl.col("function") == "Life._tick")
    assert tick.height == 1
    assert tick["file"][0] == "lifelab/life/loop.py"
    assert tick["ncalls"][0] == TINY["ticks"]
    spots = result.hot_spots(10)
    assert any(s["file"] == "lifelab/life/loop.py" for s in spots)
    assert all(s["by"] == "cpu" for s in spots)
    assert result.lines.is_empty()
    assert "file" in result.lines.columns
    assert "lifelab/life/loop.py" in result.summary() or "Life._tick" in result.summary()
    assert result.to_json()["engine"] == "python"
    assert KERNEL_SENTENCE not in result.summary()


def test_compiled_engine_profile_names_the_kernel_frame(tmp_path):
    """With the compiled engine the ticks run in the kernel call, and the summary says so."""
    result = profile(LifeConfig(engine="compiled"), tool="cprofile", out=tmp_path / "p", **TINY)
    assert result.to_json()["engine"] == "compiled"
    assert result.functions.filter(pl.col("function") == "run_ticks").height == 1
    text = result.summary()
    assert KERNEL_SENTENCE in text and "native time in Scalene" in text


def test_cprofile_files_round_trip(tmp_path):
    """The parquet table carries its profiler in metadata and load_profile reopens the folder."""
    result = profile(tool="cprofile", out=tmp_path / "p", **TINY)
    meta = pl.read_parquet_metadata(result.table_path)
    assert meta["profiler"] == "cprofile"
    assert meta["lifelab.profile.format_version"] == "1"
    summary = json.loads((tmp_path / "p" / SUMMARY_FILE).read_text())
    assert summary["ticks"] == TINY["ticks"]
    assert summary["summary"] == result.summary()
    again = load_profile(tmp_path / "p")
    assert again.functions.equals(pl.read_parquet(result.table_path))
    assert again.summary() == result.summary()
    assert set(again.to_json()) >= JSON_KEYS
    json.dumps(result.to_json())  # JSON-ready


def test_profile_refuses_to_overwrite(tmp_path):
    """A folder that already holds a profile is refused, not overwritten."""
    profile(tool="cprofile", out=tmp_path / "p", ticks=100, warmup=0)
    with pytest.raises(FileExistsError, match="already holds a profile"):
        profile(tool="cprofile", out=tmp_path / "p", ticks=100, warmup=0)


def test_bad_tool_refused(tmp_path):
    """An unknown tool is refused by name, with the choices, before any work."""
    with pytest.raises(ValueError, match=r"cprofile.*scalene.*'perf'"):
        profile(tool="perf", out=tmp_path / "p")
    with pytest.raises(ValueError, match="ticks"):
        profile(tool="cprofile", ticks=0, out=tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_failing_worker_raises_profile_error_with_stderr_tail(tmp_path):
    """A worker that fails surfaces as ProfileError carrying its stderr tail; nothing is left."""
    run_dir = tmp_path / "run"
    Life(LifeConfig(run_dir=str(run_dir))).close()  # a second Life there is refused
    with pytest.raises(ProfileError, match="already holds a run") as info:
        profile(LifeConfig(run_dir=str(run_dir)), out=tmp_path / "p", ticks=10, warmup=0)
    assert isinstance(info.value, RuntimeError)
    assert "status 1" in str(info.value)
    assert not (tmp_path / "p").exists()


def test_bad_spec_is_exit_status_2(tmp_path):
    """A bad spec makes the worker exit 2 with a message naming the field."""
    cmd = [sys.executable, "-m", WORKER_MODULE, json.dumps({"ticks": -5})]
    with pytest.raises(ProfileError, match=r"status 2[\s\S]*spec\.ticks"):
        _run_worker(cmd, timeout=60)
    with pytest.raises(ProfileError, match="not valid JSON"):
        _run_worker([*cmd[:-1], "{bad"], timeout=60)
    with pytest.raises(ProfileError, match=r"status 2[\s\S]*usage: python -m"):
        _run_worker([*cmd[:-1], "--spec", "{}"], timeout=60)


def test_worker_timeout_is_profile_error(tmp_path):
    """A worker over its time limit is killed and reported."""
    paced = LifeConfig(clock="realtime", tick_interval=0.05)
    with pytest.raises(ProfileError, match="did not finish within"):
        profile(paced, out=tmp_path / "p", ticks=1_000, warmup=0, timeout=0.5)


def test_realtime_summary_reports_sleeping_share(tmp_path):
    """In real-time mode the summary says how much wall time went to sleeping."""
    paced = LifeConfig(clock="realtime", tick_interval=0.002)
    result = profile(paced, out=tmp_path / "p", ticks=200, warmup=0)
    text = result.summary()
    assert "sleeping" in text
    assert "real-time mode" in text
    share = result.to_json()["sleeping_share"]
    assert 0.0 <= share <= 1.0
    analysis = result.analysis()
    assert 0.0 <= analysis["profile_wait_share"] <= 1.0
    # the clock's waiting is not reported as a CPU hot spot
    assert all("acquire" not in s["function"] for s in result.hot_spots())


def test_simulated_summary_does_not_mention_sleeping(tmp_path):
    """The simulated clock never sleeps, so the summary says nothing about it."""
    result = profile(out=tmp_path / "p", ticks=100, warmup=0)
    assert "sleeping" not in result.summary()
    assert "sleeping_share" not in result.to_json()


def _scalene_unavailable() -> str | None:
    """Why Scalene cannot run here, or None."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scalene", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scalene could not start: {exc}"
    if proc.returncode != 0 or "Scalene" not in proc.stdout:
        return f"scalene is not usable: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


@pytest.mark.slow
def test_scalene_run_gives_line_and_function_tables(tmp_path):
    """A tiny Scalene run is read into lines and functions tables with a file column."""
    reason = _scalene_unavailable()
    if reason is not None:
        pytest.skip(reason)
    result = profile(PYTHON, tool="scalene", out=tmp_path / "p", ticks=5_000, warmup=500)
    assert result.profile_path == tmp_path / "p" / "scalene-profile.json"
    assert result.lines_path == tmp_path / "p" / LINES_FILE
    for table in (result.lines, result.functions):
        assert {"file", "line", "profiler", "profiler_version"} <= set(table.columns)
        assert table["profiler"].unique().to_list() in ([], ["scalene"])
    assert {"source", "cpu_python_percent", "cpu_native_percent", "cpu_system_percent"} <= set(
        result.lines.columns
    )
    assert {"malloc_mb", "peak_mb", "copy_mb_per_s"} <= set(result.lines.columns)
    assert result.lines.height > 0
    assert result.lines["cpu_total_percent"].is_between(0.0, 100.0).all()
    assert result.lines["file"].str.starts_with("lifelab/").all()
    assert any(s["by"] == "cpu" for s in result.hot_spots())
    assert "Scalene" in result.summary()
    assert pl.read_parquet_metadata(result.lines_path)["profiler"] == "scalene"


ODD_SCALENE = {
    "elapsed_time_sec": 1.5,
    "max_footprint_mb": -3.0,
    "memory": True,
    "files": {
        "/somewhere/lifelab/life/loop.py": {
            "percent_cpu_time": 140.0,
            "functions": [{"line": "Life._tick", "lineno": 10, "n_cpu_percent_python": 40.0}],
            "lines": [
                {
                    "lineno": 10,
                    "line": "def _tick(self) -\\u003e None:\n",
                    "n_cpu_percent_python": 150.0,
                    "n_cpu_percent_c": "abc",
                    "n_malloc_mb": -2.0,
                },
                {"line": "no line number"},
                "not an object",
                {
                    "lineno": 12,
                    "line": "    x = [1]\n",
                    "n_growth_mb": 3.0,
                    "start_function_line": 10,
                },
                {"lineno": 13, "line": "    idle\n"},
            ],
        },
        "/weird.py": "not an object",
        "/other.py": {"lines": "not a list", "functions": []},
    },
}


def test_scalene_json_read_tolerantly():
    """Odd Scalene JSON: missing fields are nulls, out-of-range numbers clamped with notes."""
    functions, lines, info = read_scalene_json(ODD_SCALENE, profiler_version="9.9")
    assert "file" in lines.columns and "file" in functions.columns
    assert lines["line"].to_list() == [10, 12]  # line 13 has no activity, the rest are skipped
    first = lines.row(0, named=True)
    assert first["cpu_python_percent"] == 100.0  # clamped
    assert first["cpu_native_percent"] is None  # not a number
    assert first["malloc_mb"] == 0.0  # clamped
    assert first["source"] == "def _tick(self) -> None:"
    second = lines.row(1, named=True)
    assert second["peak_mb"] == 3.0  # older field name n_growth_mb
    assert second["function"] == "Life._tick"
    assert second["copy_mb_per_s"] is None  # absent, not invented
    assert functions["function"].to_list() == ["Life._tick"]
    assert lines["profiler_version"].unique().to_list() == ["9.9"]
    assert info["max_footprint_mb"] == 0.0
    assert info["file_cpu_percent"] == {"/somewhere/lifelab/life/loop.py": 100.0}
    notes = "\n".join(info["notes"])
    for expected in ("n_cpu_percent_python", "n_malloc_mb", "n_cpu_percent_c", "/weird.py"):
        assert expected in notes
    assert "not a list" in notes
    assert "no line number" in notes


def test_scalene_json_unknown_shapes():
    """A profile without files gives empty tables; a non-object is refused."""
    functions, lines, info = read_scalene_json({"elapsed_time_sec": "soon"})
    assert functions.is_empty() and lines.is_empty()
    assert "file" in lines.columns
    assert info["elapsed_time_s"] is None
    assert any("files" in note for note in info["notes"])
    functions, lines, info = read_scalene_json({})  # what Scalene writes with no samples
    assert functions.is_empty() and lines.is_empty() and info["notes"] == []
    with pytest.raises(ProfileError, match="JSON object"):
        read_scalene_json([1, 2, 3])  # type: ignore[arg-type]


# -- the tables on disk: kind, version, checksum ------------------------------------------------

# Loads a profile folder in a child process, so that a polars abort on a damaged table (the very
# thing the checksum prevents) fails the test instead of killing pytest.
_LOAD_IN_CHILD = """
import sys
from lifelab.lab.profile import load_profile
from lifelab.lab.results import ResultsSchemaError
try:
    result = load_profile(sys.argv[1])
except ResultsSchemaError as exc:
    print(exc)
    sys.exit(3)
print("loaded", result.functions.height, result.lines.height)
"""


def _load_in_child(folder) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _scalene_folder(folder):
    """A Scalene profile folder made from ODD_SCALENE by the real writer (no Scalene needed)."""
    folder.mkdir()
    raw = folder / "scalene-profile.json"
    raw.write_text(json.dumps(ODD_SCALENE))
    worker = {"ticks": 10, "clock": "simulated", "wall_s": 0.1}
    return _finish(folder, "scalene", "9.9", raw, worker, 0, False)


def test_profile_tables_carry_kind_version_and_checksum(tmp_path):
    """Both tables are write_table tables: kind, version, a checksum that verifies, the profile's
    own keys kept; load_profile reads them back and refuses one table in the other's place."""
    result = _scalene_folder(tmp_path / "p")
    expected = {
        result.table_path: (FUNCTIONS_KIND, result.functions),
        result.lines_path: (LINES_KIND, result.lines),
    }
    for path, (kind, data) in expected.items():
        meta = read_metadata(path)
        assert len(meta[CHECKSUM_KEY]) == 64
        assert (meta[KIND_KEY], meta[VERSION_KEY]) == (kind, str(PROFILE_FORMAT_VERSION))
        assert meta["profiler"] == "scalene" and meta["ticks"] == "10"
        assert meta["lifelab.profile.format_version"] == str(PROFILE_FORMAT_VERSION)
        table = read_table(path)
        assert table.verified and table.kind == kind and table.data.equals(data)
    assert result.lines.height == 2
    names = sorted(p.name for p in (tmp_path / "p").iterdir())  # no writer's temporary files
    assert names == [FUNCTIONS_FILE, LINES_FILE, "scalene-profile.json", SUMMARY_FILE]
    again = load_profile(tmp_path / "p")
    assert again.functions.equals(result.functions) and again.lines.equals(result.lines)
    assert again.summary() == result.summary()
    shutil.copy(result.lines_path, result.table_path)
    with pytest.raises(ResultsSchemaError, match="not a 'profile_functions' table"):
        load_profile(tmp_path / "p")


def test_cprofile_table_carries_a_checksum(tmp_path):
    """A real cProfile run writes a verified functions table and no lines table."""
    result = profile(tool="cprofile", out=tmp_path / "p", ticks=100, warmup=0)
    table = read_table(result.table_path, kind=FUNCTIONS_KIND)
    assert table.verified and table.data.equals(result.functions)
    assert read_metadata(result.table_path)["profiler"] == "cprofile"
    assert not (tmp_path / "p" / LINES_FILE).exists()


@pytest.mark.parametrize("name", [FUNCTIONS_FILE, LINES_FILE])
def test_a_profile_table_with_a_flipped_byte_is_refused_naming_the_file(tmp_path, name):
    """One flipped byte in the middle of a table: load_profile (in a child process, so an abort
    cannot take pytest down) refuses the folder with ResultsSchemaError naming the file."""
    _scalene_folder(tmp_path / "p")
    intact = _load_in_child(tmp_path / "p")
    assert intact.returncode == 0, intact.stderr[-2000:]
    assert intact.stdout.split()[0] == "loaded"
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "p", copy)
    blob = bytearray((copy / name).read_bytes())
    blob[len(blob) // 2] ^= 0x10
    (copy / name).write_bytes(bytes(blob))
    damaged = _load_in_child(copy)
    assert damaged.returncode == 3, (damaged.returncode, damaged.stdout, damaged.stderr[-2000:])
    assert "checksum mismatch" in damaged.stdout
    assert str(copy / name) in damaged.stdout


def test_an_old_raw_profile_folder_still_loads(tmp_path):
    """Tables written before write_table (bare write_parquet: no kind, no checksum) load as
    before, unverified, read as plain version 0."""
    result = _scalene_folder(tmp_path / "p")
    old_meta = {  # what the writer stored before checksums
        "lifelab.profile.format_version": "1",
        "profiler": "scalene",
        "profiler_version": "9.9",
        "lifelab_version": "0.1.0",
        "ticks": "10",
    }
    for path in (result.table_path, result.lines_path):
        data = pl.read_parquet(path)
        path.unlink()
        data.write_parquet(path, metadata=old_meta)
        table = read_table(path)
        assert (table.kind, table.version, table.verified) == (PLAIN, 0, False)
        assert CHECKSUM_KEY not in read_metadata(path)
    again = load_profile(tmp_path / "p")
    assert again.functions.equals(result.functions) and again.lines.equals(result.lines)
    assert again.summary() == result.summary()


def _profile_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(["profile", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_arguments_run_a_profile(tmp_path, capsys):
    """``lifelab profile --json`` prints the profile's JSON object."""
    argv = ["--ticks", "300", "--warmup", "0", "--out", str(tmp_path / "p"), "--set", "seed=3"]
    args = build_parser().parse_args(["profile", *argv])
    assert args.tool == "cprofile"
    assert args.engine is None  # LifeConfig's default
    out = _profile_json(capsys, argv)
    assert set(out) >= JSON_KEYS
    assert out["ticks"] == 300
    assert out["engine"] == LifeConfig().engine
    with pytest.raises(SystemExit):
        build_parser().parse_args(["profile", "--tool", "perf"])


def test_cli_engine_reaches_the_profiled_organism(tmp_path, capsys):
    """--engine python is the profiled organism's engine; a bad engine or a clash is refused."""
    argv = ["--ticks", "100", "--warmup", "0", "--out", str(tmp_path / "p"), "--engine", "python"]
    out = _profile_json(capsys, argv)
    assert out["engine"] == "python"
    summary = json.loads((tmp_path / "p" / SUMMARY_FILE).read_text())
    assert summary["worker"]["config"]["engine"] == "python"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["profile", "--engine", "jit"])
    assert main(["profile", "--engine", "python", "--set", "engine=compiled"]) == 2
    assert "disagree" in capsys.readouterr().err


def test_import_stays_cheap():
    """Importing the profile module loads neither polars nor scalene."""
    code = (
        "import sys, lifelab.lab.profile; "
        "print(sorted(m for m in ('polars', 'scalene') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
