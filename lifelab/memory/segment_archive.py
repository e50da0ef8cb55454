"""The durable archive of run directories (format 2): append-only columnar segments.

Issue 13's ablation (``python -m lifelab.studies.ablate_archive full``, the table
``data/results/ablations/archive_formats.parquet`` and the "Archive formats" section of
``docs/performance``) measured the candidates side by side; SQLite's B-tree indexes cost most of
its ingest (each commit rewrites the index pages it touched, in random significance order), while
spill order already sorts the rows almost by time. So the archive keeps rows in the order they
spilled, in files that are never rewritten, and indexes them with min/max statistics per segment.

Layout of ``<run_dir>/archive/``::

    archive.json                  # format, version, event type names (written atomically)
    seg-<start>.llseg             # a sealed segment: `segment_rows` rows from row <start>, columnar
    tail-<start>.llrows           # the open segment's rows made durable so far (row records)

A segment file is ``MAGIC``, a little-endian u32 header length, a JSON header (start, rows, each
column's dtype and offset, min/max statistics, the event types present, the CRC-32 of the column
bytes), then each column's bytes at a 64-byte aligned offset, so searches map the columns without
copying. A tail file is ``TAIL_MAGIC`` and the u64 start row, then one chunk per flush: u32 rows,
u32 CRC-32 of the records, and the packed row records.

How the rows move: :meth:`append` (tick thread) hands the spilled column dict to the writer
thread (:class:`~lifelab.memory.writer.QueuedArchive`: a list append, no per-tick wake-up). The
writer copies gathered rows into the open segment's columns in memory. A full open segment is
sealed: written to a temp file, fsynced, renamed, the directory fsynced, and its tail file deleted.
A flush (before every snapshot, on close) appends the open rows not yet in the tail file to it and
fsyncs: only then are rows durable, which is all the recovery model needs (a snapshot covers only
durable rows; rows after it are replayed on resume).

Crash safety (kill -9 at any moment): a temp file is deleted on open; a tail whose rows a segment
already holds (a crash between seal and tail deletion, or during a rollback) is deleted; a torn last
record of the tail is cut off. :meth:`rollback` (resume) cuts the archive back to the snapshot's
``archive_size``, latest files first, so a crash during it leaves a longer archive that the next
resume cuts again. Rows are in spill order, so the rows after the snapshot are exactly the rows
past its ``archive_size``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import operator
import os
import re
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelab._files import fsync_dir, write_atomic
from lifelab.exceptions import ArchiveError, ArchiveSchemaError
from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import SORT_KEYS, check_query, filter_columns, type_code
from lifelab.memory.writer import QueuedArchive

__all__ = ["FORMAT", "FORMAT_VERSION", "SegmentArchive"]

FORMAT = "lifelab-archive"
# Archive format history. 1: one SQLite file (lifelab.memory.sqlite_archive, still read and
# extended for old run directories). 2: this layout.
FORMAT_VERSION = 2
META_FILE = "archive.json"
MAGIC = b"LLSEG02\n"
TAIL_MAGIC = b"LLTAIL2\n"
_TAIL_HEADER = struct.Struct("<8sQ")
_CHUNK = struct.Struct("<II")  # rows, CRC-32 of their records: one per flush of the tail
_ALIGN = 64
_NAMES = tuple(COLUMNS)
_RECORD = np.dtype(list(COLUMNS.items()))  # packed: one tail record per row
_SEG_RE = re.compile(r"^seg-(\d{15})\.llseg$")
_TAIL_RE = re.compile(r"^tail-(\d{15})\.llrows$")
# Columns whose min/max each segment records (search prunes segments by them).
_STAT_COLUMNS = ("id", "timestamp", "significance", "weight")
_RANGES = (("significance", 0, 1), ("timestamp", 2, 3), ("weight", 4, 5))
DEFAULT_SEGMENT_ROWS = 262_144  # 16 MiB files; see the ablation for the trade-off


def _seg_name(start: int) -> str:
    return f"seg-{start:015d}.llseg"


def _tail_name(start: int) -> str:
    return f"tail-{start:015d}.llrows"


@dataclass
class _Segment:
    """A sealed segment: where it is, its statistics, and its columns once mapped."""

    path: Path
    start: int
    rows: int
    stats: dict[str, tuple[float, float]]
    types: frozenset[int]
    crc: int
    layout: list[tuple[str, str, int]]
    verified: bool = False
    cols: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _map: mmap.mmap | None = field(default=None, repr=False)

    def columns(self) -> dict[str, np.ndarray]:
        if self.cols is None:
            with open(self.path, "rb") as f:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            cols = {
                name: np.frombuffer(mapped, np.dtype(dtype), self.rows, offset)
                for name, dtype, offset in self.layout
            }
            if not self.verified:
                crc = 0
                for name in _NAMES:
                    crc = zlib.crc32(cols[name], crc)
                if crc != self.crc:
                    del cols
                    mapped.close()
                    raise ArchiveError(
                        f"{self.path}: the column bytes fail their CRC-32 check (the file was "
                        "changed or damaged after it was written)"
                    )
                self.verified = True
            self.cols, self._map = cols, mapped
        return self.cols

    def release(self) -> None:
        self.cols = None
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a caller still holds a view: GC frees it
                self._map.close()
            self._map = None


class SegmentArchive(QueuedArchive):
    """An append-only archive of spilled entries in columnar segment files (format 2).

    Satisfies :class:`lifelab.memory.archive.Archive`; ``append`` is meant for one producer (the
    tick thread), ``search``, ``columns`` and ``count`` may be called from any thread. Search
    returns exactly what :func:`~lifelab.memory.archive.filter_columns` returns over every row.

    Args:
        directory: The archive directory; created when missing, appended to when it exists.
        type_names: Event type names by index. An existing archive's names must be a prefix of
            them (types are only ever added at the end); new ones are recorded.
        segment_rows: Rows per sealed segment file.
        coalesce_s: After the first handed-over batch the writer gathers for up to this long.
        backlog_max: Most rows appended but not yet durable before ``append`` waits.

    Raises:
        ArchiveSchemaError: The directory is not a lifelab archive, has a format version this
            lifelab cannot read, or holds event types that ``type_names`` does not extend.
        ArchiveError: The files cannot be read (damaged, missing rows) or written.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        type_names: Sequence[str],
        segment_rows: int = DEFAULT_SEGMENT_ROWS,
        coalesce_s: float = 0.1,
        backlog_max: int = 1_000_000,
    ) -> None:
        if isinstance(segment_rows, bool) or not isinstance(segment_rows, int) or segment_rows < 1:
            raise ValueError(f"segment_rows must be an int >= 1, got {segment_rows!r}")
        self.segment_rows = segment_rows
        self._init_writer(
            coalesce_s=coalesce_s,
            gather_rows=min(65_536, segment_rows),
            gather_batches=1024,
            backlog_max=max(backlog_max, segment_rows),
        )
        self.path = Path(directory)
        self.readonly = False
        self._lock = threading.RLock()  # the segment list and the open buffer (writer vs readers)
        self.type_names = _prepare_meta(self.path, tuple(type_names))
        self._type_index = {name: i for i, name in enumerate(self.type_names)}
        self._buf = {name: np.empty(segment_rows, dtype) for name, dtype in COLUMNS.items()}
        self._scan(repair=True)
        self._start(self._rows_in_files(), self._max_id())

    @classmethod
    def open_readonly(cls, directory: str | Path) -> SegmentArchive:
        """Open an archive for inspection: never writes, starts no thread, takes types from it."""
        self = cls.__new__(cls)
        self._init_writer(coalesce_s=0.0, gather_rows=1, gather_batches=1, backlog_max=1)
        self.path = Path(directory)
        self.readonly = True
        self._lock = threading.RLock()
        self.type_names = _read_meta(self.path)
        self._type_index = {name: i for i, name in enumerate(self.type_names)}
        self._scan(repair=False)
        self.segment_rows = max([s.rows for s in self._segments] + [self._open_n, 1])
        self._start(self._rows_in_files(), self._max_id())
        return self

    # -- the files ---------------------------------------------------------------------------------

    def _scan(self, *, repair: bool) -> None:
        """Read the segment headers and the tail; with ``repair``, clean up after a crash."""
        directory = self.path
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise ArchiveError(f"{directory}: cannot list the archive: {exc}") from exc
        segments: list[_Segment] = []
        tails: dict[int, Path] = {}
        for name in names:
            path = directory / name
            if name.endswith(".tmp"):
                if repair:  # a write that never finished its rename
                    path.unlink(missing_ok=True)
            elif m := _SEG_RE.match(name):
                segments.append(_read_segment_header(path, int(m.group(1))))
            elif m := _TAIL_RE.match(name):
                tails[int(m.group(1))] = path
        end = 0
        for seg in segments:
            if seg.start != end:
                raise ArchiveError(
                    f"{seg.path}: starts at row {seg.start} but the segments before it end at "
                    f"row {end}: rows are missing from the archive"
                )
            end += seg.rows
        for start, path in list(tails.items()):
            if start < end:  # a segment already holds these rows (sealed, or a rollback redone)
                del tails[start]
                if repair:
                    path.unlink(missing_ok=True)
        if len(tails) > 1 or (tails and next(iter(tails)) != end):
            raise ArchiveError(
                f"{directory}: tail files {sorted(p.name for p in tails.values())} do not follow "
                f"the last segment (row {end}): rows are missing from the archive"
            )
        tail_rows, tail_bytes = np.empty(0, _RECORD), _TAIL_HEADER.size
        if tails:
            tail_rows, tail_bytes = _read_tail(tails[end], end, repair=repair)
        n = len(tail_rows)
        if not self.readonly and n > self.segment_rows:
            raise ArchiveError(
                f"{tails[end]}: holds {n} rows, more than a segment's {self.segment_rows}"
            )
        if self.readonly:
            self._buf = {name: np.ascontiguousarray(tail_rows[name]) for name in _NAMES}
        else:
            for name in _NAMES:
                self._buf[name][:n] = tail_rows[name]
        self._segments = segments
        self._sealed = end
        self._open_n = n
        self._tail_n = n  # rows of the open segment already in its tail file
        self._tail_bytes = tail_bytes  # where its next chunk goes
        self._tail_fd: int | None = None

    def _rows_in_files(self) -> int:
        return self._sealed + self._open_n

    def _max_id(self) -> int:
        top = -1
        for seg in self._segments:
            top = max(top, int(seg.stats["id"][1]))
        if self._open_n:
            top = max(top, int(self._buf["id"][: self._open_n].max()))
        return top

    def _close_files(self) -> None:
        with self._lock:
            self._close_tail()
            for seg in self._segments:
                seg.release()

    def _close_tail(self) -> None:
        if self._tail_fd is not None:
            os.close(self._tail_fd)
            self._tail_fd = None

    # -- the writer thread ------------------------------------------------------------------------

    def _commit_pending(self, *, durable: bool) -> None:
        """Move pending batches into the open segment, sealing it whenever it fills; then, when
        ``durable``, write the open rows to the tail file and fsync it."""
        pending = self._unwritten
        size = self.segment_rows
        while pending:
            if self._open_n == size:
                self._seal()
            space = size - self._open_n
            take, rows = 0, 0
            for batch in pending:
                n = len(batch["id"])
                if rows + n > space:
                    break
                take += 1
                rows += n
            if take == 0:  # the first batch straddles the segment boundary: split it
                head = {name: col[:space] for name, col in pending[0].items()}
                pending[0] = {name: col[space:] for name, col in pending[0].items()}
                pending.insert(0, head)
                take, rows = 1, space
            start = self._open_n
            with self._lock:
                for name, col in self._buf.items():
                    # NOTE: one concatenate per column for a whole group of batches: per-batch
                    # slice assignments cost 12 Python calls per spill.
                    np.concatenate([b[name] for b in pending[:take]], out=col[start : start + rows])
                self._open_n = start + rows
            del pending[:take]
        if self._open_n == size:
            self._seal()
        if durable and self._tail_n < self._open_n:
            self._sync_tail()
        self._committed(self._sealed + self._tail_n)

    def _seal(self) -> None:
        """Write the full open segment as a sealed segment file, then drop its tail file."""
        start, n = self._sealed, self._open_n
        cols = {name: col[:n] for name, col in self._buf.items()}
        header, layout, _crc = _segment_header(start, cols)
        path = self.path / _seg_name(start)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            offset = self._pwrite(fd, header, 0)
            for name, _dtype, col_offset in layout:
                if col_offset > offset:
                    offset = self._pwrite(fd, bytes(col_offset - offset), offset)
                offset = self._pwrite(fd, memoryview(cols[name]).cast("B"), offset)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self.path)
        seg = _read_segment_header(path, start)
        seg.verified = True  # its CRC was computed from the rows just written
        with self._lock:
            self._close_tail()
            (self.path / _tail_name(start)).unlink(missing_ok=True)
            self._segments.append(seg)
            self._sealed += n
            self._open_n = self._tail_n = 0
        self._committed(self._sealed)

    def _sync_tail(self) -> None:
        """Append the open rows that are not in the tail file yet, and fsync it."""
        path = self.path / _tail_name(self._sealed)
        if self._tail_fd is None:
            self._tail_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            self._tail_ready = self._tail_n > 0  # a tail read on open has its header
        if not self._tail_ready:  # (re)written until it is on disk: a retry may follow a fault
            self._pwrite(self._tail_fd, _TAIL_HEADER.pack(TAIL_MAGIC, self._sealed), 0)
            os.fsync(self._tail_fd)
            fsync_dir(self.path)
            self._tail_ready = True
            self._tail_bytes = _TAIL_HEADER.size
        lo, hi = self._tail_n, self._open_n
        chunk = _chunk({name: col[lo:hi] for name, col in self._buf.items()})
        # pwrite at the known offset: a retry after a partial write rewrites the same bytes.
        end = self._pwrite(self._tail_fd, chunk, self._tail_bytes)
        os.fsync(self._tail_fd)
        self._tail_n, self._tail_bytes = hi, end

    def _pwrite(self, fd: int, data: Any, offset: int) -> int:
        """Write all of ``data`` at ``offset``; return the end offset (a seam for fault tests)."""
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            wrote = os.pwrite(fd, view[done:], offset + done)
            if wrote <= 0:
                raise OSError(errno.EIO, "write made no progress")
            done += wrote
        return offset + done

    # -- resume ------------------------------------------------------------------------------------

    def rollback(self, rows: int, max_id: int, active_ids: np.ndarray | None = None) -> int:
        """Cut the archive back to its first ``rows`` rows (the snapshot's ``archive_size``).

        Rows are in spill order, so the rows past the snapshot's count are exactly those spilled
        after it (``max_id`` and ``active_ids`` are the SQLite archive's way to find them and are
        not needed here). Latest files go first: a crash part-way leaves a longer archive that the
        next resume cuts again. Returns how many rows went.
        """
        del max_id, active_ids
        if self.readonly or self._closed:
            raise ArchiveError(f"{self.path}: cannot roll back, the archive is closed or read-only")
        rows = operator.index(rows)
        self.flush()
        total = self._rows_in_files()
        if rows >= total:
            return 0
        with self._lock:
            self._close_tail()
            for seg in self._segments:
                seg.release()
            tail = self.path / _tail_name(self._sealed)
            if rows >= self._sealed:  # the cut is in the tail: rewrite it with the rows kept
                keep = rows - self._sealed
                kept = {name: col[:keep] for name, col in self._buf.items()}
                write_atomic(tail, _TAIL_HEADER.pack(TAIL_MAGIC, self._sealed) + _chunk(kept))
            else:
                tail.unlink(missing_ok=True)
                cut = None
                for seg in reversed(self._segments):
                    if seg.start >= rows:
                        seg.path.unlink()
                    else:
                        if seg.start + seg.rows > rows:
                            cut = seg
                        break
                fsync_dir(self.path)
                if cut is not None:  # keep the cut segment's first rows as the new tail
                    keep = rows - cut.start
                    data = _chunk({name: col[:keep] for name, col in cut.columns().items()})
                    cut.release()
                    write_atomic(
                        self.path / _tail_name(cut.start),
                        _TAIL_HEADER.pack(TAIL_MAGIC, cut.start) + data,
                    )
                    cut.path.unlink()
                    fsync_dir(self.path)
            self._scan(repair=True)
            self._count = self._rows_in_files()
            self._high_water = self._max_id()
        self._committed(self._count)
        return total - self._count

    # -- reading ----------------------------------------------------------------------------------

    def count(self) -> int:
        """Rows that are durable in the files."""
        if self.readonly:
            return self._rows_in_files()
        return self._on_disk

    @property
    def segments(self) -> int:
        """Sealed segment files."""
        return len(self._segments)

    def columns(self) -> dict[str, np.ndarray]:
        """Every archived entry, as COLUMNS arrays in archive (spill) order."""
        self._catch_up()
        with self._reading():
            parts = [seg.columns() for seg in self._segments]
            parts.append({name: col[: self._open_n] for name, col in self._buf.items()})
            return {name: np.concatenate([p[name] for p in parts]) for name in _NAMES}

    def verify(self) -> list[str]:
        """Check every segment's CRC-32; return the damaged files (empty when all are sound)."""
        bad = []
        with self._reading():
            for seg in self._segments:
                seg.verified = False
                seg.release()
                try:
                    seg.columns()
                except ArchiveError:
                    bad.append(str(seg.path))
        return bad

    def search(
        self,
        *,
        event_type: int | str | None = None,
        min_sig: float | None = None,
        max_sig: float | None = None,
        since: float | None = None,
        until: float | None = None,
        min_weight: float | None = None,
        max_weight: float | None = None,
        sort: str = "timestamp",
        descending: bool = False,
        limit: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Entries matching the query; exactly :func:`~lifelab.memory.archive.filter_columns`.

        Every bound is inclusive; ``event_type`` is a type index or name; rows are sorted by
        ``sort`` (descending when asked) with ties broken by id ascending.

        Segments whose min/max statistics (or event types) exclude the query are skipped. With a
        ``limit``, segments are visited in the order of their bound on the sort key, and the
        search stops at the first segment whose bound cannot beat the ``limit``-th row found.
        """
        if sort in SORT_KEYS and limit is not None:  # the sort is refused first, as before
            limit = operator.index(limit)
        check_query(sort, limit)
        code = None if event_type is None else type_code(event_type, self._type_index)
        bounds = tuple(
            None if v is None else float(v)
            for v in (min_sig, max_sig, since, until, min_weight, max_weight)
        )
        query = {
            "event_type": code,
            "min_sig": bounds[0],
            "max_sig": bounds[1],
            "since": bounds[2],
            "until": bounds[3],
            "min_weight": bounds[4],
            "max_weight": bounds[5],
        }
        self._catch_up()
        with self._reading():
            candidates = [s for s in self._segments if _may_match(s, code, bounds)]
            found = [_select(self._open_columns(), code, bounds)]
            if limit is None:
                found += [_select(s.columns(), code, bounds) for s in candidates]
            else:
                found = self._top(candidates, found, code, bounds, sort, descending, limit)
        merged = {name: np.concatenate([f[name] for f in found]) for name in _NAMES}
        return filter_columns(merged, **query, sort=sort, descending=descending, limit=limit)

    def _top(
        self,
        candidates: list[_Segment],
        found: list[dict[str, np.ndarray]],
        code: int | float | None,
        bounds: tuple[float | None, ...],
        sort: str,
        descending: bool,
        limit: int,
    ) -> list[dict[str, np.ndarray]]:
        """Visit segments best bound first; stop once none can hold one of the top ``limit``."""
        bound = 1 if descending else 0  # a segment's best possible key: max, or min
        candidates = sorted(candidates, key=lambda s: s.stats[sort][bound], reverse=descending)
        keys = [f[sort] for f in found]
        total = sum(len(k) for k in keys)
        for seg in candidates:
            if total >= limit > 0:
                allk = np.concatenate(keys)
                if descending:
                    kth = np.partition(allk, len(allk) - limit)[len(allk) - limit]
                    if seg.stats[sort][1] < kth:
                        break
                else:
                    kth = np.partition(allk, limit - 1)[limit - 1]
                    if seg.stats[sort][0] > kth:
                        break
            elif limit == 0:
                break
            part = _best(_select(seg.columns(), code, bounds), sort, descending, limit)
            found.append(part)
            keys.append(part[sort])
            total += len(part[sort])
        return found

    def _open_columns(self) -> dict[str, np.ndarray]:
        n = self._open_n
        return {name: col[:n] for name, col in self._buf.items()}

    def _catch_up(self) -> None:
        """Make every row appended so far visible to readers (the writer takes the inbox)."""
        if not self.readonly and self._thread is not None and not self._closed:
            with self._cv:
                waiting = bool(self._inbox) or bool(self._unwritten)
            if waiting:
                self.flush()

    @contextlib.contextmanager
    def _reading(self) -> Any:
        with self._lock:
            if self._closed:
                raise ArchiveError(f"{self.path}: the archive is closed")
            yield

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "closed" if self._closed else "open"
        return f"SegmentArchive({str(self.path)!r}, {mode}, segments={len(self._segments)})"


# -- search helpers ------------------------------------------------------------------------------


def _may_match(seg: _Segment, code: int | float | None, bounds: tuple[float | None, ...]) -> bool:
    if code is not None and code not in seg.types:
        return False
    for name, i, j in _RANGES:
        low, high = seg.stats[name]
        if (bounds[i] is not None and high < bounds[i]) or (
            bounds[j] is not None and low > bounds[j]
        ):
            return False
    return True


def _select(
    cols: dict[str, np.ndarray], code: int | float | None, bounds: tuple[float | None, ...]
) -> dict[str, np.ndarray]:
    """The rows of ``cols`` that match (copies), in their order."""
    mask = None
    if code is not None:
        mask = cols["event_type"] == code
    for name, i, j in _RANGES:
        for bound, op in ((bounds[i], np.greater_equal), (bounds[j], np.less_equal)):
            if bound is not None:
                hit = op(cols[name], bound)
                mask = hit if mask is None else mask & hit
    if mask is None:
        return {name: col.copy() for name, col in cols.items()}
    idx = np.flatnonzero(mask)
    return {name: col[idx] for name, col in cols.items()}


def _best(
    part: dict[str, np.ndarray], sort: str, descending: bool, limit: int
) -> dict[str, np.ndarray]:
    """The rows of ``part`` that can be among the top ``limit``: ties with the ``limit``-th key
    are all kept, so the id tie-break of the final sort still sees every candidate."""
    key = part[sort]
    if len(key) <= limit:
        return part
    # NOTE: keeps a segment's contribution to O(limit) rows: a search without a time range
    # (every segment a candidate) sorted 2.1 M matches at 10 M rows before this (p99 1.9 s).
    if descending:
        kth = np.partition(key, len(key) - limit)[len(key) - limit]
        keep = np.flatnonzero(key >= kth)
    else:
        kth = np.partition(key, limit - 1)[limit - 1]
        keep = np.flatnonzero(key <= kth)
    return {name: col[keep] for name, col in part.items()}


# -- file helpers --------------------------------------------------------------------------------


def _chunk(cols: dict[str, np.ndarray]) -> bytes:
    """One tail chunk: the row count, the CRC-32 of the records, the packed records."""
    records = np.empty(len(cols["id"]), _RECORD)
    for name in _NAMES:
        records[name] = cols[name]
    data = records.tobytes()
    return _CHUNK.pack(len(records), zlib.crc32(data)) + data


def _segment_header(
    start: int, cols: dict[str, np.ndarray]
) -> tuple[bytes, list[tuple[str, str, int]], int]:
    """The header bytes of a segment holding ``cols``, the column layout, and the CRC-32."""
    n = len(cols["id"])
    stats = {name: [cols[name].min().item(), cols[name].max().item()] for name in _STAT_COLUMNS}
    crc = 0
    for name in _NAMES:
        crc = zlib.crc32(cols[name], crc)
    types = np.unique(cols["event_type"]).tolist()

    def encode(layout: list[tuple[str, str, int]]) -> bytes:
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "start": start,
            "rows": n,
            "columns": layout,
            "stats": stats,
            "types": types,
            "crc32": crc,
        }
        body = json.dumps(meta, separators=(",", ":")).encode()
        return MAGIC + struct.pack("<I", len(body)) + body

    # The header's length depends on the offsets it lists: lay out with a generous guess, then
    # pad the header to the first offset.
    guess = len(encode([(name, COLUMNS[name].str, 10**12) for name in _NAMES]))
    offset = _aligned(guess)
    layout = []
    for name in _NAMES:
        layout.append((name, np.dtype(COLUMNS[name]).str, offset))
        offset = _aligned(offset + n * np.dtype(COLUMNS[name]).itemsize)
    header = encode(layout)
    return header, layout, crc


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _read_segment_header(path: Path, start: int) -> _Segment:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:8] != MAGIC:
                raise ArchiveError(f"{path} is not a lifelab archive segment (bad magic bytes)")
            (length,) = struct.unpack("<I", head[8:])
            body = f.read(length)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the segment: {exc}") from exc
    try:
        meta = json.loads(body)
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}")
        version = meta["version"]
        if version != FORMAT_VERSION:
            raise ArchiveSchemaError(
                f"{path}: segment format version {version!r}; this lifelab reads version "
                f"{FORMAT_VERSION}"
            )
        rows = int(meta["rows"])
        layout = [(str(n), str(d), int(o)) for n, d, o in meta["columns"]]
        stats = {
            name: (float(meta["stats"][name][0]), float(meta["stats"][name][1]))
            for name in _STAT_COLUMNS
        }
        types = frozenset(int(t) for t in meta["types"])
        crc = int(meta["crc32"])
        seg_start = int(meta["start"])
    except ArchiveSchemaError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{path}: the segment header is damaged ({exc!r})") from None
    expected = [(name, np.dtype(COLUMNS[name]).str) for name in _NAMES]
    if [(n, d) for n, d, _ in layout] != expected:
        raise ArchiveError(f"{path}: segment columns {layout} are not {expected}")
    if seg_start != start:
        raise ArchiveError(f"{path}: the header says it starts at row {seg_start}, not {start}")
    end = max(o + rows * np.dtype(d).itemsize for _, d, o in layout)
    if size < end:
        raise ArchiveError(f"{path}: truncated ({size} bytes, its columns need {end})")
    return _Segment(path, start, rows, stats, types, crc, layout)


def _read_tail(path: Path, start: int, *, repair: bool) -> tuple[np.ndarray, int]:
    """The records of a tail file and where its valid chunks end.

    A torn last chunk (a kill during a flush: incomplete, or its CRC fails at the end of the file)
    is cut off when repairing, ignored otherwise; a damaged chunk before the last is an error.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the tail: {exc}") from exc
    if len(data) < _TAIL_HEADER.size:  # created, then killed before its header was written
        if repair:
            path.unlink(missing_ok=True)
        return np.empty(0, _RECORD), _TAIL_HEADER.size
    magic, tail_start = _TAIL_HEADER.unpack_from(data)
    if magic != TAIL_MAGIC or tail_start != start:
        raise ArchiveError(f"{path} is not a lifelab archive tail for row {start}")
    parts = []
    pos = _TAIL_HEADER.size
    while pos + _CHUNK.size <= len(data):
        rows, crc = _CHUNK.unpack_from(data, pos)
        end = pos + _CHUNK.size + rows * _RECORD.itemsize
        if end > len(data):
            break  # torn
        body = data[pos + _CHUNK.size : end]
        if zlib.crc32(body) != crc:
            if end < len(data):
                raise ArchiveError(
                    f"{path}: the chunk at byte {pos} fails its CRC-32 check (the file was "
                    "changed or damaged after it was written)"
                )
            break  # the last chunk, torn mid-write
        parts.append(np.frombuffer(body, _RECORD))
        pos = end
    if repair and pos != len(data):
        with open(path, "r+b") as f:
            f.truncate(pos)
            os.fsync(f.fileno())
    records = np.concatenate(parts) if parts else np.empty(0, _RECORD)
    return records, pos


def _read_meta(directory: Path) -> tuple[str, ...]:
    path = directory / META_FILE
    if not directory.is_dir():
        raise ArchiveError(f"{directory}: no archive directory there")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArchiveSchemaError(f"{directory} is not a lifelab archive (no {META_FILE})") from None
    except (OSError, ValueError) as exc:
        raise ArchiveSchemaError(f"{path} is not a lifelab archive file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArchiveSchemaError(f"{path} is not a lifelab archive (format is not {FORMAT!r})")
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise ArchiveSchemaError(
            f"{path} has archive format version {version!r}; this lifelab reads version "
            f"{FORMAT_VERSION} here (version 1 is the single archive.sqlite file)"
        )
    names = meta.get("event_types")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ArchiveSchemaError(f"{path}: event_types must be a list of names")
    return tuple(names)


def _prepare_meta(directory: Path, type_names: tuple[str, ...]) -> tuple[str, ...]:
    """Create the archive directory and its meta file, or check it and record new type names."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"{directory}: cannot create the archive: {exc}") from exc
    existing: tuple[str, ...] = ()
    if (directory / META_FILE).exists():
        existing = _read_meta(directory)
        if type_names[: len(existing)] != existing:
            raise ArchiveSchemaError(
                f"{directory} holds event types {list(existing)}; the given type names "
                f"{list(type_names)} must start with them (types are only added at the end)"
            )
    elif any(_SEG_RE.match(n) or _TAIL_RE.match(n) for n in os.listdir(directory)):
        raise ArchiveSchemaError(f"{directory} holds archive files but no {META_FILE}")
    if existing != type_names:
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "event_types": list(type_names)}
        try:
            write_atomic(directory / META_FILE, json.dumps(meta, indent=1).encode() + b"\n")
            fsync_dir(directory)
        except OSError as exc:
            raise ArchiveError(f"{directory}: cannot write {META_FILE}: {exc}") from exc
    return type_names
