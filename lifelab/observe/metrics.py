"""Built-in metrics: stage timings in fixed-size log histograms, counters, gauges, GC.

Cheap by construction: every ``metrics_every``-th tick (default 32) is timed stage by stage with
``perf_counter_ns``; the others pay one ``is not None`` test per stage boundary. Histograms have a
fixed number of buckets (8 per power of two, ≤ 6 % relative error), so nothing grows with time.
Counters and gauges are read from the organism when asked, never kept twice.
"""

from __future__ import annotations

import random
import resource
import time
from typing import TYPE_CHECKING, Any

from lifelab.observe.gcmode import GcWatch

if TYPE_CHECKING:
    import polars as pl

    from lifelab.life.loop import Life

__all__ = ["STAGES", "LogHistogram", "Metrics"]

# Stage boundaries of Life._tick, in order.
STAGES = ("perceive", "time", "respond", "remember", "feedback", "periodic", "policy", "io")

_SUB = 8  # buckets per power of two
_BUCKETS = 16 + 40 * _SUB  # exact below 16, then up to 2**45 ns (~10 h)


class LogHistogram:
    """Counts of non-negative integers (ns) in log-spaced buckets; fixed memory."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0
        self.max = 0

    @staticmethod
    def index(value: int) -> int:
        """Bucket of a value: exact below 16, else (octave, top three mantissa bits)."""
        if value < 16:
            return value if value > 0 else 0
        b = value.bit_length()
        i = 16 + ((b - 5) << 3) + ((value >> (b - 4)) & 7)
        return i if i < _BUCKETS else _BUCKETS - 1

    @staticmethod
    def bounds(index: int) -> tuple[float, float]:
        """[low, high) of a bucket."""
        if index < 16:
            return float(index), float(index + 1)
        octave, sub = divmod(index - 16, _SUB)
        width = 1 << (octave + 1)
        low = (8 + sub) * width
        return float(low), float(low + width)

    def record(self, value: int) -> None:
        self.counts[self.index(value)] += 1
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value

    def record_many(self, values: Any) -> None:
        """Record an array of non-negative integers at once (same buckets as :meth:`index`)."""
        import numpy as np

        v = np.asarray(values, dtype=np.int64)
        if v.size == 0:
            return
        v = np.maximum(v, 0)
        # frexp: v = m·2**e with m in [0.5, 1), so e is the bit length and the three bits after
        # the leading one are floor(m·16) − 8 (exact for v < 2**53).
        m, e = np.frexp(v.astype(np.float64))
        idx = 16 + ((e - 5) << 3) + (np.floor(m * 16).astype(np.int64) - 8)
        idx = np.where(v < 16, v, np.minimum(idx, _BUCKETS - 1))
        counts = np.bincount(idx, minlength=_BUCKETS)
        for i in np.flatnonzero(counts).tolist():
            self.counts[i] += int(counts[i])
        self.count += int(v.size)
        self.total += int(v.sum())
        self.max = max(self.max, int(v.max()))

    def percentile(self, q: float) -> float:
        """The q-th percentile (0–100), interpolated inside its bucket; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        rank = q / 100.0 * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            if c and seen + c >= rank:
                low, high = self.bounds(i)
                value = low + (high - low) * max(0.0, rank - seen) / c
                return min(value, float(self.max))
            seen += c
        return float(self.max)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def merge(self, other: LogHistogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)


