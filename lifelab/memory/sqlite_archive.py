"""The durable archive: spilled entries in one SQLite file, written off the tick thread.

This was the archive of run directories of format version 1 (lifelab 0.1); newer runs use the
segment archive (:mod:`lifelab.memory.segment_archive`, issue 13's ablation says why), and this
one still reads and extends the old runs. The hand-off to the writer thread, retries and
backpressure are :class:`lifelab.memory.writer.QueuedArchive`'s; the writer converts what gathered
with ``.tolist()`` and inserts it with one ``executemany`` per transaction. Searches use their own
read connection (WAL lets them run while the writer commits) and return exactly what
:func:`lifelab.memory.archive.filter_columns` returns (DESIGN §2, invariant 6).

File layout, schema version 1::

    meta(key TEXT PRIMARY KEY, value TEXT)     -- format = lifelab-archive, schema_version = 1
    event_types(idx INTEGER PRIMARY KEY, name)  -- the type table, so the file describes itself
    entries(id INTEGER PRIMARY KEY, …)          -- every column of COLUMNS, in COLUMNS order
    indexes on entries: (event_type, timestamp), (timestamp), (significance)
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifelab.exceptions import ArchiveError, ArchiveSchemaError
from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import check_query, type_code
from lifelab.memory.writer import QueuedArchive

__all__ = ["SCHEMA_VERSION", "SQLiteArchive"]

# Schema history. Bump SCHEMA_VERSION when the layout changes and keep a reader for every older
# version (STYLE rule 5):
#   1 (lifelab 0.1): meta, event_types and entries (the 12 COLUMNS; float columns declared without
#     a type), indexes (event_type, timestamp), (timestamp), (significance).
SCHEMA_VERSION = 1
_READABLE_VERSIONS = frozenset({1})
FORMAT = "lifelab-archive"

# Float columns are declared without a type on purpose: with REAL affinity SQLite stores an
# integral float as an integer and -0.0 comes back as 0.0, which would break the bit-exact round
# trip. Without affinity a Python float is always stored as an 8-byte IEEE double.
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE event_types (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        event_type INTEGER NOT NULL,      -- int16, index into event_types
        kind INTEGER NOT NULL,            -- int8
        action INTEGER NOT NULL,          -- int8
        significance NOT NULL,            -- float64
        weight NOT NULL,                  -- float64, at the time of the spill
        timestamp NOT NULL,               -- float64, life seconds
        subjective_timestamp NOT NULL,    -- float64
        tick INTEGER NOT NULL,            -- int64
        feedback_energy NOT NULL,         -- float32
        feedback_stability NOT NULL,      -- float32
        feedback_integrity NOT NULL       -- float32
    )""",
    "CREATE INDEX entries_type_time ON entries (event_type, timestamp)",
    "CREATE INDEX entries_time ON entries (timestamp)",
    "CREATE INDEX entries_sig ON entries (significance)",
)
_NAMES = tuple(COLUMNS)
_INSERT = f"INSERT INTO entries ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))})"
_SELECT = f"SELECT {', '.join(_NAMES)} FROM entries"
_ROW = np.dtype(list(COLUMNS.items()))  # one fetched row, for the list-of-tuples -> arrays step
# The range clauses of search(), in the order of its bound arguments; inclusive like filter_columns.
_RANGE_SQL = (
    "significance >= ?",
    "significance <= ?",
    "timestamp >= ?",
    "timestamp <= ?",
    "weight >= ?",
    "weight <= ?",
)

_COMMIT_ROWS = 65_536  # rows per transaction when catching up (bounds the .tolist() copies)
# Most rows the writer takes off the queue before it commits them. It used to take the whole
# queue (4 096 batches, ~300 000 rows at 64 events/tick), so a producer faster than SQLite ran
# free for 4 096 ticks and then waited ~10 s on a full queue. Smaller groups spread the wait but
# each commit rewrites the index pages it touched (random significance order), so they cost
# throughput: 1 M rows in batches of 70 (/tmp A/B, one run each) at 4 096 rows a group 24 000
# rows/s (worst wait 0.24 s), 16 384: 37 000 (0.54 s), 65 536: 47 000-49 000 (1.5 s), the whole
# queue 46 000 (6 s).
_GATHER_ROWS = _COMMIT_ROWS
_BUSY_TIMEOUT_S = 5.0
READONLY_CACHE_KIB = 16 * 1024  # open_readonly()'s page cache: inspection only searches


