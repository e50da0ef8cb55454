"""Snapshots: the complete organism in one atomic, versioned, checksummed file. Never pickle.

File layout (``.lls``, little-endian)::

    b"LIFELABS"                     8-byte magic
    header length                   uint32
    header                          UTF-8 JSON: schema_version, ticks, digest, n_entries,
                                    columns [{name, dtype, offset, nbytes}], canonical, extra
    payload                         the active-memory columns, raw bytes, back to back
    blake2b-256 of all of the above 32 bytes

A partial or bit-flipped file fails the trailer check; a hand-edited header fails the digest
check (the digest is recomputed from what was loaded). This module knows the file, not what the
canonical state holds: each owner of a piece (``SelfState``, ``FeedbackBook``, the random
streams, active memory, ``Life``'s counters) validates its own when the organism restores it,
and :func:`load_newest` skips a file that any owner refuses like a corrupt one.

The tick thread only *captures*: the canonical state, and active memory's
:class:`~lifelab.memory.active.CapturedColumns`, which copy what changed since the previous
capture (a few ms at 10^6 entries); the writer thread assembles the full columns from that, then
encodes, writes, fsyncs and applies retention. The file is the same, byte for byte, as one
written from a full copy of the same state.

Schema history:
    1 — first version (lifelab 0.1).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import queue
import re
import struct
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelab._files import fsync_dir
from lifelab.exceptions import SnapshotError, error_kind
from lifelab.memory.active import COLUMNS, CapturedColumns
from lifelab.store.digest import digest_of

__all__ = [
    "SNAPSHOT_VERSION",
    "Capture",
    "SnapshotError",
    "SnapshotWriter",
    "check_int",
    "check_number",
    "invalid_field",
    "list_snapshots",
    "load_newest",
    "read_snapshot",
    "write_snapshot",
]

MAGIC = b"LIFELABS"
SNAPSHOT_VERSION = 1
_TRAILER = 32
_NAME = re.compile(r"^snap-(\d{12})\.lls$")
MAX_HEADER_BYTES = 256 * 1024 * 1024

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Capture:
    """What the tick thread hands to the writer: nothing that the live organism changes.

    ``memory`` is the active memory: its columns (read back from a file), or the
    :class:`CapturedColumns` that ``Life.capture()`` took, which the first read of
    :attr:`columns` assembles (in the snapshot thread, for a snapshot), read-only.
    """

    ticks: int
    canonical: dict[str, Any]
    memory: dict[str, np.ndarray] | CapturedColumns
    extra: dict[str, Any] = field(default_factory=dict)
    digest: str = ""  # filled when read back from a file (verified against the content)

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The active-memory columns, one array per COLUMNS name (read-only once assembled)."""
        memory = self.memory
        return memory.resolve() if isinstance(memory, CapturedColumns) else memory


def snapshot_name(ticks: int) -> str:
    return f"snap-{ticks:012d}.lls"


def encode(capture: Capture) -> bytes:
    """The file bytes of a capture (runs in the writer thread)."""
    columns = []
    blobs = []
    offset = 0
    for name, dtype in COLUMNS.items():
        data = np.ascontiguousarray(capture.columns[name], dtype=dtype).tobytes()
        columns.append({"name": name, "dtype": dtype.str, "offset": offset, "nbytes": len(data)})
        blobs.append(data)
        offset += len(data)
    header = {
        "schema_version": SNAPSHOT_VERSION,
        "ticks": capture.ticks,
        "digest": digest_of(capture.canonical, capture.columns),
        "n_entries": len(capture.columns["id"]),
        "columns": columns,
        "canonical": capture.canonical,
        "extra": capture.extra,
    }
    head = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    body = b"".join([MAGIC, struct.pack("<I", len(head)), head, *blobs])
    return body + hashlib.blake2b(body, digest_size=_TRAILER).digest()


