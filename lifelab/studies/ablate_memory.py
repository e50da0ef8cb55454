"""Memory ablations: batched decay, columnar entries, archive indexes and memoisation, measured.

Four items of the reference plan, each answered in this process with its variants interleaved
(:mod:`lifelab.studies.ablation`):

- ``decay``: :meth:`ActiveMemory.decay` (numpy over contiguous columns) against a Python loop that
  multiplies each weight of a plain list of floats and checks the threshold.
- ``entry_storage``: the columnar :class:`ActiveMemory` against one ``__slots__`` object per entry
  kept in a list, with a free list that reuses spilled objects (the plan's "object pooling").
- ``archive_index``: :meth:`SQLiteArchive.search` on its indexes against the same SQL forced to
  scan (``NOT INDEXED``), and against the in-memory numpy scan of :class:`MemoryArchive`.
- ``memoisation``: ``functools.lru_cache`` on the appraisal and decision functions the tick runs
  per event, against the plain functions.

Before anything is timed, each ablation checks that its variants compute the same thing (the same
weights; the same entries kept and spilled; the same search results; the same decisions) and
raises :class:`~lifelab.studies.ablation.AblationError` when they do not, so a variant can only
win by being faster. The data are ``lifelab bench memory``'s workload
(:class:`~lifelab.lab.bench_memory.SeededHistory`), so both measure the same entries. The
variants that are not lifelab's design live here only.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelab.config import LifeConfig
from lifelab.lab.bench_memory import (
    APPEND_SAMPLE,
    ARCHIVE_CHUNK,
    SEARCH_LIMIT,
    SeededHistory,
    SpillSink,
    empty_memory,
    fill_memory,
)
from lifelab.life.behavior import IGNORE, choose_action
from lifelab.life.meaning import context, significance, type_multipliers
from lifelab.memory.active import COLUMNS, KIND_EVENT, KIND_FEEDBACK, SECONDS_PER_DAY, ActiveMemory
from lifelab.studies.ablation import AblationError, Sample, ablation_table, interleave, timed_ms

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "QUESTIONS",
    "archive_index_ablation",
    "decay_ablation",
    "entry_storage_ablation",
    "memoisation_ablation",
    "run_all",
]

QUESTIONS: dict[str, str] = {
    "decay": (
        "Is one batched numpy decay pass over active memory (ActiveMemory.decay) cheaper than "
        "decaying each entry's weight in a Python loop?"
    ),
    "entry_storage": (
        "Do contiguous numpy columns hold, append, decay and spill memory entries more cheaply "
        "than one pooled Python object per entry?"
    ),
    "archive_index": (
        "Do the SQLite archive's indexes make a type + time-range search (limit 100) faster than "
        "the same query scanning the table, or than a numpy scan of the columns in RAM?"
    ),
    "memoisation": (
        "Does functools.lru_cache on the per-event appraisal and decision functions make them "
        "faster while their results stay identical?"
    ),
}

# Metric -> unit; every metric here is lower-is-better.
_UNITS = {
    "decay_ms": "ms",
    "bytes_per_entry": "B",
    "append_us_per_entry": "µs",
    "spill_ms": "ms",
    "search_p50_ms": "ms",
    "search_p99_ms": "ms",
    "ns_per_call": "ns",
}
_DECAY_AFTER_S = 10.0  # life seconds between the newest entry and the timed decay pass
_SPILL_SHARE = 10  # a capacity spill removes 1/10 of the entries
_CHECK_QUERIES = 20  # searches compared across the archive variants before timing
_STATE_TICKS = 16  # ticks between two samples of the organism's state (one event per tick)
_STATE_SAMPLES = 256
_CACHE_SIZE = 4096  # lru_cache maxsize: bounded, as a cache on a living agent's hot path must be

_Rounds = dict[str, list[Any]]


def _samples(results: _Rounds, size: int) -> list[Sample]:
    """Samples from :func:`interleave`'s returns (a metric -> value mapping per call)."""
    out = []
    for variant, values in results.items():
        for value in values:
            assert isinstance(value, Mapping)
            for metric, v in value.items():
                out.append(Sample(variant, metric, float(v), size=size, unit=_UNITS[metric]))
    return out


def _check_sizes(ablation: str, sizes: Sequence[int], low: int) -> list[int]:
    out = []
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < low:
            raise AblationError(f"{ablation}: every size must be an int >= {low}, got {n!r}")
        out.append(n)
    if not out:
        raise AblationError(f"{ablation}: sizes is empty")
    return out


# -- decay -----------------------------------------------------------------------------------------

DECAY_PER_ENTRY = "per-entry (python loop)"
DECAY_BATCHED = "batched (numpy, ActiveMemory.decay)"


