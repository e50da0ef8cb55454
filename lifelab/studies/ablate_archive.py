"""Archive formats: which durable archive ingests at engine speed, searching fast?

The SQLite archive takes ~47 000 rows/s; the archive targets are a sustained 1 000 000 rows/s into
the durable archive and a type + time-range search (limit 100, sorted by timestamp) with p99 <= 5 ms
at 10 000 000 rows. This study measures the candidates side by side, each behind one small
interface (:class:`Candidate`: ``open`` / ``append`` / ``flush`` / ``close`` / ``search``):

- **SQLite**, batched ``executemany`` straight from the column arrays in 65 536-row
  transactions, WAL, ``synchronous=NORMAL``, with no secondary index, with (event_type, timestamp)
  only, with today's three indexes, and with the three built after the load.
- **Parquet segments** written by polars (zstd, row-group statistics on, 16 384-row groups) and
  **Arrow IPC segments** (uncompressed), each searched two ways: one ``scan_parquet`` /
  ``scan_ipc`` over every segment file with the filters pushed down, or pruned first by an
  in-memory min/max index (per segment and event type) and read one candidate file at a time.
- **Raw segments**: each column's bytes after a small JSON header (which holds the min/max
  statistics), memory-mapped and searched with numpy; also with segments a quarter the size,
  and with rows kept in spill order instead of sorted (the sort's ablation).
- **A mix**: raw segments for the rows, a SQLite table of (event type, segment, min/max
  timestamp, max significance) as the index.
- **DuckDB** over the Parquet segments, when ``import duckdb`` works (not a dependency).
- **lifelab's own** :class:`lifelab.memory.segment_archive.SegmentArchive`, when it imports.

A candidate that cannot be imported is left out and named in the table's question text.

Every segment candidate writes one file per segment of ``segment_rows`` rows (the last one, at
``flush``, may be shorter), atomically: a temporary file, fsync, ``os.replace``, fsync of the
directory. Rows within a segment are sorted by (event_type, timestamp, id) unless the variant
says "spill order": a type + time search then reads one contiguous slice per segment. ``flush``
is durable in every candidate: once it returns, every appended row survives a kill -9 (segments:
the buffered rows become a segment; SQLite: the open transaction commits to the WAL). The study
opens fresh directories; ``open`` on an existing one reads what is there (the crash test does).

**The rows** (:func:`spill_stream`) are shaped like a seeded 100 000-tick run's archive (seed 1,
one event per tick): the 12 columns and dtypes of :data:`lifelab.memory.active.COLUMNS`, the
event-type shares of that run (22 types: decay, recovery and shock take 80 %, the other 19 share
the rest), ~0.87 entries per one-second tick (ties in timestamp), ~42 % feedback entries. They
spill out of order: each entry lives an exponential time (mean 25 entries) or, for 9 %, 100 to
1 400 entries, so ids and timestamps both jitter in spill order as in the real run (about half
of consecutive spilled rows go backwards; lag behind the newest: median ~15 s, p99 ~1 300 s;
the real run: 14 s and 1 270 s). They come in batches: half of the rows in batches of 1 to 64
(per-tick spills), half in batches of 4 096 to 65 536 (log-uniform; the compiled engine's
outbox, capacity spills). Everything is generated before any clock starts.

**A sample** is one candidate in a fresh directory: every batch appended and a final ``flush``
(``ingest_rows_per_s``: rows over the time from the first append to the flush's return;
``worst_wait_ms``: the longest single append or flush call, i.e. what a tick would wait if the
candidate ran on the tick thread), then a correctness check, then the searches (files warm in the
page cache): ``search_p50_ms`` / ``search_p99_ms`` over ``searches`` type + time-range queries
(limit 100, sorted by timestamp; uniform over the types present, windows holding 100 to 500
matches), ``sig_search_*`` over queries by type only sorted by significance descending (context),
each shape after 10 untimed queries and cut short after ``search_budget_s`` (at least 20 queries),
then ``close`` and ``bytes_per_row`` (every file left in the directory). Variants run
interleaved (:func:`lifelab.studies.ablation.interleave`), all in this process, one after the
other; each runs once untimed on a small stream first (imports, thread pools, and an early
correctness check).

**Correctness**: before a sample's searches are timed, its answers to fixed queries (both shapes,
bounds equal to stored timestamps, a type absent from the data, and all rows of the rarest types)
are compared with :func:`lifelab.memory.archive.filter_columns` over every row, column by column
and dtype by dtype; any difference raises :class:`~lifelab.studies.ablation.AblationError`, so no
figure is ever reported for a wrong candidate.

``python -m lifelab.studies.ablate_archive full`` writes ``data/results/ablations/archive_formats
.parquet``; ``quick`` and ``smoke`` write under the system's temporary directory unless given a
folder (``… quick DIR``), so they never replace the committed full-size table.
:func:`report_section` renders the table for ``lifelab report``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import itertools
import json
import math
import mmap
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import filter_columns
from lifelab.studies.ablation import (
    DEFAULT_ROOT,
    AblationError,
    Sample,
    ablation_table,
    interleave,
    write_ablation,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ABLATION",
    "BASELINE",
    "METRICS",
    "QUESTION",
    "TARGET_ROWS",
    "TARGET_ROWS_PER_S",
    "TARGET_SEARCH_P99_MS",
    "TYPE_SHARES",
    "Candidate",
    "DuckDBSegments",
    "IpcSegments",
    "LifelabSegments",
    "MixSegments",
    "ParquetSegments",
    "Query",
    "RawSegments",
    "SQLiteCandidate",
    "SpillStream",
    "archive_formats",
    "candidates",
    "check_candidate",
    "check_queries",
    "default_root",
    "main",
    "reading",
    "report_section",
    "run_all",
    "significance_queries",
    "spill_stream",
    "summary",
    "time_queries",
]

ABLATION = "archive_formats"
QUESTION = (
    "Which durable archive format ingests spilled rows at engine speed (sustained "
    ">= 1 000 000 rows/s, flush included) and still answers a type + time-range search (limit "
    "100, sorted by timestamp) with p99 <= 5 ms at 10 000 000 rows: SQLite with batched inserts "
    "and some index strategy, append-only columnar segments (Parquet, Arrow IPC, raw numpy) "
    "pruned by per-segment min/max statistics, or a mix?"
)
TARGET_ROWS_PER_S = 1_000_000.0
TARGET_SEARCH_P99_MS = 5.0
TARGET_ROWS = 10_000_000

# Metric -> (unit, lower is better).
METRICS: dict[str, tuple[str, bool]] = {
    "ingest_rows_per_s": ("rows/s", False),
    "worst_wait_ms": ("ms", True),
    "search_p50_ms": ("ms", True),
    "search_p99_ms": ("ms", True),
    "sig_search_p50_ms": ("ms", True),
    "sig_search_p99_ms": ("ms", True),
    "bytes_per_row": ("B", True),
}

SQLITE_NONE = "sqlite, no index"
SQLITE_TYPE_TIME = "sqlite, (type, time) index"
BASELINE = SQLITE_THREE = "sqlite, 3 indexes (today)"
SQLITE_AFTER = "sqlite, 3 indexes built after load"
PARQUET_SCAN = "parquet segments, polars scan"
PARQUET_PRUNED = "parquet segments, min/max pruned"
IPC_SCAN = "ipc segments, polars scan"
IPC_PRUNED = "ipc segments, min/max pruned"
RAW = "raw segments, min/max pruned"
RAW_SMALL = "raw segments, quarter-size segments"
RAW_SPILL_ORDER = "raw segments, spill order"
MIX = "mix: raw segments + sqlite index"
DUCKDB = "duckdb over parquet segments"
LIFELAB = "lifelab SegmentArchive"

SEGMENT_ROWS = 262_144  # rows per segment file (the last one, at a flush, may be shorter)
TRANSACTION_ROWS = 65_536  # rows per SQLite transaction
SEARCH_LIMIT = 100
_WARMUP_QUERIES = 10
_MIN_QUERIES = 20
_WARMUP_ROWS = 20_000  # the untimed first run of every variant
_PARQUET_ROW_GROUP = 16_384
_SQLITE_CACHE_KIB = 2 * 1024  # SQLiteArchive's default cache_mb=2

_NAMES = tuple(COLUMNS)
_ROW = np.dtype(list(COLUMNS.items()))
_Columns = dict[str, np.ndarray]

# -- the rows --------------------------------------------------------------------------------------

# Share of archived rows per event type in a seeded 100 000-tick run (seed 1, one event per tick,
# 86 442 rows); ``idle`` events (intensity 0) are never significant enough to be kept.
TYPE_SHARES: dict[str, float] = {
    "decay": 0.4435,
    "recovery": 0.2855,
    "shock": 0.0680,
    "social_harmony": 0.0190,
    "social_conflict": 0.0176,
    "connection": 0.0163,
    "meaning_found": 0.0160,
    "insight": 0.0148,
    "existential_purpose": 0.0138,
    "cognitive_clarity": 0.0129,
    "existential_void": 0.0127,
    "existential_finitude": 0.0126,
    "isolation": 0.0126,
    "void": 0.0118,
    "cognitive_doubt": 0.0106,
    "social_presence": 0.0095,
    "acceptance": 0.0085,
    "confusion": 0.0061,
    "cognitive_confusion": 0.0052,
    "curiosity": 0.0016,
    "noise": 0.0009,
    "memory_echo": 0.0005,
}
_ENTRIES_PER_TICK = 0.87
_FEEDBACK_SHARE = 0.42
_LIFE_SHORT_MEAN = 25.0  # entries
_LIFE_LONG_SHARE = 0.09
_LIFE_LONG = (100.0, 1_400.0)
_SMALL_BATCH = (1, 64)
_BIG_BATCH = (4_096, 65_536)


@dataclass(frozen=True, slots=True)
class SpillStream:
    """Rows in spill order (``columns``) and the batches they arrive in (views of them).

    ``by_type``: each present event type's timestamps, sorted (what the queries are made from).
    """

    columns: _Columns
    batches: list[_Columns]
    type_names: tuple[str, ...]
    by_type: dict[int, np.ndarray]

    @property
    def rows(self) -> int:
        return len(self.columns["id"])


def spill_stream(n: int, *, seed: int = 0, small_rows_share: float = 0.5) -> SpillStream:
    """``n`` spilled rows shaped like a real run's archive, in batches (see the module doc).

    ``small_rows_share`` of the rows come in batches of 1 to 64, the rest in batches of 4 096 to
    65 536 (log-uniform). Deterministic in ``(n, seed)``.
    """
    from lifelab.life.events import builtin_types

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AblationError(f"{ABLATION}: rows must be an int >= 1, got {n!r}")
    if not 0.0 <= small_rows_share <= 1.0:
        raise AblationError(f"small_rows_share must be in [0, 1], got {small_rows_share!r}")
    rng = np.random.default_rng([seed, n])
    names = tuple(t.name for t in builtin_types())
    shares = np.array([TYPE_SHARES.get(name, 0.0) for name in names])
    shares /= shares.sum()

    per_tick = rng.poisson(_ENTRIES_PER_TICK, int(n / _ENTRIES_PER_TICK * 1.2) + 64)
    while per_tick.sum() < n:
        per_tick = np.concatenate([per_tick, rng.poisson(_ENTRIES_PER_TICK, n + 64)])
    born_tick = np.repeat(np.arange(per_tick.size, dtype=np.int64), per_tick)[:n]
    lifetime = np.where(
        rng.random(n) < _LIFE_LONG_SHARE,
        rng.uniform(*_LIFE_LONG, n),
        rng.exponential(_LIFE_SHORT_MEAN, n),
    )
    order = np.argsort(np.arange(n) + lifetime, kind="stable")  # spill order of entry ids
    tick = born_tick[order]
    feedback = rng.random(n) < _FEEDBACK_SHARE
    timestamp = tick.astype(np.float64)  # simulated seconds, dt = 1
    cols = {
        "id": order.astype(np.int64),
        "event_type": rng.choice(len(names), n, p=shares),
        "kind": feedback,
        "action": np.where(feedback, 0, rng.integers(1, 4, n)),
        "significance": np.minimum(rng.gamma(2.0, 0.18, n), 1.0),
        "weight": rng.uniform(0.05, 0.1, n),
        "timestamp": timestamp,
        "subjective_timestamp": timestamp * rng.uniform(0.95, 1.15),
        "tick": tick,
        "feedback_energy": np.where(feedback, rng.normal(0.0, 0.5, n), 0.0),
        "feedback_stability": np.where(feedback, rng.normal(0.0, 0.02, n), 0.0),
        "feedback_integrity": np.where(feedback, rng.normal(0.0, 0.01, n), 0.0),
    }
    columns = {name: np.ascontiguousarray(cols[name], dtype=COLUMNS[name]) for name in _NAMES}

    small_mean = sum(_SMALL_BATCH) / 2
    big_mean = (_BIG_BATCH[1] - _BIG_BATCH[0]) / math.log(_BIG_BATCH[1] / _BIG_BATCH[0])
    s = small_rows_share
    p_small = 1.0 if s == 1.0 else s * big_mean / (s * big_mean + (1 - s) * small_mean)
    sizes: list[int] = []
    total = 0
    while total < n:
        k = max(64, int((n - total) / small_mean) + 16)
        small = rng.random(k) < p_small
        drawn = np.where(
            small,
            rng.integers(_SMALL_BATCH[0], _SMALL_BATCH[1] + 1, k),
            np.exp(rng.uniform(*np.log(_BIG_BATCH), k)).astype(np.int64),
        )
        for size in drawn.tolist():
            sizes.append(min(size, n - total))
            total += sizes[-1]
            if total >= n:
                break
    bounds = np.concatenate(([0], np.cumsum(sizes))).tolist()
    batches = [
        {name: col[a:b] for name, col in columns.items()} for a, b in itertools.pairwise(bounds)
    ]
    et, ts = columns["event_type"], columns["timestamp"]
    order = np.lexsort((ts, et))
    types, starts = np.unique(et[order], return_index=True)
    ends = [*starts[1:].tolist(), n]
    by_type = {
        int(t): ts[order[a:b]]
        for t, a, b in zip(types.tolist(), starts.tolist(), ends, strict=True)
    }
    return SpillStream(columns, batches, names, by_type)


# -- queries ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """One search: an event type, optional inclusive time bounds, a sort and a limit."""

    event_type: int
    since: float | None = None
    until: float | None = None
    limit: int | None = SEARCH_LIMIT
    sort: str = "timestamp"
    descending: bool = False

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~lifelab.memory.archive.filter_columns`."""
        return {
            "event_type": self.event_type,
            "since": self.since,
            "until": self.until,
            "limit": self.limit,
            "sort": self.sort,
            "descending": self.descending,
        }