def decode(data: bytes, source: str = "<bytes>") -> Capture:
    """Parse and verify snapshot bytes as a file; SnapshotError names the file and what is wrong.

    Checks what the file promises: magic, trailer checksum, framing, schema version, the column
    table, the top-level shape of the header and its digest. What the pieces of the canonical
    state hold is checked by their owners when the organism restores them (``Life._restore``):
    neither the digest nor the checksum is keyed, so a forger can recompute both.
    """
    if len(data) < len(MAGIC) + 4 + _TRAILER or not data.startswith(MAGIC):
        raise SnapshotError(f"{source}: not a lifelab snapshot (bad magic or too short)")
    body, trailer = data[:-_TRAILER], data[-_TRAILER:]
    if hashlib.blake2b(body, digest_size=_TRAILER).digest() != trailer:
        raise SnapshotError(f"{source}: checksum mismatch (truncated or corrupted file)")
    (head_len,) = struct.unpack_from("<I", body, len(MAGIC))
    start = len(MAGIC) + 4
    if head_len > min(MAX_HEADER_BYTES, len(body) - start):
        raise SnapshotError(f"{source}: header length {head_len} exceeds the file")
    header = _decode_header(body[start : start + head_len], source)
    payload = memoryview(body)[start + head_len :]
    columns = _decode_columns(header, payload, source)
    canonical = header.get("canonical")
    ticks = header.get("ticks")
    if not isinstance(canonical, dict) or isinstance(ticks, bool) or not isinstance(ticks, int):
        raise SnapshotError(f"{source}: header lacks a canonical state or a tick count")
    if ticks < 0:
        raise SnapshotError(f"{source}: header tick count {ticks} is negative")
    digest = _digest(canonical, columns, source)
    if digest != header.get("digest"):
        raise SnapshotError(f"{source}: digest mismatch (the state was edited or is inconsistent)")
    extra = header.get("extra") if isinstance(header.get("extra"), dict) else {}
    return Capture(ticks=ticks, canonical=canonical, memory=columns, extra=extra, digest=digest)


def _decode_header(raw: bytes, source: str) -> dict[str, Any]:
    """The header's JSON object, of this schema version."""
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise SnapshotError(f"{source}: header is not valid JSON ({exc})") from None
    except RecursionError:
        raise SnapshotError(f"{source}: header is nested too deeply to be a snapshot") from None
    if not isinstance(header, dict):
        raise SnapshotError(f"{source}: header is not a JSON object")
    version = header.get("schema_version")
    if version != SNAPSHOT_VERSION:
        newer = isinstance(version, int) and version > SNAPSHOT_VERSION
        raise SnapshotError(
            f"{source}: snapshot schema version {version!r} is "
            f"{'newer than' if newer else 'not'} supported (this lifelab reads "
            f"version {SNAPSHOT_VERSION}{'; upgrade lifelab' if newer else ''})"
        )
    return header


def _decode_columns(header: dict[str, Any], payload: memoryview, source: str) -> dict[str, Any]:
    """The active-memory columns the column table frames (names, dtypes, lengths, offsets).

    Their values are active memory's to judge (:func:`~lifelab.memory.active.check_columns`).
    """
    specs = header.get("columns")
    n = header.get("n_entries")
    if not isinstance(specs, list) or not isinstance(n, int) or n < 0:
        raise SnapshotError(f"{source}: bad column table")
    by_name = {
        s["name"]: s for s in specs if isinstance(s, dict) and isinstance(s.get("name"), str)
    }
    if set(by_name) != set(COLUMNS):
        raise SnapshotError(f"{source}: columns {sorted(map(str, by_name))} != {sorted(COLUMNS)}")
    out = {}
    for name, dtype in COLUMNS.items():
        spec = by_name[name]
        offset, nbytes = spec.get("offset"), spec.get("nbytes")
        if spec.get("dtype") != dtype.str or nbytes != n * dtype.itemsize:
            raise SnapshotError(f"{source}: column {name} has a wrong dtype or length")
        if not isinstance(offset, int) or offset < 0 or offset + nbytes > len(payload):
            raise SnapshotError(f"{source}: column {name} lies outside the file")
        out[name] = np.frombuffer(payload[offset : offset + nbytes], dtype=dtype).copy()
    return out


def _digest(canonical: dict[str, Any], columns: dict[str, np.ndarray], source: str) -> str:
    """The digest of what was read; any JSON the header held can be hashed, or is refused."""
    try:
        return digest_of(canonical, columns)
    except (RecursionError, TypeError, ValueError) as exc:
        raise SnapshotError(f"{source}: canonical state cannot be hashed ({exc})") from None


# -- checks for the owners of the pieces --------------------------------------------------------
# Each owner validates its piece of the canonical state when it restores it (SelfState, the
# feedback book, the random streams, Life's counters); these two name the field that is wrong.


