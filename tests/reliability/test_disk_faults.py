"""Disk faults (ENOSPC, EIO, EACCES) in the snapshot, archive and log writers, and a tick stage
that raises over and over: the organism keeps ticking, every fault is counted and logged once per
kind, visible in the metrics, nothing is dropped that may not be, and once the fault clears
everything catches up.

Faults come from a fault-injecting file layer (:class:`FaultyDisk`: ``open``, ``write``,
``os.fsync`` and ``os.replace`` on matching paths) and, for SQLite, which does its own I/O in C,
from the archive's ``_insert`` seam raising what SQLite raises. No disk is filled.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import sqlite3
import threading
import time
from collections import Counter

import numpy as np
import pytest

from lifelab.config import LifeConfig
from lifelab.exceptions import ArchiveError, error_kind
from lifelab.life.loop import Life
from lifelab.memory import sqlite_archive, writer
from lifelab.memory.segment_archive import SegmentArchive
from lifelab.memory.sqlite_archive import SQLiteArchive
from lifelab.store.logs import read_logs
from lifelab.store.snapshot import list_snapshots

SNAPSHOT_TMP = ".lls.tmp"
LOG_FILE = ".jsonl"
KINDS = {errno.ENOSPC: "ENOSPC", errno.EIO: "EIO", errno.EACCES: "EACCES"}


class _FaultyFile:
    """A file opened through :class:`FaultyDisk`: its writes consult the disk's rules."""

    def __init__(self, disk: FaultyDisk, f, path: str) -> None:
        self._disk = disk
        self._f = f
        self._path = path
        self._fd = f.fileno()
        disk._fds[self._fd] = path

    def write(self, data):
        self._disk._check(self._path, "write")
        return self._f.write(data)

    def close(self):
        self._disk._fds.pop(self._fd, None)
        return self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


class FaultyDisk:
    """A fault-injecting file layer: while a rule ``(suffix, op) -> errno`` is armed, that
    operation on a path ending with ``suffix`` raises ``OSError(errno)``; ops are ``open``,
    ``write``, ``fsync`` and ``replace``. Other files pass straight through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, suffixes=(SNAPSHOT_TMP, LOG_FILE)) -> None:
        self.suffixes = suffixes
        self.rules: dict[tuple[str, str], int] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self._fds: dict[int, str] = {}
        real_open, real_fsync, real_replace = builtins.open, os.fsync, os.replace

        def faulty_open(file, mode="r", *args, **kwargs):
            path = os.fspath(file) if isinstance(file, str | os.PathLike) else None
            if not isinstance(path, str) or not path.endswith(self.suffixes):
                return real_open(file, mode, *args, **kwargs)
            self._check(path, "open")
            f = real_open(file, mode, *args, **kwargs)
            return _FaultyFile(self, f, path) if any(c in mode for c in "wax+") else f

        def faulty_fsync(fd):
            path = self._fds.get(fd)
            if path is not None:
                self._check(path, "fsync")
            return real_fsync(fd)

        def faulty_replace(src, dst, *args, **kwargs):
            path = os.fspath(src)
            if isinstance(path, str):
                self._check(path, "replace")
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", faulty_open)
        monkeypatch.setattr(os, "fsync", faulty_fsync)
        monkeypatch.setattr(os, "replace", faulty_replace)

    def fail(self, suffix: str, op: str, code: int) -> None:
        self.rules[(suffix, op)] = code

    def heal(self) -> None:
        self.rules.clear()

    def _check(self, path: str, op: str) -> None:
        for (suffix, rule_op), code in list(self.rules.items()):
            if rule_op == op and path.endswith(suffix):
                self.hits[(suffix, op)] += 1
                raise OSError(code, os.strerror(code), path)


@pytest.fixture
def disk(monkeypatch):
    return FaultyDisk(monkeypatch)


_SQLITE_FAULTS = {
    errno.ENOSPC: ("SQLITE_FULL", "database or disk is full"),
    errno.EIO: ("SQLITE_IOERR_WRITE", "disk I/O error"),
    errno.EACCES: ("SQLITE_READONLY", "attempt to write a readonly database"),
}


class BrokenArchive:
    """Makes every archive write fail, while armed: the segment archive's writes with this errno,
    the SQLite archive's transactions (runs of format 1) as SQLite would fail them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.code: int | None = None
        original = SQLiteArchive._insert
        original_pwrite = SegmentArchive._pwrite

        def pwrite(archive, fd, data, offset):
            code = self.code
            if code is not None:
                raise OSError(code, os.strerror(code))
            return original_pwrite(archive, fd, data, offset)

        monkeypatch.setattr(SegmentArchive, "_pwrite", pwrite)

        def insert(archive, rows):
            code = self.code
            if code is not None:
                name, message = _SQLITE_FAULTS[code]
                exc = sqlite3.OperationalError(message)
                exc.sqlite_errorname = name
                raise exc
            original(archive, rows)

        monkeypatch.setattr(SQLiteArchive, "_insert", insert)
        # Quick retries so a test sees several attempts, not the production backoff.
        monkeypatch.setattr(writer, "RETRY_DELAYS_S", (0.0,))
        monkeypatch.setattr(writer, "BACKOFF_S", (0.001, 0.02))