def time_queries(
    stream: SpillStream, k: int, rng: np.random.Generator, *, exact: bool = False
) -> list[Query]:
    """``k`` type + time-range queries, limit 100: a type uniform over the types present and a
    window holding 100 to 500 of its rows (all of them when it has fewer). ``exact``: the
    bounds are stored timestamps (inclusive bounds matter), else up to half a second wider."""
    stamps = stream.by_type
    types = sorted(stamps)
    out = []
    for _ in range(k):
        t = types[int(rng.integers(len(types)))]
        ts = stamps[t]
        m = min(len(ts), int(rng.integers(100, 501)))
        i = int(rng.integers(0, len(ts) - m + 1))
        pad = (0.0, 0.0) if exact else tuple(rng.uniform(0.0, 0.5, 2).tolist())
        out.append(Query(t, float(ts[i]) - pad[0], float(ts[i + m - 1]) + pad[1]))
    return out


def significance_queries(stream: SpillStream, k: int, rng: np.random.Generator) -> list[Query]:
    """``k`` queries by type only, the 100 most significant first (types uniform as above)."""
    types = sorted(stream.by_type)
    return [
        Query(types[int(rng.integers(len(types)))], sort="significance", descending=True)
        for _ in range(k)
    ]


def check_queries(stream: SpillStream, seed: int = 0) -> list[Query]:
    """The fixed queries every candidate must answer exactly like ``filter_columns``.

    Both shapes with random and exact bounds, a type absent from the data, a window before every
    row, and every row of the two rarest types (no limit).
    """
    rng = np.random.default_rng([seed, stream.rows, 7])
    stamps = stream.by_type
    rare = sorted(stamps, key=lambda t: (len(stamps[t]), t))[:2]
    absent = [t for t in range(len(stream.type_names)) if t not in stamps]
    t0 = float(stream.columns["timestamp"].min())
    out = [
        *time_queries(stream, 4, rng),
        *time_queries(stream, 4, rng, exact=True),
        *significance_queries(stream, 3, rng),
        Query(rare[0], t0 - 10.0, t0 - 1.0),
        Query(rare[-1], sort="significance", descending=False, limit=7),
        *(Query(t, limit=None) for t in rare),
    ]
    if absent:
        out.append(Query(absent[0], t0, t0 + 1e9))
    return out