def check_int(what: str, value: Any, lo: int = 0, hi: int = 2**62) -> int:
    """``value`` if it is an int in [lo, hi] (a bool is not one), else SnapshotError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise invalid_field(what, value)
    return value


def check_number(what: str, value: Any, lo: float, hi: float) -> float:
    """``value`` if it is a finite int or float in [lo, hi] (not a bool), else SnapshotError."""
    # the range first: NaN fails it, and an int too large for a float never reaches isfinite
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not lo <= value <= hi
        or not math.isfinite(value)
    ):
        raise invalid_field(what, value)
    return value


def invalid_field(what: str, value: Any) -> SnapshotError:
    """The error for a field of a snapshot that holds an impossible value (shown cut short)."""
    return SnapshotError(f"{what} = {repr(value)[:60]} is invalid")


def write_snapshot(directory: Path, capture: Capture) -> Path:
    """Atomically write a capture: temp file, fsync, rename, fsync the directory."""
    data = encode(capture)
    final = directory / snapshot_name(capture.ticks)
    tmp = directory / (final.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        # A full disk must not keep a half-written temp file (it holds the space we lack).
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def read_snapshot(path: Path) -> Capture:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"{path}: unreadable ({exc})") from None
    return decode(data, str(path))


def list_snapshots(directory: Path) -> list[Path]:
    """Snapshot files, oldest first (by tick in the name)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def load_newest(
    directory: Path, restore: Callable[[Capture], object] | None = None
) -> tuple[Capture | None, list[Path]]:
    """The newest intact snapshot and the corrupt files skipped on the way (each warned about).

    ``restore`` (the organism's) validates a capture's content and loads it, all or nothing: a
    capture it refuses with SnapshotError is skipped like a corrupt file and the next older one
    is tried.
    """
    corrupt = []
    for path in reversed(list_snapshots(directory)):
        try:
            capture = read_snapshot(path)
            if restore is not None:
                try:
                    restore(capture)
                except SnapshotError as exc:
                    raise SnapshotError(f"{path}: {exc}") from exc
            return capture, corrupt
        except SnapshotError as exc:
            warnings.warn(f"skipping corrupt snapshot: {exc}", RuntimeWarning, stacklevel=2)
            corrupt.append(path)
    return None, corrupt


