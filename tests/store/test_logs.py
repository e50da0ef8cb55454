"""Structured logs (DESIGN.md §1.9): buffered JSON lines, one flush per trigger, rotation, loss
counted, torn lines skipped, and no file I/O on the logging thread."""

import builtins
import errno
import json
import logging
import math
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.exceptions import ConfigError, ConfigTypeError, LifelabError
from lifelab.store import logs
from lifelab.store.logs import LogError, LogWriter, read_logs

NEVER = math.inf  # no periodic flush: every flush in a test is one we asked for


def _strict_loads(line: bytes) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(line, parse_constant=refuse)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class _SpyFile:
    """Wraps a log file: records the thread of every write and can fail the next writes."""

    def __init__(self, f, calls, failures):
        self._f = f
        self._calls = calls
        self._failures = failures

    def write(self, data):
        self._calls.append(("write", threading.current_thread().name))
        if self._failures:
            action = self._failures.pop(0)
            if action == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            if action == "half":  # a short write, as the OS does when the disk fills up
                return self._f.write(data[: len(data) // 2])
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.fixture
def spy(monkeypatch):
    """Wrap the log files the writer opens; returns (calls, failures) lists."""
    calls: list[tuple[str, str]] = []
    failures: list[str] = []
    real_open = builtins.open

    def spy_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if str(file).endswith(".jsonl"):
            calls.append(("open", threading.current_thread().name))
            if "a" in mode:
                return _SpyFile(f, calls, failures)
        return f

    def spying(name, real):
        def wrapper(*args, **kwargs):
            calls.append((name, threading.current_thread().name))
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(logs.os, "fsync", spying("fsync", os.fsync))
    monkeypatch.setattr(logs.os, "replace", spying("replace", os.replace))
    monkeypatch.setattr(logs.os, "truncate", spying("truncate", os.truncate))
    return calls, failures


def test_records_round_trip_in_order(tmp_path):
    """log() and write() records come back in order, with exactly kind, tick and the fields."""
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        for tick in range(1, 101):
            w.log("tick", tick, energy=0.5, events=tick % 7, note="ok")
            if tick % 10 == 0:
                w.write({"kind": "decision", "tick": tick, "action": "absorb"})
    records = read_logs(tmp_path)
    assert len(records) == 110 and records.truncated == 0
    assert records[0] == {"kind": "tick", "tick": 1, "energy": 0.5, "events": 1, "note": "ok"}
    assert records[10] == {"kind": "decision", "tick": 10, "action": "absorb"}
    assert [r["tick"] for r in records] == sorted(r["tick"] for r in records)
    assert w.stats()["records_written"] == 110
    assert _files(tmp_path) == ["life.jsonl"]


def test_one_flush_per_trigger(tmp_path, monkeypatch):
    """Every trigger causes exactly one flush; snapshot and shutdown flushes also fsync."""
    fsyncs = []
    monkeypatch.setattr(logs.os, "fsync", lambda fd: fsyncs.append(fd))
    monkeypatch.setattr(logs, "fsync_dir", lambda path: None)
    w = LogWriter(tmp_path, flush_every_s=NEVER)
    for reason, n in (("manual", 3), ("snapshot", 2), ("error", 1)):
        for i in range(n):
            w.log("tick", i)
            assert w.flush(reason)
    request = w.request_flush("error")  # the tick thread's form: ask, do not wait
    assert request.wait() and request.done
    assert w.flush("manual")  # nothing buffered: still one flush, since it was asked for
    w.close()
    w.close()
    stats = w.stats()
    assert stats["flushes"] == {
        "period": 0,
        "manual": 4,
        "snapshot": 2,
        "error": 2,
        "shutdown": 1,
    }
    assert len(fsyncs) == 3  # two snapshots and the shutdown
    assert stats["records_written"] == 6


def test_flush_waits_for_records_logged_before_it(tmp_path):
    """After flush() returns True, every record logged before the call is readable."""
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        for tick in range(1000):
            w.log("tick", tick)
        assert w.flush("manual")
        assert [r["tick"] for r in read_logs(tmp_path)] == list(range(1000))


def test_periodic_flush_writes_without_a_request(tmp_path):
    """The writer thread flushes on its own every flush_every_s."""
    w = LogWriter(tmp_path, flush_every_s=0.01)
    try:
        w.log("tick", 1)
        done = threading.Event()
        for _ in range(500):  # waits for the writer, asserts nothing about time
            if w.stats()["records_written"] == 1:
                break
            done.wait(0.01)
        stats = w.stats()
        assert stats["records_written"] == 1
        assert stats["flushes"]["period"] >= 1
        assert sum(stats["flushes"].values()) == stats["flushes"]["period"]
    finally:
        w.close()


def _poll(predicate, guard_s=10.0):
    """Wait for the writer thread; the guard only stops a hang and is not a timing check."""
    tick = threading.Event()
    for _ in range(int(guard_s / 0.005)):
        if predicate():
            return
        tick.wait(0.005)
    raise AssertionError("the writer did not get there before the guard timeout")


def test_an_idle_writer_does_not_wake_up(tmp_path):
    """Nothing buffered: no periodic wake-ups; a record wakes the writer, which flushes it within
    one period and goes back to sleep (at most two wake-ups: the record and the period)."""
    w = LogWriter(tmp_path, flush_every_s=0.002)
    try:
        threading.Event().wait(0.05)  # 25 periods with nothing to write
        assert w.stats()["wakeups"] == 0
        w.log("tick", 1)
        _poll(lambda: w.stats()["records_written"] == 1)
        stats = w.stats()
        assert stats["flushes"]["period"] == 1
        assert 1 <= stats["wakeups"] <= 2
        threading.Event().wait(0.05)  # idle again
        assert w.stats()["wakeups"] == stats["wakeups"]
    finally:
        w.close()


def test_half_a_buffer_wakes_the_writer_before_its_period(tmp_path):
    """Records pile up to half of buffer_max: the writer flushes them at once, not after its
    (hour-long) period, so a burst is written instead of dropped."""
    w = LogWriter(tmp_path, buffer_max=10, flush_every_s=3600.0)
    try:
        for tick in range(6):  # the first one starts the period, the sixth passes half
            w.log("tick", tick)
        _poll(lambda: w.stats()["records_written"] == 6)
        stats = w.stats()
        assert stats["flushes"]["period"] == 1
        assert stats["dropped"] == 0
    finally:
        w.close()
    assert [r["tick"] for r in read_logs(tmp_path)] == list(range(6))


def test_without_a_period_only_requests_wake_the_writer(tmp_path):
    """flush_every_s=inf: records never wake the writer, however many; a request does."""
    w = LogWriter(tmp_path, buffer_max=10, flush_every_s=NEVER)
    for tick in range(9):
        w.log("tick", tick)
    threading.Event().wait(0.02)
    assert w.stats()["wakeups"] == 0
    assert w.stats()["records_written"] == 0
    assert w.flush("manual")
    assert w.stats()["wakeups"] == 1
    w.close()


def test_rotation_keeps_at_most_max_files_each_under_max_bytes(tmp_path):
    """Size rotation keeps max_files files, each at most max_bytes plus one line."""
    max_bytes = 2000
    with LogWriter(tmp_path, max_bytes=max_bytes, max_files=3, flush_every_s=NEVER) as w:
        for tick in range(2000):
            w.log("tick", tick, pad="x" * (tick % 50))
            if tick % 100 == 0:
                w.flush("manual")
    assert _files(tmp_path) == ["life.1.jsonl", "life.2.jsonl", "life.jsonl"]
    longest = max(len(line) for p in tmp_path.iterdir() for line in p.read_bytes().splitlines())
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= max_bytes + longest + 1
    assert w.stats()["rotations"] > 3
    ticks = [r["tick"] for r in read_logs(tmp_path)]
    assert ticks == list(range(ticks[0], 2000))  # the newest records, in order, no gap


def test_read_logs_reads_rotated_files_oldest_first(tmp_path):
    """read_logs returns every record across rotated files, oldest file first."""
    with LogWriter(tmp_path, max_bytes=500, max_files=100, flush_every_s=NEVER) as w:
        for tick in range(300):
            w.log("tick", tick)
    names = _files(tmp_path)
    assert len(names) > 5
    assert [r["tick"] for r in read_logs(tmp_path)] == list(range(300))
    first_ticks = [
        _strict_loads(p.read_bytes().splitlines()[1])["tick"]
        for p in (tmp_path / f"life.{k}.jsonl" for k in range(len(names) - 1, 0, -1))
    ]
    assert first_ticks == sorted(first_ticks)  # a higher number is an older file
    for path in tmp_path.iterdir():  # each file starts with its versioned header
        header = _strict_loads(path.read_bytes().splitlines()[0])
        assert header["kind"] == "log_header" and header["log_version"] == logs.LOG_VERSION


def test_max_files_one_keeps_only_the_current_file(tmp_path):
    """With max_files=1, rotation starts the file afresh and nothing else is kept."""
    with LogWriter(tmp_path, max_bytes=300, max_files=1, flush_every_s=NEVER) as w:
        for tick in range(100):
            w.log("tick", tick)
    assert _files(tmp_path) == ["life.jsonl"]
    ticks = [r["tick"] for r in read_logs(tmp_path)]
    assert ticks and ticks[-1] == 99


@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=60),
    max_bytes=st.integers(1, 1500),
    max_files=st.integers(1, 4),
    flush_every=st.integers(1, 20),
)
def test_rotation_invariants(sizes, max_bytes, max_files, flush_every):
    """Any line sizes: at most max_files files, each within max_bytes + one line (+ header),
    and what is kept is the newest records in order."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with LogWriter(d, max_bytes=max_bytes, max_files=max_files, flush_every_s=NEVER) as w:
            for tick, size in enumerate(sizes):
                w.log("tick", tick, pad="y" * size)
                if tick % flush_every == 0:
                    w.flush("manual")
        assert len(list(d.iterdir())) <= max_files
        for path in d.iterdir():
            lines = path.read_bytes().splitlines(keepends=True)
            assert sum(map(len, lines)) <= max(max_bytes, sum(map(len, lines[:2])))
        ticks = [r["tick"] for r in read_logs(d)]
        assert ticks == list(range(len(sizes) - len(ticks), len(sizes)))
        assert w.stats()["records_written"] == len(sizes)


def test_buffer_overflow_drops_counts_and_marks_the_gap(tmp_path):
    """A full buffer drops and counts; one log_dropped record marks the gap when space returns."""
    w = LogWriter(tmp_path, buffer_max=10, flush_every_s=NEVER)
    for tick in range(15):
        w.log("tick", tick)
    assert w.stats()["dropped"] == 5
    assert w.flush("manual")
    w.log("tick", 15)
    w.log("tick", 16)
    w.close()
    records = read_logs(tmp_path)
    assert [r["tick"] for r in records[:10]] == list(range(10))
    assert records[10] == {
        "kind": "log_dropped",
        "tick": 14,
        "dropped": 5,
        "first_tick": 10,
        "last_tick": 14,
    }
    assert [r["tick"] for r in records[11:]] == [15, 16]
    assert w.stats()["dropped"] == 5


def test_non_finite_floats_still_give_valid_json(tmp_path):
    """NaN and infinities, plain, nested or numpy, are written as strings: always valid JSON."""
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        w.log("state", 1, energy=math.nan, drift=math.inf, low=-math.inf, ok=0.25)
        w.log("state", 2, vitals=[1.0, math.nan], nested={"x": (math.inf,)})
        w.log("state", 3, f32=np.float32("nan"), arr=np.array([0.5, np.inf]), n=np.int64(7))
        w.log("state", 4, f64=np.float64("-inf"), types={3})
    lines = (tmp_path / "life.jsonl").read_bytes().splitlines()[1:]
    records = [_strict_loads(line) for line in lines]
    assert records[0] == {
        "kind": "state",
        "tick": 1,
        "energy": "nan",
        "drift": "inf",
        "low": "-inf",
        "ok": 0.25,
    }
    assert records[1]["vitals"] == [1.0, "nan"] and records[1]["nested"] == {"x": ["inf"]}
    assert records[2]["f32"] == "nan" and records[2]["arr"] == [0.5, "inf"]
    assert records[2]["n"] == 7
    assert records[3]["f64"] == "-inf" and records[3]["types"] == [3]


def test_unencodable_record_is_kept_as_an_error_record(tmp_path):
    """A record json cannot encode (a cycle) becomes a marked record, and is counted once."""
    loop: list = []
    loop.append(loop)
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        w.log("odd", 1, value=loop)
        w.log("tick", 2)
    records = read_logs(tmp_path)
    assert records[0]["kind"] == "odd" and "encode_error" in records[0]
    assert records[1] == {"kind": "tick", "tick": 2}
    assert w.stats()["errors"] == {"encode:ValueError": 1}


def test_write_errors_are_counted_once_per_kind_and_retried(tmp_path, spy, caplog):
    """A full disk is counted, reported once per kind, and the records land once it clears."""
    _, failures = spy
    w = LogWriter(tmp_path, flush_every_s=NEVER)
    w.log("tick", 0)
    assert w.flush("manual")
    failures.extend(["enospc"] * 3)
    for tick in range(1, 6):
        w.log("tick", tick)
    with caplog.at_level(logging.WARNING, logger="lifelab.store.logs"):
        assert not w.flush("manual")
        assert not w.flush("error")
        w.log("tick", 6)
        assert not w.flush("snapshot")
    stats = w.stats()
    assert stats["errors"] == {"write:ENOSPC": 3}  # once per failed flush, not per record
    assert "ENOSPC" in stats["last_error"]
    assert len(caplog.records) == 1  # reported once per kind
    assert stats["records_written"] == 1 and stats["buffered"] == 6
    assert w.flush("manual")
    w.close()
    assert [r["tick"] for r in read_logs(tmp_path)] == list(range(7))
    assert w.stats()["dropped"] == 0


def test_unwritten_records_count_against_the_buffer(tmp_path, spy):
    """While writes fail, held records fill buffer_max; the rest are dropped, counted, marked."""
    _, failures = spy
    w = LogWriter(tmp_path, buffer_max=5, flush_every_s=NEVER)
    w.log("tick", 0)
    assert w.flush("manual")
    failures.extend(["enospc"] * 2)
    for tick in range(1, 4):
        w.log("tick", tick)
    assert not w.flush("manual")  # 3 records held by the writer, room for 2 more
    for tick in range(4, 8):
        w.log("tick", tick)
    assert w.stats()["dropped"] == 2
    assert not w.flush("manual")
    assert w.flush("manual")
    w.log("tick", 8)
    w.close()
    records = read_logs(tmp_path)
    assert [r["tick"] for r in records] == [0, 1, 2, 3, 4, 5, 7, 8]
    assert records[6] == {
        "kind": "log_dropped",
        "tick": 7,
        "dropped": 2,
        "first_tick": 6,
        "last_tick": 7,
    }


def test_concurrent_loggers_and_flushes_lose_nothing(tmp_path):
    """Records from several threads, with flushes requested meanwhile, all land, each in order."""
    w = LogWriter(tmp_path, max_bytes=4000, max_files=1000, flush_every_s=0.001)

    def produce(source: int) -> None:
        for tick in range(2000):
            w.log("tick", tick, source=source)
            if tick % 500 == 0:
                w.request_flush("snapshot")

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    records = read_logs(tmp_path)
    assert len(records) == 8000 and w.stats()["dropped"] == 0
    for source in range(4):
        assert [r["tick"] for r in records if r["source"] == source] == list(range(2000))
    assert w.stats()["flushes"]["snapshot"] == 16


def test_short_write_is_finished_on_retry(tmp_path, spy):
    """A write cut short by the disk leaves its tail pending; the retry completes the line."""
    _, failures = spy
    w = LogWriter(tmp_path, flush_every_s=NEVER)
    w.log("tick", 0)
    assert w.flush("manual")
    failures.extend(["half", "enospc"])
    w.log("tick", 1, pad="z" * 100)
    assert not w.flush("manual")
    assert read_logs(tmp_path).truncated == 1  # half a line on disk, for now
    w.close()
    records = read_logs(tmp_path)
    assert [r["tick"] for r in records] == [0, 1] and records.truncated == 0


def test_the_logging_thread_does_no_file_io(tmp_path, spy):
    """log(), write() and request_flush() touch no file: opens, writes, fsyncs and renames all
    happen in the writer thread."""
    calls, _ = spy
    w = LogWriter(tmp_path, max_bytes=400, max_files=3, flush_every_s=NEVER)
    for tick in range(200):
        w.log("tick", tick, energy=0.5)
        w.write({"kind": "decision", "tick": tick})
        if tick % 50 == 0:
            w.request_flush("snapshot")
    assert w.flush("snapshot")
    w.close()
    kinds = {name for name, _ in calls}
    assert {"open", "write", "fsync", "replace"} <= kinds
    assert {thread for _, thread in calls} == {"lifelab-logs"}
    assert threading.current_thread().name != "lifelab-logs"


def test_close_is_idempotent_and_later_records_are_counted(tmp_path):
    """close() twice is fine; after it, flush() is refused and log() is dropped and counted."""
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        w.log("tick", 1)
        w.close()
        w.close()
    w.close()
    assert w.closed
    assert not w.flush("manual")
    w.log("tick", 2)
    stats = w.stats()
    assert stats["flushes"]["shutdown"] == 1 and stats["dropped"] == 1
    assert [r["tick"] for r in read_logs(tmp_path)] == [1]


def test_torn_last_line_is_skipped_and_cut_before_appending(tmp_path):
    """read_logs skips and counts a torn last line; a new writer cuts it and appends whole lines."""
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        w.log("tick", 1)
        w.log("tick", 2)
    torn = b'{"kind":"tick","tick":3,"ene'
    with open(tmp_path / "life.jsonl", "ab") as f:
        f.write(torn)
    records = read_logs(tmp_path)
    assert [r["tick"] for r in records] == [1, 2] and records.truncated == 1
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:  # a resumed run appends to the log
        w.log("tick", 3)
    records = read_logs(tmp_path)
    assert [r["tick"] for r in records] == [1, 2, 3] and records.truncated == 0
    assert w.stats()["repaired_bytes"] == len(torn)
    headers = [
        line
        for line in (tmp_path / "life.jsonl").read_bytes().splitlines()
        if b"log_header" in line
    ]
    assert len(headers) == 1


def test_read_logs_refuses_corruption_and_newer_versions(tmp_path):
    """A bad line before the last, or a header from a newer log version, raises LogError."""
    path = tmp_path / "life.jsonl"
    path.write_bytes(b'{"kind":"tick","tick":1}\nnot json\n{"kind":"tick","tick":2}\n')
    with pytest.raises(LogError, match="line 2"):
        read_logs(tmp_path)
    path.write_bytes(b'{"kind":"tick","tick":1,"x":NaN}\n')
    with pytest.raises(LogError, match="line 1"):
        read_logs(tmp_path)
    path.write_bytes(b'{"kind":"log_header","tick":1,"log_version":99,"name":"life"}\n')
    with pytest.raises(LogError, match="version 99"):
        read_logs(tmp_path)


def test_wall_time_only_when_asked(tmp_path):
    """Records carry t_wall only with wall_time=True."""
    with LogWriter(tmp_path / "a", flush_every_s=NEVER) as w:
        w.log("tick", 1)
    with LogWriter(tmp_path / "b", flush_every_s=NEVER, wall_time=True) as w:
        w.log("tick", 1)
    assert read_logs(tmp_path / "a") == [{"kind": "tick", "tick": 1}]
    (record,) = read_logs(tmp_path / "b")
    assert isinstance(record["t_wall"], float)


def test_bad_arguments_are_refused(tmp_path):
    """Bad settings, records and flush reasons raise errors that are also ValueError/TypeError."""
    with pytest.raises(ConfigError, match="max_bytes"):
        LogWriter(tmp_path, max_bytes=0)
    with pytest.raises(ConfigTypeError, match="max_files"):
        LogWriter(tmp_path, max_files=2.0)
    with pytest.raises(ConfigError, match="flush_every_s"):
        LogWriter(tmp_path, flush_every_s=0)
    with pytest.raises(ConfigError, match="name"):
        LogWriter(tmp_path, name="../life")
    with LogWriter(tmp_path, flush_every_s=NEVER) as w:
        with pytest.raises(LogError, match="flush reason"):
            w.flush("twice")
        with pytest.raises(ValueError, match="kind"):
            w.write({"tick": 1})
        with pytest.raises(TypeError):
            w.log("tick", 1, tick=2)
    assert issubclass(LogError, LifelabError) and issubclass(LogError, ValueError)


def test_nothing_is_written_until_a_record_is(tmp_path):
    """Constructing a writer makes the directory; the log file appears with the first record."""
    d = tmp_path / "run" / "logs"
    with LogWriter(d, flush_every_s=NEVER):
        assert d.is_dir() and _files(d) == []
    assert _files(d) == []
    assert read_logs(d) == []
