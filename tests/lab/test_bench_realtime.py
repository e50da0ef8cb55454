"""bench realtime / bench import: figures present and sane; nothing here asserts on speed."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile

import pytest

from lifelab.cli import main
from lifelab.lab.bench_realtime import (
    BenchProcessError,
    bare_pacing,
    bench_import,
    bench_realtime,
)
from lifelab.life.clock import futex_syscall
from lifelab.life.compiled import numba_available
from lifelab.store.logs import read_logs


def test_bench_realtime_reports_lateness_drift_and_cpu():
    seen = []
    out = bench_realtime(seconds=0.3, interval=0.01, baseline=True, progress=seen.append)
    assert out["ticks"] == 30
    assert sum(seen) == 30  # the progress bar ends full
    for key in ("lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "cpu_percent"):
        assert math.isfinite(out[key]) and out[key] >= 0, key
    # lateness is measured after each deadline, so it is never negative and p50 <= p99 <= max
    assert out["lateness_p50_ms"] <= out["lateness_p99_ms"] <= out["lateness_max_ms"]
    assert out["drift_intervals"] == pytest.approx(abs(out["drift_ms"]) / 10.0)
    assert 0 < out["baseline_cpu_percent"] <= 100 * (os.cpu_count() or 1)
    assert out["persist"] is False and out["run_dir"] is None
    assert "snapshots_written" not in out


def _check_ratio(out):
    """The baseline is the mean of its two halves and the ratio is computed from the figures."""
    for key in ("cpu_percent", "baseline_cpu_percent_before", "baseline_cpu_percent_after"):
        assert isinstance(out[key], float) and math.isfinite(out[key]) and out[key] >= 0, key
    halves = (out["baseline_cpu_percent_before"], out["baseline_cpu_percent_after"])
    assert out["baseline_cpu_percent"] == pytest.approx(sum(halves) / 2)
    if out["baseline_cpu_percent"] > 0:
        assert out["cpu_ratio"] == pytest.approx(out["cpu_percent"] / out["baseline_cpu_percent"])
    kernel_waits = out["engine"] == "compiled" and futex_syscall() is not None
    assert out["wait"] == ("kernel" if kernel_waits else "python")
    for key in ("life_thread_cpu_percent", "writers_cpu_percent"):
        assert out[key] is None or (isinstance(out[key], float) and out[key] >= 0), key


def test_bench_realtime_with_a_run_dir_writes_it_and_compares_with_the_bare_loop(tmp_path):
    """--run-dir: the organism keeps that run directory (snapshots, logs) and the bare loop runs
    in the same call (no --baseline needed); the ratio comes from the two CPU figures."""
    run = tmp_path / "run"
    out = bench_realtime(seconds=0.3, interval=0.01, run_dir=run, snapshot_every=10, log_every=10)
    assert out["ticks"] == 30
    assert out["persist"] is True and out["run_dir"] == str(run)
    _check_ratio(out)
    assert out["snapshots_written"] >= 2  # periodic ones and the final one of close()
    assert out["log_records_written"] >= 3
    assert isinstance(out["archive_size"], int)
    assert sorted((run / "snapshots").iterdir())
    kinds = {r["kind"] for r in read_logs(run / "logs")}
    assert {"tick", "shutdown"} <= kinds


def test_bench_realtime_persist_uses_a_temporary_run_dir_and_removes_it(tmp_path, monkeypatch):
    """--persist: a run directory with snapshots every 1000 ticks (the default), then gone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = bench_realtime(seconds=0.2, interval=0.01, persist=True)
    assert out["persist"] is True and out["run_dir"] is None
    assert out["snapshots_written"] == 1  # only the final one: 20 ticks < 1000
    _check_ratio(out)
    assert list(tmp_path.iterdir()) == []


def test_bench_realtime_refuses_run_dir_and_persist_together(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        bench_realtime(seconds=0.2, run_dir=tmp_path / "r", persist=True)


def test_bench_realtime_refuses_a_span_shorter_than_ten_intervals():
    with pytest.raises(ValueError, match="at least 10 intervals"):
        bench_realtime(seconds=0.05, interval=0.01)


@pytest.mark.parametrize("wait", ["python", "kernel"])
def test_bare_pacing_waits_for_the_deadlines(wait):
    """Either wait: the Python clock's, or the compiled engine's inside its kernel."""
    if wait == "kernel" and (not numba_available() or futex_syscall() is None):
        pytest.skip("the kernel cannot wait here")
    assert bare_pacing(0.05, 0.01, wait=wait) >= 0


def test_bare_pacing_refuses_an_unknown_wait():
    with pytest.raises(ValueError, match="wait must be"):
        bare_pacing(0.05, 0.01, wait="spin")


def test_bench_import_times_fresh_interpreters():
    out = bench_import(repeats=2)
    assert len(out["import_ms"]) == 2
    assert all(ms > 0 for ms in out["import_ms"])
    assert out["import_ms_min"] <= out["import_ms_median"] <= out["import_ms_max"]


def test_cli_bench_realtime_and_import(capsys):
    assert main(["bench", "realtime", "--seconds", "0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ticks"] == 20
    assert main(["bench", "import", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["repeats"] == 1


def test_cli_bench_realtime_with_a_run_dir(tmp_path, capsys):
    """One command: organism with a run directory, the bare loop, their ratio."""
    run = tmp_path / "r"
    argv = ["bench", "realtime", "--seconds", "0.2", "--run-dir", str(run), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["run_dir"] == str(run) and out["snapshots_written"] >= 1
    _check_ratio(out)
    argv = ["bench", "realtime", "--seconds", "0.2", "--run-dir", str(run), "--persist"]
    with pytest.raises(SystemExit):  # argparse: not allowed together
        main(argv)


def test_cli_bench_realtime_bad_span_exits_2(capsys):
    assert main(["bench", "realtime", "--seconds", "0.01"]) == 2
    assert "10 intervals" in capsys.readouterr().err


def test_a_failing_interpreter_is_a_bench_process_error(monkeypatch, capsys):
    """An interpreter that fails or cannot start raises BenchProcessError; the CLI exits 3."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(BenchProcessError, match="status 1") as info:
        bench_import(repeats=1)
    assert isinstance(info.value, RuntimeError)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(BenchProcessError, match="could not start"):
        bench_import(repeats=1)
    assert main(["bench", "import", "--repeats", "1"]) == 3  # a failed run, not bad input
    assert "could not start" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_bench_compile_reports_cold_warm_and_import(capsys):
    """bench compile: a cold compile in a fresh numba cache, a warm start, a numba-free import.

    Takes ~30 s: the cold run compiles the kernel (into a temporary cache, not the project's).
    """
    assert main(["bench", "compile", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["engine"] == "compiled"
    for key in ("first_compile_s", "warm_start_s", "import_s"):
        assert isinstance(out[key], float) and math.isfinite(out[key]) and out[key] > 0, key
    assert out["numba_imported_by_import_lifelab"] is False
    assert isinstance(out["numba_version"], str)
