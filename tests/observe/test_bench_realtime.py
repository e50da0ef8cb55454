"""bench realtime / bench import: figures present and sane; nothing here asserts on speed."""

from __future__ import annotations

import json
import math
import sys

import pytest

from lifelab.cli import main
from lifelab.observe.bench_realtime import (
    BenchProcessError,
    bare_pacing,
    bench_import,
    bench_realtime,
)


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
    assert out["baseline_cpu_percent"] >= 0


def test_bench_realtime_refuses_a_span_shorter_than_ten_intervals():
    with pytest.raises(ValueError, match="at least 10 intervals"):
        bench_realtime(seconds=0.05, interval=0.01)


def test_bare_pacing_waits_for_the_deadlines():
    assert bare_pacing(0.05, 0.01) >= 0


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


def test_cli_bench_realtime_bad_span_exits_2(capsys):
    assert main(["bench", "realtime", "--seconds", "0.01"]) == 2
    assert "10 intervals" in capsys.readouterr().err


def test_a_failing_interpreter_is_a_bench_process_error(monkeypatch, capsys):
    """An interpreter that fails or cannot start raises BenchProcessError; the CLI exits 1."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(BenchProcessError, match="status 1") as info:
        bench_import(repeats=1)
    assert isinstance(info.value, RuntimeError)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(BenchProcessError, match="could not start"):
        bench_import(repeats=1)
    assert main(["bench", "import", "--repeats", "1"]) == 1
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