# -- the candidates --------------------------------------------------------------------------------


class Candidate(Protocol):
    """What every archive candidate offers the study.

    ``flush`` is durable: once it returns, every row appended before survives a kill -9.
    ``search`` covers the flushed rows and returns :func:`filter_columns`'s answer: every
    column of :data:`COLUMNS`, sorted by ``sort`` (then id), inclusive bounds, ``limit`` rows.
    """

    def open(self, directory: Path, type_names: Sequence[str]) -> None: ...

    def append(self, columns: Mapping[str, np.ndarray]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def search(
        self,
        event_type: int,
        since: float | None,
        until: float | None,
        limit: int | None,
        *,
        sort: str = "timestamp",
        descending: bool = False,
    ) -> _Columns: ...


def _empty() -> _Columns:
    return {name: np.empty(0, dtype) for name, dtype in COLUMNS.items()}


def _concat(parts: Sequence[Mapping[str, np.ndarray]]) -> _Columns:
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p[name] for p in parts]) for name in _NAMES}


def _top(cols: Mapping[str, np.ndarray], q: Query) -> _Columns:
    """Sort by (q.sort, id) as filter_columns does and keep ``q.limit`` rows."""
    key = cols[q.sort]
    order = np.lexsort((cols["id"], -key if q.descending else key))
    if q.limit is not None:
        order = order[: q.limit]
    return {name: cols[name][order] for name in _NAMES}


def _check_query(q: Query) -> None:
    if q.sort not in ("timestamp", "significance"):
        raise ValueError(f"sort must be 'timestamp' or 'significance', got {q.sort!r}")
    if q.limit is not None and q.limit < 0:
        raise ValueError(f"limit must be >= 0, got {q.limit}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


# SQLite -------------------------------------------------------------------------------------------

# Float columns without a declared type, as in SQLiteArchive: stored as 8-byte doubles, bit-exact.
_SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, event_type INTEGER NOT NULL, kind INTEGER NOT NULL,
    action INTEGER NOT NULL, significance NOT NULL, weight NOT NULL, timestamp NOT NULL,
    subjective_timestamp NOT NULL, tick INTEGER NOT NULL, feedback_energy NOT NULL,
    feedback_stability NOT NULL, feedback_integrity NOT NULL)"""
SQLITE_INDEXES: dict[str, tuple[str, ...]] = {
    "none": (),
    "type_time": (
        "CREATE INDEX IF NOT EXISTS entries_type_time ON entries (event_type, timestamp)",
    ),
    "three": (
        "CREATE INDEX IF NOT EXISTS entries_type_time ON entries (event_type, timestamp)",
        "CREATE INDEX IF NOT EXISTS entries_time ON entries (timestamp)",
        "CREATE INDEX IF NOT EXISTS entries_sig ON entries (significance)",
    ),
}
_INSERT = f"INSERT INTO entries ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))})"


class SQLiteCandidate:
    """One SQLite file: batched ``executemany`` from the column arrays in fixed-size transactions.

    Appended batches wait in a list until ``transaction_rows`` rows are there; each full group
    is one transaction (``BEGIN``, ``executemany`` over ``zip`` of the columns' ``.tolist()``,
    ``COMMIT``); ``flush`` commits the rest. WAL with ``synchronous=NORMAL``: a commit reaches the
    WAL file before ``COMMIT`` returns, so it survives a kill -9 (not necessarily a power cut).
    ``after_load``: the indexes are created by the first ``flush`` instead of ``open``.
    """

    def __init__(
        self,
        indexes: str,
        *,
        after_load: bool = False,
        transaction_rows: int = TRANSACTION_ROWS,
    ) -> None:
        if indexes not in SQLITE_INDEXES:
            raise ValueError(f"indexes must be one of {sorted(SQLITE_INDEXES)}, got {indexes!r}")
        self.indexes = indexes
        self.after_load = after_load
        self.transaction_rows = transaction_rows
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Mapping[str, np.ndarray]] = []
        self._pending_rows = 0

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(directory / "archive.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = {-_SQLITE_CACHE_KIB}")
        conn.execute(_SQLITE_TABLE)
        self._conn = conn
        self._indexed = False
        if not self.after_load:
            self._create_indexes()

    def _create_indexes(self) -> None:
        assert self._conn is not None
        for sql in SQLITE_INDEXES[self.indexes]:
            self._conn.execute(sql)
        self._indexed = True

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        self._pending.append(columns)
        self._pending_rows += len(columns["id"])
        if self._pending_rows >= self.transaction_rows:
            self._commit(everything=False)

    def flush(self) -> None:
        if self._pending_rows:
            self._commit(everything=True)
        if not self._indexed:
            self._create_indexes()

    def _commit(self, *, everything: bool) -> None:
        conn = self._conn
        assert conn is not None
        cols = _concat(self._pending)
        n = self._pending_rows
        step = self.transaction_rows
        stop = n if everything else n - n % step
        for a in range(0, stop, step):
            b = min(a + step, stop)
            rows = zip(*(cols[name][a:b].tolist() for name in _NAMES), strict=True)
            conn.execute("BEGIN")
            try:
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._pending = [{name: col[stop:] for name, col in cols.items()}] if stop < n else []
        self._pending_rows = n - stop

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def search(
        self,
        event_type: int,
        since: float | None,
        until: float | None,
        limit: int | None,
        *,
        sort: str = "timestamp",
        descending: bool = False,
    ) -> _Columns:
        q = Query(event_type, since, until, limit, sort, descending)
        _check_query(q)
        assert self._conn is not None
        where, params = ["event_type = ?"], [event_type]
        if since is not None:
            where.append("timestamp >= ?")
            params.append(since)
        if until is not None:
            where.append("timestamp <= ?")
            params.append(until)
        sql = (
            f"SELECT {', '.join(_NAMES)} FROM entries WHERE {' AND '.join(where)} "
            f"ORDER BY {sort} {'DESC' if descending else 'ASC'}, id ASC LIMIT ?"
        )
        rows = self._conn.execute(sql, [*params, -1 if limit is None else limit]).fetchall()
        table = np.array(rows, dtype=_ROW)
        return {name: np.ascontiguousarray(table[name]) for name in _NAMES}


# Segments -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stats:
    """One segment's statistics per event type (dense over the type table)."""

    rows: int
    count: np.ndarray  # int64 [types]
    min_ts: np.ndarray  # float64 [types], +inf where count is 0
    max_ts: np.ndarray  # -inf where count is 0
    max_sig: np.ndarray  # -inf where count is 0
    starts: np.ndarray  # int64 [types + 1]: where each type's rows start, when sorted


def _stats(
    et: np.ndarray, ts: np.ndarray, sig: np.ndarray, n_types: int, *, is_sorted: bool
) -> _Stats:
    """:class:`_Stats` of one segment's columns (sorted by type first when ``is_sorted``)."""
    if et.size and int(et.max()) >= n_types:
        raise ValueError(f"event_type {int(et.max())} is not in the type table ({n_types} types)")
    perm = slice(None) if is_sorted else np.argsort(et, kind="stable")
    et_s, ts_s, sig_s = et[perm], ts[perm], sig[perm]
    types, starts, counts = np.unique(et_s, return_index=True, return_counts=True)
    count = np.zeros(n_types, np.int64)
    min_ts = np.full(n_types, np.inf)
    max_ts = np.full(n_types, -np.inf)
    max_sig = np.full(n_types, -np.inf)
    if types.size:
        count[types] = counts
        min_ts[types] = np.minimum.reduceat(ts_s, starts)
        max_ts[types] = np.maximum.reduceat(ts_s, starts)
        max_sig[types] = np.maximum.reduceat(sig_s, starts)
    edges = np.searchsorted(et_s, np.arange(n_types + 1)) if is_sorted else np.zeros(0, np.int64)
    return _Stats(int(et.size), count, min_ts, max_ts, max_sig, edges.astype(np.int64))


