"""SIGINT and SIGTERM for ``lifelab run`` / ``lifelab resume``: a clean shutdown (final snapshot,
logs flushed, archive committed) with exit status 130 or 143, and a second signal during the
shutdown that ends the process at once without corrupting anything (DESIGN §2, invariant 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lifelab import cli
from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.store.inspect import inspect_run
from lifelab.store.logs import read_logs
from lifelab.store.snapshot import list_snapshots, read_snapshot, snapshot_name

pytestmark = pytest.mark.slow

FOREVER = str(10**9)  # ticks: the run only ends by the signal
OPTIONS = [
    "--snapshot-every",
    "100",
    "--log-every",
    "100",
    "--memory-capacity",
    "200",
    "--events-per-tick",
    "3",
]
INTERVAL = 0.002  # real-time runs: 500 ticks per second


def _wait_until(predicate, what: str, proc: subprocess.Popen | None = None, timeout=60.0):
    """Poll a condition; the timeout only guards against a hang and is not a timing check."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}")
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not reached before the guard timeout")
        time.sleep(0.02)


def _start(args: list[str], prefix: list[str] | None = None) -> subprocess.Popen:
    cmd = prefix or [sys.executable, "-m", "lifelab.cli"]
    return subprocess.Popen(
        [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _snapshot_ticks(run: Path) -> list[int]:
    return [int(p.name[5:17]) for p in list_snapshots(run / "snapshots")]


def _progressed(run: Path, beyond: int):
    """True once a snapshot newer than tick ``beyond`` is on disk."""
    return lambda: any(t > beyond for t in _snapshot_ticks(run))


def _born(run: Path, clock: str) -> int:
    """A run directory made in-process (for ``resume``); returns its ticks."""
    config = LifeConfig(
        seed=5,
        clock=clock,
        tick_interval=INTERVAL,
        run_dir=str(run),
        snapshot_every=100,
        log_every=100,
        memory_capacity=200,
        events_per_tick=3.0,
    )
    with Life(config) as life:
        life.run(250)
    return life.state.ticks


def _check_clean_shutdown(run: Path, out: dict, sig: signal.Signals, stderr: str) -> None:
    """Everything a clean shutdown promises, read back from the run directory."""
    assert out["signal"] == sig.name
    assert "stopped cleanly" in stderr
    ticks = out["ticks"]
    # final snapshot: the newest file, at the tick the organism stopped, of the final state
    snaps = list_snapshots(run / "snapshots")
    assert snaps[-1].name == snapshot_name(ticks)
    assert read_snapshot(snaps[-1]).digest == out["digest"]
    assert not list((run / "snapshots").glob("*.tmp"))
    # archive durable and closed: no half-written segment left behind
    assert not list((run / "archive").glob("*.tmp"))
    info = inspect_run(run)
    assert info["corrupt_files"] == []
    assert info["archive_size"] == info["archive_size_at_snapshot"] == out["archive_size"]
    assert info["entries_written"] == info["memory_active"] + info["archive_size"]
    assert info["entries_written"] == out["entries_written"]
    # logs flushed: whole lines, ending with why and where the run stopped
    records = read_logs(run / "logs")
    assert records.truncated == 0
    assert records[-2] == {"kind": "signal", "tick": ticks, "signal": sig.name}
    shutdown = records[-1]
    assert shutdown["kind"] == "shutdown" and shutdown["tick"] == ticks
    assert shutdown["snapshot"] == snaps[-1].name
    assert shutdown["snapshot_errors"] == shutdown["archive_errors"] == 0
    assert shutdown["log_dropped"] == 0 and shutdown["archive_backlog_rows"] == 0
    # and the run resumes exactly where it stopped
    life = Life.resume(run)
    try:
        assert life.corrupt_files == []
        assert life.digest() == out["digest"]
        life.run(20)
    finally:
        life.close()


CASES = [
    ("run", "simulated", signal.SIGTERM),
    ("run", "realtime", signal.SIGINT),
    ("resume", "simulated", signal.SIGINT),
    ("resume", "realtime", signal.SIGTERM),
]


@pytest.mark.parametrize(("command", "clock", "sig"), CASES, ids=lambda v: getattr(v, "name", v))
def test_a_signal_shuts_down_cleanly_with_a_documented_status(tmp_path, command, clock, sig):
    """SIGINT/SIGTERM: stop at a tick boundary, final snapshot, logs, archive; exit 128 + n."""
    run = tmp_path / "run"
    if command == "run":
        args = ["run", "--run-dir", str(run), "--ticks", FOREVER, *OPTIONS, "--json"]
        if clock == "realtime":
            args += ["--realtime", "--interval", str(INTERVAL)]
        born = 0
    else:
        born = _born(run, clock)
        args = ["resume", str(run), "--ticks", FOREVER, "--json"]
    proc = _start(args)
    try:
        _wait_until(_progressed(run, born), "a snapshot of the new ticks", proc)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, stderr[-2000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["ticks"] > born
    _check_clean_shutdown(run, out, sig, stderr)


# The CLI with its final snapshot stuck half-written: a second signal must end it there.
_STUCK_SHUTDOWN = """
import sys, time
from pathlib import Path
from lifelab import cli
from lifelab.store.snapshot import SnapshotWriter, snapshot_name

marker = Path(sys.argv[1])

def stuck_write_now(self, capture):
    (self.directory / (snapshot_name(capture.ticks) + ".tmp")).write_bytes(b"LIFELABS torn")
    marker.write_text(str(capture.ticks))
    time.sleep(600)

SnapshotWriter.write_now = stuck_write_now
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_second_signal_during_shutdown_exits_at_once_and_corrupts_nothing(tmp_path):
    """SIGTERM, then SIGINT while the final snapshot is half written: the process ends by the
    signal at once; the run resumes from the newest intact snapshot with nothing lost."""
    run = tmp_path / "run"
    marker = tmp_path / "shutting-down"
    args = ["run", "--run-dir", str(run), "--ticks", FOREVER, *OPTIONS, "--json"]
    proc = _start([str(marker), *args], prefix=[sys.executable, "-c", _STUCK_SHUTDOWN])
    try:
        _wait_until(_progressed(run, 0), "a first snapshot", proc)
        proc.send_signal(signal.SIGTERM)
        _wait_until(marker.exists, "the shutdown", proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)  # a hang guard: the sleep is 600 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGINT, stderr[-2000:]
    assert stdout == ""  # no summary: it ended at once
    stopped_at = int(marker.read_text())
    torn = run / "snapshots" / (snapshot_name(stopped_at) + ".tmp")
    assert torn.exists()  # killed in the middle of writing the final snapshot
    newest = _snapshot_ticks(run)[-1]
    assert newest < stopped_at
    assert inspect_run(run)["corrupt_files"] == []
    life = Life.resume(run)
    try:
        assert life.corrupt_files == []
        assert not torn.exists()  # the writer clears temp files left by a kill
        assert life.state.ticks == newest
        assert life.entries_written == len(life.memory) + len(life.archive)
        ids = life.archive.columns()["id"]
        assert len(ids) == len(np.unique(ids))
        assert not np.isin(life.memory.columns()["id"], ids).any()
        life.run(100)
    finally:
        life.close()
    assert inspect_run(run)["corrupt_files"] == []


def test_handlers_are_installed_only_during_the_command_and_restored(tmp_path, monkeypatch):
    """While run() lives, SIGINT/SIGTERM go to the CLI's handler; afterwards the old ones."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    during = {}
    real_run = Life.run

    def spy_run(self, ticks):
        during.update({s: signal.getsignal(s) for s in before})
        return real_run(self, ticks)

    monkeypatch.setattr(Life, "run", spy_run)
    assert cli.main(["run", "--ticks", "50", "--run-dir", str(tmp_path / "run"), "--json"]) == 0
    assert all(during[s] is not before[s] and callable(during[s]) for s in before)
    assert {s: signal.getsignal(s) for s in before} == before


def test_importing_lifelab_installs_no_handler():
    """Nothing changes signal handling at import time (STYLE rule 7)."""
    code = (
        "import signal\n"
        "sigs = (signal.SIGINT, signal.SIGTERM)\n"
        "before = [signal.getsignal(s) for s in sigs]\n"
        "import lifelab, lifelab.cli, lifelab.life.loop, lifelab.store.persistence\n"
        "assert [signal.getsignal(s) for s in sigs] == before\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_sigterm_in_process_stops_at_a_tick_boundary(tmp_path, monkeypatch, capsys):
    """The handler only asks the organism to stop: main() returns 143 after a clean shutdown,
    with the summary printed and the signal in it."""
    real_run = Life.run
    sent = []

    def run_then_signal(self, ticks):
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler is installed here
        return real_run(self, ticks)

    monkeypatch.setattr(Life, "run", run_then_signal)
    run = tmp_path / "run"
    status = cli.main(["run", "--ticks", "1000000", "--run-dir", str(run), "--json"])
    assert status == 143
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["signal"] == "SIGTERM" and out["ticks"] < 1_000_000
    assert list_snapshots(run / "snapshots")[-1].name == snapshot_name(out["ticks"])


def test_help_documents_the_exit_statuses(capsys):
    """``lifelab run --help`` and ``resume --help`` name both statuses and the second signal."""
    for command in ("run", "resume"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "130 (SIGINT)" in text and "143 (SIGTERM)" in text
        assert "second signal" in text
