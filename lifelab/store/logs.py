"""Structured logs: JSON lines, buffered on the tick thread, written by a writer thread.

The tick thread only appends a tuple to a deque (:meth:`LogWriter.log`); encoding, writing,
fsync and rotation happen in the writer thread. Flush policy (DESIGN.md §1.9): a record waits
at most ``flush_every_s``, or less when half of ``buffer_max`` is buffered; and once per
trigger — before a snapshot, on an error, on shutdown, or by hand (fix: the reference flushed
twice per tick). The writer sleeps without a timeout while nothing is buffered: an idle log
costs no wake-ups, a busy one one per period.

File layout (``<directory>/<name>.jsonl`` is current; ``<name>.1.jsonl`` is the newest rotated
file, ``<name>.<max_files - 1>.jsonl`` the oldest)::

    {"kind":"log_header","tick":<tick of the next line>,"log_version":1,"name":"life"}
    {"kind":"tick","tick":1,...}                    one JSON object per line, in logging order

A record is on disk when its newline is: a crash can leave a torn last line, which
:func:`read_logs` skips (and counts) and which the writer cuts off before it appends again.
Non-finite floats are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``. The kinds
``log_header`` and ``log_dropped`` are the writer's own.

Log versions:
    1 — first version (lifelab 0.1).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from lifelab._files import fsync_dir
from lifelab.exceptions import ConfigError, ConfigTypeError, LifelabError, error_kind

__all__ = [
    "FLUSH_REASONS",
    "LOG_VERSION",
    "FlushRequest",
    "LogError",
    "LogRecords",
    "LogWriter",
    "read_logs",
]

LOG_VERSION = 1
FLUSH_REASONS = frozenset({"snapshot", "error", "shutdown", "manual"})
_FSYNC_REASONS = frozenset({"snapshot", "shutdown"})
HEADER_KIND = "log_header"
DROPPED_KIND = "log_dropped"
_TAIL_BLOCK = 64 * 1024
_NO_NOTIFY = 2**62  # LogWriter._notify_at: no record wakes the writer

_logger = logging.getLogger(__name__)


class LogError(LifelabError, ValueError):
    """A log record, flush reason or log file is not valid."""


class LogRecords(list[dict[str, Any]]):
    """The records :func:`read_logs` found, oldest first; ``truncated`` counts torn last lines."""

    __slots__ = ("truncated",)

    def __init__(self) -> None:
        super().__init__()
        self.truncated = 0


class FlushRequest:
    """One flush trigger; the writer thread completes it (see :meth:`LogWriter.request_flush`)."""

    __slots__ = ("_done", "ok", "reason")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.ok = False
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = 10.0) -> bool:
        """True once the records buffered before the request are on disk; False on timeout or
        I/O error (the records stay buffered and are retried at the next flush)."""
        return self._done.wait(timeout) and self.ok


class LogWriter:
    """Buffered JSON-lines log with a writer thread, size rotation and counted loss.

    Args:
        directory: Where the log files live; created here (nothing is written at import).
        name: File stem: ``<name>.jsonl``, rotated to ``<name>.1.jsonl`` … by size.
        max_bytes: Rotate before a line would take the current file past this size (a file
            holds at least one record, so one huge line may exceed it).
        max_files: Files kept, the current one included; disk use is about max_bytes × max_files.
        flush_every_s: The longest a record waits for the writer's own flush, counted from the
            first record buffered since the last flush (``math.inf``: only on request).
        buffer_max: Records held in memory (buffered or failed to write); beyond it, new
            records are dropped and counted, and a ``log_dropped`` record marks the gap. With a
            finite ``flush_every_s`` the writer also flushes once half of this is buffered.
        wall_time: Add ``t_wall`` (Unix seconds, read on the logging thread) to every record.

    Field values are encoded later, in the writer thread: pass numbers, strings and tuples, or
    copies of anything the caller will mutate. Logs are the one place where loss is allowed;
    every loss is counted in :meth:`stats`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str = "life",
        max_bytes: int = 8 * 1024 * 1024,
        max_files: int = 5,
        flush_every_s: float = 1.0,
        buffer_max: int = 100_000,
        wall_time: bool = False,
    ) -> None:
        _check_name(name)
        _check_int("max_bytes", max_bytes, 1)
        _check_int("max_files", max_files, 1)
        _check_int("buffer_max", buffer_max, 1)
        if isinstance(flush_every_s, bool) or not isinstance(flush_every_s, int | float):
            raise ConfigTypeError(
                f"flush_every_s must be a number, got {type(flush_every_s).__name__}"
            )
        if not flush_every_s > 0:
            raise ConfigError(f"flush_every_s must be > 0 (math.inf: never), got {flush_every_s}")
        if not isinstance(wall_time, bool):
            raise ConfigTypeError(f"wall_time must be a bool, got {type(wall_time).__name__}")
        self.directory = Path(directory)
        self.name = name
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.flush_every_s = float(flush_every_s)
        self.buffer_max = buffer_max
        self.wall_time = wall_time
        self.directory.mkdir(parents=True, exist_ok=True)

        # Shared with logging threads: the deque (append/popleft are atomic), the limit and the
        # gap counters (written under _drop_lock, read bare on the hot path).
        self._buf: deque[tuple[Any, Any, Mapping[str, Any], float | None]] = deque()
        self._limit = buffer_max  # records the deque may hold: buffer_max minus pending lines
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._gap = 0  # records dropped since the last log_dropped record
        self._gap_ticks: tuple[Any, Any] = (None, None)
        self._requests: deque[FlushRequest] = deque()
        self._wake = threading.Event()
        # A record logged while the buffer holds at least _notify_at records wakes the writer:
        # 0 while it is idle (the first record starts the period), _amount while a period runs,
        # _NO_NOTIFY once woken or without periodic flushes (set by both threads, read bare).
        self._amount = max(1, buffer_max // 2)
        self._notify_at = _NO_NOTIFY
        self._stopping = False
        self._closed = False
        self._close_lock = threading.Lock()

        # Writer-thread state: encoded lines not yet fully on disk, as (line, records, tick);
        # records is 0 for the header line. _head_off bytes of the first line are written.
        self._pending: deque[tuple[bytes, int, Any]] = deque()
        self._head_off = 0
        self._file: Any = None  # an unbuffered binary file (io.FileIO), opened on first write
        self._size = 0
        self._records_in_file = 0
        self._dir_dirty = False
        self._encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), default=_default)
        # NOTE: msgspec for speed: it encodes a record in ~0.2x json's time (the writer thread's
        # CPU per record 14.5 -> 6 us, data/results/ablations/log_format.parquet). It would
        # write NaN as null, so it only takes flat records of plain finite values; anything
        # else goes through json and its "nan" / numpy / fallback rules as before.
        self._fast_encode = msgspec.json.Encoder().encode
        self._records_written = 0
        self._bytes_written = 0
        self._rotations = 0
        self._wakeups = 0  # the writer thread's
        self._repaired_bytes = 0
        self._flushes = dict.fromkeys(("period", *sorted(FLUSH_REASONS)), 0)
        self._errors: Counter[str] = Counter()
        self._last_error: str | None = None

        self._thread = threading.Thread(target=self._work, name="lifelab-logs", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        """The current log file."""
        return self.directory / f"{self.name}.jsonl"

    # -- the logging thread: O(1), no formatting, no I/O -------------------------------------------

    def log(self, kind: str, tick: int, **fields: Any) -> None:
        """Buffer one record ``{"kind": kind, "tick": tick, **fields}``; never blocks on disk."""
        buf = self._buf
        n = len(buf)
        if n >= self._limit:
            self._drop(tick)
            return
        if self._gap:
            self._close_gap()
        buf.append((kind, tick, fields, time.time() if self.wall_time else None))
        if n >= self._notify_at:
            self._notify()

    def write(self, record: Mapping[str, Any]) -> None:
        """Buffer a record that already holds ``kind`` and ``tick`` (the writer keeps a
        reference: do not mutate it afterwards).

        Raises:
            LogError: the record is not a mapping with ``kind`` and ``tick`` (a ValueError).
        """
        try:
            kind = record["kind"]
            tick = record["tick"]
        except (KeyError, TypeError):
            raise LogError(
                f"a log record must be a mapping with 'kind' and 'tick', got {record!r:.200}"
            ) from None
        buf = self._buf
        n = len(buf)
        if n >= self._limit:
            self._drop(tick)
            return
        if self._gap:
            self._close_gap()
        buf.append((kind, tick, record, time.time() if self.wall_time else None))
        if n >= self._notify_at:
            self._notify()

    def _notify(self) -> None:
        """Wake the writer: the first record since it went idle, or half the buffer is full."""
        self._notify_at = _NO_NOTIFY  # once; the writer re-arms it
        self._wake.set()

    def _drop(self, tick: Any) -> None:
        with self._drop_lock:
            self._dropped += 1
            self._gap_ticks = (tick if not self._gap else self._gap_ticks[0], tick)
            self._gap += 1

    def _close_gap(self) -> None:
        """Space is back: mark the gap with one log_dropped record, in place."""
        with self._drop_lock:
            n = self._gap
            if not n:
                return
            self._gap = 0
            first, last = self._gap_ticks
        fields = {"dropped": n, "first_tick": first, "last_tick": last}
        self._buf.append((DROPPED_KIND, last, fields, time.time() if self.wall_time else None))

    # -- flushing ----------------------------------------------------------------------------

    def request_flush(self, reason: str = "manual") -> FlushRequest:
        """Ask the writer for one flush and return at once (e.g. on the tick thread).

        ``snapshot`` and ``shutdown`` flushes also fsync. After :meth:`close`, the request is
        already done and not ok.

        Raises:
            LogError: ``reason`` is not one of :data:`FLUSH_REASONS` (a ValueError).
        """
        if reason not in FLUSH_REASONS:
            raise LogError(f"flush reason must be one of {sorted(FLUSH_REASONS)}, got {reason!r}")
        req = FlushRequest(reason)
        with self._close_lock:  # nothing is queued behind close()'s shutdown request
            if self._closed:
                req._done.set()
                return req
            self._requests.append(req)
        self._wake.set()
        return req

    def flush(self, reason: str = "manual", *, timeout: float | None = 10.0) -> bool:
        """One flush; wait until the records buffered before the call are on disk.

        Returns:
            True when they are; False on timeout, on an I/O error (they stay buffered and are
            retried) or after :meth:`close`.
        """
        return self.request_flush(reason).wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush (``shutdown``), stop the writer thread and close the file; idempotent.

        Records that could not be written by then (I/O error, timeout) are counted as dropped.
        """
        with self._close_lock:
            if self._closed:
                return
            req = FlushRequest("shutdown")
            self._requests.append(req)  # the last request: the writer serves it, then stops
            self._stopping = True
            self._closed = True  # from here on the writer leaves _limit alone
            self._limit = -1  # later log() calls are dropped and counted
        self._wake.set()
        req.wait(timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            return  # wedged in a system call; the daemon thread finishes or dies with the process
        with self._drop_lock:
            self._dropped += len(self._buf) + sum(n for _, n, _ in self._pending)
        self._buf.clear()
        self._pending.clear()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        """Counters: records and bytes written, flushes by reason (``period``: the writer's own,
        by time or amount), the writer's wake-ups, rotations, dropped, errors."""
        return {
            "records_written": self._records_written,
            "bytes_written": self._bytes_written,
            "flushes": dict(self._flushes),
            "wakeups": self._wakeups,
            "rotations": self._rotations,
            "dropped": self._dropped,
            "buffered": len(self._buf) + len(self._pending),
            "errors": dict(self._errors),
            "last_error": self._last_error,
            "repaired_bytes": self._repaired_bytes,
        }

    # -- the writer thread -------------------------------------------------------------------

    def _work(self) -> None:
        period = self.flush_every_s
        timed = math.isfinite(period)
        requests = self._requests
        due: float | None = None  # the next period flush; None while nothing waits for one
        while True:
            if timed:
                if due is None:
                    # NOTE: idle without a timeout, for quiet: at 100 Hz with tick logs every
                    # 1 000 ticks a 1 s period woke this thread 10 times per record
                    self._notify_at = 0  # the next record wakes the writer...
                    if self._buf or self._pending:  # ...unless one came before that line
                        due = time.monotonic() + period
                if due is not None:
                    self._notify_at = self._amount
            timeout = None if due is None else max(0.0, due - time.monotonic())
            if timed and self._full():
                timeout = 0.0  # passed half while the notice was not armed: flush now
            self._wake.wait(timeout)
            self._wake.clear()  # before reading the requests, so no wake-up is lost
            self._wakeups += 1
            served = False
            while requests:
                req = requests.popleft()
                req.ok = self._flush_guarded(req.reason)
                req._done.set()
                served = True
            if timed:
                now = time.monotonic()
                waiting = bool(self._buf or self._pending)
                if not served and waiting and due is not None and (now >= due or self._full()):
                    self._flush_guarded("period")
                    served = True
                    waiting = bool(self._buf or self._pending)  # a failed write stays pending
                if served or (due is not None and now >= due):
                    due = now + period if waiting else None
                elif due is None and waiting:
                    due = now + period  # the first record since idle: the period starts
            if self._stopping and not requests:
                self._close_file()
                return

    def _full(self) -> bool:
        """Half of buffer_max is buffered (and the last write went through: while writes fail,
        retries keep to the period)."""
        return len(self._buf) >= self._amount and not self._pending

    def _close_file(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                self._error("close", exc)

    def _flush_guarded(self, reason: str) -> bool:
        try:
            return self._flush(reason)
        except Exception as exc:  # a bug here must not kill the thread that waiters rely on
            self._error("writer", exc)
            return False

    def _flush(self, reason: str) -> bool:
        """Encode what is buffered, write it (rotating by size), fsync if asked: one flush."""
        self._flushes[reason] += 1
        self._drain()
        try:
            self._write_pending()
            if reason in _FSYNC_REASONS and self._file is not None:
                try:
                    os.fsync(self._file.fileno())
                except OSError as exc:
                    exc.lifelab_op = "fsync"  # type: ignore[attr-defined]
                    raise
                if self._dir_dirty:
                    fsync_dir(self.directory)
                    self._dir_dirty = False
        except OSError as exc:
            self._error(getattr(exc, "lifelab_op", "write"), exc)
            return False
        finally:
            self._set_limit()
        return True

    def _set_limit(self, extra: int = 0) -> None:
        if not self._closed:
            self._limit = self.buffer_max - len(self._pending) - extra

    def _drain(self) -> None:
        buf = self._buf
        n = len(buf)  # only these: a fast logger must not keep the writer draining forever
        if not n:
            return
        self._set_limit(n)  # count them as pending before the deque shrinks
        pending = self._pending
        encode = self._encode
        pop = buf.popleft
        for _ in range(n):
            kind, tick, fields, t_wall = pop()
            pending.append((encode(kind, tick, fields, t_wall), 1, tick))

    def _encode(
        self, kind: Any, tick: Any, fields: Mapping[str, Any], t_wall: float | None
    ) -> bytes:
        rec: dict[str, Any] = {"kind": kind, "tick": tick}
        if t_wall is not None:
            rec["t_wall"] = t_wall
        rec.update(fields)
        if _plain(rec):
            return self._fast_encode(rec) + b"\n"
        encode = self._encoder.encode
        try:
            return (encode(rec) + "\n").encode()
        except ValueError as exc:  # a non-finite float (written as a string), or a cycle
            first: Exception = exc
        except (TypeError, RecursionError) as exc:  # bad keys, nesting too deep
            first = exc
        if isinstance(first, ValueError):
            try:
                return (encode(_finite(rec)) + "\n").encode()
            except (ValueError, TypeError, RecursionError):
                pass  # report the first error: it names the cause
        self._error("encode", first)
        text = encode(
            {
                "kind": str(kind),
                "tick": tick if isinstance(tick, int) else str(tick),
                "encode_error": f"{type(first).__name__}: {first}",
            }
        )
        return (text + "\n").encode()

    def _write_pending(self) -> None:
        """Write the pending lines; a partial write keeps its unwritten tail for the retry."""
        pending = self._pending
        max_bytes = self.max_bytes
        while pending:
            f = self._file if self._file is not None else self._open()
            if (
                self._head_off == 0
                and self._records_in_file
                and self._size + len(pending[0][0]) > max_bytes
            ):
                self._rotate()
                continue
            # One chunk: the lines that fit the current file (at least one record per file).
            parts = []
            total = 0
            records = self._records_in_file
            for i, (line, n, _) in enumerate(pending):
                if i == 0 and self._head_off:
                    line = line[self._head_off :]
                if i and records and self._size + total + len(line) > max_bytes:
                    break  # the first line always goes: it fits, or it finishes a partial one
                parts.append(line)
                total += len(line)
                records += n
            chunk = memoryview(b"".join(parts))
            done = 0
            try:
                while done < total:
                    n = f.write(chunk[done:])
                    if not n:
                        raise OSError(errno.EIO, "write made no progress")
                    done += n
            finally:
                self._advance(done)

    def _advance(self, nbytes: int) -> None:
        """Account ``nbytes`` written: pop the lines they complete, remember a partial one."""
        self._size += nbytes
        self._bytes_written += nbytes
        pending = self._pending
        while nbytes:
            line, n, _ = pending[0]
            rest = len(line) - self._head_off
            if nbytes < rest:
                self._head_off += nbytes
                return
            nbytes -= rest
            pending.popleft()
            self._head_off = 0
            self._records_written += n
            self._records_in_file += n

    def _open(self) -> Any:
        path = self.path
        try:
            existed = path.exists()
            size = self._repair(path) if existed else 0
            # Unbuffered: a flush is one write system call. The file lives across flushes.
            f = open(path, "ab", buffering=0)  # noqa: SIM115
        except OSError as exc:
            exc.lifelab_op = "open"  # type: ignore[attr-defined]
            raise
        self._file = f
        self._size = size
        self._records_in_file = 1 if size else 0  # an old file keeps its header
        self._dir_dirty = self._dir_dirty or not existed
        if not size and self._pending and not self._head_off:
            header = {
                "kind": HEADER_KIND,
                "tick": self._pending[0][2],
                "log_version": LOG_VERSION,
                "name": self.name,
            }
            self._pending.appendleft((self._encode(HEADER_KIND, None, header, None), 0, None))
        return f

    def _repair(self, path: Path) -> int:
        """Cut a torn last line (a crash mid-write) so appended lines stay whole; new size."""
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if not size:
                return 0
            end = size
            while end > 0:
                start = max(0, end - _TAIL_BLOCK)
                f.seek(start)
                block = f.read(end - start)
                if end == size and block.endswith(b"\n"):
                    return size
                cut = block.rfind(b"\n")
                if cut >= 0:
                    end = start + cut + 1
                    break
                end = start
        os.truncate(path, end)
        self._repaired_bytes += size - end
        _logger.warning("log %s: cut a torn last line of %d bytes", path, size - end)
        return end

    def _rotate(self) -> None:
        f, self._file = self._file, None
        try:
            try:
                os.fsync(f.fileno())
            finally:
                f.close()
            last = self.max_files - 1
            for k in sorted(_numbered(self.directory, self.name), reverse=True):
                if k >= last:  # beyond retention (also leftovers of a larger max_files)
                    os.remove(self._numbered_path(k))
                else:
                    os.replace(self._numbered_path(k), self._numbered_path(k + 1))
            if last:
                os.replace(self.path, self._numbered_path(1))
            else:
                os.remove(self.path)
        except OSError as exc:
            exc.lifelab_op = "rotate"  # type: ignore[attr-defined]
            raise
        self._rotations += 1
        self._dir_dirty = False
        fsync_dir(self.directory)

    def _numbered_path(self, k: int) -> Path:
        return self.directory / f"{self.name}.{k}.jsonl"

    def _error(self, op: str, exc: BaseException) -> None:
        """Count an error by kind (``op:ERRNO``); report each kind once, not once per record."""
        kind = f"{op}:{error_kind(exc)}"
        first = kind not in self._errors
        self._errors[kind] += 1
        self._last_error = f"{kind}: {exc}"
        if first:
            _logger.warning("log %s: %s (reported once per kind)", self.path, self._last_error)


def read_logs(directory: str | os.PathLike[str], name: str = "life") -> LogRecords:
    """Every record of a log, rotated files first (oldest first), without the header lines.

    A torn last line (a crash mid-write) is skipped and counted in ``.truncated``.

    Raises:
        LogError: a line other than a file's last is not a JSON object with ``kind`` and
            ``tick``, or a file was written by a newer log version.
    """
    _check_name(name)
    directory = Path(directory)
    files = [
        directory / f"{name}.{k}.jsonl" for k in sorted(_numbered(directory, name), reverse=True)
    ]
    files.append(directory / f"{name}.jsonl")
    out = LogRecords()
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # no current file yet, or rotated away while we read
        lines = data.split(b"\n")
        if lines.pop():  # the text after the last newline: a torn line
            out.truncated += 1
        for i, line in enumerate(lines, 1):
            try:
                rec = json.loads(line, parse_constant=_refuse_constant)
            except ValueError as exc:
                raise LogError(f"{path}: line {i} is not valid JSON ({exc})") from None
            if not isinstance(rec, dict) or "kind" not in rec or "tick" not in rec:
                raise LogError(f"{path}: line {i} is not an object with 'kind' and 'tick'")
            if rec["kind"] == HEADER_KIND:
                version = rec.get("log_version")
                if not isinstance(version, int) or not 1 <= version <= LOG_VERSION:
                    raise LogError(
                        f"{path}: log version {version!r} is not supported "
                        f"(this lifelab reads versions 1 to {LOG_VERSION})"
                    )
                continue
            out.append(rec)
    return out


def _numbered(directory: Path, name: str) -> list[int]:
    """The numbers k of the rotated files ``<name>.<k>.jsonl`` in ``directory``."""
    pattern = re.compile(rf"^{re.escape(name)}\.([1-9][0-9]*)\.jsonl$")
    return [int(m.group(1)) for p in os.listdir(directory) if (m := pattern.match(p))]


_PLAIN = frozenset((str, int, bool, type(None)))


def _plain(rec: dict[str, Any]) -> bool:
    """True when every key is a str and every value a str, int, bool, None or finite float."""
    for key, value in rec.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is float:
            if value - value != 0.0:  # nan and ±inf give nan
                return False
        elif kind not in _PLAIN:
            return False
    return True


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite(obj: Any) -> Any:
    """A copy with non-finite floats replaced by "nan", "inf" or "-inf"."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(float(obj))
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _default(value: Any) -> Any:
    """JSON for what json does not know: numpy values, sets, mappings; else ``str(value)``."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _finite(tolist())
    if isinstance(value, set | frozenset):
        return _finite(list(value))
    if isinstance(value, Mapping):
        return _finite(dict(value))
    return str(value)


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise ConfigTypeError(f"name must be a str, got {type(name).__name__}")
    if not name or name != Path(name).name or name.startswith("."):
        raise ConfigError(f"name must be a plain file stem like 'life', got {name!r}")


def _check_int(field: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigTypeError(f"{field} must be an int, got {type(value).__name__}")
    if value < low:
        raise ConfigError(f"{field} must be >= {low}, got {value}")