def _merge(
    q: Query,
    segments: Sequence[int],
    bounds: Sequence[float] | None,
    read: Callable[[int, Query], _Columns],
) -> _Columns:
    """Read candidate segments in order and keep the best ``q.limit`` rows.

    ``bounds[j]`` bounds every key of segment ``segments[j]`` from the side the sort starts at
    (its type's min timestamp when ascending by time, max significance when descending), in
    sort order: once the limit-th best row so far is strictly better than the next bound, no
    later segment can contribute (equal keys could, through a smaller id), and reading stops.
    ``read`` returns any superset of the segment's best ``q.limit`` matching rows.
    """
    if q.limit == 0:
        return _empty()
    parts: list[_Columns] = []
    rows = 0
    kth = None
    for j, seg in enumerate(segments):
        if bounds is not None and q.limit is not None and rows >= q.limit:
            if len(parts) > 1:
                parts = [_top(_concat(parts), q)]
                rows = q.limit
            kth = parts[0][q.sort][q.limit - 1]
            if (kth > bounds[j]) if q.descending else (kth < bounds[j]):
                break
        part = read(seg, q)
        if not len(part["id"]):
            continue
        if kth is not None:  # a part none of whose rows beats the limit-th best is left out
            key = part[q.sort]
            if (key.max() < kth) if q.descending else (key.min() > kth):
                continue
        parts.append(part)
        rows += len(part["id"])
    return _top(_concat(parts), q) if parts else _empty()


class _Segments:
    """Append-only segment files with per-segment statistics; a format is a subclass.

    Appended batches wait in a list (references: a spill hands over its own copies); every
    ``segment_rows`` rows become one segment file, written atomically (temporary file, fsync,
    ``os.replace``, fsync of the directory); ``flush`` writes what waits as a shorter segment.
    ``pruned``: search reads only the segments whose statistics admit the query, in the order
    of their bounds, stopping early (:func:`_merge`); otherwise the subclass's ``_scan``.
    """

    suffix = ".seg"

    def __init__(self, segment_rows: int, *, sort_rows: bool = True, pruned: bool = True) -> None:
        if isinstance(segment_rows, bool) or not isinstance(segment_rows, int) or segment_rows < 1:
            raise ValueError(f"segment_rows must be an int >= 1, got {segment_rows!r}")
        self.segment_rows = segment_rows
        self.sort_rows = sort_rows
        self.pruned = pruned
        self._dir_fd: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.n_types = len(type_names)
        self._dir_fd = os.open(directory, os.O_RDONLY)
        self._paths: list[Path] = []
        self._all: list[_Stats] = []
        self._stack: tuple[np.ndarray, ...] = ()
        self._pending: list[Mapping[str, np.ndarray]] = []
        self._pending_rows = 0
        self._next = 0
        for path in sorted(directory.glob(f"seg-*{self.suffix}")):
            self._next = int(path.name[4:12]) + 1
            self._add(path, self._load_stats(path))

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        self._pending.append(columns)
        self._pending_rows += len(columns["id"])
        if self._pending_rows >= self.segment_rows:
            self._cut(everything=False)

    def flush(self) -> None:
        if self._pending_rows:
            self._cut(everything=True)

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def _cut(self, *, everything: bool) -> None:
        cols = _concat(self._pending)
        n = self._pending_rows
        step = self.segment_rows
        stop = n if everything else n - n % step
        for a in range(0, stop, step):
            self._write({name: col[a : a + step] for name, col in cols.items()})
        self._pending = [{name: col[stop:] for name, col in cols.items()}] if stop < n else []
        self._pending_rows = n - stop

    def _write(self, cols: _Columns) -> None:
        if self.sort_rows:
            perm = np.lexsort((cols["id"], cols["timestamp"], cols["event_type"]))
            cols = {name: col[perm] for name, col in cols.items()}
        stats = _stats(
            cols["event_type"],
            cols["timestamp"],
            cols["significance"],
            self.n_types,
            is_sorted=self.sort_rows,
        )
        name = f"seg-{self._next:08d}{self.suffix}"
        path = self.directory / name
        tmp = self.directory / f".{name}.tmp"
        self._write_file(tmp, cols, stats)
        _fsync_path(tmp)
        os.replace(tmp, path)
        assert self._dir_fd is not None
        os.fsync(self._dir_fd)
        self._next += 1
        self._add(path, stats)

    def _add(self, path: Path, stats: _Stats) -> None:
        self._paths.append(path)
        self._all.append(stats)
        self._stack = tuple(
            np.stack([getattr(s, f) for s in self._all])
            for f in ("count", "min_ts", "max_ts", "max_sig")
        )

    # -- search ---------------------------------------------------------------------------------

    def search(
        self,
        event_type: int,
        since: float | None,
        until: float | None,
        limit: int | None,
        *,
        sort: str = "timestamp",
        descending: bool = False,
    ) -> _Columns:
        q = Query(event_type, since, until, limit, sort, descending)
        _check_query(q)
        if not self._paths or not 0 <= event_type < self.n_types:
            return _empty()
        if not self.pruned:
            return self._scan(q)
        segments, bounds = self._candidates(q)
        return _merge(q, segments, bounds, self._read)

    def _candidates(self, q: Query) -> tuple[list[int], list[float] | None]:
        """Segments that may hold matches, ordered by their bound (see :func:`_merge`)."""
        count, min_ts, max_ts, max_sig = self._stack
        t = q.event_type
        ok = count[:, t] > 0
        if q.since is not None:
            ok &= max_ts[:, t] >= q.since
        if q.until is not None:
            ok &= min_ts[:, t] <= q.until
        segs = np.flatnonzero(ok)
        if q.sort == "timestamp" and not q.descending:
            key = min_ts[segs, t]
        elif q.sort == "significance" and q.descending:
            key = -max_sig[segs, t]
        else:
            return segs.tolist(), None
        order = np.argsort(key, kind="stable")
        bounds = -key[order] if q.descending else key[order]
        return segs[order].tolist(), bounds.tolist()

    # -- what a format provides -----------------------------------------------------------------

    def _write_file(self, path: Path, cols: _Columns, stats: _Stats) -> None:
        raise NotImplementedError

    def _load_stats(self, path: Path) -> _Stats:
        raise NotImplementedError

    def _read(self, segment: int, q: Query) -> _Columns:
        raise NotImplementedError

    def _scan(self, q: Query) -> _Columns:
        return _merge(q, range(len(self._paths)), None, self._read)


def _polars_filter(lf: pl.LazyFrame, q: Query) -> _Columns:
    """``q`` as a polars lazy query over ``lf``; its result as numpy columns."""
    import polars as pl

    pred = pl.col("event_type") == q.event_type
    if q.since is not None:
        pred &= pl.col("timestamp") >= q.since
    if q.until is not None:
        pred &= pl.col("timestamp") <= q.until
    lf = lf.filter(pred).sort([q.sort, "id"], descending=[q.descending, False])
    if q.limit is not None:
        lf = lf.head(q.limit)
    df = lf.collect()
    return {name: df.get_column(name).to_numpy() for name in _NAMES}


class _PolarsSegments(_Segments):
    """Segments written and searched by polars (Parquet or Arrow IPC)."""

    def _frame(self, cols: _Columns) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame(cols)

    def _load_stats(self, path: Path) -> _Stats:
        names = ["event_type", "timestamp", "significance"]
        df = self._read_frame(path, names)
        et, ts, sig = (df.get_column(c).to_numpy() for c in names)
        return _stats(et, ts, sig, self.n_types, is_sorted=self.sort_rows)

    def _read(self, segment: int, q: Query) -> _Columns:
        return _polars_filter(self._lazy([self._paths[segment]]), q)

    def _scan(self, q: Query) -> _Columns:
        return _polars_filter(self._lazy(self._paths), q)

    def _lazy(self, paths: Sequence[Path]) -> pl.LazyFrame:
        raise NotImplementedError

    def _read_frame(self, path: Path, columns: list[str]) -> pl.DataFrame:
        raise NotImplementedError