def _decay_list(
    weights: list[float],
    sigs: list[float],
    stamps: list[float],
    now: float,
    decay_factor: float,
    min_weight: float,
) -> list[int]:
    """Decay ``weights`` in place, one entry at a time; return the positions under ``min_weight``.

    The same factor as :meth:`ActiveMemory.decay` with the same operations in the same order, so
    the two agree bit for bit.
    """
    scale = 0.5 * decay_factor * SECONDS_PER_DAY
    horizon = now + SECONDS_PER_DAY
    gone = []
    for i, (w, s, t) in enumerate(zip(weights, sigs, stamps, strict=True)):
        w *= (s + 1.0) * scale / (horizon - t)
        weights[i] = w
        if w < min_weight:
            gone.append(i)
    return gone


class _DecayBench:
    """``n`` entries of the seeded history, as an ActiveMemory and as plain Python lists.

    Every timed pass starts from the freshly written weights (1.0), so every round does the same
    work, and with the default ``min_weight`` (0.1) no entry spills: the pass itself is timed.
    """

    def __init__(self, n: int, seed: int) -> None:
        cfg = LifeConfig()
        data = SeededHistory(n, np.random.default_rng(seed))
        mem = ActiveMemory(n, SpillSink(), min_weight=cfg.min_weight, decay_factor=cfg.decay_factor)
        for args in data.batches(n):
            mem.add_batch(*args)
        self.n = n
        self.mem = mem
        self.fresh = mem.export()
        self.now = data.end_s + _DECAY_AFTER_S
        self.sigs: list[float] = self.fresh["significance"].tolist()
        self.stamps: list[float] = self.fresh["timestamp"].tolist()
        self.weights: list[float] = self.fresh["weight"].tolist()

    def batched(self) -> dict[str, float]:
        mem = self.mem
        mem.load(self.fresh, next_id=self.n, spilled=0)
        ms = timed_ms(lambda: mem.decay(self.now))
        if len(mem) != self.n:
            raise AblationError(f"decay: the batched pass spilled {self.n - len(mem)} entries")
        return {"decay_ms": ms}

    def per_entry(self) -> dict[str, float]:
        weights = self.weights.copy()
        mem = self.mem
        gone: list[int] = []

        def run() -> None:
            gone.extend(
                _decay_list(
                    weights, self.sigs, self.stamps, self.now, mem.decay_factor, mem.min_weight
                )
            )

        ms = timed_ms(run)
        if gone:
            raise AblationError(f"decay: the per-entry pass dropped {len(gone)} entries")
        return {"decay_ms": ms}

    def check(self) -> tuple[np.ndarray, np.ndarray]:
        """Both variants' weights after one pass from the same start; raises when they differ."""
        mem = self.mem
        mem.load(self.fresh, next_id=self.n, spilled=0)
        mem.decay(self.now)
        batched = mem.columns()["weight"].copy()
        weights = self.weights.copy()
        _decay_list(weights, self.sigs, self.stamps, self.now, mem.decay_factor, mem.min_weight)
        per_entry = np.asarray(weights)
        if not np.array_equal(batched, per_entry):
            worst = (
                float(np.max(np.abs(batched - per_entry))) if len(batched) == self.n else math.inf
            )
            raise AblationError(f"decay: batched and per-entry weights differ (by up to {worst})")
        return batched, per_entry


def decay_ablation(
    sizes: Sequence[int] = (1_000, 10_000, 100_000), *, repeats: int = 7, seed: int = 0
) -> pl.DataFrame:
    """``decay_ms`` of one pass over N entries: batched (lifelab) against a per-entry loop.

    The per-entry loop runs over Python lists of floats, its fairest form (no attribute or numpy
    scalar access per entry). Baseline: per-entry; chosen: batched.
    """
    samples: list[Sample] = []
    for n in _check_sizes("decay", sizes, 1):
        bench = _DecayBench(n, seed)
        bench.check()
        rounds = interleave(
            {DECAY_PER_ENTRY: bench.per_entry, DECAY_BATCHED: bench.batched}, repeats=repeats
        )
        samples += _samples(rounds, n)
        del bench
    return ablation_table(
        "decay", samples, baseline=DECAY_PER_ENTRY, chosen=DECAY_BATCHED, seed=seed
    )


# -- entry storage ---------------------------------------------------------------------------------

STORAGE_OBJECTS = "objects + free list (python)"
STORAGE_COLUMNAR = "columnar (ActiveMemory)"


class _Entry:
    """One memory entry as a Python object: the design lifelab replaced with columns."""

    __slots__ = (
        "action",
        "event_type",
        "feedback_energy",
        "feedback_integrity",
        "feedback_stability",
        "id",
        "kind",
        "significance",
        "subjective_timestamp",
        "tick",
        "timestamp",
        "weight",
    )

    id: int
    event_type: int
    kind: int
    action: int
    significance: float
    weight: float
    timestamp: float
    subjective_timestamp: float
    tick: int
    feedback_energy: float
    feedback_stability: float
    feedback_integrity: float


_ROW_OF = attrgetter(*COLUMNS)  # an entry -> its archive row, in COLUMNS order
_WEIGHT = attrgetter("weight")
_ID = attrgetter("id")

_Rows = list[tuple[Any, ...]]


