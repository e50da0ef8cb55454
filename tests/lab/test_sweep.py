"""Sweeps: a grid run trial by trial into one table, locally and on a Dask cluster."""

import json
import shutil
import signal
import subprocess
import sys
import threading

import polars as pl
import pytest

from lifelab._argtypes import split_gc_modes, sweep_grid
from lifelab.cli import build_parser, main
from lifelab.exceptions import LifelabError
from lifelab.lab import spawn
from lifelab.lab.instructions import VALGRIND_MISSING
from lifelab.lab.results import ResultsExistsError, read_metadata, read_results
from lifelab.lab.schema import ALL_COLUMNS, polars_schema
from lifelab.lab.spec import expand
from lifelab.lab.sweep import MissingDependencyError, SweepCancelled, run_sweep

GRID = {"batch_size": [1, 64], "gc_mode": ["default", "freeze"]}
BASE = {"ticks": 2_000, "warmup_ticks": 200}
REPEATS = 2
FRAGILE = {
    "weak_energy": 100.0,
    "weak_stability": 1.0,
    "weak_integrity": 1.0,
    "weak_penalty_energy": 100.0,
    "weak_penalty_stability": 1.0,
    "weak_penalty_integrity": 1.0,
}


def expected_pairs():
    """The (cell, repeat) pairs the grid plans, computed without running anything."""
    specs = expand(GRID, repeats=REPEATS, base=BASE)
    n = len(specs) // REPEATS
    return {(s.cell, i // n) for i, s in enumerate(specs)}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """A tiny 2×2 sweep, two repeats, through the local executor (run once for the module)."""
    out = tmp_path_factory.mktemp("local") / "sweep.parquet"
    df = run_sweep(GRID, repeats=REPEATS, base=BASE, suite="t", out=out, progress=False)
    return df, out


def check_sweep_table(df):
    """Shared checks of a finished sweep's table."""
    assert df.schema == polars_schema()
    assert df.columns == [name for name, _ in ALL_COLUMNS]
    assert df.height == 8
    assert df["status"].to_list() == ["ok"] * 8
    assert (df["ticks_per_s"] > 0).all()
    assert df["order"].to_list() == list(range(8))
    assert df["sweep_id"].n_unique() == 1
    sweep_id = df["sweep_id"][0]
    assert df["trial_id"].to_list() == [f"{sweep_id}-{i}" for i in range(8)]
    assert {(c, r) for c, r in df.select("cell", "repeat").iter_rows()} == expected_pairs()
    assert df["repeat"].to_list() == [0, 0, 0, 0, 1, 1, 1, 1]  # interleaved


def test_local_sweep_rows_and_file(local_sweep):
    """The local executor gives one ok row per trial, and the same table on disk."""
    df, out = local_sweep
    check_sweep_table(df)
    assert set(df["gc_mode"]) == {"default", "freeze"}
    assert set(df["batch_size"]) == {1, 64}
    assert df["suite"].unique().to_list() == ["t"]
    assert read_results(out).equals(df)
    meta = read_metadata(out)
    assert meta["sweep_id"] == df["sweep_id"][0] and meta["suite"] == "t"


@pytest.mark.slow
def test_dask_sweep_matches_local(local_sweep, tmp_path):
    """A two-worker Dask LocalCluster runs the same trials into the same rows as local."""
    pytest.importorskip("distributed")
    local, _ = local_sweep
    df = run_sweep(
        GRID,
        repeats=REPEATS,
        base=BASE,
        suite="t",
        executor="dask",
        workers=2,
        out=tmp_path / "dask.parquet",
        progress=False,
    )
    check_sweep_table(df)
    key = ["order", "cell", "repeat", *(c for c, _ in ALL_COLUMNS[6:14])]
    assert df.select(key).equals(local.select(key))


def test_failing_cell_gives_failed_rows_not_a_crash(tmp_path):
    """A cell whose worker raises becomes status="failed" rows with the error; the rest run."""
    df = run_sweep(
        {"mortality_ticks": [None, 1]},
        repeats=1,
        base={"ticks": 100, "warmup_ticks": 10, **FRAGILE},
        out=tmp_path / "f.parquet",
        progress=False,
    )
    assert df.schema == polars_schema()
    assert df["status"].to_list() == ["ok", "failed"]
    failed = df.row(1, named=True)
    assert "organism died" in failed["error"] and "exited with status 1" in failed["error"]
    assert failed["ticks_per_s"] is None
    assert failed["cpu_model"] and failed["python_version"]
    assert failed["config_json"].startswith('{"mortality_ticks":1')
    assert read_results(tmp_path / "f.parquet").height == 2


def test_sweep_refuses_existing_out_before_running(tmp_path):
    """An existing output file stops the sweep before any trial runs."""
    out = tmp_path / "taken.parquet"
    out.write_bytes(b"")
    with pytest.raises(ResultsExistsError):
        run_sweep({"batch_size": [1]}, out=out, progress=False)


def test_sweep_refuses_bad_options(tmp_path):
    """Unknown executors and contradictory options are refused up front."""
    with pytest.raises(ValueError, match="executor"):
        run_sweep({}, executor="slurm", out=tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="scheduler"):
        run_sweep({}, scheduler="tcp://127.0.0.1:8786", out=tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="workers"):
        run_sweep({}, workers=0, out=tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="suite"):
        run_sweep({}, suite="../x", out=tmp_path / "a.parquet")


def test_dask_missing_says_how_to_install(monkeypatch, tmp_path):
    """Without dask.distributed the dask executor says to install lifelab[cluster]."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"lifelab\[cluster\]"):
        run_sweep({"ticks": 10}, executor="dask", out=tmp_path / "d.parquet", progress=False)
    assert not (tmp_path / "d.parquet").exists()


def test_local_workers_warn_that_timings_interfere(tmp_path):
    """Running local trials side by side works but warns about interference."""
    with pytest.warns(RuntimeWarning, match="interfere"):
        df = run_sweep(
            {"seed": [0, 1]},
            repeats=1,
            workers=2,
            base={"ticks": 100, "warmup_ticks": 10},
            out=tmp_path / "w.parquet",
            progress=False,
        )
    assert df["status"].to_list() == ["ok", "ok"]
    assert df["seed"].to_list() == [0, 1]


TINY = {"ticks": 100, "warmup_ticks": 10}


def test_on_trial_reports_every_trial_in_order(tmp_path):
    """on_trial gets (done, total, row) after each trial, in the calling thread."""
    calls = []

    def hook(done, total, row):
        calls.append((done, total, row["batch_size"], row["status"], threading.current_thread()))

    df = run_sweep(
        {"batch_size": [1, 64]},
        repeats=1,
        base=TINY,
        out=tmp_path / "h.parquet",
        progress=False,
        on_trial=hook,
    )
    me = threading.current_thread()
    assert calls == [(1, 2, 1, "ok", me), (2, 2, 64, "ok", me)]
    assert df["batch_size"].to_list() == [1, 64]


def test_cancel_between_trials_raises_and_writes_nothing(tmp_path):
    """Cancel set after the first trial: no other trial starts, no file, SweepCancelled(1, 3)."""
    cancel = threading.Event()
    calls = []

    def hook(done, total, row):
        calls.append(done)
        cancel.set()

    out = tmp_path / "c.parquet"
    with pytest.raises(SweepCancelled, match="after 1/3 trials") as info:
        run_sweep(
            {"batch_size": [1, 16, 64]},
            repeats=1,
            base=TINY,
            out=out,
            progress=False,
            cancel=cancel,
            on_trial=hook,
        )
    assert isinstance(info.value, LifelabError)
    assert (info.value.completed, info.value.total) == (1, 3)
    assert calls == [1]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cancel_kills_the_running_trial(monkeypatch, tmp_path):
    """Cancel set while a (very long) trial runs kills its worker; the sweep stops at 0/1."""
    cancel = threading.Event()
    started = []
    popen = subprocess.Popen

    def start_then_cancel(*args, **kwargs):
        proc = popen(*args, **kwargs)
        started.append(proc)
        cancel.set()  # the worker is running now: the manager must kill it
        return proc

    monkeypatch.setattr(spawn.subprocess, "Popen", start_then_cancel)
    with pytest.raises(SweepCancelled) as info:
        # Without the kill this trial would run until its timeout and count as a failed trial.
        run_sweep(
            {"ticks": 10**9},
            repeats=1,
            base={"warmup_ticks": 0, "timeout_s": 120},
            out=tmp_path / "k.parquet",
            progress=False,
            cancel=cancel,
        )
    assert info.value.completed == 0
    assert len(started) == 1
    assert started[0].returncode == -signal.SIGKILL


def test_cancel_set_before_the_sweep_runs_no_trial(monkeypatch, tmp_path):
    """A sweep whose cancel is already set starts no worker at all (local, several workers)."""
    cancel = threading.Event()
    cancel.set()
    monkeypatch.setattr(spawn.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    with pytest.warns(RuntimeWarning, match="interfere"), pytest.raises(SweepCancelled) as info:
        run_sweep(
            {"seed": [0, 1, 2]},
            repeats=1,
            workers=2,
            base=TINY,
            out=tmp_path / "n.parquet",
            progress=False,
            cancel=cancel,
        )
    assert (info.value.completed, info.value.total) == (0, 3)
    assert not (tmp_path / "n.parquet").exists()


@pytest.mark.slow
def test_dask_cancel_stops_pending_trials(tmp_path):
    """On Dask, cancel set from on_trial cancels the pending trials and writes nothing."""
    pytest.importorskip("distributed")
    cancel = threading.Event()
    with pytest.raises(SweepCancelled) as info:
        run_sweep(
            {"seed": [0, 1, 2, 3]},
            repeats=1,
            base=TINY,
            executor="dask",
            workers=1,
            out=tmp_path / "d.parquet",
            progress=False,
            cancel=cancel,
            on_trial=lambda done, total, row: cancel.set(),
        )
    assert (info.value.completed, info.value.total) == (1, 4)
    assert not (tmp_path / "d.parquet").exists()


def test_progress_bar_is_tqdm_auto_and_progress_false_hides_it(monkeypatch, tmp_path):
    """The bar comes from tqdm.auto (a widget under Jupyter); progress=False disables it."""
    import tqdm.auto

    made = []

    class Recorder:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def update(self, n):
            made[-1]["updates"] = made[-1].get("updates", 0) + n

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    for progress in (True, False):
        run_sweep(
            {"seed": 0},
            repeats=1,
            base=TINY,
            out=tmp_path / f"{progress}.parquet",
            progress=progress,
        )
    assert [(m["disable"], m["total"], m["updates"]) for m in made] == [(None, 1, 1), (True, 1, 1)]


def test_split_gc_modes():
    """Named modes stand alone and thresholds come three integers at a time."""
    assert split_gc_modes(["default,freeze,700,10,10", "off"]) == [
        "default",
        "freeze",
        "700,10,10",
        "off",
    ]
    with pytest.raises(ValueError, match="three"):
        split_gc_modes(["700,10"])


def test_sweep_grid():
    """The command's options become the grid: comma lists are axes, --set adds config axes."""
    grid = sweep_grid(
        batch_size="1,16,64",
        gc=["default,freeze"],
        ticks="1000",
        sets=["decay_every=10,100", "events_mode=poisson"],
    )
    assert grid["batch_size"] == [1, 16, 64]
    assert grid["gc_mode"] == ["default", "freeze"]
    assert grid["ticks"] == [1000]
    assert grid["decay_every"] == [10, 100]
    assert grid["events_mode"] == ["poisson"]
    assert len(expand(grid, repeats=1)) == 12
    assert "engine" not in grid  # not given: TrialSpec's default, LifeConfig's
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--workers", "2", "--scheduler", "tcp://x:1"])


def test_engine_is_a_sweep_axis_planned_without_running():
    """--engine compiled,python doubles the cells; each trial carries its engine column."""
    grid = sweep_grid(engine="compiled,python", batch_size="1,64")
    assert grid["engine"] == ["compiled", "python"]
    specs = expand(grid, repeats=2)
    assert len(specs) == 8 and len({s.cell for s in specs}) == 4
    assert {(s.engine, s.batch_size) for s in specs} == {
        (e, b) for e in ("compiled", "python") for b in (1, 64)
    }
    assert all(s.params()["engine"] == s.engine for s in specs)
    assert all("engine" not in s.config_json for s in specs)
    for bad, fragment in (
        ({"engine": "compiled,jit"}, "--engine: expected compiled or python, got 'jit'"),
        ({"engine": ","}, "--engine: give at least one value"),
        ({"sets": ["engine=python"]}, "--set engine: use its own option"),
    ):
        with pytest.raises(ValueError, match=fragment):
            sweep_grid(**bad)


def _sweep_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(["sweep", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_engine_column_of_a_sweep_table(tmp_path, capsys):
    """A two-engine sweep writes one row per engine, each with the engine that ran."""
    out = tmp_path / "engines.parquet"
    argv = ["--engine", "compiled,python", "--ticks", "100", "--warmup-ticks", "10"]
    summary = _sweep_json(capsys, [*argv, "--repeats", "1", "--out", str(out)])
    assert summary["ok"] == 2 and summary["cells"] == 2
    df = read_results(out)
    assert df["engine"].to_list() == ["compiled", "python"]
    assert df["config_json"].to_list() == ["{}", "{}"]


def test_sweep_command_summary(tmp_path, capsys):
    """The command prints the --json summary: path, rows, ok/failed counts and sweep id."""
    out = tmp_path / "cmd.parquet"
    argv = ["--ticks", "100", "--warmup-ticks", "10", "--repeats", "1", "--out", str(out)]
    summary = _sweep_json(capsys, argv)
    assert summary["path"] == str(out) and out.is_file()
    assert summary["rows"] == 1 and summary["ok"] == 1 and summary["failed"] == 0
    assert summary["sweep_id"] == read_results(out)["sweep_id"][0]
    assert pl.read_parquet(out).height == 1


def test_importing_the_lab_starts_nothing():
    """Importing the sweep module loads no cluster or dataframe library and starts no process."""
    code = (
        "import sys, threading\n"
        "import lifelab.lab.sweep, lifelab.lab.results, lifelab.lab.runner\n"
        "print(sorted(m for m in ('dask', 'distributed', 'polars', 'tqdm') if m in sys.modules),"
        " threading.active_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[] 1"


needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason=VALGRIND_MISSING)


@needs_valgrind
def test_a_counted_sweep_fills_the_instruction_columns(tmp_path, capsys):
    """``sweep --instructions``: every ok row has its measured ticks' instructions per tick and
    per event (two engines: the compiled one's counts pin numba's CPU), the tool named; the same
    cells uncounted leave the columns null."""
    out = tmp_path / "counted.parquet"
    argv = ["--engine", "python,compiled", "--ticks", "200", "--warmup-ticks", "50"]
    summary = _sweep_json(capsys, [*argv, "--repeats", "1", "--out", str(out), "--instructions"])
    assert summary["ok"] == 2 and summary["instructions"] is True
    df = read_results(out)
    python, compiled = (df.filter(pl.col("engine") == e).row(0, named=True) for e in df["engine"])
    # The Python engine costs tens of thousands of instructions a tick, the compiled a few
    # thousand (DESIGN §3: ~78 800 and ~1 850 at the defaults); per event is about the same.
    assert 20_000 < python["instructions_per_tick"] < 300_000
    assert 300 < compiled["instructions_per_tick"] < 20_000
    for row in (python, compiled):
        assert row["instructions_per_event"] == pytest.approx(
            row["instructions_per_tick"] * row["ticks"] / row["events"], rel=0.2
        )
        assert row["instructions_tool"].startswith("cachegrind ")
    assert summary["instructions_per_tick"] == pytest.approx(df["instructions_per_tick"].median())
    plain = tmp_path / "plain.parquet"
    _sweep_json(
        capsys, ["--engine", "python", "--ticks", "100", "--repeats", "1", "--out", str(plain)]
    )
    assert read_results(plain)["instructions_per_tick"].null_count() == 1


def test_a_counted_sweep_without_valgrind_stops_before_any_trial(monkeypatch, tmp_path, capsys):
    """No valgrind: one line saying how to install it, exit 2, no trial run and no file."""
    from lifelab.lab import instructions

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    ran = []
    monkeypatch.setattr("lifelab.lab.sweep.run_trial_row", lambda *a, **k: ran.append(a))
    out = tmp_path / "never.parquet"
    argv = ["sweep", "--ticks", "100", "--repeats", "1", "--out", str(out), "--instructions"]
    assert main(argv) == 2
    assert VALGRIND_MISSING in capsys.readouterr().err
    assert not ran and not out.exists()


def test_a_failed_count_fails_the_trial_with_the_reason(monkeypatch, tmp_path):
    """A count that breaks makes a failed row naming it, not a crash of the sweep."""
    from lifelab.lab import instructions
    from lifelab.lab.bench_realtime import BenchProcessError

    def broken(spec, **_):
        raise BenchProcessError("valgrind: out of memory")

    monkeypatch.setattr(instructions, "valgrind_path", lambda: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions, "count_trial", broken)
    df = run_sweep(
        {"batch_size": 1},
        repeats=1,
        base={"ticks": 100, "engine": "python"},
        out=tmp_path / "t.parquet",
        progress=False,
        instructions=True,
    )
    assert df["status"].to_list() == ["failed"]
    assert "counting instructions: valgrind: out of memory" in df["error"][0]