class ParquetSegments(_PolarsSegments):
    """Parquet segment files (polars, zstd, statistics, 16 384-row groups)."""

    suffix = ".parquet"

    def _write_file(self, path: Path, cols: _Columns, stats: _Stats) -> None:
        self._frame(cols).write_parquet(
            path, compression="zstd", statistics=True, row_group_size=_PARQUET_ROW_GROUP
        )

    def _lazy(self, paths: Sequence[Path]) -> pl.LazyFrame:
        import polars as pl

        return pl.scan_parquet([str(p) for p in paths])

    def _read_frame(self, path: Path, columns: list[str]) -> pl.DataFrame:
        import polars as pl

        return pl.read_parquet(path, columns=columns)


class IpcSegments(_PolarsSegments):
    """Arrow IPC segment files (polars, uncompressed)."""

    suffix = ".arrow"

    def _write_file(self, path: Path, cols: _Columns, stats: _Stats) -> None:
        self._frame(cols).write_ipc(path, compression="uncompressed")

    def _lazy(self, paths: Sequence[Path]) -> pl.LazyFrame:
        import polars as pl

        return pl.scan_ipc([str(p) for p in paths])

    def _read_frame(self, path: Path, columns: list[str]) -> pl.DataFrame:
        import polars as pl

        return pl.read_ipc(path, columns=columns)


class DuckDBSegments(ParquetSegments):
    """The Parquet segments, searched by DuckDB over every segment file (its own pruning)."""

    def __init__(self, segment_rows: int) -> None:
        super().__init__(segment_rows, pruned=False)
        self._con: Any = None

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        import duckdb

        super().open(directory, type_names)
        self._con = duckdb.connect()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        super().close()

    def _scan(self, q: Query) -> _Columns:
        where, params = (
            ["event_type = $t"],
            {"t": q.event_type, "files": list(map(str, self._paths))},
        )
        if q.since is not None:
            where.append("timestamp >= $since")
            params["since"] = q.since
        if q.until is not None:
            where.append("timestamp <= $until")
            params["until"] = q.until
        sql = (
            f"SELECT {', '.join(_NAMES)} FROM read_parquet($files) WHERE {' AND '.join(where)} "
            f"ORDER BY {q.sort} {'DESC' if q.descending else 'ASC'}, id ASC"
        )
        if q.limit is not None:
            sql += " LIMIT $limit"
            params["limit"] = q.limit
        found = self._con.execute(sql, params).fetchnumpy()
        return {name: np.asarray(found[name], dtype=COLUMNS[name]) for name in _NAMES}


# Raw segment file, version 1: b"LLRAWSEG", u32 version, u32 header length, the JSON header, then
# each column's bytes (native little-endian numpy) at a 64-byte aligned offset.
_RAW_MAGIC = b"LLRAWSEG"
_RAW_VERSION = 1
_RAW_PREFIX = struct.Struct("<8sII")
_ALIGN = 64


