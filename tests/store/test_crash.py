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
        time.sleep(float(rng.uniform(0.6, 1.5)))
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