@pytest.fixture
def broken_archive(monkeypatch):
    return BrokenArchive(monkeypatch)


def _wait_until(predicate, what: str, timeout=30.0):
    """Poll a condition; the timeout only guards against a hang and is not a timing check."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not reached before the guard timeout")
        time.sleep(0.002)


def _life(tmp_path, **overrides) -> Life:
    values = dict(
        seed=11,
        run_dir=str(tmp_path / "run"),
        snapshot_every=20,
        log_every=10,
        memory_capacity=50,
        events_per_tick=3.0,
    )
    values.update(overrides)
    life = Life(LifeConfig(**values))
    snaps = life.persistence.snapshots
    snaps.retry_min_s, snaps.retry_max_s = 0.001, 0.02  # quick retries for the test
    return life


def _io_errors(life: Life) -> list[tuple[str, str]]:
    assert life.persistence.logs.flush()
    records = read_logs(life.run_dir / "logs")
    return [(r["writer"], r["error"]) for r in records if r["kind"] == "io_error"]


def _close_and_resume_exactly(life: Life) -> None:
    """Close (final snapshot), resume: same digest, every entry accounted for, nothing corrupt."""
    digest = life.digest()
    life.close()
    resumed = Life.resume(life.run_dir)
    try:
        assert resumed.corrupt_files == []
        assert resumed.digest() == digest
        assert resumed.entries_written == len(resumed.memory) + resumed.archive.count()
        ids = resumed.archive.columns()["id"]
        assert len(ids) == len(np.unique(ids))
    finally:
        resumed.close()


def _warnings(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def _sqlite_error(name: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("from sqlite")
    exc.sqlite_errorname = name
    return exc


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "ENOSPC"),
        (PermissionError(errno.EACCES, "Permission denied"), "EACCES"),
        (_sqlite_error("SQLITE_FULL"), "ENOSPC"),
        (_sqlite_error("SQLITE_IOERR_FSYNC"), "EIO"),
        (_sqlite_error("SQLITE_READONLY_DBMOVED"), "EACCES"),
        (_sqlite_error("SQLITE_BUSY"), "SQLITE_BUSY"),
        (
            _caused(ArchiveError("3 rows could not be committed"), _sqlite_error("SQLITE_FULL")),
            "ENOSPC",
        ),
        (ValueError("not an I/O error"), "ValueError"),
    ],
)
def test_every_writer_counts_faults_in_one_vocabulary(exc, kind):
    """errno names, SQLite codes mapped to them, a wrapped cause: one kind per fault."""
    assert error_kind(exc) == kind


# -- snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "op"),
    [(errno.ENOSPC, "write"), (errno.EIO, "fsync"), (errno.EACCES, "open"), (errno.EIO, "replace")],
    ids=lambda v: KINDS.get(v, v),
)
def test_snapshot_faults_are_counted_retried_and_caught_up(tmp_path, disk, caplog, code, op):
    """The organism keeps ticking; failed writes are counted by kind, logged once, leave no temp
    file; the newest capture is retried with backoff and written once the disk heals."""
    kind = KINDS[code]
    life = _life(tmp_path)
    snaps = life.persistence.snapshots
    life.run(100)
    snaps.flush()
    written = snaps.written
    before = list_snapshots(life.run_dir / "snapshots")
    disk.fail(SNAPSHOT_TMP, op, code)
    with caplog.at_level(logging.WARNING, logger="lifelab.store.snapshot"):
        for _ in range(3):  # three captures, several failed attempts
            errors = snaps.errors
            life.run(20)
            snaps.flush()  # taken by the writer (none skipped): the newest is the one held
            _wait_until(lambda e=errors: snaps.errors > e, "a failed snapshot attempt")
    assert life.state.ticks == 160  # kept ticking
    assert snaps.written == written  # nothing reached the disk meanwhile
    assert list_snapshots(life.run_dir / "snapshots") == before
    assert not list((life.run_dir / "snapshots").glob("*.tmp"))  # no half-written file kept
    m = life.metrics_summary()
    assert m["snapshot_errors"] >= 3
    assert m[f"snapshot_errors_{kind.lower()}"] == m["snapshot_errors"]
    assert m["snapshots_failed"] == 2  # superseded captures that never reached the disk
    assert len(_warnings(caplog, "lifelab.store.snapshot")) == 1  # once per kind
    assert _io_errors(life) == [("snapshot", kind)]  # once per kind in the run's log

    disk.heal()
    _wait_until(lambda: snaps.written > written, "the held capture written after the fault")
    assert int(snaps.last_path.name[5:17]) == 160  # the newest state, not a stale one
    assert not snaps.failing
    life.run(40)
    snaps.flush()
    assert snaps.written == written + 3
    _close_and_resume_exactly(life)


def test_snapshot_fault_kinds_are_each_logged_once(tmp_path, disk):
    """ENOSPC, then EACCES, then ENOSPC again: one io_error record per kind, all counted."""
    life = _life(tmp_path)
    snaps = life.persistence.snapshots
    for code, op in ((errno.ENOSPC, "write"), (errno.EACCES, "open"), (errno.ENOSPC, "write")):
        disk.heal()
        disk.fail(SNAPSHOT_TMP, op, code)
        for _ in range(2):
            errors = snaps.errors
            life.run(20)
            _wait_until(lambda e=errors: snaps.errors > e, "a failed snapshot attempt")
    assert _io_errors(life) == [("snapshot", "ENOSPC"), ("snapshot", "EACCES")]
    by_kind = snaps.errors_by_kind
    assert by_kind["ENOSPC"] >= 4 and by_kind["EACCES"] >= 2
    disk.heal()
    _close_and_resume_exactly(life)


# -- the archive ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(KINDS), ids=KINDS.get)
def test_archive_faults_keep_every_row_and_catch_up(tmp_path, broken_archive, caplog, code):
    """Commits fail: the organism keeps ticking, rows wait in memory (never dropped), snapshots
    wait too (they must not cover uncommitted rows); healed, every row lands."""
    kind = KINDS[code]
    life = _life(tmp_path)
    archive = life.persistence.archive
    snaps = life.persistence.snapshots
    life.run(100)
    archive.flush()
    snaps.flush()
    written = snaps.written
    committed = archive.count()
    broken_archive.code = code
    with caplog.at_level(logging.WARNING, logger="lifelab.memory.writer"):
        life.run(300)
        _wait_until(lambda: archive.errors >= 3, "several failed commits")
    assert life.state.ticks == 400
    assert archive.count() == committed  # nothing committed meanwhile...
    assert len(archive) == life.entries_written - len(life.memory)  # ...and nothing dropped
    m = life.metrics_summary()
    assert m["archive_errors"] >= 3 and m[f"archive_errors_{kind.lower()}"] == m["archive_errors"]
    assert m["archive_backlog_rows"] == len(archive) - committed > 0
    assert len(_warnings(caplog, "lifelab.memory.writer")) == 1  # once per kind
    # A snapshot now would cover rows that are not on disk: it is refused and retried.
    _wait_until(lambda: snaps.errors >= 1, "a refused snapshot")
    assert snaps.written == written
    m = life.metrics_summary()
    assert m[f"snapshot_errors_{kind.lower()}"] >= 1  # named by the archive's fault
    assert sorted(_io_errors(life)) == [("archive", kind), ("snapshot", kind)]

    broken_archive.code = None
    _wait_until(lambda: archive.backlog == 0, "the backlog committed by the writer's retries")
    archive.flush()
    assert archive.count() == len(archive) == life.entries_written - len(life.memory)
    _wait_until(lambda: snaps.written > written, "a snapshot after the fault")
    assert life.metrics_summary()["archive_backlog_rows"] == 0
    _close_and_resume_exactly(life)


def test_archive_backpressure_holds_the_tick_and_never_drops(tmp_path, broken_archive):
    """With the backlog full the tick waits for the archive (bounded memory, no loss); once the
    disk heals it goes on by itself. Real time, living in the background as in a notebook."""
    life = _life(
        tmp_path, memory_capacity=20, events_per_tick=5.0, clock="realtime", tick_interval=0.001
    )
    archive = life.persistence.archive
    archive.backlog_max = 300
    broken_archive.code = errno.ENOSPC
    life.start()
    try:
        _wait_until(lambda: archive.backpressure_waits >= 1, "the tick waiting on the archive")
        held_at = life.state.ticks
        time.sleep(0.2)  # not a timing check: the tick thread cannot move while the disk is full
        assert life.state.ticks == held_at
        assert archive.backlog_max <= archive.backlog < archive.backlog_max + 200  # bounded
        assert life.metrics_summary()["archive_backpressure_waits"] >= 1
        broken_archive.code = None
        _wait_until(lambda: life.state.ticks > held_at + 50, "ticking again after the fault")
    finally:
        broken_archive.code = None
        life.stop()
    archive.flush()
    assert archive.count() == len(archive) == life.entries_written - len(life.memory)
    assert archive.backpressure_s > 0
    _close_and_resume_exactly(life)


def test_a_long_backlog_is_committed_in_bounded_transactions(tmp_path, monkeypatch):
    """Catching up converts and commits at most _COMMIT_ROWS rows per transaction, in order."""
    monkeypatch.setattr(sqlite_archive, "_COMMIT_ROWS", 100)
    monkeypatch.setattr(writer, "RETRY_DELAYS_S", (0.0,))
    monkeypatch.setattr(writer, "BACKOFF_S", (60.0, 60.0))  # only flush retries here
    sizes: list[int] = []
    broken = threading.Event()
    broken.set()
    original = SQLiteArchive._insert

    def insert(archive, rows):
        if broken.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        sizes.append(len(rows))
        original(archive, rows)

    monkeypatch.setattr(SQLiteArchive, "_insert", insert)
    life = Life(LifeConfig(seed=2, memory_capacity=10, events_per_tick=4.0))
    life.run(200)
    cols = life.archive.columns()  # the in-memory archive of a life without a run directory
    n = len(cols["id"])
    assert n > 400
    archive = SQLiteArchive(tmp_path / "a.sqlite", type_names=life.types.names)
    try:
        for start in range(0, n, 30):
            archive.append({k: v[start : start + 30] for k, v in cols.items()})
        with pytest.raises(OSError, match="could not be committed"):
            archive.flush()
        assert archive.backlog == n and archive.count() == 0
        broken.clear()
        archive.flush()
        assert archive.count() == n and archive.backlog == 0
        assert max(sizes) <= 100
        assert np.array_equal(archive.columns()["id"], np.sort(cols["id"]))
    finally:
        archive.close()


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "op"),
    [(errno.ENOSPC, "write"), (errno.EIO, "write"), (errno.EIO, "fsync"), (errno.EACCES, "open")],
    ids=lambda v: KINDS.get(v, v),
)
def test_log_faults_are_counted_and_logs_resume_with_a_counted_gap(
    tmp_path, disk, caplog, code, op
):
    """Log writes fail: the organism keeps ticking, held records fill the buffer and the rest
    are dropped and counted; healed, the log resumes, the gap marked by log_dropped records."""
    kind = KINDS[code]
    life = _life(tmp_path, log_every=1, snapshot_every=50)
    logs = life.persistence.logs
    logs.buffer_max = 64
    if op == "open":
        disk.fail(LOG_FILE, op, code)  # the file is opened at the first flush
    else:
        life.run(10)
        assert logs.flush()
        disk.fail(LOG_FILE, op, code)
    with caplog.at_level(logging.WARNING, logger="lifelab.store.logs"):
        logs.flush("snapshot")  # the new buffer limit, and a first failure (snapshot: fsync too)
        life.run(300)
        assert not logs.flush("snapshot")
    assert life.state.ticks == (300 if op == "open" else 310)
    stats = logs.stats()
    assert set(stats["errors"]) == {f"{op}:{kind}"}
    m = life.metrics_summary()
    assert m["log_errors"] == m[f"log_errors_{kind.lower()}"] >= 1
    if op != "fsync":  # an fsync failure loses nothing: the records were written
        assert m["log_dropped"] > 0 and m["log_buffered"] <= 64
    assert len(_warnings(caplog, "lifelab.store.logs")) == 1  # once per kind

    disk.heal()
    assert logs.flush("snapshot")
    life.run(20)
    end = life.state.ticks
    life.close()
    records = read_logs(life.run_dir / "logs")
    assert records.truncated == 0
    dropped = logs.stats()["dropped"]
    assert sum(r["dropped"] for r in records if r["kind"] == "log_dropped") == dropped
    ticks = [r["tick"] for r in records if r["kind"] == "tick"]
    assert ticks == sorted(ticks) and ticks[-1] == end  # resumed after the fault
    assert len(ticks) + dropped == end  # every tick record is on disk or counted as dropped
    assert records[-1]["kind"] == "shutdown" and records[-1]["log_errors"] >= 1


# -- a stage raising over and over ----------------------------------------------------------------


def test_a_stage_raising_for_many_ticks_is_counted_penalised_and_logged_once(tmp_path, caplog):
    """Two kinds of failure over 80 ticks: each counted, integrity −penalty per failure, one
    error record per kind in the log, no warnings flood."""
    penalty = 0.004
    config = LifeConfig(
        seed=3,
        events_per_tick=0.0,
        echo_probability=0.0,
        error_integrity_penalty=penalty,
        run_dir=str(tmp_path / "run"),
        log_every=10,
        snapshot_every=50,
        engine="python",  # the test patches a stage of the Python engine
    )
    life = Life(config)
    echo = life._maybe_echo

    def failing_echo():
        tick = life.state.ticks
        if 10 <= tick < 60:
            raise RuntimeError(f"the echo stage broke on tick {tick}")
        if 100 <= tick < 130:
            raise OSError(errno.EIO, "sensor read failed")
        echo()

    life._maybe_echo = failing_echo
    with caplog.at_level(logging.DEBUG, logger="lifelab"):
        summary = life.run(200)
    assert summary["ticks"] == 200 and summary["errors"] == 80
    assert dict(life.errors) == {"RuntimeError": 50, "OSError": 30}
    assert life.state.integrity == pytest.approx(1.0 - 80 * penalty)
    m = life.metrics_summary()
    assert m["stage_errors_runtimeerror"] == 50 and m["stage_errors_oserror"] == 30
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert life.persistence.logs.flush()
    errors = [r for r in read_logs(life.run_dir / "logs") if r["kind"] == "error"]
    assert [(r["error"], r["tick"]) for r in errors] == [("RuntimeError", 10), ("OSError", 100)]
    _close_and_resume_exactly(life)


def test_a_failing_stage_in_real_time_still_waits_for_every_deadline():
    """No busy spin: the failing stage runs once per tick, and no tick runs before its deadline
    ``start + k·interval`` (a property of the schedule, not a speed check)."""
    interval = 0.004
    life = Life(
        LifeConfig(
            clock="realtime",
            tick_interval=interval,
            events_per_tick=0.0,
            echo_probability=0.0,
            engine="python",  # the test patches a stage of the Python engine
        )
    )
    calls: list[float] = []

    def failing_echo():
        calls.append(time.perf_counter())
        raise RuntimeError("broken every tick")

    life._maybe_echo = failing_echo
    t0 = time.perf_counter()
    life.run(40)
    assert len(calls) == 40 and life.errors["RuntimeError"] == 40
    for k, t in enumerate(calls, 1):
        assert t >= t0 + k * interval, f"tick {k} ran before its deadline"