def _aligned(x: int) -> int:
    return -(-x // _ALIGN) * _ALIGN


class RawSegments(_Segments):
    """Raw columnar segments: each column's bytes, memory-mapped and searched with numpy.

    The header holds the row count, each column's dtype and offset, and per present type its
    count, min/max timestamp, max significance and (sorted rows) where its rows start. When
    rows are sorted by (type, timestamp, id), a type + time search is two binary searches in
    one contiguous slice per segment; in spill order it is a masked scan of the segment.
    """

    suffix = ".raw"

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        self._maps: dict[int, _Columns] = {}
        super().open(directory, type_names)

    def close(self) -> None:
        self._maps.clear()  # the mmaps close when their last view is gone
        super().close()

    def _write_file(self, path: Path, cols: _Columns, stats: _Stats) -> None:
        present = np.flatnonzero(stats.count).tolist()
        layout, pos = [], 0
        for name in _NAMES:
            pos = _aligned(pos)
            layout.append([name, COLUMNS[name].str, pos])
            pos += cols[name].nbytes
        header = json.dumps(
            {
                "rows": stats.rows,
                "sorted": self.sort_rows,
                "columns": layout,
                "types": [
                    [
                        t,
                        int(stats.count[t]),
                        float(stats.min_ts[t]),
                        float(stats.max_ts[t]),
                        float(stats.max_sig[t]),
                        int(stats.starts[t]) if self.sort_rows else -1,
                    ]
                    for t in present
                ],
            }
        ).encode()
        start = _aligned(_RAW_PREFIX.size + len(header))
        with open(path, "wb") as f:
            f.write(_RAW_PREFIX.pack(_RAW_MAGIC, _RAW_VERSION, len(header)))
            f.write(header)
            at = _RAW_PREFIX.size + len(header)
            for name, _, off in layout:
                f.write(b"\0" * (start + off - at))
                col = np.ascontiguousarray(cols[name])
                f.write(col.data)
                at = start + off + col.nbytes

    @staticmethod
    def _header(buf: Any) -> tuple[dict[str, Any], int]:
        magic, version, length = _RAW_PREFIX.unpack_from(buf, 0)
        if magic != _RAW_MAGIC or version != _RAW_VERSION:
            raise ValueError(f"not a raw segment of version {_RAW_VERSION}: {magic!r} v{version}")
        header = json.loads(bytes(buf[_RAW_PREFIX.size : _RAW_PREFIX.size + length]))
        return header, _aligned(_RAW_PREFIX.size + length)

    def _load_stats(self, path: Path) -> _Stats:
        with open(path, "rb") as f:
            head = f.read(_RAW_PREFIX.size)
            length = _RAW_PREFIX.unpack(head)[2]
            header, _ = self._header(head + f.read(length))
        n = self.n_types
        count = np.zeros(n, np.int64)
        min_ts, max_ts, max_sig = np.full(n, np.inf), np.full(n, -np.inf), np.full(n, -np.inf)
        starts = np.zeros(n + 1, np.int64)
        rows = np.array(header["types"], dtype=np.float64).reshape(-1, 6)
        t = rows[:, 0].astype(np.int64)
        count[t] = rows[:, 1].astype(np.int64)
        min_ts[t], max_ts[t], max_sig[t] = rows[:, 2], rows[:, 3], rows[:, 4]
        if header["sorted"]:
            # starts of absent types: the next present type's start (searchsorted semantics)
            first = np.full(n + 1, header["rows"], np.int64)
            first[t] = rows[:, 5].astype(np.int64)
            starts = np.minimum.accumulate(first[::-1])[::-1]
        return _Stats(header["rows"], count, min_ts, max_ts, max_sig, starts)

    def _columns(self, segment: int) -> _Columns:
        cols = self._maps.get(segment)
        if cols is None:
            with open(self._paths[segment], "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            header, start = self._header(mm)
            cols = {
                name: np.frombuffer(mm, np.dtype(dtype), header["rows"], start + off)
                for name, dtype, off in header["columns"]
            }
            self._maps[segment] = cols
        return cols

    def _read(self, segment: int, q: Query) -> _Columns:
        cols = self._columns(segment)
        stats = self._all[segment]
        t = q.event_type
        if self.sort_rows:
            lo, hi = int(stats.starts[t]), int(stats.starts[t + 1])
            ts = cols["timestamp"][lo:hi]
            a = lo + (0 if q.since is None else int(np.searchsorted(ts, q.since, "left")))
            b = lo + (len(ts) if q.until is None else int(np.searchsorted(ts, q.until, "right")))
            if q.sort == "timestamp" and not q.descending and q.limit is not None:
                b = min(b, a + q.limit)  # already in (timestamp, id) order
                return {name: np.array(col[a:b]) for name, col in cols.items()}
            idx = np.arange(a, b)
        else:
            mask = cols["event_type"] == t
            if q.since is not None:
                mask &= cols["timestamp"] >= q.since
            if q.until is not None:
                mask &= cols["timestamp"] <= q.until
            idx = np.flatnonzero(mask)
        if q.limit is not None and idx.size > q.limit:
            # the rows up to the limit-th best key (ties included) first: a partition is O(n)
            key = -cols[q.sort][idx] if q.descending else cols[q.sort][idx]
            keep = np.flatnonzero(key <= np.partition(key, q.limit - 1)[q.limit - 1])
            idx = idx[keep[np.lexsort((cols["id"][idx[keep]], key[keep]))[: q.limit]]]
        return {name: col[idx] for name, col in cols.items()}


class MixSegments(RawSegments):
    """Raw segments for the rows; a SQLite table of per-segment statistics as the index.

    A segment's rows are inserted into ``index.sqlite`` (WAL) after its file is durable; on
    ``open`` segment files missing from the index (a crash in between) are added.
    """

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(directory / "index.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS segments (event_type INTEGER, segment INTEGER, "
            "min_ts REAL, max_ts REAL, max_sig REAL, rows INTEGER, "
            "PRIMARY KEY (event_type, segment)) WITHOUT ROWID"
        )
        self._index = conn
        self._indexed: set[int] = {
            r[0] for r in conn.execute("SELECT DISTINCT segment FROM segments")
        }
        super().open(directory, type_names)

    def close(self) -> None:
        self._index.close()
        super().close()

    def _add(self, path: Path, stats: _Stats) -> None:
        super()._add(path, stats)
        segment = len(self._paths) - 1
        if segment in self._indexed:
            return
        present = np.flatnonzero(stats.count)
        rows = zip(
            present.tolist(),
            [segment] * present.size,
            stats.min_ts[present].tolist(),
            stats.max_ts[present].tolist(),
            stats.max_sig[present].tolist(),
            stats.count[present].tolist(),
            strict=True,
        )
        self._index.execute("BEGIN")
        self._index.executemany("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._index.execute("COMMIT")
        self._indexed.add(segment)

    def _candidates(self, q: Query) -> tuple[list[int], list[float] | None]:
        where, params = ["event_type = ?"], [q.event_type]
        if q.since is not None:
            where.append("max_ts >= ?")
            params.append(q.since)
        if q.until is not None:
            where.append("min_ts <= ?")
            params.append(q.until)
        if q.sort == "timestamp" and not q.descending:
            by = "min_ts"
        elif q.sort == "significance" and q.descending:
            by = "max_sig"
        else:
            by = None
        order = f" ORDER BY {by} {'DESC' if q.descending else 'ASC'}, segment" if by else ""
        rows = self._index.execute(
            f"SELECT segment, {by or 0} FROM segments WHERE {' AND '.join(where)}{order}", params
        ).fetchall()
        return [r[0] for r in rows], ([r[1] for r in rows] if by else None)


class LifelabSegments:
    """:class:`lifelab.memory.segment_archive.SegmentArchive` behind the study's interface."""

    def __init__(self) -> None:
        self._archive: Any = None

    def open(self, directory: Path, type_names: Sequence[str]) -> None:
        from lifelab.memory.segment_archive import SegmentArchive

        self._archive = SegmentArchive(directory, type_names=tuple(type_names))

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        self._archive.append(columns)

    def flush(self) -> None:
        self._archive.flush()

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def search(
        self,
        event_type: int,
        since: float | None,
        until: float | None,
        limit: int | None,
        *,
        sort: str = "timestamp",
        descending: bool = False,
    ) -> _Columns:
        extra = {"descending": True} if descending else {}
        return self._archive.search(
            event_type=event_type, since=since, until=until, limit=limit, sort=sort, **extra
        )


def _importable(module: str) -> str | None:
    """None when ``module`` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # a half-written module (SyntaxError…) is as absent as a missing one
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def candidates(
    segment_rows: int = SEGMENT_ROWS,
    *,
    transaction_rows: int = TRANSACTION_ROWS,
) -> tuple[dict[str, Callable[[], Candidate]], dict[str, str]]:
    """Every variant's factory (a fresh, unopened candidate per call), and the ones left out.

    Returns ``(factories, skipped)``: ``skipped`` maps a variant that cannot run here (DuckDB not
    installed, lifelab's SegmentArchive not importable) to the reason.
    """
    s, t = segment_rows, transaction_rows
    small = max(1, s // 4)
    out: dict[str, Callable[[], Candidate]] = {
        SQLITE_NONE: lambda: SQLiteCandidate("none", transaction_rows=t),
        SQLITE_TYPE_TIME: lambda: SQLiteCandidate("type_time", transaction_rows=t),
        SQLITE_THREE: lambda: SQLiteCandidate("three", transaction_rows=t),
        SQLITE_AFTER: lambda: SQLiteCandidate("three", after_load=True, transaction_rows=t),
        PARQUET_SCAN: lambda: ParquetSegments(s, pruned=False),
        PARQUET_PRUNED: lambda: ParquetSegments(s),
        IPC_SCAN: lambda: IpcSegments(s, pruned=False),
        IPC_PRUNED: lambda: IpcSegments(s),
        RAW: lambda: RawSegments(s),
        RAW_SMALL: lambda: RawSegments(small),
        RAW_SPILL_ORDER: lambda: RawSegments(s, sort_rows=False),
        MIX: lambda: MixSegments(s),
        DUCKDB: lambda: DuckDBSegments(s),
        LIFELAB: LifelabSegments,
    }
    skipped = {}
    for name, module in ((DUCKDB, "duckdb"), (LIFELAB, "lifelab.memory.segment_archive")):
        why = _importable(module)
        if why is not None:
            skipped[name] = why
            del out[name]
    return out, skipped


# -- measuring -------------------------------------------------------------------------------------


def _search(candidate: Candidate, q: Query) -> _Columns:
    return candidate.search(
        q.event_type, q.since, q.until, q.limit, sort=q.sort, descending=q.descending
    )


def check_candidate(
    name: str,
    candidate: Candidate,
    queries: Sequence[Query],
    expected: Sequence[Mapping[str, np.ndarray]],
) -> None:
    """Raise :class:`AblationError` unless ``candidate`` answers every query like ``expected``.

    Every column of :data:`COLUMNS`, with its dtype, element for element (``expected``: what
    :func:`filter_columns` returns over every row).
    """
    for q, want in zip(queries, expected, strict=True):
        try:
            got = _search(candidate, q)
        except Exception as exc:
            raise AblationError(f"{ABLATION}: {name}: search {q} failed: {exc!r}") from exc
        if set(got) != set(want):
            raise AblationError(
                f"{ABLATION}: {name}: search {q} returns columns {sorted(got)}, not {sorted(want)}"
            )
        for column, values in want.items():
            have = np.asarray(got[column])
            if have.dtype != values.dtype or not np.array_equal(have, values):
                raise AblationError(
                    f"{ABLATION}: {name}: search {q} differs from filter_columns in {column!r} "
                    f"({have.dtype}, {have.size} rows vs {values.dtype}, {values.size} rows; "
                    f"ids {np.asarray(got['id'])[:5].tolist()} vs {want['id'][:5].tolist()})"
                )


def _percentiles(
    candidate: Candidate, queries: Sequence[Query], budget_s: float
) -> tuple[float, float]:
    """p50 and p99 (ms) of the queries after the first few (untimed), within ``budget_s``."""
    clock = time.perf_counter_ns
    for q in queries[:_WARMUP_QUERIES]:
        _search(candidate, q)
    samples = []
    deadline = clock() + budget_s * 1e9
    for q in queries[_WARMUP_QUERIES:]:
        t0 = clock()
        _search(candidate, q)
        t1 = clock()
        samples.append(t1 - t0)
        if t1 > deadline and len(samples) >= _MIN_QUERIES:
            break
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class _Bench:
    """One stream of ``n`` rows, its check queries and their expected answers."""

    def __init__(self, n: int, seed: int, searches: int, budget_s: float, work: Path) -> None:
        self.stream = spill_stream(n, seed=seed)
        self.seed = seed
        self.searches = searches
        self.budget_s = budget_s
        self.work = work
        self.checks = check_queries(self.stream, seed)
        self.expected = [filter_columns(self.stream.columns, **q.kwargs()) for q in self.checks]
        self.rounds: dict[str, int] = {}

    def sample(self, name: str, factory: Callable[[], Candidate]) -> dict[str, float]:
        """Ingest, check, search and size one fresh candidate (see the module doc)."""
        i = self.rounds[name] = self.rounds.get(name, 0) + 1
        rng = np.random.default_rng([self.seed, self.stream.rows, i])
        k = self.searches + _WARMUP_QUERIES
        by_time = time_queries(self.stream, k, rng)
        by_sig = significance_queries(self.stream, k, rng)
        directory = Path(tempfile.mkdtemp(prefix="candidate-", dir=self.work))
        candidate = factory()
        gc.collect()
        try:
            candidate.open(directory, self.stream.type_names)
            clock = time.perf_counter_ns
            append = candidate.append
            worst = 0
            start = clock()
            for batch in self.stream.batches:
                t0 = clock()
                append(batch)
                wait = clock() - t0
                if wait > worst:
                    worst = wait
            t0 = clock()
            candidate.flush()
            end = clock()
            worst = max(worst, end - t0)
            check_candidate(name, candidate, self.checks, self.expected)
            p50, p99 = _percentiles(candidate, by_time, self.budget_s)
            sig50, sig99 = _percentiles(candidate, by_sig, self.budget_s)
            candidate.close()
            size = _dir_bytes(directory)
        finally:
            with contextlib.suppress(Exception):
                candidate.close()
            shutil.rmtree(directory, ignore_errors=True)
        return {
            "ingest_rows_per_s": self.stream.rows / ((end - start) / 1e9),
            "worst_wait_ms": worst / 1e6,
            "search_p50_ms": p50,
            "search_p99_ms": p99,
            "sig_search_p50_ms": sig50,
            "sig_search_p99_ms": sig99,
            "bytes_per_row": size / self.stream.rows,
        }


def _repeats_for(repeats: int | Mapping[int, int], n: int) -> int:
    r = repeats.get(n, 1) if isinstance(repeats, Mapping) else repeats
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise AblationError(f"{ABLATION}: repeats must be an int >= 1, got {r!r}")
    return r


@contextlib.contextmanager
def _workdir(workdir: str | Path | None) -> Iterator[Path]:
    if workdir is not None:
        path = Path(workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="lifelab-ablate-archive-") as tmp:
        yield Path(tmp)


def archive_formats(
    sizes: Sequence[int] = (200_000,),
    *,
    repeats: int | Mapping[int, int] = 3,
    searches: int = 200,
    search_budget_s: float = 30.0,
    segment_rows: int = 65_536,
    transaction_rows: int = TRANSACTION_ROWS,
    variants: Sequence[str] | None = None,
    warmup_rows: int = _WARMUP_ROWS,
    seed: int = 0,
    workdir: str | Path | None = None,
    progress: Callable[[int], Any] | None = None,
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Measure every candidate at every size; the ablation table and the variants left out.

    Args:
        sizes: Rows loaded per sample.
        repeats: Samples per variant and size, or a mapping size -> samples (missing: 1).
        searches: Timed queries per shape and sample (after 10 untimed ones).
        search_budget_s: A shape's timing stops after this long (at least 20 queries).
        segment_rows: Rows per segment file (quarter-size variant: a quarter of it).
        transaction_rows: Rows per SQLite transaction.
        variants: Names of the variants to run (default: every one that can run here).
        warmup_rows: Rows of the untimed first run of every variant (0: none).
        seed: Seeds the rows and the queries.
        workdir: Where the candidates' directories go (default: a temporary directory). Mind
            that on a tmpfs fsync costs nothing.
        progress: Called with 1 after every sample (and every warm-up run).

    Baseline: today's SQLite (three indexes); chosen: lifelab's SegmentArchive when it ran, else
    the baseline (the table then compares every candidate with today's archive).
    """
    if isinstance(sizes, str | bytes) or not len(sizes):
        raise AblationError(f"{ABLATION}: sizes must be a non-empty sequence of ints >= 1")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AblationError(f"{ABLATION}: every size must be an int >= 1, got {n!r}")
    if isinstance(searches, bool) or not isinstance(searches, int) or searches < 1:
        raise AblationError(f"{ABLATION}: searches must be an int >= 1, got {searches!r}")
    for n in sizes:
        _repeats_for(repeats, n)
    factories, skipped = candidates(segment_rows, transaction_rows=transaction_rows)
    if variants is not None:
        unknown = [v for v in variants if v not in factories and v not in skipped]
        if unknown:
            raise AblationError(f"{ABLATION}: unknown variants {unknown}; see candidates()")
        factories = {v: f for v, f in factories.items() if v in variants}
        skipped = {v: why for v, why in skipped.items() if v in variants}
    if BASELINE not in factories:
        raise AblationError(f"{ABLATION}: the variants must include the baseline {BASELINE!r}")
    tick = progress or (lambda _: None)
    samples: list[Sample] = []
    with _workdir(workdir) as work:
        if warmup_rows:
            warm = _Bench(warmup_rows, seed + 1, _MIN_QUERIES, search_budget_s, work)
            for name, factory in factories.items():
                warm.sample(name, factory)
                tick(1)
            del warm
        for n in sizes:
            bench = _Bench(n, seed, searches, search_budget_s, work)

            def run(name: str, factory: Callable[[], Candidate], b: _Bench = bench) -> Any:
                out = b.sample(name, factory)
                tick(1)
                return out

            rounds = interleave(
                {name: functools.partial(run, name, f) for name, f in factories.items()},
                repeats=_repeats_for(repeats, n),
                warmup=0,
            )
            for variant, results in rounds.items():
                for values in results:
                    for metric, (unit, lower) in METRICS.items():
                        samples.append(Sample(variant, metric, values[metric], n, unit, lower))
            del bench, rounds, run
            gc.collect()
    chosen = LIFELAB if LIFELAB in factories else BASELINE
    table = ablation_table(ABLATION, samples, baseline=BASELINE, chosen=chosen, seed=seed)
    return table, skipped


# -- reading the table -----------------------------------------------------------------------------


def summary(table: pl.DataFrame) -> pl.DataFrame:
    """One row per (size, variant): each metric's median, and whether both targets are met.

    Columns: ``size``, ``variant``, ``baseline``, ``chosen``, one per metric of :data:`METRICS`
    present, and ``meets_targets`` (ingest >= 1 000 000 rows/s and search p99 <= 5 ms, at
    whatever size the row is: the targets are set at 10 000 000 rows).
    """
    import polars as pl

    wide = table.pivot(
        on="metric", index=["size", "variant", "baseline", "chosen"], values="median"
    )
    meets = pl.lit(False)
    if {"ingest_rows_per_s", "search_p99_ms"} <= set(wide.columns):
        meets = (pl.col("ingest_rows_per_s") >= TARGET_ROWS_PER_S) & (
            pl.col("search_p99_ms") <= TARGET_SEARCH_P99_MS
        )
    return wide.with_columns(meets.alias("meets_targets")).sort("size", "variant")


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def reading(table: pl.DataFrame) -> str:
    """One paragraph read off the numbers at the table's largest size (nothing typed in)."""
    wide = summary(table)
    n = int(wide["size"].max())
    rows = {r["variant"]: r for r in wide.filter(wide["size"] == n).iter_rows(named=True)}
    base = next((r for r in rows.values() if r["baseline"]), None)

    def best(metric: str, highest: bool) -> dict[str, Any]:
        have = [r for r in rows.values() if r.get(metric) is not None]
        return sorted(have, key=lambda r: (-r[metric] if highest else r[metric], r["variant"]))[0]

    meeting = sorted(v for v, r in rows.items() if r["meets_targets"])
    parts = []
    if meeting:
        parts.append(
            f"At {n:,} rows, {len(meeting)} of {len(rows)} candidates meet both "
            f"targets (ingest >= {TARGET_ROWS_PER_S:,.0f} rows/s, search p99 <= "
            f"{TARGET_SEARCH_P99_MS:g} ms): {', '.join(meeting)}."
        )
    else:
        parts.append(
            f"At {n:,} rows, none of the {len(rows)} candidates meets both targets "
            f"(ingest >= {TARGET_ROWS_PER_S:,.0f} rows/s, search p99 <= "
            f"{TARGET_SEARCH_P99_MS:g} ms)."
        )
    fast = best("ingest_rows_per_s", True)
    quick = best("search_p99_ms", False)
    small = best("bytes_per_row", False)
    ratio = ""
    if base is not None:
        ratio = f" ({fast['ingest_rows_per_s'] / base['ingest_rows_per_s']:.3g}× {base['variant']})"
    parts.append(
        f"Fastest ingest: {fast['variant']}, {_num(fast['ingest_rows_per_s'])} rows/s{ratio}; "
        f"lowest search p99: {quick['variant']}, {_num(quick['search_p99_ms'])} ms; "
        f"smallest on disk: {small['variant']}, {_num(small['bytes_per_row'])} B/row."
    )
    chosen = next((r for r in rows.values() if r["chosen"] and not r["baseline"]), None)
    if chosen is not None:
        verdict = "meets both targets" if chosen["meets_targets"] else "misses a target"
        parts.append(
            f"The chosen {chosen['variant']} {verdict}: {_num(chosen['ingest_rows_per_s'])} "
            f"rows/s, search p99 {_num(chosen['search_p99_ms'])} ms, longest call "
            f"{_num(chosen['worst_wait_ms'])} ms, {_num(chosen['bytes_per_row'])} B/row."
        )
    if base is not None:
        parts.append(
            f"Today's archive ({base['variant']}) ingests {_num(base['ingest_rows_per_s'])} "
            f"rows/s, searches in p99 {_num(base['search_p99_ms'])} ms and takes "
            f"{_num(base['bytes_per_row'])} B/row."
        )
    if meeting:
        worst = max(meeting, key=lambda v: rows[v]["worst_wait_ms"])
        calm = min(meeting, key=lambda v: rows[v]["worst_wait_ms"])
        parts.append(
            "Among those meeting the targets, the longest single append or flush call (what a "
            "tick would wait without a writer thread) ranges from "
            f"{_num(rows[calm]['worst_wait_ms'])} ms ({calm}) to "
            f"{_num(rows[worst]['worst_wait_ms'])} ms ({worst})."
        )
    if n < TARGET_ROWS:
        parts.append(f"The targets are set at {TARGET_ROWS:,} rows: this table stops at {n:,}.")
    return " ".join(parts)


def report_section(table: pl.DataFrame, meta: Mapping[str, Any]) -> list[str]:
    """The "Archive formats" section of ``lifelab report`` (Markdown lines).

    A compact table per size (medians), the reading paragraph, and where it was measured.
    """
    wide = summary(table)
    lines = ["### Archive formats", "", str(meta.get("question", QUESTION)), ""]
    head = [
        "rows",
        "candidate",
        "ingest (rows/s)",
        "worst wait (ms)",
        "search p50 / p99 (ms)",
        "by significance p50 / p99 (ms)",
        "bytes/row",
        "meets targets",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in wide.sort(["size", "ingest_rows_per_s"], descending=[False, True]).iter_rows(
        named=True
    ):
        tag = " *(baseline)*" if r["baseline"] else ""
        tag += " *(chosen)*" if r["chosen"] and not r["baseline"] else ""
        cells = [
            f"{r['size']:,}",
            r["variant"] + tag,
            _num(r.get("ingest_rows_per_s")),
            _num(r.get("worst_wait_ms")),
            f"{_num(r.get('search_p50_ms'))} / {_num(r.get('search_p99_ms'))}",
            f"{_num(r.get('sig_search_p50_ms'))} / {_num(r.get('sig_search_p99_ms'))}",
            _num(r.get("bytes_per_row")),
            "yes" if r["meets_targets"] else "no",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    samples = sorted(set(table["n"].to_list()))
    n_text = str(samples[0]) if len(samples) == 1 else f"{samples[0]}–{samples[-1]}"
    lines += [
        "",
        f"Medians of {n_text} samples per cell ({ABLATION}.parquet has the 95 % intervals).",
        "",
        reading(table),
        "",
    ]
    env = meta.get("environment", {})
    commit = str(env.get("git_commit") or "unknown")[:10]
    lines += [
        f"Measured on {env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} CPUs), "
        f"Python {env.get('python_version', '?')}, commit `{commit}`"
        f"{' (dirty)' if env.get('git_dirty') else ''}.",
        "",
    ]
    return lines


# -- running ---------------------------------------------------------------------------------------

# Arguments by scale. "full" is for a quiet machine (roughly half an hour: SQLite with three indexes
# takes minutes per 10 M-row load); "quick" checks the code at ~200 000 rows (noisy, small
# segments so that the 200 000 rows still make several); "smoke" only checks that it runs.
_SCALES: dict[str, dict[str, Any]] = {
    "smoke": {
        "sizes": (3_000,),
        "repeats": 1,
        "searches": 20,
        "segment_rows": 1_024,
        "transaction_rows": 1_000,
        "warmup_rows": 0,
    },
    "quick": {"sizes": (200_000,), "repeats": 3, "searches": 200, "segment_rows": 65_536},
    "full": {
        "sizes": (1_000_000, 10_000_000),
        "repeats": {1_000_000: 3, 10_000_000: 1},
        "searches": 200,
        "segment_rows": SEGMENT_ROWS,
    },
}


def default_root(scale: str) -> Path:
    """Where :func:`run_all` writes at ``scale``: the committed folder only for "full"."""
    if scale == "full":
        return Path(DEFAULT_ROOT)
    return Path(tempfile.gettempdir()) / f"lifelab-ablations-{scale}"


def _sample_count(settings: Mapping[str, Any], variants: int) -> int:
    sizes = settings["sizes"]
    repeats = settings["repeats"]
    per_size = sum(_repeats_for(repeats, n) for n in sizes)
    warm = 1 if settings.get("warmup_rows", _WARMUP_ROWS) else 0
    return variants * (per_size + warm)


def run_all(
    root: str | Path | None = None,
    *,
    scale: str = "quick",
    progress: bool = True,
    seed: int = 0,
) -> Path:
    """Run the study at ``scale`` and write ``root/archive_formats.parquet``; return its path.

    ``root`` defaults to :func:`default_root`: ``data/results/ablations`` for "full" only, a
    folder in the temporary directory for "quick" and "smoke", so a small run never replaces
    the committed table. Scratch archives go to a hidden temporary folder inside ``root`` (the
    disk the results are on), removed at the end. Candidates that cannot run here are named in
    the table's question text.
    """
    if scale not in _SCALES:
        raise AblationError(f"scale must be one of {sorted(_SCALES)}, got {scale!r}")
    from tqdm.auto import tqdm

    settings = _SCALES[scale]
    root = default_root(scale) if root is None else Path(root)
    root.mkdir(parents=True, exist_ok=True)
    factories, _ = candidates()
    total = _sample_count(settings, len(factories))
    with (
        tqdm(total=total, desc="ablate archive", unit="sample", disable=not progress) as bar,
        tempfile.TemporaryDirectory(prefix=".ablate-archive-", dir=root) as work,
    ):
        table, skipped = archive_formats(**settings, seed=seed, workdir=work, progress=bar.update)
    question = QUESTION
    if skipped:
        left = "; ".join(f"{name} ({why})" for name, why in sorted(skipped.items()))
        question += f" Not measured in this table: {left}."
    return write_ablation(table, question=question, root=root, name=ABLATION)


_USAGE = "usage: python -m lifelab.studies.ablate_archive [smoke|quick|full] [DIR]"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lifelab.studies.ablate_archive [smoke|quick|full] [DIR]``: :func:`run_all`.

    The scale defaults to "quick"; DIR is the table's folder (default: :func:`default_root`).
    Prints the table's path and returns 0; a bad argument prints the usage and returns 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(f"{_USAGE}\n\n{QUESTION}")
        return 0
    scale = args.pop(0) if args else "quick"
    if scale not in _SCALES or len(args) > 1:
        why = f"unknown scale {scale!r}" if scale not in _SCALES else "too many arguments"
        print(f"{_USAGE}\nerror: {why}", file=sys.stderr)
        return 2
    print(run_all(args[0] if args else None, scale=scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