class SQLiteArchive(QueuedArchive):
    """An append-only archive of spilled entries in one SQLite file that survives restarts.

    Satisfies :class:`lifelab.memory.archive.Archive`. ``append`` is meant for one producer (the
    tick thread); ``search``, ``columns`` and ``count`` may be called from any thread.

    Args:
        path: The archive file; created with its schema when missing, appended to when it exists.
        type_names: Event type names by index. An existing file's names must be a prefix of them
            (types are only ever added at the end); new ones are recorded in the file.
        coalesce_s: After the first batch the writer gathers more for up to this long before
            committing, so small spills share one transaction; ``flush`` cuts the wait short.
        cache_mb: SQLite page cache per connection, allocated only as pages are used and then
            kept: resident memory that grows with the archive until the cache is full. The
            significance index takes rows in random order, so inserts slow down once it outgrows
            the cache (about 25 MB per million rows): at a million rows 64 MB inserted ~1.5x
            faster than the default 2 MB (SQLite's own), which keeps RSS flat in long runs.
        backlog_max: Most rows appended but not yet committed before ``append`` waits (about
            64 B each: the default holds ~64 MB, minutes of spills while the disk is full).

    Faults and quietness: see :class:`~lifelab.memory.writer.QueuedArchive`.

    Raises:
        ArchiveSchemaError: The file is not a lifelab archive, has a schema version this lifelab
            cannot read, or holds event types that ``type_names`` does not extend.
        ArchiveError: The file cannot be opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        type_names: Sequence[str],
        coalesce_s: float = 0.1,
        cache_mb: int = 2,
        backlog_max: int = 1_000_000,
    ) -> None:
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int) or cache_mb < 1:
            raise ValueError(f"cache_mb must be an int >= 1, got {cache_mb!r}")
        self._cache_kib = cache_mb * 1024
        self._init_writer(
            coalesce_s=coalesce_s,
            gather_rows=_GATHER_ROWS,
            gather_batches=4096,
            backlog_max=backlog_max,
        )
        self._open(Path(path), tuple(type_names), readonly=False)

    @classmethod
    def open_readonly(cls, path: str | Path) -> SQLiteArchive:
        """Open an archive for inspection: never writes, starts no thread, takes types from it."""
        self = cls.__new__(cls)
        self._cache_kib = READONLY_CACHE_KIB
        self._init_writer(coalesce_s=0.0, gather_rows=1, gather_batches=1, backlog_max=1)
        self._open(Path(path), None, readonly=True)
        return self

    def _open(self, path: Path, type_names: tuple[str, ...] | None, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._wconn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        if readonly:
            self._rconn = _connect(path, readonly=True, cache_kib=self._cache_kib)
            try:
                names = _read_schema(self._rconn, path)
                if names is None:
                    raise ArchiveSchemaError(
                        f"{path} is an empty SQLite file, not a lifelab archive"
                    )
            except BaseException:
                self._rconn.close()
                raise
        else:
            assert type_names is not None
            self._wconn = _connect(path, readonly=False, cache_kib=self._cache_kib)
            try:
                names = _prepare(self._wconn, path, type_names)
                self._rconn = _connect(path, readonly=False, cache_kib=self._cache_kib)
                self._rconn.execute("PRAGMA query_only = ON")
            except BaseException:
                self._wconn.close()
                raise
        self.type_names: tuple[str, ...] = names
        self._type_index = {name: i for i, name in enumerate(names)}
        try:
            count, high_water = self._committed_extent()
        except sqlite3.DatabaseError as exc:  # a corrupt page: the row count reads every page
            self._rconn.close()
            if self._wconn is not None:
                self._wconn.close()
            raise _open_error(path, exc) from exc
        self._start(count, high_water)

    def _close_files(self) -> None:
        with self._read_lock:
            self._rconn.close()
        if self._wconn is not None:
            with self._write_lock:
                self._wconn.close()

    def rollback(self, rows: int, max_id: int, active_ids: np.ndarray | None = None) -> int:
        """Resume's cut: the rows spilled after a snapshot (see :meth:`rollback_after`)."""
        del rows  # rows are in id order here, not spill order: found by id instead
        return self.rollback_after(max_id, active_ids=active_ids)

    def rollback_after(self, max_id: int, *, active_ids: np.ndarray | None = None) -> int:
        """Delete every row with id > ``max_id`` in one transaction; return how many went.

        Used on resume: the snapshot records the archive's high-water mark and the rows written
        after it are replayed. Entries spill out of id order, so an entry that was still active at
        the snapshot (id ≤ ``max_id`` possible) may also have reached the archive before a crash;
        pass the snapshot's active ids as ``active_ids`` to delete those too, or replay would
        insert them twice.
        """
        if self._wconn is None or self._closed:
            raise ArchiveError(f"{self.path}: cannot roll back, the archive is closed or read-only")
        self.flush()
        max_id = operator.index(max_id)
        conn = self._wconn
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = conn.execute("DELETE FROM entries WHERE id > ?", (max_id,)).rowcount
                if active_ids is not None:
                    old = [(i,) for i in np.asarray(active_ids).tolist() if i <= max_id]
                    removed += conn.executemany("DELETE FROM entries WHERE id = ?", old).rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        self._count, self._high_water = self._committed_extent()
        self._committed(self._count)
        return removed

    # -- the writer thread ------------------------------------------------------------------------

    def _commit_pending(self, *, durable: bool) -> None:
        """Commit the pending batches oldest first, at most ``_COMMIT_ROWS`` rows a transaction
        (at least one batch); committed batches leave the list at once, so a failure keeps only
        what is left and a long backlog is never converted to Python rows all at once."""
        pending = self._unwritten
        while pending:
            take = n_rows = 0
            for batch in pending:
                n = len(batch["id"])
                if take and n_rows + n > _COMMIT_ROWS:
                    break
                take += 1
                n_rows += n
            rows: list[tuple[Any, ...]] = []
            for batch in pending[:take]:
                rows.extend(zip(*[batch[name].tolist() for name in _NAMES], strict=True))
            self._commit(rows)
            del pending[:take]
            self._committed(self._on_disk + n_rows)

    def _commit(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._wconn
        assert conn is not None
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._insert(rows)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows inside the open transaction (a seam that tests slow down or break)."""
        assert self._wconn is not None
        self._wconn.executemany(_INSERT, rows)

    def _error_hint(self) -> str:
        if isinstance(self.last_error, sqlite3.IntegrityError):
            return " (a NaN, which SQLite stores as NULL, or an id archived twice)"
        return ""

    # -- reading ----------------------------------------------------------------------------------

    @property
    def high_water(self) -> int:
        """The largest id appended so far, -1 when there is none."""
        if self.readonly:
            return self._committed_extent()[1]
        return self._high_water

    def count(self) -> int:
        """Rows committed to the file."""
        return self._query_one("SELECT COUNT(*) FROM entries")

    def columns(self) -> dict[str, np.ndarray]:
        """Every archived entry, as COLUMNS arrays in id order."""
        return self._fetch(f"{_SELECT} ORDER BY id", ())

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
        """
        check_query(sort, limit)
        bounds = (min_sig, max_sig, since, until, min_weight, max_weight)
        clauses: list[str] = []
        params: list[Any] = []
        if event_type is not None:
            clauses.append("event_type = ?")
            params.append(type_code(event_type, self._type_index))
        # Column names come from fixed strings (_RANGE_SQL, SORT_KEYS); every value is bound.
        for clause, value in zip(_RANGE_SQL, bounds, strict=True):
            if value is not None:
                clauses.append(clause)
                params.append(float(value))
        sql = _SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        direction = "DESC" if descending else "ASC"
        sql += f" ORDER BY id {direction}" if sort == "id" else f" ORDER BY {sort} {direction}, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(operator.index(limit))
        return self._fetch(sql, params)

    def _fetch(self, sql: str, params: Sequence[Any]) -> dict[str, np.ndarray]:
        self.flush()
        with self._reading():
            rows = self._rconn.execute(sql, params).fetchall()
        table = np.array(rows, dtype=_ROW)
        return {name: np.ascontiguousarray(table[name]) for name in _NAMES}

    def _query_one(self, sql: str) -> Any:
        with self._reading():
            return self._rconn.execute(sql).fetchone()[0]

    def _committed_extent(self) -> tuple[int, int]:
        with self._reading():
            count, top = self._rconn.execute("SELECT COUNT(*), MAX(id) FROM entries").fetchone()
        return count, -1 if top is None else top

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._read_lock:
            if self._closed:
                raise ArchiveError(f"{self.path}: the archive is closed")
            yield

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "closed" if self._closed else "open"
        return f"SQLiteArchive({str(self.path)!r}, {mode})"


# -- opening and checking files --------------------------------------------------------------------


def _connect(path: Path, *, readonly: bool, cache_kib: int) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), shareable across threads."""
    if readonly:
        if not path.is_file():
            raise ArchiveError(f"{path}: no archive file there")
        # A cleanly closed archive has no -wal file: read it as immutable so that SQLite creates
        # no -wal/-shm beside it. A live (or crashed) writer leaves a -wal that must be read.
        wal = path.with_name(path.name + "-wal")
        target = path.resolve().as_uri() + ("?mode=ro" if wal.exists() else "?mode=ro&immutable=1")
    else:
        target = str(path)
    try:
        conn = sqlite3.connect(
            target,
            uri=readonly,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise ArchiveError(f"{path}: cannot open the archive: {exc}") from exc
    try:
        # PRAGMA takes no bound parameters; the value is an int we validated. Negative means KiB.
        conn.execute(f"PRAGMA cache_size = {-int(cache_kib)}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _open_error(path, exc) from exc
    except UnicodeDecodeError as exc:  # SQLite quoting a corrupt schema name in its message
        conn.close()
        raise ArchiveSchemaError(f"{path} is not a lifelab archive (corrupt schema)") from exc
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, type_names: tuple[str, ...]) -> tuple[str, ...]:
    """Check (or create) the schema, record new type names, switch to WAL; return the names."""
    try:
        conn.execute("BEGIN IMMEDIATE")  # check and create atomically
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from exc
    try:
        existing = _read_schema(conn, path)
        if existing is None:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))],
            )
            existing = ()
        if type_names[: len(existing)] != existing:
            raise ArchiveSchemaError(
                f"{path} holds event types {list(existing)}; the given type names "
                f"{list(type_names)} must start with them (types are only added at the end)"
            )
        conn.executemany(
            "INSERT INTO event_types (idx, name) VALUES (?, ?)",
            list(enumerate(type_names))[len(existing) :],
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: safe against crashes of lifelab
    return type_names


def _read_schema(conn: sqlite3.Connection, path: Path) -> tuple[str, ...] | None:
    """The type names of the lifelab archive behind ``conn``; None when the database is empty."""
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        if not tables:
            return None
        if "meta" not in tables:
            raise ArchiveSchemaError(
                f"{path} is an SQLite database but not a lifelab archive "
                f"(no meta table; it holds {sorted(tables)})"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise ArchiveSchemaError(
                f"{path} is not a lifelab archive (meta format is {meta.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        raw = meta.get("schema_version")
        try:
            version = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            version = None
        if version is not None and version > SCHEMA_VERSION:
            raise ArchiveSchemaError(
                f"{path} has archive schema version {version}, newer than this lifelab reads "
                f"(versions {sorted(_READABLE_VERSIONS)}); open it with a newer lifelab"
            )
        if version not in _READABLE_VERSIONS:
            raise ArchiveSchemaError(
                f"{path} has an unknown archive schema version {raw!r}; this lifelab reads "
                f"versions {sorted(_READABLE_VERSIONS)}"
            )
        columns = tuple(row[1] for row in conn.execute("PRAGMA table_info(entries)"))
        if columns != _NAMES:
            raise ArchiveSchemaError(
                f"{path}: schema version {version} expects entries columns {list(_NAMES)}, "
                f"the file has {list(columns)}"
            )
        rows = conn.execute("SELECT idx, name FROM event_types ORDER BY idx").fetchall()
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from exc
    if [idx for idx, _ in rows] != list(range(len(rows))):
        raise ArchiveSchemaError(f"{path}: event_types indexes are not 0..{len(rows) - 1}")
    return tuple(name for _, name in rows)


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> ArchiveError | ArchiveSchemaError:
    """Not-a-database and missing tables are schema errors; anything else is an I/O error."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB" or "no such table" in str(exc) or "no such column" in str(exc):
        return ArchiveSchemaError(f"{path} is not a lifelab archive ({exc})")
    return ArchiveError(f"{path}: cannot read the archive: {exc}")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
