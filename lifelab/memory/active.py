"""Active memory: a columnar store with decay, spill and activation.

No Python object per entry. The columns that decay and activation read (significance, weight,
timestamp, event type) are contiguous numpy arrays, so a pass over a million entries streams
24 MB. The other eight fields live in one 38-byte record array that moves as opaque bytes (a void
view) when entries spill: one fancy-index copy instead of eight, measured 2.8 µs instead of
~20 µs at a hundred entries. A spill fills the holes it leaves with entries from the end of the
columns (O(entries leaving), not O(all entries): 37 ms → a few ms per tick at a full million), so
column order is not id order: "ties oldest first" compares ids. Single entries are written
straight into the columns through cached views (~1 µs); staging them in a list and converting in
bulk measured slower (~2.5 µs per entry).

Snapshots take :meth:`ActiveMemory.capture`, which copies on the tick thread only what changed
since the newest capture already assembled (see :class:`CapturedColumns`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lifelab.exceptions import SnapshotError

__all__ = [
    "COLUMNS",
    "KIND_EVENT",
    "KIND_FEEDBACK",
    "ActiveMemory",
    "CapturedColumns",
    "check_columns",
]

KIND_EVENT = 0
KIND_FEEDBACK = 1

# Contiguous columns: the three every decay pass reads, and the type that activation and
# learning filter on (a strided int16 inside the record made a 1M-entry activation 12 ms).
_HOT = ("significance", "weight", "timestamp", "event_type")
# The record of the other fields; offsets stay naturally aligned.
_RECORD = np.dtype(
    [
        ("id", np.int64),
        ("subjective_timestamp", np.float64),
        ("tick", np.int64),
        ("feedback_energy", np.float32),
        ("feedback_stability", np.float32),
        ("feedback_integrity", np.float32),
        ("kind", np.int8),
        ("action", np.int8),
    ]
)
_RAW = np.dtype((np.void, _RECORD.itemsize))

# Column name -> dtype, in a stable order. 64 bytes per entry, every column included.
COLUMNS: dict[str, np.dtype[Any]] = {
    "id": np.dtype(np.int64),
    "event_type": np.dtype(np.int16),
    "kind": np.dtype(np.int8),
    "action": np.dtype(np.int8),
    "significance": np.dtype(np.float64),
    "weight": np.dtype(np.float64),
    "timestamp": np.dtype(np.float64),
    "subjective_timestamp": np.dtype(np.float64),
    "tick": np.dtype(np.int64),
    "feedback_energy": np.dtype(np.float32),
    "feedback_stability": np.dtype(np.float32),
    "feedback_integrity": np.dtype(np.float32),
}
SECONDS_PER_DAY = 86_400.0
_DECAY_BLOCK = 32_768
_VICTIMS = 256  # entries enforce_capacity selects at once (see _select_victims)
# A capture copies whole columns instead of a delta when more than this share of the live rows
# may be new since its base (entries written since then / live rows). At 10^6 entries a delta
# took 11-12 ms with 8-29 % new, a whole copy 7.4-29 ms (fresh pages): see ActiveMemory.capture.
DELTA_MAX_NEW_SHARE = 0.25
_SCAN_BLOCK = 65_536  # ids a delta capture copies and scans at once (see CapturedColumns._delta)

Spill = Callable[[dict[str, np.ndarray]], None]


class ActiveMemory:
    """The organism's active memories, bounded by ``capacity``; what leaves goes to ``spill``.

    Args:
        capacity: Most entries kept after :meth:`enforce_capacity`.
        spill: Called with a dict of column arrays (copies) for every batch of entries leaving.
        min_weight: Entries whose weight decays below this spill.
        decay_factor: ``f`` in ``w <- w·f·1/(1 + age_s/86400)·(0.5 + 0.5·sig)``.
    """

    __slots__ = (
        "_base",
        "_base_lock",
        "_cols",
        "_epoch",
        "_hot",
        "_n",
        "_ordered",
        "_rec",
        "_size",
        "_victim_set",
        "_victims",
        "capacity",
        "decay_factor",
        "delta_max_new_share",
        "min_weight",
        "next_id",
        "spill",
        "spilled",
    )

    def __init__(
        self,
        capacity: int,
        spill: Spill,
        *,
        min_weight: float = 0.1,
        decay_factor: float = 0.99,
    ) -> None:
        self.capacity = capacity
        self.spill = spill
        self.min_weight = min_weight
        self.decay_factor = decay_factor
        self.next_id = 0  # entries ever written; the next entry's id
        self.spilled = 0  # entries ever handed to ``spill``
        self._n = 0
        self._size = 0
        self._hot: dict[str, np.ndarray] = {}
        self._rec = np.empty(0, _RECORD)
        self._victims: list[int] | None = None  # enforce_capacity's next spills (see there)
        self._victim_set: set[int] = set()
        # capture(): the newest capture assembled so far (the base of the next delta; set by
        # whichever thread assembles one), and the contents' epoch (load() starts a new one)
        self._base: CapturedColumns | None = None
        self._base_lock = threading.Lock()
        self._epoch = 0
        self.delta_max_new_share = DELTA_MAX_NEW_SHARE
        self._allocate(min(capacity, 1024))

    def _allocate(self, size: int) -> None:
        """(Re)allocate storage for ``size`` entries, keeping the live ones."""
        n = self._n
        hot = {}
        for name in _HOT:
            col = np.empty(size, COLUMNS[name])
            if n:
                col[:n] = self._hot[name][:n]
            hot[name] = col
        rec = np.empty(size, _RECORD)
        if n:
            rec[:n] = self._rec[:n]
        self._hot = hot
        self._rec = rec
        self._size = size
        # Field views are cached: creating one costs ~0.3 µs, more than the store itself.
        self._cols = {name: hot[name] if name in hot else rec[name] for name in COLUMNS}
        self._ordered = tuple(self._cols.values())  # COLUMNS order, for add()

    # -- writing -------------------------------------------------------------------------------

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
        """Write one entry (weight 1.0) and return its id."""
        i = self._n
        if i == self._size:
            self._reserve(i + 1)
        entry_id = self.next_id
        (c_id, c_type, c_kind, c_action, c_sig, c_weight, c_ts, c_sts, c_tick, c_fe, c_fs, c_fi) = (
            self._ordered
        )
        c_id[i] = entry_id
        c_type[i] = event_type
        c_kind[i] = kind
        c_action[i] = action
        c_sig[i] = significance
        c_weight[i] = 1.0
        c_ts[i] = timestamp
        c_sts[i] = subjective_timestamp
        c_tick[i] = tick
        c_fe[i], c_fs[i], c_fi[i] = feedback
        self._n = i + 1
        self.next_id = entry_id + 1
        return entry_id

    def add_batch(
        self,
        event_type: np.ndarray,
        kind: int,
        action: np.ndarray | int,
        significance: np.ndarray,
        timestamp: float,
        subjective_timestamp: float,
        tick: int,
        feedback: tuple[Any, Any, Any] = (0.0, 0.0, 0.0),
    ) -> None:
        """Write ``len(event_type)`` entries that share a time and a kind, vectorised.

        ``feedback`` holds three floats or three per-entry arrays.
        """
        k = len(event_type)
        if k == 0:
            return
        start = self._n
        self._reserve(start + k)
        end = start + k
        c = self._cols
        c["id"][start:end] = np.arange(self.next_id, self.next_id + k)
        c["event_type"][start:end] = event_type
        c["kind"][start:end] = kind
        c["action"][start:end] = action
        c["significance"][start:end] = significance
        c["weight"][start:end] = 1.0
        c["timestamp"][start:end] = timestamp
        c["subjective_timestamp"][start:end] = subjective_timestamp
        c["tick"][start:end] = tick
        c["feedback_energy"][start:end] = feedback[0]
        c["feedback_stability"][start:end] = feedback[1]
        c["feedback_integrity"][start:end] = feedback[2]
        self.next_id += k
        self._n = end

    def _reserve(self, size: int) -> None:
        if size > self._size:
            # Doubling, but not far past capacity: a store of capacity C holds C entries plus
            # what one tick can add before enforce_capacity, so 10 000 fits in 11 024 slots
            # (70 B/entry), not 16 384 (105 B/entry).
            self._allocate(max(size, min(2 * self._size, self.capacity + 1024)))

    # -- decay and spill ---------------------------------------------------------------------

    def decay(self, now: float) -> int:
        """Apply one decay pass at life time ``now`` and spill entries under ``min_weight``.

        ``w ← w · f · 1/(1 + age_s/86400) · (0.5 + 0.5·sig)``, computed as
        ``w · (sig + 1)·(f/2)·86400 / (86400 + now − timestamp)`` (the same factor in five array
        operations instead of nine: at a few hundred entries each numpy call costs more than the
        arithmetic). Returns the number of entries spilled.
        """
        n = self._n
        self._forget_victims()  # weights change: the spill order of enforce_capacity is stale
        if n == 0:
            return 0
        hot = self._hot
        sig, ts, weight = hot["significance"], hot["timestamp"], hot["weight"]
        scale = 0.5 * self.decay_factor * SECONDS_PER_DAY
        horizon = now + SECONDS_PER_DAY
        if n <= _DECAY_BLOCK:
            factor = sig[:n] + 1.0
            factor *= scale
            factor /= horizon - ts[:n]
            weight[:n] *= factor
            gone = weight[:n] < self.min_weight
        else:
            # NOTE: blocks for speed: whole-array temporaries of a million entries (8 MB each)
            # fall out of cache between the passes; blocks of _DECAY_BLOCK entries stay in L2,
            # and the threshold test reads each block's weights while they are still there
            # (a pass over memory is bandwidth-bound: this one saves re-reading 8 MB).
            f = np.empty(_DECAY_BLOCK)
            d = np.empty(_DECAY_BLOCK)
            gone = np.empty(n, dtype=bool)
            floor = self.min_weight
            for a in range(0, n, _DECAY_BLOCK):
                b = min(a + _DECAY_BLOCK, n)
                m = b - a
                np.add(sig[a:b], 1.0, out=f[:m])
                f[:m] *= scale
                np.subtract(horizon, ts[a:b], out=d[:m])
                f[:m] /= d[:m]
                w = weight[a:b]
                w *= f[:m]
                np.less(w, floor, out=gone[a:b])
        if not gone.any():
            return 0
        return self._spill_rows(np.flatnonzero(gone), gone)

    def enforce_capacity(self) -> int:
        """Spill the lowest-weight entries (ties: oldest first) until ``capacity`` is respected."""
        excess = self.next_id - self.spilled - self.capacity
        if excess <= 0:
            return 0
        victims = self._victims
        if victims is None or len(victims) < excess:
            victims = self._select_victims(excess)
            if victims is None:
                return self._spill_rows(self._lowest(excess))
        take = victims[-excess:]
        del victims[-excess:]
        self._victim_set.difference_update(take)
        take.sort()
        return self._spill_rows(np.array(take, dtype=np.intp))

    def _lowest(self, k: int) -> np.ndarray:
        """Row positions (ascending) of the ``k`` smallest entries by (weight, id)."""
        weight = self._hot["weight"][: self._n]
        kth = np.partition(weight, k - 1)[k - 1]
        lower = np.flatnonzero(weight < kth)
        need = k - len(lower)
        ties = np.flatnonzero(weight == kth)
        if len(ties) > need:  # oldest first: the smallest ids among equal weights
            ties = ties[np.argpartition(self._rec["id"][ties], need - 1)[:need]]
        return np.sort(np.concatenate((lower, ties)))

    def _select_victims(self, need: int) -> list[int] | None:
        """The next ``_VICTIMS`` entries to spill at capacity, smallest (weight, id) last.

        NOTE: amortised for speed: at capacity every tick spills about one entry, and selecting
        it from all N rows (a partition) made a tick O(N) — 5.9 ms at a million entries. One
        O(N) selection of the few hundred lowest serves the ticks until the next decay pass.
        It stays exact because only decay lowers weights (it clears this list) and every new
        entry comes in at weight 1.0 with a larger id, so it sorts after every listed entry
        of weight <= 1.0. None when fewer than ``need`` such entries exist (the caller then
        selects directly).
        """
        n = self._n
        c = min(n, max(need, _VICTIMS))
        cand = self._lowest(c) if c < n else np.arange(n)
        weight = self._hot["weight"][cand]
        order = np.lexsort((self._rec["id"][cand], weight))
        cand = cand[order]
        cand = cand[: np.searchsorted(weight[order], 1.0, side="right")]
        if len(cand) < need:
            self._forget_victims()
            return None
        victims: list[int] = cand[::-1].tolist()
        self._victims = victims
        self._victim_set = set(victims)
        return victims

    def _forget_victims(self) -> None:
        self._victims = None
        self._victim_set = set()

    def _spill_rows(self, gone_idx: np.ndarray, gone: np.ndarray | None = None) -> int:
        """Hand the rows at ``gone_idx`` (ascending) to ``spill``; fill their holes from the end.

        ``gone`` is the same set as a mask over the live rows, when the caller has one.
        """
        k = len(gone_idx)
        if k == 0:
            return 0
        n = self._n
        m = n - k
        # NOTE: hole filling for speed: the live rows past the new end move into the holes
        # below it, so a spill moves O(k) rows instead of compacting all n.
        cut = int(np.searchsorted(gone_idx, m))
        holes = gone_idx[:cut]
        if gone is not None:
            movers = np.flatnonzero(~gone[m:]) + m
        elif cut == k:
            movers = np.arange(m, n)
        else:
            movers = np.setdiff1d(np.arange(m, n), gone_idx[cut:], assume_unique=True)
        hot = self._hot
        # Index arrays, not boolean masks: col[idx] costs ~0.4 µs where col[:n][mask] ~1.5 µs.
        out = {name: col[gone_idx] for name, col in hot.items()}
        raw = self._rec.view(_RAW)
        spilled = raw[gone_idx].view(_RECORD)
        if len(holes):
            for col in hot.values():
                col[holes] = col[movers]
            raw[holes] = raw[movers]
            if self._victim_set:
                self._follow_moves(movers.tolist(), holes.tolist())
        for name in _RECORD.names:
            out[name] = spilled[name]
        self._n = m
        self.spilled += k
        self.spill(out)
        return k

    def _follow_moves(self, movers: list[int], holes: list[int]) -> None:
        """Keep the victim list pointing at its rows after a spill moved some of them."""
        victims, where = self._victims, self._victim_set
        assert victims is not None
        for src, dst in zip(movers, holes, strict=True):
            if src in where:
                victims[victims.index(src)] = dst
                where.discard(src)
                where.add(dst)

    # -- for an engine that writes the columns itself (life/compiled.py) -------------------------

    def storage(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The whole storage (not only live rows): significance, weight, timestamp, event_type
        and the record array of the other fields. Valid until the next :meth:`reserve`."""
        hot = self._hot
        return hot["significance"], hot["weight"], hot["timestamp"], hot["event_type"], self._rec

    @property
    def rows(self) -> int:
        """Live rows (equals ``len(self)`` after every tick)."""
        return self._n

    def reserve(self, size: int) -> None:
        """Make room for at least ``size`` rows (storage() arrays are replaced)."""
        self._reserve(size)

    def adopt(self, rows: int, next_id: int, spilled: int) -> None:
        """Take the counts an external engine left after writing the storage arrays."""
        self._n = rows
        self.next_id = next_id
        self.spilled = spilled
        self._forget_victims()

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        # every entry ever written is either active or spilled (DESIGN §2, invariant 4)
        return self.next_id - self.spilled

    def columns(self) -> dict[str, np.ndarray]:
        """Read-only views of the live columns (valid until the next write)."""
        n = self._n
        out = {}
        for name, col in self._cols.items():
            view = col[:n]
            view.flags.writeable = False
            out[name] = view
        return out

    def nbytes(self) -> int:
        """Bytes held by the column arrays (allocated, not only live rows)."""
        return sum(col.nbytes for col in self._cols.values())

    def activation(self, event_type: int, k: int) -> dict[str, np.ndarray]:
        """The top-``k`` active event entries of one type by significance (highest first).

        Ties in significance go to the oldest entry (smallest id).
        """
        n = self._n
        c = self._cols
        idx = np.flatnonzero(c["event_type"][:n] == event_type)
        idx = idx[c["kind"][idx] == KIND_EVENT]
        sig = c["significance"][idx]
        if len(idx) > k > 0:
            # O(n) selection, then an exact order among the few candidates
            kth = np.partition(sig, len(sig) - k)[len(sig) - k]
            keep = sig >= kth
            idx, sig = idx[keep], sig[keep]
        order = np.lexsort((c["id"][idx], -sig))[: max(k, 0)]
        idx = idx[order]
        return {name: col[idx] for name, col in c.items()}

    def type_stats(self, n_types: int, n_actions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts and significance sums per type, and action counts, over active event entries."""
        n = self._n
        c = self._cols
        events = c["kind"][:n] == KIND_EVENT
        types = c["event_type"][:n][events]
        counts = np.bincount(types, minlength=n_types)
        sig_sums = np.bincount(types, weights=c["significance"][:n][events], minlength=n_types)
        actions = np.bincount(c["action"][:n][events], minlength=n_actions)
        return counts, sig_sums, actions

    # -- snapshot support ------------------------------------------------------------------------

    def export(self) -> dict[str, np.ndarray]:
        """Copies of the live columns, for snapshots and digests."""
        n = self._n
        return {name: col[:n].copy() for name, col in self._cols.items()}

    def capture(self) -> CapturedColumns:
        """The live columns as they are now, for a snapshot (:class:`CapturedColumns`).

        NOTE: copies only what changed, for speed (snapshots off the tick thread's critical
        path, issue 13). Every field of an entry but ``weight`` is fixed once written, so against
        the newest capture already assembled (the *base*) the tick thread copies the ``id`` and
        ``weight`` columns (row order, every weight) and the whole rows of entries written since
        the base; the rest is rebuilt from the base when the capture is assembled, normally in
        the snapshot thread. Measured at 10^6 live entries (medians, both engines alike):
        export() 22-31 ms (54 ms in issue 13); this 4.1-4.7 ms with ~1 000 entries written
        since the base on a quiet machine (4.2-6.6 ms while another process loads the memory
        bus: the copy is bandwidth-bound), 6 ms with 15 000, 11-12 ms with 80 000-290 000
        (spills scatter their rows: ~0.1 µs each); assembling it 7-16 ms, off the tick thread.

        Without a base (the first capture, or while every earlier one is still unassembled) or
        when more than ``delta_max_new_share`` of the rows may be new, it copies every row
        instead: the four contiguous columns, and the record array as raw bytes, whose fields
        are split out when it is assembled: 7-10 ms at 10^6, up to ~30 ms when the allocator
        hands back fresh pages (a 38 MB copy is always a fresh mmap). There is no buffer pool:
        the delta's two 8 MB copies page-faulted 0 times in the steady state (malloc reuses
        the blocks the previous base freed), and a pool measured no gain. :meth:`load` with
        ``as_base`` gives a resumed store its base at once.
        """
        with self._base_lock:
            base = self._base
        n = self._n
        if base is None or self.next_id - base.next_id > self.delta_max_new_share * n:
            cap = CapturedColumns._whole(self, n)
        else:
            cap = CapturedColumns._delta(self, n, base)
        cap._store = self
        cap._epoch = self._epoch
        return cap

    def _offer_base(self, cap: CapturedColumns, epoch: int) -> None:
        """An assembled capture of this store becomes the base if it is the newest (any thread).

        Any assembled capture since the last load() is a correct base; the newest needs the
        fewest rows copied. One stays alive here: 64 bytes per entry held while a run lives.
        """
        with self._base_lock:
            base = self._base
            if epoch == self._epoch and (base is None or cap.newer(base)):
                self._base = cap

    def load(
        self,
        columns: Mapping[str, np.ndarray],
        next_id: int,
        spilled: int,
        *,
        as_base: bool = False,
    ) -> None:
        """Replace the contents with exported columns (used by resume; columns read from a file
        pass :func:`check_columns` first).

        ``as_base`` keeps a read-only copy of them as the base of the next :meth:`capture`, so
        the first snapshot after a resume copies only what changed too (one more copy now).
        """
        n = len(columns["id"])
        self._n = 0
        self._forget_victims()
        with self._base_lock:  # the contents change wholesale: no earlier capture describes them
            self._epoch += 1
            self._base = None
        base = CapturedColumns.of(columns, next_id) if as_base else None
        if base is not None:
            columns = base.resolve()
        self._allocate(max(n, min(self.capacity, 1024)))
        for name, dtype in COLUMNS.items():
            self._cols[name][:n] = np.asarray(columns[name], dtype=dtype)
        self._n = n
        self.next_id = next_id
        self.spilled = spilled
        if base is not None:
            with self._base_lock:
                self._base = base


def check_columns(
    columns: Mapping[str, np.ndarray], *, n_types: int, next_id: int, spilled: int
) -> None:
    """Refuse (SnapshotError) columns read from a snapshot that no store can have exported.

    ``next_id`` and ``spilled`` are the snapshot's counters (entries ever written, entries
    spilled), ``n_types`` the organism's type count. Checked: every column is there with one
    value per live entry; live entries are those written and not spilled; the floats are finite,
    weights ≥ 0, significances ≤ 1; ids are below ``next_id`` and distinct; types, kinds and
    actions are known.
    """
    ids = columns.get("id")
    n = len(ids) if isinstance(ids, np.ndarray) and ids.ndim == 1 else -1  # -1: fails below
    for name, dtype in COLUMNS.items():
        col = columns.get(name)
        if not isinstance(col, np.ndarray) or col.dtype != dtype or col.shape != (n,):
            raise SnapshotError(f"column {name} is missing or of a wrong dtype or length")
    if next_id != spilled + n:
        raise SnapshotError(f"entries_written {next_id} != spilled {spilled} + active {n}")
    for name in ("significance", "weight", "timestamp", "subjective_timestamp"):
        if not np.isfinite(columns[name]).all():
            raise SnapshotError(f"column {name} holds NaN or inf")
    if not n:
        return
    if columns["weight"].min() < 0 or columns["significance"].max() > 1:
        raise SnapshotError("weights or significances out of range")
    ids = columns["id"]  # the same array, now known to be a column
    if ids.min() < 0 or ids.max() >= next_id or len(np.unique(ids)) != n:
        raise SnapshotError("active ids out of range or repeated")
    if columns["event_type"].min() < 0 or columns["event_type"].max() >= n_types:
        raise SnapshotError("event types out of range")
    if (
        not np.isin(columns["kind"], (KIND_EVENT, KIND_FEEDBACK)).all()
        or not np.isin(columns["action"], (0, 1, 2, 3)).all()
    ):
        raise SnapshotError("kinds or actions out of range")


class CapturedColumns:
    """Active memory's columns as of one :meth:`ActiveMemory.capture`.

    The tick thread copies little (see ``capture``); :meth:`resolve` *assembles* the columns,
    in whatever thread calls it first (the snapshot writer resolves each capture as soon as it
    takes it). Assembly is exact: the same arrays, row for row, as :meth:`ActiveMemory.export`
    at the moment of the capture. It relies on the store's rules:
    an entry's fields other than ``weight`` never change once written, an entry that leaves
    never comes back, and ids are below ``next_id``; so a live entry older than the base (id <
    base ``next_id``) is in the base with the same fields, wherever spills moved its row.

    Once assembled it holds only the columns (64 B per entry) and offers itself to its store as
    the base of the next capture (the store keeps the newest one alive).
    """

    __slots__ = (
        "_base",
        "_columns",
        "_epoch",
        "_hot",
        "_ids",
        "_lock",
        "_new_rows",
        "_raw",
        "_store",
        "_weight",
        "next_id",
        "rows",
        "seq",
        "whole",
    )

    _sequence = itertools.count()  # the order of captures (next() is atomic in CPython)

    def __init__(self, rows: int, next_id: int, *, whole: bool) -> None:
        self.rows = rows  # live rows at the capture
        self.next_id = next_id  # entries written before the capture
        self.whole = whole  # True: copied every row (no base, or too many new rows)
        self.seq = next(CapturedColumns._sequence)
        self._lock = threading.Lock()
        self._columns: dict[str, np.ndarray] | None = None
        self._base: CapturedColumns | None = None
        self._ids: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._new_rows: np.ndarray | None = None
        self._hot: dict[str, np.ndarray] = {}
        self._raw: np.ndarray | None = None
        self._store: ActiveMemory | None = None  # set by ActiveMemory.capture
        self._epoch = 0

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray], next_id: int) -> CapturedColumns:
        """Assembled from copies of ``columns`` (every COLUMNS name, their dtypes)."""
        n = len(columns["id"])
        cap = cls(n, next_id, whole=True)
        copies = {name: np.array(columns[name], dtype=dtype) for name, dtype in COLUMNS.items()}
        for col in copies.values():
            if len(col) != n:
                raise ValueError(f"columns differ in length: {len(col)} != {n} (id)")
            col.flags.writeable = False
        cap._columns = copies
        return cap

    @classmethod
    def _whole(cls, mem: ActiveMemory, n: int) -> CapturedColumns:
        """Copy every live row: the hot columns, and the record array as raw bytes (a memcpy;
        splitting its eight fields here would be eight strided passes, ~20 ms at 10^6)."""
        cap = cls(n, mem.next_id, whole=True)
        cap._hot = {name: col[:n].copy() for name, col in mem._hot.items()}
        cap._raw = mem._rec.view(_RAW)[:n].copy()
        return cap

    @classmethod
    def _delta(cls, mem: ActiveMemory, n: int, base: CapturedColumns) -> CapturedColumns:
        """Copy row order (ids), every weight, and the whole rows of entries newer than base."""
        cap = cls(n, mem.next_id, whole=False)
        cap._base = base
        since = base.next_id
        # NOTE: blocks for speed: each block of ids is compared while it is still in cache
        # (3.75 ms instead of 4.1 for copy + compare + weights at 10^6). The ids are strided in
        # the record, so copying them reads all of it: 2.5 ms of the total, the floor here.
        ids = np.empty(n, np.int64)
        source = mem._cols["id"]
        mask = np.empty(min(n, _SCAN_BLOCK), bool)
        hits = []
        for a in range(0, n, _SCAN_BLOCK):
            b = min(a + _SCAN_BLOCK, n)
            block = ids[a:b]
            np.copyto(block, source[a:b])
            m = mask[: b - a]
            np.greater_equal(block, since, out=m)
            if m.any():
                hits.append(np.flatnonzero(m) + a)
        new_rows = np.concatenate(hits) if hits else np.zeros(0, np.intp)
        cap._ids = ids
        cap._weight = mem._hot["weight"][:n].copy()
        cap._new_rows = new_rows
        cap._hot = {name: col[new_rows] for name, col in mem._hot.items() if name != "weight"}
        cap._raw = mem._rec.view(_RAW)[new_rows]
        return cap

    # -- state -----------------------------------------------------------------------------------

    @property
    def assembled(self) -> bool:
        """True once the columns exist (a read, or :meth:`resolve`, assembled them)."""
        return self._columns is not None

    def newer(self, other: CapturedColumns) -> bool:
        """True if this capture was taken after ``other``."""
        return self.seq > other.seq

    def resolve(self) -> dict[str, np.ndarray]:
        """Assemble the columns now (idempotent, thread-safe) and return them (read-only)."""
        columns = self._columns
        if columns is not None:
            return columns
        with self._lock:
            columns = self._columns
            if columns is not None:
                return columns
            columns = self._assemble()
            for col in columns.values():
                col.flags.writeable = False
            self._columns = columns
            # what was copied is now inside the columns; the base is no longer needed
            self._base = self._ids = self._weight = self._new_rows = self._raw = None
            self._hot = {}
            store, self._store = self._store, None
        if store is not None:
            store._offer_base(self, self._epoch)
        return columns

    def __repr__(self) -> str:
        kind = "whole" if self.whole else "delta"
        state = "assembled" if self.assembled else "pending"
        return f"<CapturedColumns {kind}, {self.rows} rows, next_id {self.next_id}, {state}>"

    # -- assembly ----------------------------------------------------------------------------------

    def _assemble(self) -> dict[str, np.ndarray]:
        raw = self._raw
        assert raw is not None
        rec = raw.view(_RECORD)
        if self.whole:  # split the record's fields
            parts = {**self._hot, **{name: rec[name].copy() for name in _RECORD.names}}
            return {name: parts[name] for name in COLUMNS}
        base = self._base
        assert base is not None and self._ids is not None and self._weight is not None
        old = base.resolve()
        ids, new_rows, n = self._ids, self._new_rows, self.rows
        if not np.array_equal(rec["id"], ids[new_rows]):
            raise RuntimeError("capture: the new rows' ids changed while they were copied")
        # NOTE: patching for speed: a spill fills its holes from the end of the columns, where
        # the newest entries are, so entries older than the base almost never change rows. A row
        # holding the same id as in the base holds the same entry (ids are unique, fields other
        # than weight fixed): copy the base's columns, then patch the rows that changed — new
        # entries from the copied rows, moved old ones from the base rows that lost their entry.
        # 10 ms instead of 61 ms (a lookup of every row by id) at 10^6 entries, 15 000 new.
        old_ids = old["id"]
        m = min(n, len(old_ids))
        changed = np.flatnonzero(ids[:m] != old_ids[:m])
        patch = np.concatenate((changed, np.arange(m, n)))
        moved = patch[ids[patch] < base.next_id]
        vacated = np.concatenate((changed, np.arange(m, len(old_ids))))
        src = vacated[_rows_of(old_ids[vacated], ids[moved])]
        new = {**self._hot, **{name: rec[name] for name in _RECORD.names}}
        out: dict[str, np.ndarray] = {}
        for name, dtype in COLUMNS.items():
            if name == "id":
                col = ids
            elif name == "weight":
                col = self._weight
            else:
                col = np.empty(n, dtype)
                col[:m] = old[name][:m]
                col[moved] = old[name][src]
                col[new_rows] = new[name]
            out[name] = col
        return out


def _rows_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``ids`` (unique) of every id in ``wanted``; RuntimeError if one is missing.

    A direct table when the ids span a range not much wider than their count (the usual case:
    active ids are a window of recent ones), a sorted search otherwise.
    """
    if len(wanted) == 0:
        return np.zeros(0, np.intp)
    if len(ids) == 0:
        raise RuntimeError("capture: active entries older than the base are missing from it")
    lo = int(ids.min())
    span = int(ids.max()) - lo + 1
    if span <= 4 * len(ids) + 1024:
        table = np.full(span, -1, np.intp)
        table[ids - lo] = np.arange(len(ids))
        offset = wanted - lo
        if int(offset.min()) < 0 or int(offset.max()) >= span:
            raise RuntimeError("capture: active entries older than the base are missing from it")
        src = table[offset]
        if int(src.min()) < 0:
            raise RuntimeError("capture: active entries older than the base are missing from it")
        return src
    order = np.argsort(ids)
    pos = np.searchsorted(ids, wanted, sorter=order)
    pos[pos == len(ids)] = 0
    src = order[pos]
    if not np.array_equal(ids[src], wanted):
        raise RuntimeError("capture: active entries older than the base are missing from it")
    return src
