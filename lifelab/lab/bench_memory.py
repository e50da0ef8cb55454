"""``lifelab bench memory``: size and speed of active memory and of the SQLite archive at N entries.

Method (DESIGN.md §3): the data come from one seeded numpy Generator and are built before any
clock starts; every timed operation is warmed up first, timed with ``perf_counter_ns`` and
reported as the median of repeats (searches as percentiles). Memory is measured on an
:class:`~lifelab.memory.active.ActiveMemory` of capacity N filled with N entries by ``add_batch``
in batches of 64, the way the tick loop writes, so ``bytes_per_entry`` includes whatever the
store's growth policy over-allocates; ``bytes_per_slot`` is the column itemsizes alone (64).

The store's spill callback is an in-memory sink, so decay and spill figures time the memory side
only; the archive is benchmarked after, on its own: it receives the spilled 10 % first (the only
``append`` that is timed, ``archive_append_ms``, tick-thread side) and then the remaining 90 %, so
it ends up holding exactly the N entries written (DESIGN §2, invariant 4). With ``archive=False``
every ``archive_*`` key is present and None, so the output always has the same shape.

Snapshot captures (``capture_*``) are timed last, on the full store: it then takes new
entries, spills and a decay pass between captures, the way a run does between snapshots.

The workload is public so that other measurements use the same entries (the memory ablations
do): :class:`SeededHistory` (the entries), :class:`SpillSink` (a spill target that does no
I/O), :func:`fill_memory` (a full store, and its size) and :func:`empty_memory`.

Instructions per decay pass, per spilled entry and per search (``bench memory --instructions``,
valgrind, on this workload) are :func:`lifelab.lab.instructions.bench_memory_instructions`.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lifelab.memory.active import COLUMNS, KIND_EVENT, KIND_FEEDBACK, ActiveMemory

__all__ = [
    "APPEND_SAMPLE",
    "ARCHIVE_CHUNK",
    "ARCHIVE_KEYS",
    "BATCH",
    "SEARCH_LIMIT",
    "SeededHistory",
    "SpillSink",
    "bench_memory",
    "empty_memory",
    "fill_memory",
    "progress_total",
]

BATCH = 64  # entries per add_batch call, the loop's default batch size
TICK_S = 0.1  # life seconds between two batches of the generated history
FEEDBACK_SHARE = 0.25  # share of batches written as feedback entries
N_ACTIONS = 4  # ignore, dampen, absorb, amplify (lifelab.life.behavior)
ACTIVATION_K = 5  # the "accelerated" k of DESIGN §1.7, the largest
APPEND_SAMPLE = 200_000  # entries per timed add()/add_batch() repeat (fewer when N is smaller)
APPEND_REPEATS = 5
DECAY_PASSES = 7
SPILL_REPEATS = 5
ACTIVATION_CALLS = 51
SEARCH_WARMUP = 10
CAPTURE_REPEATS = 7
CAPTURE_NEW = 1_024  # entries written between two captures (fewer below 8 192 entries)
SEARCH_LIMIT = 100
ARCHIVE_CHUNK = 10_000  # rows per append + flush while the archive is built
MIN_ENTRIES = 100

# Keys that are None when the archive is skipped.
ARCHIVE_KEYS = (
    "archive_entries",
    "archive_append_ms",
    "archive_insert_rows_per_s",
    "archive_file_bytes_per_entry",
    "archive_idle_flush_us",
    "archive_search_p50_ms",
    "archive_search_p99_ms",
    "archive_search_rows_mean",
)

Progress = Callable[[int], Any]


def progress_total(entries: int, archive: bool = True) -> int:
    """Units ``bench_memory`` reports to ``progress``: entries filled, then entries archived."""
    return entries * (2 if archive else 1)


def bench_memory(
    *,
    entries: int = 1_000_000,
    seed: int = 0,
    archive: bool = True,
    searches: int = 200,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Benchmark active memory (and the SQLite archive) at ``entries`` entries.

    Returns the ``bench memory`` JSON keys of DESIGN §5 and more, units in the names:

    - ``bytes_per_entry``: allocated column bytes / live entries of a store of capacity N filled
      with N entries (``allocated_entries`` slots, ``allocated_bytes``); ``bytes_per_slot`` is the
      sum of the COLUMNS itemsizes; ``traced_bytes_per_entry`` is what tracemalloc saw the store
      keep (Python objects included) and ``fill_traced_peak_mb`` the peak while it grew.
    - ``append_ns`` / ``append_batch_ns``: ns per entry of ``add()`` (Python loop included) and of
      ``add_batch()`` in batches of 64, into a store whose allocation is already large enough.
    - ``decay_ms``: one decay pass over N live entries that spills nothing (``decay_ns_per_entry``);
      ``kernel_decay_ms``: the same pass by the compiled engine's kernel (None without numba).
    - ``spill_ms``: ``enforce_capacity()`` spilling 10 % (N → 0.9 N), ``spill_method`` says so;
      ``spill_batch_ms``: ``enforce_capacity()`` spilling one batch of 64 from a full store (what
      a tick pays at capacity); ``decay_spill_ms``: a decay pass whose ``min_weight`` makes it
      spill 10 %.
    - ``activation_us``: top-5 activation of one random type at N entries.
    - ``capture_ms``: what a snapshot costs the tick thread at N entries (``ActiveMemory.capture``;
      ``Life.capture`` adds the canonical state, ~0.01 ms), when ``capture_new_entries`` were
      written since the previous capture and, between the two, entries spilled at capacity and
      a decay pass rewrote every weight; ``capture_assemble_ms``: the snapshot thread's work to
      assemble that capture's columns; ``capture_whole_ms``: a capture without a previous one
      (the first of a run), which copies every column.
    - ``archive_*``: see the module docstring; searches are ``event_type=T, since=A, until=B,
      limit=100`` with random T and window, each including the archive's flush hand-shake
      (``archive_idle_flush_us`` alone).

    ``progress`` is called with counts of entries, :func:`progress_total` in all.
    """
    for name, value, low in (("entries", entries, MIN_ENTRIES), ("searches", searches, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    report = progress if progress is not None else _ignore
    rng = np.random.default_rng(seed)
    data = SeededHistory(entries, rng)
    out: dict[str, Any] = {"entries": entries, "seed": seed}

    sink = SpillSink()
    mem, sizes = fill_memory(data, sink=sink, progress=report)
    out.update(sizes)
    out.update(_appends(data, sink))
    out.update(_decay(mem, data))
    out.update(_activation(mem, len(data.type_names), rng))
    spilled, kept = _spill(mem, data, out)
    out.update(_capture(mem, data))
    del mem
    if archive:
        out.update(_archive(spilled, kept, data, rng, searches, report))
    else:
        out.update(dict.fromkeys(ARCHIVE_KEYS))
    return out


# -- the workload ----------------------------------------------------------------------------------


def _ignore(_: int) -> None:
    pass


class SpillSink:
    """A spill target that does no I/O: keeps the last spilled batch (``last``) and counts rows.

    Pass it to :class:`~lifelab.memory.active.ActiveMemory` as its spill callback so that decay
    and spill timings cover the memory side only.
    """

    __slots__ = ("last", "rows")

    def __init__(self) -> None:
        self.last: dict[str, np.ndarray] | None = None
        self.rows = 0

    def __call__(self, columns: dict[str, np.ndarray]) -> None:
        self.last = columns
        self.rows += len(columns["id"])


class SeededHistory:
    """``n`` seeded entries in batches of 64 with increasing times, built before any clock starts.

    Event types are uniform over the built-in types (``type_names``), actions over the four
    actions, significances uniform in [0, 1); a quarter of the batches (:data:`FEEDBACK_SHARE`)
    are feedback entries with small feedback deltas. Batch ``b`` happens at life time
    ``b * TICK_S`` and tick ``b``; ``end_s`` is the time just after the last batch. The same
    ``n`` and generator state give the same entries.
    """

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        from lifelab.life.events import builtin_types

        self.n = n
        self.type_names = tuple(t.name for t in builtin_types())  # 23: 22 + memory_echo
        self.types = rng.integers(0, len(self.type_names), n, dtype=np.int16)
        self.actions = rng.integers(0, N_ACTIONS, n, dtype=np.int8)
        self.sigs = rng.random(n)
        self.feedback = rng.normal(0.0, 0.05, (3, n)).astype(np.float32)
        n_batches = -(-n // BATCH)
        self.kinds = np.where(rng.random(n_batches) < FEEDBACK_SHARE, KIND_FEEDBACK, KIND_EVENT)
        self.end_s = n_batches * TICK_S  # life time just after the last batch

    def batches(self, n: int) -> list[tuple[Any, ...]]:
        """``add_batch`` argument tuples covering the first ``n`` entries."""
        out = []
        for b, start in enumerate(range(0, n, BATCH)):
            end = min(start + BATCH, n)
            kind = int(self.kinds[b])
            fb = (0.0, 0.0, 0.0)
            if kind == KIND_FEEDBACK:
                fb = tuple(self.feedback[:, start:end])
            t = b * TICK_S
            types, actions, sigs = (
                self.types[start:end],
                self.actions[start:end],
                self.sigs[start:end],
            )
            out.append((types, kind, actions, sigs, t, t, b, fb))
        return out

    def rows(self, n: int) -> list[tuple[Any, ...]]:
        """``add`` argument tuples (Python scalars, event entries) for the first ``n`` entries."""
        t = (np.arange(n) // BATCH * TICK_S).tolist()
        tick = (np.arange(n) // BATCH).tolist()
        types = self.types[:n].tolist()
        actions = self.actions[:n].tolist()
        sigs = self.sigs[:n].tolist()
        return list(zip(types, actions, sigs, t, tick, strict=True))


def _median_ns(samples: list[int]) -> float:
    return float(np.median(np.asarray(samples, dtype=np.float64)))


# -- active memory ---------------------------------------------------------------------------------


def fill_memory(
    data: SeededHistory, *, sink: SpillSink | None = None, progress: Progress | None = None
) -> tuple[ActiveMemory, dict[str, Any]]:
    """A store of capacity N filled with the N entries of ``data`` by ``add_batch``, and its size.

    Filled untimed under tracemalloc (``min_weight`` 0, so nothing spills); ``sink`` is its spill
    target (None: a new :class:`SpillSink`). The size keys are ``bench memory``'s:
    ``allocated_entries``, ``allocated_bytes``, ``bytes_per_entry``, ``bytes_per_slot``,
    ``traced_bytes_per_entry`` and ``fill_traced_peak_mb``. ``progress`` is called with counts of
    entries written, ``data.n`` in all.
    """
    report = progress if progress is not None else _ignore
    batches = data.batches(data.n)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        mem = ActiveMemory(data.n, sink if sink is not None else SpillSink(), min_weight=0.0)
        add_batch = mem.add_batch
        done = 0
        for i, args in enumerate(batches, 1):
            add_batch(*args)
            if i % 1024 == 0:
                report(len(mem) - done)
                done = len(mem)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    report(len(mem) - done)
    n = len(mem)
    per_slot = sum(dtype.itemsize for dtype in COLUMNS.values())
    allocated = mem.nbytes()
    return mem, {
        "allocated_entries": allocated // per_slot,
        "allocated_bytes": allocated,
        "bytes_per_entry": allocated / n,
        "bytes_per_slot": per_slot,
        "traced_bytes_per_entry": (current - before) / n,
        "fill_traced_peak_mb": (peak - before) / 2**20,
    }


def empty_memory(mem: ActiveMemory, now: float) -> None:
    """Spill every entry of ``mem`` (to its spill target) so that the next writes reuse the
    allocation; ``now`` is a life time no earlier than the newest entry's."""
    floor = mem.min_weight
    mem.min_weight = math.inf
    mem.decay(now)
    mem.min_weight = floor


def _appends(data: SeededHistory, sink: SpillSink) -> dict[str, float]:
    """ns per entry of add() and of add_batch(), on a pre-grown store; the first repeat warms."""
    n = min(APPEND_SAMPLE, data.n)
    rows = data.rows(n)
    batches = data.batches(n)
    mem = ActiveMemory(data.n, sink, min_weight=0.0)
    for args in batches:  # grows the allocation once, outside the clock
        mem.add_batch(*args)
    clock = time.perf_counter_ns
    single: list[int] = []
    batched: list[int] = []
    for _ in range(APPEND_REPEATS + 1):
        empty_memory(mem, data.end_s)
        add = mem.add
        t0 = clock()
        for event_type, action, sig, t, tick in rows:
            add(event_type, KIND_EVENT, action, sig, t, t, tick)
        single.append(clock() - t0)
        empty_memory(mem, data.end_s)
        add_batch = mem.add_batch
        t0 = clock()
        for args in batches:
            add_batch(*args)
        batched.append(clock() - t0)
    return {
        "append_ns": _median_ns(single[1:]) / n,
        "append_batch_ns": _median_ns(batched[1:]) / n,
    }


def _decay(mem: ActiveMemory, data: SeededHistory) -> dict[str, float]:
    """One decay pass over every live entry with min_weight 0, so nothing spills."""
    clock = time.perf_counter_ns
    samples = []
    for p in range(DECAY_PASSES + 1):
        now = data.end_s + 10.0 * p
        t0 = clock()
        gone = mem.decay(now)
        samples.append(clock() - t0)
        if gone:
            raise RuntimeError(f"decay pass {p} spilled {gone} entries; the bench expects none")
    ms = _median_ns(samples[1:]) / 1e6
    out = {"decay_ms": ms, "decay_ns_per_entry": ms * 1e6 / len(mem)}
    out.update(_kernel_decay(mem, data))
    return out


def _kernel_decay(mem: ActiveMemory, data: SeededHistory) -> dict[str, float | None]:
    """The same pass as the compiled engine runs it (None without numba)."""
    try:
        from lifelab.life.kernel import decay_pass
    except ImportError:
        return {"kernel_decay_ms": None}
    samples = []
    for p in range(DECAY_PASSES + 2):  # the first pass loads the kernel from numba's cache
        gone, seconds = decay_pass(mem, data.end_s + 10.0 * (DECAY_PASSES + 1 + p))
        samples.append(seconds)
        if gone:
            raise RuntimeError(f"kernel decay pass {p} spilled {gone} entries; expected none")
    return {"kernel_decay_ms": float(np.median(samples[2:])) * 1e3}


def _activation(mem: ActiveMemory, n_types: int, rng: np.random.Generator) -> dict[str, float]:
    """Top-k activation of one random type at N entries; the first five calls warm up."""
    types = rng.integers(0, n_types, ACTIVATION_CALLS + 5).tolist()
    clock = time.perf_counter_ns
    samples = []
    for t in types:
        t0 = clock()
        mem.activation(t, ACTIVATION_K)
        samples.append(clock() - t0)
    return {"activation_us": _median_ns(samples[5:]) / 1e3}


def _capture(mem: ActiveMemory, data: SeededHistory) -> dict[str, float]:
    """Snapshot captures of the full store: whole copies, then deltas in the steady state.

    Between two delta captures the store takes ``capture_new_entries`` entries in batches of
    64, each batch followed by enforce_capacity (spills fill their holes with the newest rows),
    then one decay pass. Each capture is assembled right after it is taken, as the snapshot
    thread does, so the next one finds it as its base.
    """
    n = len(mem)
    new = max(1, min(CAPTURE_NEW, n // 8))
    batches = data.batches(new)
    clock = time.perf_counter_ns
    whole: list[int] = []
    share = mem.delta_max_new_share
    mem.delta_max_new_share = -1.0  # no delta: every capture copies whole columns
    try:
        for _ in range(CAPTURE_REPEATS + 1):
            t0 = clock()
            cap = mem.capture()
            whole.append(clock() - t0)
            cap.resolve()
    finally:
        mem.delta_max_new_share = share
    steady: list[int] = []
    assemble: list[int] = []
    now = data.end_s + 10.0 * (DECAY_PASSES + 2)
    for _ in range(CAPTURE_REPEATS + 1):
        for args in batches:
            mem.add_batch(*args)
            mem.enforce_capacity()
        now += 10.0
        mem.decay(now)
        t0 = clock()
        cap = mem.capture()
        t1 = clock()
        cap.resolve()
        t2 = clock()
        steady.append(t1 - t0)
        assemble.append(t2 - t1)
    return {
        "capture_ms": _median_ns(steady[1:]) / 1e6,
        "capture_new_entries": new,
        "capture_assemble_ms": _median_ns(assemble[1:]) / 1e6,
        "capture_whole_ms": _median_ns(whole[1:]) / 1e6,
    }


def _spill(
    mem: ActiveMemory, data: SeededHistory, out: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Time spilling 10 % two ways, and one batch, each on a fresh copy of the full store.

    Returns the last enforce_capacity spill and what stayed, for the archive.
    """
    n = len(mem)
    cut = n // 10
    columns = mem.export()
    next_id = mem.next_id
    clock = time.perf_counter_ns

    def fresh(capacity: int, min_weight: float, sink: SpillSink) -> ActiveMemory:
        copy = ActiveMemory(capacity, sink, min_weight=min_weight)
        copy.load(columns, next_id=next_id, spilled=0)
        return copy

    sink = SpillSink()
    samples = []
    for _ in range(SPILL_REPEATS + 1):
        copy = fresh(n - cut, 0.0, sink)
        t0 = clock()
        gone = copy.enforce_capacity()
        samples.append(clock() - t0)
    assert sink.last is not None
    spilled, kept = sink.last, copy.export()

    # What a tick at steady state pays: one batch over capacity.
    batch_samples = []
    for _ in range(SPILL_REPEATS + 1):
        copy = fresh(n - BATCH, 0.0, SpillSink())
        t0 = clock()
        copy.enforce_capacity()
        batch_samples.append(clock() - t0)

    # The weight under which the next decay pass leaves 10 %: decay a copy once and look.
    now = data.end_s + 10.0 * (DECAY_PASSES + 1)
    probe = fresh(n, 0.0, SpillSink())
    probe.decay(now)
    floor = float(np.partition(probe.columns()["weight"], cut)[cut])
    del probe
    decay_samples = []
    for _ in range(SPILL_REPEATS + 1):
        copy = fresh(n, floor, SpillSink())
        t0 = clock()
        decay_gone = copy.decay(now)
        decay_samples.append(clock() - t0)
    del copy
    out.update(
        spill_method="enforce_capacity",
        spill_ms=_median_ns(samples[1:]) / 1e6,
        spill_entries=gone,
        spill_batch_ms=_median_ns(batch_samples[1:]) / 1e6,
        decay_spill_ms=_median_ns(decay_samples[1:]) / 1e6,
        decay_spill_entries=decay_gone,
    )
    return spilled, kept


# -- archive ---------------------------------------------------------------------------------------


def _archive(
    spilled: dict[str, np.ndarray],
    kept: dict[str, np.ndarray],
    data: SeededHistory,
    rng: np.random.Generator,
    searches: int,
    report: Progress,
) -> dict[str, Any]:
    """Build an archive of the N entries in a temporary directory, then time searches on it."""
    from lifelab.memory.sqlite_archive import SQLiteArchive

    tmp = Path(tempfile.mkdtemp(prefix="lifelab-bench-memory-"))
    path = tmp / "archive.sqlite"
    clock = time.perf_counter_ns
    try:
        store = SQLiteArchive(path, type_names=data.type_names)
        try:
            t0 = clock()
            store.append(spilled)  # tick-thread side: checks, then a queue put
            append_ns = clock() - t0
            store.flush()
            report(len(spilled["id"]))
            rest = len(kept["id"])
            for start in range(0, rest, ARCHIVE_CHUNK):
                stop = min(start + ARCHIVE_CHUNK, rest)
                store.append({name: col[start:stop] for name, col in kept.items()})
                store.flush()
                report(stop - start)
            insert_ns = clock() - t0
            out: dict[str, Any] = {
                "archive_entries": store.count(),
                "archive_append_ms": append_ns / 1e6,
                "archive_insert_rows_per_s": data.n / (insert_ns / 1e9),
            }
            out.update(_searches(store, data, rng, searches))
        finally:
            store.close()
        out["archive_file_bytes_per_entry"] = path.stat().st_size / data.n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {key: out[key] for key in ARCHIVE_KEYS}


def _searches(
    store: Any, data: SeededHistory, rng: np.random.Generator, n: int
) -> dict[str, float]:
    """Time ``n`` type + time-window searches (limit 100) after a few untimed ones."""
    total = n + SEARCH_WARMUP
    types = rng.integers(0, len(data.type_names), total).tolist()
    windows = np.sort(rng.uniform(0.0, data.end_s, (total, 2)), axis=1).tolist()
    clock = time.perf_counter_ns
    samples = []
    rows = 0
    for i, (t, (since, until)) in enumerate(zip(types, windows, strict=True)):
        t0 = clock()
        found = store.search(event_type=t, since=since, until=until, limit=SEARCH_LIMIT)
        elapsed = clock() - t0
        if i >= SEARCH_WARMUP:
            samples.append(elapsed)
            rows += len(found["id"])
    flushes = []
    for _ in range(SEARCH_WARMUP + 1):
        t0 = clock()
        store.flush()
        flushes.append(clock() - t0)
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    return {
        "archive_search_p50_ms": float(np.percentile(ms, 50)),
        "archive_search_p99_ms": float(np.percentile(ms, 99)),
        "archive_search_rows_mean": rows / n,
        "archive_idle_flush_us": _median_ns(flushes[1:]) / 1e3,
    }