class _RowSink:
    """Where the object store spills: keeps the last batch of rows."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: _Rows = []

    def __call__(self, rows: _Rows) -> None:
        self.last = rows


class _ObjectMemory:
    """Active memory as one :class:`_Entry` per entry in a list, with a free list (a pool).

    It follows ActiveMemory's rules (the decay formula with the same operations in the same
    order, spill under ``min_weight``, capacity spill lowest weight first with ties oldest first)
    so that both hold the same entries afterwards. Spilled entries leave as row tuples: a pooled
    object is reused by the next ``add``, so the archive must get a copy, never the object.
    """

    __slots__ = ("decay_factor", "entries", "free", "min_weight", "next_id", "spill", "spilled")

    def __init__(
        self, spill: Callable[[_Rows], None], *, min_weight: float, decay_factor: float
    ) -> None:
        self.spill = spill
        self.min_weight = min_weight
        self.decay_factor = decay_factor
        self.entries: list[_Entry] = []
        self.free: list[_Entry] = []
        self.next_id = 0
        self.spilled = 0

    def add(
        self,
        event_type: int,
        kind: int,
        action: int,
        significance: float,
        timestamp: float,
        subjective_timestamp: float,
        tick: int,
        feedback: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> int:
        """Write one entry (weight 1.0), reusing a pooled object when there is one."""
        free = self.free
        e = free.pop() if free else _Entry()
        entry_id = self.next_id
        e.id = entry_id
        e.event_type = event_type
        e.kind = kind
        e.action = action
        e.significance = significance
        e.weight = 1.0
        e.timestamp = timestamp
        e.subjective_timestamp = subjective_timestamp
        e.tick = tick
        e.feedback_energy, e.feedback_stability, e.feedback_integrity = feedback
        self.entries.append(e)
        self.next_id = entry_id + 1
        return entry_id

    def decay(self, now: float) -> int:
        """One decay pass; entries under ``min_weight`` spill. Returns how many spilled."""
        scale = 0.5 * self.decay_factor * SECONDS_PER_DAY
        horizon = now + SECONDS_PER_DAY
        floor = self.min_weight
        gone = []
        for e in self.entries:
            w = e.weight * ((e.significance + 1.0) * scale / (horizon - e.timestamp))
            e.weight = w
            if w < floor:
                gone.append(e)
        if gone:
            self.entries = [e for e in self.entries if e.weight >= floor]
            self._hand_over(gone)
        return len(gone)

    def spill_lowest(self, k: int) -> int:
        """Spill the ``k`` lowest-weight entries (ties: oldest first), as a capacity spill does.

        ActiveMemory.enforce_capacity's method in Python: the k-th smallest weight from a sort of
        the weights (floats sort several times faster than entries keyed on (weight, id)), then
        order-keeping filters, so the list stays in id order.
        """
        entries = self.entries
        weights = list(map(_WEIGHT, entries))
        ordered = sorted(weights)
        kth = ordered[k - 1]
        if k == len(ordered) or ordered[k] > kth:  # no tie straddles the cut: one filter each
            gone = [e for e, w in zip(entries, weights, strict=True) if w <= kth]
            self.entries = [e for e, w in zip(entries, weights, strict=True) if w > kth]
        else:
            gone = [e for e, w in zip(entries, weights, strict=True) if w < kth]
            ties = [e for e, w in zip(entries, weights, strict=True) if w == kth]
            ties.sort(key=_ID)
            gone += ties[: k - len(gone)]
            leaving = set(map(id, gone))
            self.entries = [e for e in entries if id(e) not in leaving]
        self._hand_over(gone)
        return len(gone)

    def recycle(self) -> None:
        """Put every entry in the free list, unspilled: an empty store that reuses its objects."""
        self.free.extend(self.entries)
        self.entries = []

    def _hand_over(self, gone: list[_Entry]) -> None:
        rows = list(map(_ROW_OF, gone))
        self.free.extend(gone)
        self.spilled += len(gone)
        self.spill(rows)


def _append_ns(add: Callable[..., int], rows: list[tuple[Any, ...]]) -> int:
    """ns to write ``rows`` (bench_memory's ``add`` argument tuples) one entry at a time."""
    t0 = time.perf_counter_ns()
    for event_type, action, sig, t, tick in rows:
        add(event_type, KIND_EVENT, action, sig, t, t, tick)
    return time.perf_counter_ns() - t0


def _build_objects(data: SeededHistory, store: _ObjectMemory, now: float) -> float:
    """Write the history into ``store`` under tracemalloc; the bytes it keeps per entry.

    The Python scalars are made inside the traced region, as a tick makes them, so each entry's
    own floats and ints count; constants and a batch's shared time do not. One decay pass runs
    inside too: after it every weight is its own float, as in a living store.
    """
    batches = data.batches(data.n)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        add = store.add
        for types, kind, actions, sigs, t, sts, tick, fb in batches:
            if kind == KIND_FEEDBACK:
                feedback: Any = zip(*(col.tolist() for col in fb), strict=True)
            else:
                feedback = [fb] * len(types)
            for event_type, action, sig, entry_fb in zip(
                types.tolist(), actions.tolist(), sigs.tolist(), feedback, strict=True
            ):
                add(event_type, kind, action, sig, t, sts, tick, entry_fb)
        store.decay(now)
        del feedback
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        if started:
            tracemalloc.stop()
    return kept / len(store.entries)


class _StorageBench:
    """The same ``n`` entries in an ActiveMemory and in an :class:`_ObjectMemory`.

    Per round each variant times ``append_us_per_entry`` (``add()`` one entry at a time into an
    emptied store that keeps its allocation or its pooled objects; at most APPEND_SAMPLE
    entries), ``decay_ms`` (one pass from fresh weights, nothing under ``min_weight``) and
    ``spill_ms`` (the lowest-weight 10 % after that pass: ``enforce_capacity`` on a store whose
    capacity is 0.9 N; :meth:`_ObjectMemory.spill_lowest` for the objects). ``bytes_per_entry``
    is measured once: ActiveMemory's allocated column bytes per entry (as ``bench memory``
    reports), and what tracemalloc sees the objects, their own scalars and the list keep.

    The object store stays alive while the columnar variant runs (one process, interleaved), so
    a full garbage collection may land in either variant's timings.
    """

    def __init__(self, n: int, seed: int) -> None:
        cfg = LifeConfig()
        data = SeededHistory(n, np.random.default_rng(seed))
        self.n = n
        self.cut = max(1, n // _SPILL_SHARE)
        self.now = data.end_s + _DECAY_AFTER_S
        mem, sizes = fill_memory(data)
        mem.min_weight = cfg.min_weight
        self.mem = mem
        self.fresh = mem.export()
        self.columnar_bytes = float(sizes["bytes_per_entry"])
        self.sink = SpillSink()
        self.spiller = ActiveMemory(
            n - self.cut, self.sink, min_weight=cfg.min_weight, decay_factor=cfg.decay_factor
        )
        m = min(n, APPEND_SAMPLE)
        self.rows = data.rows(m)
        self.appender = ActiveMemory(n, SpillSink(), min_weight=0.0)
        for args in data.batches(m):  # grows the allocation once, outside the clock
            self.appender.add_batch(*args)

        self.row_sink = _RowSink()
        self.objects = _ObjectMemory(
            self.row_sink, min_weight=cfg.min_weight, decay_factor=cfg.decay_factor
        )
        self.object_bytes = _build_objects(data, self.objects, self.now)
        self.object_appender = _ObjectMemory(
            _RowSink(), min_weight=0.0, decay_factor=cfg.decay_factor
        )
        self._fresh_weights: list[float] = self.fresh["weight"].tolist()

    def columnar(self) -> dict[str, float]:
        empty_memory(self.appender, self.now)
        append_ns = _append_ns(self.appender.add, self.rows)
        mem = self.mem
        mem.load(self.fresh, next_id=self.n, spilled=0)
        decay_ms = timed_ms(lambda: mem.decay(self.now))
        self.spiller.load(mem.export(), next_id=self.n, spilled=0)
        spill_ms = timed_ms(self.spiller.enforce_capacity)
        return {
            "append_us_per_entry": append_ns / 1e3 / len(self.rows),
            "decay_ms": decay_ms,
            "spill_ms": spill_ms,
        }

    def object_store(self) -> dict[str, float]:
        app = self.object_appender
        app.recycle()
        append_ns = _append_ns(app.add, self.rows)
        store = self.objects
        self._reset_objects()
        decay_ms = timed_ms(lambda: store.decay(self.now))
        kept = store.entries.copy()
        spill_ms = timed_ms(lambda: store.spill_lowest(self.cut))
        store.entries = kept  # the spilled objects are intact: spilling only read them
        store.free.clear()
        store.spilled = 0
        return {
            "append_us_per_entry": append_ns / 1e3 / len(self.rows),
            "decay_ms": decay_ms,
            "spill_ms": spill_ms,
        }

    def _reset_objects(self) -> None:
        for e, w in zip(self.objects.entries, self._fresh_weights, strict=True):
            e.weight = w

    def check(self) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """Decay and spill 10 % in both stores; the entries kept and spilled, columns by id.

        Raises:
            AblationError: the two stores disagree on any column of any entry.
        """
        mem = self.mem
        mem.load(self.fresh, next_id=self.n, spilled=0)
        if mem.decay(self.now):
            raise AblationError("entry_storage: the columnar decay pass spilled entries")
        self.spiller.load(mem.export(), next_id=self.n, spilled=0)
        self.spiller.enforce_capacity()
        assert self.sink.last is not None
        columnar = {"kept": _by_id(self.spiller.export()), "gone": _by_id(self.sink.last)}

        store = self.objects
        self._reset_objects()
        if store.decay(self.now):
            raise AblationError("entry_storage: the object decay pass spilled entries")
        kept = store.entries.copy()
        store.spill_lowest(self.cut)
        objects = {
            "kept": _by_id(_rows_to_columns(list(map(_ROW_OF, store.entries)))),
            "gone": _by_id(_rows_to_columns(self.row_sink.last)),
        }
        store.entries = kept
        store.free.clear()
        store.spilled = 0
        for part in ("kept", "gone"):
            for name in COLUMNS:
                a, b = columnar[part][name], objects[part][name]
                if not np.array_equal(a, b):
                    raise AblationError(
                        f"entry_storage: columnar and object stores differ in {part} {name}"
                    )
        return {"columnar": columnar, "objects": objects}


def _rows_to_columns(rows: _Rows) -> dict[str, np.ndarray]:
    table = np.array(rows, dtype=np.dtype(list(COLUMNS.items())))
    return {name: table[name] for name in COLUMNS}


def _by_id(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    order = np.argsort(columns["id"], kind="stable")
    return {name: np.asarray(columns[name], dtype=dtype)[order] for name, dtype in COLUMNS.items()}


def entry_storage_ablation(
    sizes: Sequence[int] = (10_000, 100_000), *, repeats: int = 5, seed: int = 0
) -> pl.DataFrame:
    """Columnar storage (lifelab) against pooled objects: bytes, append, decay and spill costs.

    Metrics ``bytes_per_entry``, ``append_us_per_entry``, ``decay_ms`` and ``spill_ms`` (see
    :class:`_StorageBench`). Baseline: objects; chosen: columnar.
    """
    samples: list[Sample] = []
    for n in _check_sizes("entry_storage", sizes, _SPILL_SHARE):
        bench = _StorageBench(n, seed)
        bench.check()
        for variant, value in (
            (STORAGE_OBJECTS, bench.object_bytes),
            (STORAGE_COLUMNAR, bench.columnar_bytes),
        ):
            samples.append(Sample(variant, "bytes_per_entry", value, size=n, unit="B"))
        rounds = interleave(
            {STORAGE_OBJECTS: bench.object_store, STORAGE_COLUMNAR: bench.columnar},
            repeats=repeats,
        )
        samples += _samples(rounds, n)
        del bench
    return ablation_table(
        "entry_storage", samples, baseline=STORAGE_OBJECTS, chosen=STORAGE_COLUMNAR, seed=seed
    )


# -- archive index ---------------------------------------------------------------------------------

ARCHIVE_SCAN = "scan (sqlite NOT INDEXED)"
ARCHIVE_INDEXED = "indexed (SQLiteArchive)"
ARCHIVE_NUMPY = "numpy scan (MemoryArchive)"

_NAMES = tuple(COLUMNS)
_ROW = np.dtype(list(COLUMNS.items()))
# The SQL SQLiteArchive.search builds for event_type + since + until + limit; the hint
# " NOT INDEXED" makes SQLite ignore every index (the rowid scan remains).
_QUERY_SQL = (
    f"SELECT {', '.join(_NAMES)} FROM entries{{hint}} "
    "WHERE event_type = ? AND timestamp >= ? AND timestamp <= ? ORDER BY timestamp ASC, id LIMIT ?"
)
_SCAN_SQL = _QUERY_SQL.format(hint=" NOT INDEXED")
_INDEXED_SQL = _QUERY_SQL.format(hint="")
_Query = tuple[int, float, float]


class _ArchiveBench:
    """One archive of ``n`` rows in ``directory``: SQLite (read-only) and MemoryArchive copies.

    Searches are ``event_type=T, since=A, until=B, limit=100`` with random T and window, as in
    ``bench memory``; the i-th round of every variant runs the same queries.
    """

    def __init__(self, n: int, seed: int, directory: Path, searches: int) -> None:
        from lifelab.memory.archive import MemoryArchive
        from lifelab.memory.sqlite_archive import READONLY_CACHE_KIB, SQLiteArchive

        data = SeededHistory(n, np.random.default_rng(seed))
        columns = fill_memory(data)[0].export()
        path = directory / f"archive-{n}.sqlite"
        with SQLiteArchive(path, type_names=data.type_names) as store:
            for start in range(0, n, ARCHIVE_CHUNK):
                stop = min(start + ARCHIVE_CHUNK, n)
                store.append({name: col[start:stop] for name, col in columns.items()})
                store.flush()
        self.indexed = SQLiteArchive.open_readonly(path)
        # The scan reads the same file the way open_readonly does (immutable when no -wal
        # file is left), with the same page cache.
        wal = path.with_name(path.name + "-wal")
        mode = "?mode=ro" if wal.exists() else "?mode=ro&immutable=1"
        self.conn = sqlite3.connect(path.resolve().as_uri() + mode, uri=True)
        self.conn.execute(f"PRAGMA cache_size = {-int(READONLY_CACHE_KIB)}")
        self.memory = MemoryArchive()
        self.memory.append(columns)
        self.n = n
        self.seed = seed
        self.searches = searches
        self.n_types = len(data.type_names)
        self.end_s = data.end_s
        self.calls = {ARCHIVE_SCAN: 1, ARCHIVE_INDEXED: 1, ARCHIVE_NUMPY: 1}

    def close(self) -> None:
        self.indexed.close()
        self.conn.close()

    def queries(self, i: int, k: int) -> list[_Query]:
        """The ``k`` queries of call ``i`` (0: the check; 1, 2…: the rounds of every variant)."""
        rng = np.random.default_rng([self.seed, self.n, i])
        types = rng.integers(0, self.n_types, k).tolist()
        windows = np.sort(rng.uniform(0.0, self.end_s, (k, 2)), axis=1).tolist()
        return [(t, a, b) for t, (a, b) in zip(types, windows, strict=True)]

    def scan_search(
        self, *, event_type: int, since: float, until: float, limit: int
    ) -> dict[str, np.ndarray]:
        """SQLiteArchive.search's query and conversion, with ``NOT INDEXED``."""
        rows = self.conn.execute(_SCAN_SQL, (event_type, since, until, limit)).fetchall()
        table = np.array(rows, dtype=_ROW)
        return {name: np.ascontiguousarray(table[name]) for name in _NAMES}

    def searchers(self) -> dict[str, Callable[..., dict[str, np.ndarray]]]:
        return {
            ARCHIVE_SCAN: self.scan_search,
            ARCHIVE_INDEXED: self.indexed.search,
            ARCHIVE_NUMPY: self.memory.search,
        }

    def variants(self) -> dict[str, Callable[[], dict[str, float]]]:
        return {
            name: functools.partial(self._round, name, fn) for name, fn in self.searchers().items()
        }

    def _round(self, name: str, search: Callable[..., Any]) -> dict[str, float]:
        queries = self.queries(self.calls[name], self.searches)
        self.calls[name] += 1
        clock = time.perf_counter_ns
        samples = []
        for t, since, until in queries:
            t0 = clock()
            search(event_type=t, since=since, until=until, limit=SEARCH_LIMIT)
            samples.append(clock() - t0)
        ms = np.asarray(samples, dtype=np.float64) / 1e6
        return {
            "search_p50_ms": float(np.percentile(ms, 50)),
            "search_p99_ms": float(np.percentile(ms, 99)),
        }

    def plans(self) -> dict[str, str]:
        """SQLite's query plan for the indexed and the scanning SQL."""
        out = {}
        for name, sql in ((ARCHIVE_INDEXED, _INDEXED_SQL), (ARCHIVE_SCAN, _SCAN_SQL)):
            rows = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", (0, 0.0, 1.0, 1)).fetchall()
            out[name] = " | ".join(str(row[-1]) for row in rows)
        return out

    def check(self) -> dict[str, list[np.ndarray]]:
        """Every variant's result ids for the same queries; raises when any differ.

        Also checks the plans: the indexed SQL uses ``entries_type_time``, the scan no index.
        """
        plans = self.plans()
        if "entries_type_time" not in plans[ARCHIVE_INDEXED] or "INDEX" in plans[ARCHIVE_SCAN]:
            raise AblationError(f"archive_index: unexpected query plans {plans}")
        out: dict[str, list[np.ndarray]] = {}
        queries = self.queries(0, _CHECK_QUERIES)
        for name, search in self.searchers().items():
            found = [
                search(event_type=t, since=a, until=b, limit=SEARCH_LIMIT) for t, a, b in queries
            ]
            out[name] = [f["id"] for f in found]
            for f, want in zip(found, out[ARCHIVE_SCAN], strict=True):
                if not np.array_equal(f["id"], want):
                    raise AblationError(f"archive_index: {name} returns other rows than the scan")
        return out


def archive_index_ablation(
    sizes: Sequence[int] = (10_000, 100_000),
    *,
    repeats: int = 5,
    searches: int = 50,
    seed: int = 0,
) -> pl.DataFrame:
    """``search_p50_ms`` and ``search_p99_ms`` of ``searches`` type + time searches per round.

    One sample is one round's percentile, so ``repeats`` rounds give the median and interval.
    The archives are built in a temporary directory. Baseline: the NOT INDEXED scan; chosen:
    indexed; the numpy scan of :class:`MemoryArchive` is a third variant.
    """
    if isinstance(searches, bool) or not isinstance(searches, int) or searches < 1:
        raise AblationError(f"archive_index: searches must be an int >= 1, got {searches!r}")
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="lifelab-ablate-archive-") as tmp:
        for n in _check_sizes("archive_index", sizes, 1):
            bench = _ArchiveBench(n, seed, Path(tmp), searches)
            try:
                bench.check()
                rounds = interleave(bench.variants(), repeats=repeats)
            finally:
                bench.close()
            samples += _samples(rounds, n)
    return ablation_table(
        "archive_index", samples, baseline=ARCHIVE_SCAN, chosen=ARCHIVE_INDEXED, seed=seed
    )


# -- memoisation -----------------------------------------------------------------------------------

MEMO_PLAIN = "plain (lifelab)"
MEMO_EXACT = "lru_cache (exact args)"
MEMO_TABLE = "lru_cache (per-type multiplier)"
_MEMO_VARIANTS = (MEMO_PLAIN, MEMO_EXACT, MEMO_TABLE)

_Kept = list[tuple[int, int, float]]
# One event: (type, intensity, context factor, stability) — the inputs of the per-event rule.
_Inputs = tuple[int, float, float, float]


def _appraise(
    stream: list[_Inputs],
    multipliers: Sequence[float],
    thresholds: Sequence[float],
    appraise: Callable[[float, float, float], float],
    decide: Callable[[float, float, float, float], int],
) -> _Kept:
    """Appraise and decide each event; keep ``(type, action, significance)`` unless ignored.

    The staged form of the per-event rule that :func:`lifelab.life.behavior.respond` fuses (the
    tests hold the two equal); ``kept`` is what respond hands on to memory.
    """
    kept: _Kept = []
    append = kept.append
    for t, intensity, ctx, stability in stream:
        sig = appraise(intensity, multipliers[t], ctx)
        action = decide(sig, thresholds[t], stability, intensity)
        if action != IGNORE:
            append((t, action, sig))
    return kept


def _appraise_per_type(
    stream: list[_Inputs],
    tables: tuple[Sequence[float], Sequence[float], Sequence[float]],
    thresholds: Sequence[float],
    multiplier: Callable[[float, float, float], float],
) -> _Kept:
    """:func:`_appraise` taking ``w_type · m`` from a memoised function of the type's table
    values instead of the list that the loop recomputes after each learning pass."""
    weights, sens, bsens = tables
    kept: _Kept = []
    append = kept.append
    for t, intensity, ctx, stability in stream:
        sig = significance(intensity, multiplier(weights[t], sens[t], bsens[t]), ctx)
        action = choose_action(sig, thresholds[t], stability, intensity)
        if action != IGNORE:
            append((t, action, sig))
    return kept


def _type_multiplier(weight: float, sensitivity: float, behavior_sensitivity: float) -> float:
    """One type's ``w_type · m``, computed by lifelab's own :func:`type_multipliers`."""
    return type_multipliers((weight,), (sensitivity,), (behavior_sensitivity,))[0]


class _Organism:
    """What the per-event rule reads, taken from a real organism (one event per tick).

    ``states`` are (context factor, stability) every ``_STATE_TICKS`` ticks of a default Life;
    the tables (meaning weights, learned sensitivities, thresholds) are those it ends with.
    """

    def __init__(self, seed: int) -> None:
        from lifelab.life.loop import Life

        life = Life(LifeConfig(seed=seed))
        self.states: list[tuple[float, float]] = []
        for _ in range(_STATE_SAMPLES):
            life.run(_STATE_TICKS)
            s = life.state
            ctx = context(s.integrity, s.stability, s.subjective_time / s.age)
            self.states.append((ctx, s.stability))
        s = life.state
        rows = life.types.rows
        self.weights = [r.meaning_weight for r in rows]
        self.sensitivity = list(s.sensitivity)
        self.behavior_sensitivity = list(s.behavior_sensitivity)
        self.multipliers = type_multipliers(
            self.weights, self.sensitivity, self.behavior_sensitivity
        )
        self.thresholds = list(s.behavior_threshold)
        self.base = (
            [r.energy for r in rows],
            [r.stability for r in rows],
            [r.integrity for r in rows],
        )
        self.coef = dict(s.response_coef)

    def stream(self, n: int, seed: int) -> list[_Inputs]:
        """``n`` events drawn by the built-in environment, each with its tick's state."""
        from lifelab.life.environment import Environment
        from lifelab.life.events import TypeTable
        from lifelab.life.rng import streams_for_seed

        env = Environment(TypeTable(), 1.0, "fixed", streams_for_seed(seed, 3))
        types, intensities = env.draw(n)
        states = self.states
        k = len(states)
        return [
            (t, x, *states[(i // _STATE_TICKS) % k])
            for i, (t, x) in enumerate(zip(types.tolist(), intensities.tolist(), strict=True))
        ]


class _MemoBench:
    """The per-event rule over one stream: plain, and memoised two ways (bounded caches)."""

    def __init__(self, organism: _Organism, n: int, seed: int) -> None:
        self.organism = organism
        self.stream = organism.stream(n, seed)
        cache = functools.lru_cache(maxsize=_CACHE_SIZE, typed=True)
        self.cached_significance = cache(significance)
        self.cached_choose_action = cache(choose_action)
        self.cached_multiplier = cache(_type_multiplier)

    def run(self, variant: str) -> _Kept:
        o = self.organism
        if variant == MEMO_PLAIN:
            return _appraise(self.stream, o.multipliers, o.thresholds, significance, choose_action)
        if variant == MEMO_EXACT:
            return _appraise(
                self.stream,
                o.multipliers,
                o.thresholds,
                self.cached_significance,
                self.cached_choose_action,
            )
        tables = (o.weights, o.sensitivity, o.behavior_sensitivity)
        return _appraise_per_type(self.stream, tables, o.thresholds, self.cached_multiplier)

    def timed(self, variant: str) -> dict[str, float]:
        # every round starts with cold caches, so every round does the same work
        self.cached_significance.cache_clear()
        self.cached_choose_action.cache_clear()
        self.cached_multiplier.cache_clear()
        ms = timed_ms(lambda: self.run(variant))
        return {"ns_per_call": ms * 1e6 / len(self.stream)}

    def variants(self) -> dict[str, Callable[[], dict[str, float]]]:
        return {name: functools.partial(self.timed, name) for name in _MEMO_VARIANTS}

    def check(self) -> dict[str, _Kept]:
        """Every variant's kept list for the stream; raises unless they are identical."""
        out = {name: self.run(name) for name in _MEMO_VARIANTS}
        for name, kept in out.items():
            if kept != out[MEMO_PLAIN]:
                raise AblationError(f"memoisation: {name} decides differently from the plain rule")
        return out


def memoisation_ablation(
    sizes: Sequence[int] = (10_000, 100_000), *, repeats: int = 7, seed: int = 0
) -> pl.DataFrame:
    """``ns_per_call``: the per-event appraisal + decision, plain against memoised, per event.

    The per-event functions (:func:`~lifelab.life.meaning.significance`,
    :func:`~lifelab.life.behavior.choose_action`) take floats: the intensity is continuous, so no
    coarser key keeps ``significance`` identical, and ``choose_action`` depends only on four
    comparisons, so an identity-keeping key would be those comparisons, the function itself.
    Hence two memoised variants: ``lru_cache`` on the exact arguments, and ``lru_cache`` on the
    table lookup ``w_type · m`` (keyed on the type's weight and sensitivities), which the loop
    instead recomputes into a list after each learning pass. Events are drawn by the built-in
    environment; the state comes from a default organism sampled every 16 ticks (held between
    samples, which can only flatter the caches). Baseline and chosen: plain.
    """
    sizes = _check_sizes("memoisation", sizes, 1)
    organism = _Organism(seed)
    samples: list[Sample] = []
    for n in sizes:
        bench = _MemoBench(organism, n, seed)
        bench.check()
        samples += _samples(interleave(bench.variants(), repeats=repeats), n)
    return ablation_table("memoisation", samples, baseline=MEMO_PLAIN, chosen=MEMO_PLAIN, seed=seed)


# -- all four --------------------------------------------------------------------------------------

_ABLATIONS: dict[str, Callable[..., pl.DataFrame]] = {
    "decay": decay_ablation,
    "entry_storage": entry_storage_ablation,
    "archive_index": archive_index_ablation,
    "memoisation": memoisation_ablation,
}
# Arguments by scale: "quick" uses each function's defaults, "full" is for a quiet machine,
# "smoke" only checks that everything runs (CI, the experiment's [smoke] table).
_SMOKE: dict[str, dict[str, Any]] = {
    "decay": {"sizes": (300, 2_000), "repeats": 2},
    "entry_storage": {"sizes": (500, 2_000), "repeats": 2},
    "archive_index": {"sizes": (1_000,), "repeats": 2, "searches": 10},
    "memoisation": {"sizes": (1_000,), "repeats": 2},
}
_FULL: dict[str, dict[str, Any]] = {
    "decay": {"sizes": (1_000, 10_000, 100_000, 1_000_000), "repeats": 15},
    "entry_storage": {"sizes": (10_000, 100_000, 1_000_000), "repeats": 7},
    "archive_index": {"sizes": (10_000, 100_000, 1_000_000), "repeats": 7, "searches": 100},
    "memoisation": {"sizes": (10_000, 100_000, 1_000_000), "repeats": 11},
}


def run_all(
    root: str | Path = "data/results/ablations",
    *,
    scale: str = "quick",
    progress: bool = True,
    seed: int = 0,
) -> list[Path]:
    """Run the four ablations and write each table to ``root/<ablation>.parquet``.

    ``scale``: "quick" (small sizes, few repeats: under a minute), "full" (to a million
    entries; a quiet machine, minutes) or "smoke" (tiny: checks that it runs). Returns the paths
    written, in :data:`QUESTIONS` order.
    """
    scales = {"smoke": _SMOKE, "quick": {key: {} for key in _ABLATIONS}, "full": _FULL}
    if scale not in scales:
        raise AblationError(f"scale must be one of {sorted(scales)}, got {scale!r}")
    from tqdm.auto import tqdm

    from lifelab.studies.ablation import write_ablation

    paths = []
    with tqdm(total=len(_ABLATIONS), desc="ablate memory", disable=not progress) as bar:
        for name, fn in _ABLATIONS.items():
            bar.set_postfix_str(name)
            kwargs = scales[scale][name]
            table = fn(**kwargs, seed=seed)
            paths.append(write_ablation(table, question=QUESTIONS[name], root=root))
            bar.update()
    return paths