class Metrics:
    """The organism's metrics (``life.metrics``)."""

    # Sampled ticks keep their raw marks (one list extend per sampled tick) and are folded into
    # the histograms with numpy every FOLD_EVERY samples or when read: recording nine histogram
    # buckets in Python on every sampled tick cost as much as a whole tick (callgrind).
    FOLD_EVERY = 512

    def __init__(self, life: Life, sample_every: int) -> None:
        self._life = life
        self.sample_every = sample_every
        self._stages = {name: LogHistogram() for name in STAGES}
        self._tick = LogHistogram()
        self.gc = GcWatch()
        self._marks: list[int] = []
        self._pending: list[int] = []
        # Gaps between sampled ticks are drawn uniformly from [1, 2k - 1] (mean k): a fixed
        # stride aliases with periodic work (every 16th tick hits every 10-tick decay 1 time in
        # 5, not 1 in 10). Drawn once from its own generator: metrics never touch the
        # organism's randomness, and a sampled tick pays a list index, not a randint call.
        gaps = random.Random(0x11FE)
        k = max(sample_every, 1)
        self._gaps = [gaps.randint(1, 2 * k - 1) for _ in range(1024)]
        self._gap_index = 0

    @property
    def stages(self) -> dict[str, LogHistogram]:
        """Per-stage histograms of the sampled ticks (ns)."""
        self.fold()
        return self._stages

    @property
    def tick(self) -> LogHistogram:
        """Histogram of whole sampled ticks (ns)."""
        self.fold()
        return self._tick

    def reset(self) -> None:
        """Forget every sample (e.g. after warm-up); counters and gauges are not samples."""
        self._pending.clear()
        self._stages = {name: LogHistogram() for name in STAGES}
        self._tick = LogHistogram()

    @property
    def gaps(self) -> list[int]:
        """The 1024 sampling gaps, in order (the compiled engine copies them into its kernel)."""
        return self._gaps

    @property
    def gap_index(self) -> int:
        return self._gap_index

    @gap_index.setter
    def gap_index(self, value: int) -> None:
        self._gap_index = value & 1023

    def add_samples(self, marks_ns: Any) -> None:
        """Sampled ticks timed elsewhere (the compiled kernel): rows of ``len(STAGES) + 1`` marks
        in ns, the tick's start first."""
        self._pending.extend(marks_ns.ravel().tolist())
        if len(self._pending) >= self.FOLD_EVERY * (len(STAGES) + 1):
            self.fold()

    def next_gap(self) -> int:
        i = self._gap_index
        self._gap_index = (i + 1) & 1023
        return self._gaps[i]

    # -- the tick (hot path) ----------------------------------------------------------------------

    def begin_tick(self) -> list[int]:
        marks = self._marks
        marks.clear()
        marks.append(time.perf_counter_ns())
        return marks

    def end_tick(self, marks: list[int]) -> None:
        pending = self._pending
        pending.extend(marks)
        if len(pending) >= self.FOLD_EVERY * (len(STAGES) + 1):
            self.fold()

    def fold(self) -> None:
        """Fold the pending sampled ticks into the stage and tick histograms (vectorised)."""
        pending = self._pending
        if not pending:
            return
        import numpy as np

        marks = np.asarray(pending, dtype=np.int64).reshape(-1, len(STAGES) + 1)
        pending.clear()
        deltas = np.diff(marks, axis=1)
        for j, name in enumerate(STAGES):
            self._stages[name].record_many(deltas[:, j])
        self._tick.record_many(marks[:, -1] - marks[:, 0])

    # -- GC accounting during runs ------------------------------------------------------------

    def watch_gc(self, on: bool) -> None:
        """Install (or remove) the gc callback; Life does it around run()/start()."""
        if on:
            self.gc.install()
        else:
            self.gc.remove()

    # -- reading --------------------------------------------------------------------------------

    def summary(self) -> dict[str, float]:
        """metric name (units in the name) -> value."""
        self.fold()
        life = self._life
        out: dict[str, float] = {
            "ticks": life.state.ticks,
            "sampled_ticks": self.tick.count,
            "sample_every": self.sample_every,
            "tick_p50_us": self.tick.percentile(50) / 1e3,
            "tick_p99_us": self.tick.percentile(99) / 1e3,
            "tick_mean_us": self.tick.mean / 1e3,
            "tick_max_us": self.tick.max / 1e3,
        }
        total = sum(h.total for h in self.stages.values()) or 1
        for name, h in self.stages.items():
            out[f"stage_{name}_p50_us"] = h.percentile(50) / 1e3
            out[f"stage_{name}_p99_us"] = h.percentile(99) / 1e3
            out[f"stage_{name}_mean_us"] = h.mean / 1e3
            out[f"stage_{name}_share"] = h.total / total
        persistence = life.persistence
        out.update(
            events_processed=life.events_processed,
            events_pushed=life.events_pushed,
            events_rejected=life.events_rejected,
            events_dropped=life.events_dropped,
            entries_written=life.memory.next_id,
            entries_spilled=life.memory.spilled,
            errors=sum(life.errors.values()),
            queue_depth=life.queue_depth,
            memory_active=len(life.memory),
            archive_size=len(life.archive),
            memory_bytes=life.memory.nbytes(),
            rss_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            rss_mb=_rss_mb(),
            gc_collections_gen0=self.gc.collections[0],
            gc_collections_gen1=self.gc.collections[1],
            gc_collections_gen2=self.gc.collections[2],
            gc_pause_ms=self.gc.pause_ms,
        )
        # Faults by kind: one key per kind seen, e.g. stage_errors_runtimeerror,
        # snapshot_errors_enospc, archive_errors_eio, log_errors_eacces (counts, never reset).
        _by_kind(out, "stage_errors", life.errors)
        if persistence is not None:
            snaps = persistence.snapshots
            archive = persistence.archive
            log_stats = persistence.logs.stats()
            log_kinds: dict[str, int] = {}
            for label, n in log_stats["errors"].items():  # "op:KIND", e.g. "write:ENOSPC"
                kind = label.partition(":")[2] or label
                log_kinds[kind] = log_kinds.get(kind, 0) + n
            out.update(
                snapshots_written=snaps.written,
                snapshots_skipped=snaps.skipped,
                snapshots_failed=getattr(snaps, "failed", 0),
                snapshot_errors=snaps.errors,
                log_records=log_stats["records_written"],
                log_flushes=sum(log_stats["flushes"].values()),
                log_dropped=log_stats["dropped"],
                log_buffered=log_stats["buffered"],
                log_errors=sum(log_kinds.values()),
                archive_errors=getattr(archive, "errors", 0),
                archive_backlog_rows=getattr(archive, "backlog", 0),
                archive_backpressure_waits=getattr(archive, "backpressure_waits", 0),
                archive_backpressure_ms=getattr(archive, "backpressure_s", 0.0) * 1e3,
            )
            _by_kind(out, "snapshot_errors", getattr(snaps, "errors_by_kind", {}))
            _by_kind(out, "archive_errors", getattr(archive, "errors_by_kind", {}))
            _by_kind(out, "log_errors", log_kinds)
        return out

    def frame(self) -> pl.DataFrame:
        """One row per metric: ``metric`` (units in the name) and ``value`` (float)."""
        import polars as pl

        items = self.summary()
        return pl.DataFrame(
            {"metric": list(items), "value": [float(v) for v in items.values()]},
            schema={"metric": pl.String, "value": pl.Float64},
        )

    def stage_frame(self) -> pl.DataFrame:
        """One row per stage: p50/p99/mean in µs and share of the sampled tick time."""
        import polars as pl

        self.fold()
        total = sum(h.total for h in self.stages.values()) or 1
        return pl.DataFrame(
            {
                "stage": list(self.stages),
                "p50_us": [h.percentile(50) / 1e3 for h in self.stages.values()],
                "p99_us": [h.percentile(99) / 1e3 for h in self.stages.values()],
                "mean_us": [h.mean / 1e3 for h in self.stages.values()],
                "share": [h.total / total for h in self.stages.values()],
                "samples": [h.count for h in self.stages.values()],
            }
        )


def _by_kind(out: dict[str, float], prefix: str, counts: Any) -> None:
    """Add ``<prefix>_<kind>`` keys (kind lower-cased, non-alphanumerics as ``_``)."""
    for kind, n in dict(counts).items():  # dict(): one atomic copy of a counter other threads bump
        key = "".join(c if c.isalnum() else "_" for c in str(kind).lower())
        out[f"{prefix}_{key}"] = n


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
