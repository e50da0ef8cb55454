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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["COLUMNS", "KIND_EVENT", "KIND_FEEDBACK", "ActiveMemory"]

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
        "_cols",
        "_hot",
        "_n",
        "_ordered",
        "_rec",
        "_size",
        "_victim_set",
        "_victims",
        "capacity",
        "decay_factor",
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

    def summary(self, event_type: int) -> tuple[float, float, int]:
        """(weight-averaged significance, max significance, count) of one type's event entries."""
        n = self._n
        c = self._cols
        mask = (c["event_type"][:n] == event_type) & (c["kind"][:n] == KIND_EVENT)
        count = int(np.count_nonzero(mask))
        if count == 0:
            return 0.0, 0.0, 0
        sig = c["significance"][:n][mask]
        w = c["weight"][:n][mask]
        total = float(w.sum())
        mean = float((w * sig).sum() / total) if total > 0 else float(sig.mean())
        return mean, float(sig.max()), count

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

    def load(self, columns: dict[str, np.ndarray], next_id: int, spilled: int) -> None:
        """Replace the contents with exported columns (used by resume)."""
        n = len(columns["id"])
        self._n = 0
        self._forget_victims()
        self._allocate(max(n, min(self.capacity, 1024)))
        for name, dtype in COLUMNS.items():
            self._cols[name][:n] = np.asarray(columns[name], dtype=dtype)
        self._n = n
        self.next_id = next_id
        self.spilled = spilled
