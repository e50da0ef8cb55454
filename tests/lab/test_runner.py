"""Trials in fresh worker processes: the row a trial returns, failures, timeouts, environment."""

import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lifelab.exceptions import LifelabError
from lifelab.lab import _worker, load
from lifelab.lab.env import PER_TRIAL_COLUMNS, capture_environment, git_state
from lifelab.lab.runner import TrialFailed, failed_row, run_trial
from lifelab.lab.schema import ALL_COLUMNS, ENV_COLUMNS, LOAD_COLUMNS, METRIC_COLUMNS
from lifelab.lab.spec import TrialSpec

TINY = TrialSpec(ticks=2_000, warmup_ticks=200, timeout_s=120)
# Every vital at its weakness threshold from the start and drained in one tick: the organism
# dies at once, which the worker must report as a failure, not as a (bogus) fast run.
FRAGILE = {
    "weak_energy": 100.0,
    "weak_stability": 1.0,
    "weak_integrity": 1.0,
    "weak_penalty_energy": 100.0,
    "weak_penalty_stability": 1.0,
    "weak_penalty_integrity": 1.0,
    "mortality_ticks": 1,
}


def test_capture_environment_has_every_env_column():
    """Every ENV column is present; machine columns filled, per-trial ones left to the runner."""
    env = capture_environment()
    assert list(env) == [name for name, _ in ENV_COLUMNS]
    for name in PER_TRIAL_COLUMNS:
        assert env[name] is None
    for name in (
        "python_version",
        "implementation",
        "lifelab_version",
        "git_commit",
        "cpu_model",
        "hostname_hash",
        "gc_threshold",
    ):
        assert isinstance(env[name], str) and env[name], name
    assert isinstance(env["git_dirty"], bool)
    assert env["cpu_count"] >= 1
    assert len(env["hostname_hash"]) == 12
    assert len(env["gc_threshold"].split(",")) == 3
    assert env["polars_version"] != "missing"
    assert env["numpy_version"] != "missing"


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    """A folder that is not the top of a git checkout reports ("unknown", False)."""
    assert git_state(tmp_path) == ("unknown", False)


def test_run_trial_returns_a_full_row():
    """A tiny trial returns one row with every schema column and a positive finite rate."""
    row = run_trial(TINY)
    assert list(row) == [name for name, _ in ALL_COLUMNS]
    assert row["status"] == "ok"
    assert row["error"] == ""
    assert row["cell"] == TINY.cell
    assert row["ticks"] == 2_000 and row["warmup_ticks"] == 200
    assert row["gc_mode"] == "default" and row["config_json"] == "{}"
    assert row["engine"] == TINY.engine == "compiled"
    assert math.isfinite(row["ticks_per_s"]) and row["ticks_per_s"] > 0
    assert row["events"] > 0
    for name, _ in METRIC_COLUMNS:
        assert row[name] is not None, name
    shares = [row[f"stage_{s}_share"] for s in ("perceive", "respond", "periodic")]
    assert all(0.0 <= s <= 1.0 for s in shares)
    assert row["duration_s"] > 0
    assert row["started_at"].tzinfo is not None
    assert row["gc_threshold"].count(",") == 2
    for name in ("suite", "sweep_id", "trial_id", "repeat", "order"):
        assert row[name] is None
    # The load over the measured ticks: the load average on Linux, the CPU time everywhere. A
    # tiny trial may be too short for steal and iowait shares (load.MIN_SHARE_JIFFIES): None.
    assert row["cpu_time_s"] > 0
    if Path("/proc/loadavg").is_file():
        assert row["load_avg_1m"] >= 0
    for name in ("cpu_steal_pct", "cpu_iowait_pct"):
        assert row[name] is None or 0 <= row[name] <= 100, name