class SnapshotWriter:
    """Encodes and writes captures in a daemon thread, keeping the newest ``keep`` snapshots.

    ``submit`` never blocks the tick thread: with ``pending`` captures already waiting it skips
    the new one and counts it in ``skipped`` (the next snapshot supersedes it anyway).

    Failure policy (a full disk, an I/O error, permission denied, or an archive that cannot commit
    the rows the snapshot would cover): every failed attempt is counted in ``errors`` and by kind
    in ``errors_by_kind``, and each kind is reported once (a warning and ``on_error``), never
    once per attempt. The writer holds on to the capture and retries it after a backoff that
    doubles from ``retry_min_s`` to ``retry_max_s``; a newer capture replaces the one held,
    which is then counted in ``failed`` (it never reached the disk). So at most one capture
    waits, the first write once the fault clears is of the newest state, and the backoff resets
    after a success. The newest snapshot on disk stays the resume point all along. A failure to
    delete snapshots beyond ``keep`` is counted too, but the snapshot just written stands.
    """

    def __init__(
        self,
        directory: Path,
        *,
        keep: int = 3,
        pending: int = 2,
        prepare: Callable[[], None] | None = None,
        on_error: Callable[[str, int, BaseException], None] | None = None,
        retry_min_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        if not 0.0 < retry_min_s <= retry_max_s:
            raise ValueError(
                f"need 0 < retry_min_s <= retry_max_s, got {retry_min_s!r} and {retry_max_s!r}"
            )
        self.directory = Path(directory)
        self.prepare = prepare  # called before each write, in the writing thread
        self.on_error = on_error  # (kind, ticks, exc), once per kind, in the writing thread
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("*.tmp"):
            stale.unlink(missing_ok=True)  # a crash mid-write leaves only temp files behind
        self.keep = keep
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.written = 0
        self.skipped = 0
        self.failed = 0  # captures that never reached the disk (replaced while failing, or final)
        self.errors = 0  # failed attempts
        self.errors_by_kind: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_path: Path | None = None
        self._held: Capture | None = None  # the newest capture not yet on disk
        self._delay = 0.0
        self._retry_at = 0.0  # monotonic time before which a held capture is not retried
        self._lock = threading.Lock()  # one writer at a time (the thread, or write_now)
        self._queue: queue.Queue[Capture | None] = queue.Queue(pending)
        self._thread = threading.Thread(target=self._work, name="lifelab-snapshots", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def failing(self) -> bool:
        """True while a capture waits for a retry."""
        return self._held is not None

    def submit(self, capture: Capture) -> bool:
        """Queue a capture; False (and counted) if the writer is still busy with older ones."""
        try:
            self._queue.put_nowait(capture)
        except queue.Full:
            self.skipped += 1
            return False
        return True

    def write_now(self, capture: Capture) -> Path:
        """Wait for queued captures, then write this one synchronously (clean shutdown).

        A capture held for a retry is superseded (counted in ``failed``). Errors are counted as
        in the thread, then raised.
        """
        self.flush()
        with self._lock:
            if self._held is not None:
                self._held = None
                self.failed += 1
            try:
                path = self._write(capture)
            except Exception as exc:
                self.failed += 1
                self._record_error(exc, capture.ticks)
                raise
        return path

    def flush(self) -> None:
        """Wait until every queued capture was taken (written, or held for a retry)."""
        self._queue.join()

    def close(self) -> None:
        """Stop the thread after one last try of a held capture; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            timeout = None
            if self._held is not None:
                timeout = max(0.0, self._retry_at - time.monotonic())
            try:
                capture = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._attempt()  # the backoff is over: retry the held capture
                continue
            try:
                if capture is None:
                    self._attempt(last=True)
                    return
                if not self._assemble(capture):
                    continue
                with self._lock:
                    if self._held is not None:
                        self.failed += 1  # superseded before it could be written
                    self._held = capture
                if time.monotonic() >= self._retry_at:
                    self._attempt()
            finally:
                self._queue.task_done()

    def _assemble(self, capture: Capture) -> bool:
        """Assemble a capture's columns as soon as it is taken, before any wait for the archive
        or a retry: the tick thread's next capture copies only what changed since the newest
        assembled one. False (counted and reported as an error) if it cannot be assembled."""
        memory = capture.memory
        if not isinstance(memory, CapturedColumns):
            return True
        try:
            memory.resolve()
        except Exception as exc:  # a broken capture must not stop the writer
            with self._lock:
                self.failed += 1
                self._record_error(exc, capture.ticks)
            return False
        return True

    def _attempt(self, *, last: bool = False) -> None:
        """One try at writing the held capture; on failure, schedule the next try."""
        with self._lock:
            capture = self._held
            if capture is None:
                return
            try:
                self._write(capture)
            except Exception as exc:  # any failure: the thread must outlive it
                self._record_error(exc, capture.ticks)
                if last:
                    self._held = None
                    self.failed += 1
                    return
                self._delay = min(max(2.0 * self._delay, self.retry_min_s), self.retry_max_s)
                self._retry_at = time.monotonic() + self._delay

    def _write(self, capture: Capture) -> Path:
        """prepare, write, retain (under ``_lock``); a success resets the backoff."""
        if self.prepare is not None:
            self.prepare()
        path = write_snapshot(self.directory, capture)
        if self._held is capture:
            self._held = None  # before the counters, so readers never see written and failing
        self.written += 1
        self.last_path = path
        self._delay = 0.0
        self._retry_at = 0.0
        try:
            self._retain()
        except OSError as exc:  # the snapshot is written; old ones stay until the next success
            self._record_error(exc, capture.ticks)
        return path

    def _record_error(self, exc: BaseException, ticks: int) -> None:
        kind = error_kind(exc)
        first = kind not in self.errors_by_kind
        self.errors += 1
        self.errors_by_kind[kind] += 1
        self.last_error = f"{kind}: {exc}"
        if not first:
            return
        _logger.warning(
            "snapshots %s: %s; the capture is retried with backoff (reported once per kind)",
            self.directory,
            self.last_error,
        )
        if self.on_error is not None:
            try:
                self.on_error(kind, ticks, exc)
            except Exception:  # reporting must not stop the writer
                _logger.exception("snapshot error callback failed")

    def _retain(self) -> None:
        snaps = list_snapshots(self.directory)
        for old in snaps[: max(0, len(snaps) - self.keep)]:
            old.unlink(missing_ok=True)
