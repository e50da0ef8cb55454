"""Crash safety for real: SIGKILL a real-time run at random moments, resume, check invariants."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lifelab.life.loop import Life
from lifelab.store.inspect import inspect_run

pytestmark = pytest.mark.slow


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lifelab.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _newest_snapshot_tick(run) -> int:
    ticks = [int(p.stem.split("-")[1]) for p in (run / "snapshots").glob("snap-*.lls")]
    return max(ticks, default=0)


def _wait_for_snapshot_after(run, tick: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the process has snapshotted past ``tick``: start-up (imports, loading the compiled
    kernels) takes a varying second or two, so a kill timed from the start alone could land
    before any tick on every round and the test would prove nothing."""
    deadline = time.monotonic() + 120.0
    while _newest_snapshot_tick(run) <= tick:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no new snapshot within 120 s"
        time.sleep(0.05)


def test_kill9_then_resume_loses_nothing(tmp_path):
    """Every resume after SIGKILL succeeds, ticks never go backwards, nothing is corrupt."""
    run = tmp_path / "run"
    rng = np.random.default_rng(7)
    common = [
        "--ticks",
        "1000000",
        "--interval",
        "0.001",
        "--snapshot-every",
        "40",
        "--events-per-tick",
        "4",
        "--memory-capacity",
        "300",
        "--log-every",
        "25",
    ]
    proc = _start(["run", "--realtime", "--run-dir", str(run), *common])
    last_ticks = 0
    for _ in range(4):
        _wait_for_snapshot_after(run, last_ticks, proc)
        time.sleep(float(rng.uniform(0.0, 0.5)))  # then a random moment: mid-tick, mid-write…
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        info = inspect_run(run)
        assert info["corrupt_files"] == []
        life = Life.resume(run)
        try:
            assert life.corrupt_files == []
            assert life.state.ticks >= last_ticks
            last_ticks = life.state.ticks
            assert life.entries_written == len(life.memory) + len(life.archive)
            ids = life.archive.columns()["id"]
            assert len(ids) == len(np.unique(ids))
            assert not np.isin(life.memory.columns()["id"], ids).any()
        finally:
            life.close()
        proc = _start(["resume", str(run), *common[:2]])
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert last_ticks > 0