def test_the_worker_samples_the_load_just_around_the_measured_ticks(monkeypatch):
    """The worker reads the load right before and after measure() (the warm-up is earlier)."""
    from lifelab.lab import bench

    stat = "cpu  {} 0 0 {} {} 0 0 {}\n"
    samples = iter(
        [
            load.LoadSample(0.5, load.parse_proc_stat(stat.format(0, 0, 0, 0)), 1.0),
            load.LoadSample(3.0, load.parse_proc_stat(stat.format(900, 800, 100, 200)), 1.25),
        ]
    )
    events = []
    real_measure = bench.measure

    def fake_sample():
        events.append("sample")
        return next(samples)

    def measure(*args, **kw):
        events.append("measure")
        return real_measure(*args, **kw)

    monkeypatch.setattr(load, "sample", fake_sample)
    monkeypatch.setattr(bench, "measure", measure)
    out = _worker.run_spec(TrialSpec(ticks=20, warmup_ticks=5, engine="python"))
    assert events == ["sample", "measure", "sample"]
    assert out["load_avg_1m"] == 3.0  # the higher reading
    assert out["cpu_steal_pct"] == 10.0 and out["cpu_iowait_pct"] == 5.0  # of 2000 jiffies
    assert out["cpu_time_s"] == 0.25
    assert load.is_loaded(out)  # steal 10 % > 5 %


def test_a_failed_row_has_no_load_readings():
    """A trial that failed measured nothing: its load columns are null."""
    row = failed_row(TINY, "boom", started_at=datetime.now(UTC), duration_s=0.0)
    assert list(row) == [name for name, _ in ALL_COLUMNS]
    assert row["status"] == "failed"
    for name, _ in LOAD_COLUMNS:
        assert row[name] is None, name


def test_worker_failure_raises_trial_failed_with_stderr_tail():
    """A config that makes the worker raise gives TrialFailed with exit status and stderr tail."""
    spec = TrialSpec(ticks=100, warmup_ticks=10, config=FRAGILE, timeout_s=120)
    with pytest.raises(TrialFailed) as info:
        run_trial(spec)
    err = info.value
    assert isinstance(err, LifelabError) and isinstance(err, RuntimeError)
    assert err.exit_code == 1
    assert not err.timed_out
    assert "organism died" in err.stderr_tail
    assert "Traceback" in err.stderr_tail
    assert len(err.stderr_tail) <= 2_001
    assert "organism died" in str(err)
    assert err.spec == spec


def test_timeout_kills_the_worker():
    """A trial that outlives its timeout is killed and reported as timed out."""
    spec = TrialSpec(ticks=50_000_000, warmup_ticks=0)
    with pytest.raises(TrialFailed, match="killed") as info:
        run_trial(spec, timeout_s=1.0)
    assert info.value.timed_out
    assert info.value.exit_code != 0


def test_missing_interpreter_is_a_trial_failure(tmp_path):
    """A worker that cannot start is a TrialFailed too."""
    with pytest.raises(TrialFailed, match="could not start"):
        run_trial(TINY, python=str(tmp_path / "no-python"))


def test_worker_prints_one_json_line_last(capsys):
    """The worker's last stdout line is the JSON result with every metric and env column."""
    spec = TrialSpec(ticks=20, warmup_ticks=0)
    assert _worker.main([spec.to_json()]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == set(_worker.RESULT_KEYS)
    assert result["ticks_per_s"] > 0


def test_worker_refuses_to_measure_another_engine(capsys):
    """A compiled trial whose organism falls back to the Python engine fails, saying why."""
    # log_decisions is a setting only the Python engine supports: Life falls back to it.
    spec = TrialSpec(ticks=20, warmup_ticks=0, config={"log_decisions": True})
    assert _worker.main([spec.to_json()]) == 1
    err = capsys.readouterr().err
    assert "asks for the compiled engine but the organism runs the python engine" in err
    python = TrialSpec(ticks=20, warmup_ticks=0, engine="python", config={"log_decisions": True})
    assert _worker.main([python.to_json()]) == 0


def test_worker_refuses_a_bad_spec(capsys):
    """A spec the worker cannot run exits with status 2 and says why on stderr."""
    assert _worker.main(['{"ticks": 5}']) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bad spec" in captured.err and "ticks" in captured.err


@pytest.mark.parametrize("argv", [[], ["--spec", "{}"], ["-h"]])
def test_worker_misuse_prints_usage_and_exits_2(argv, capsys):
    """The worker takes exactly one argument, the spec; anything else is a usage error."""
    assert _worker.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _worker.USAGE in captured.err


def test_worker_never_imports_matplotlib_or_dask():
    """A worker process runs a trial without loading plotting or cluster libraries."""
    code = (
        "import sys\n"
        "from lifelab.lab import _worker\n"
        f"_worker.main([{TrialSpec(ticks=20, warmup_ticks=0).to_json()!r}])\n"
        "heavy = sorted(m for m in ('matplotlib', 'dask', 'distributed', 'tqdm')"
        " if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
