"""Built-in metrics: stage timings in fixed-size log histograms, and the process's RSS and GC.

Cheap by construction: every ``metrics_every``-th tick (default 32) is timed stage by stage with
``perf_counter_ns``; the others pay one ``is not None`` test per stage boundary. Histograms have a
fixed number of buckets (8 per power of two, ≤ 6 % relative error), so nothing grows with time.
Metrics keep only what they measure: the organism's counters and its writers' faults are the
organism's, which puts them beside these in ``Life.metrics_summary()``.
"""

from __future__ import annotations

import random
import resource
import time
from typing import TYPE_CHECKING, Any

from lifelab.observe.gcmode import GcWatch

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "MARK_FEEDBACK",
    "MARK_IO",
    "MARK_PERCEIVE",
    "MARK_PERIODIC",
    "MARK_POLICY",
    "MARK_REMEMBER",
    "MARK_RESPOND",
    "MARK_START",
    "MARK_TIME",
    "N_MARKS",
    "STAGES",
    "LogHistogram",
    "Metrics",
    "end_mark",
]

# The stages of a tick, in order. A sampled tick records N_MARKS clock readings ("marks"): its
# start, then the end of each stage; end_mark() says where each stage's end is.
STAGES = ("perceive", "time", "respond", "remember", "feedback", "periodic", "policy", "io")
N_MARKS = len(STAGES) + 1


def end_mark(stage: str) -> int:
    """Where a sampled tick's marks hold the end of ``stage`` (``marks[0]`` is the tick's start).

    The engines resolve it once, at import, into int constants, so a stage boundary on the hot
    path is one store at a constant index that names its stage (no lookup per tick).
    """
    return STAGES.index(stage) + 1


# Where a sampled tick's marks hold its start and the end of each stage, resolved once for both
# engines: a stage boundary of the Python tick or of the compiled kernel (which numba compiles in
# as constants) is one store at the constant index that names its stage.
MARK_START = 0
MARK_PERCEIVE = end_mark("perceive")
MARK_TIME = end_mark("time")
MARK_RESPOND = end_mark("respond")
MARK_REMEMBER = end_mark("remember")
MARK_FEEDBACK = end_mark("feedback")
MARK_PERIODIC = end_mark("periodic")
MARK_POLICY = end_mark("policy")
MARK_IO = end_mark("io")


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

    def __init__(self, sample_every: int) -> None:
        self.sample_every = sample_every
        self._stages = {name: LogHistogram() for name in STAGES}
        self._tick = LogHistogram()
        self.gc = GcWatch()
        # One sampled tick's marks, reused: the engine writes every slot before end_tick().
        self._marks = [0] * N_MARKS
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
        """Sampled ticks timed elsewhere (the compiled kernel): rows of ``N_MARKS`` marks in ns,
        the tick's start first (see :func:`end_mark`)."""
        self._pending.extend(marks_ns.ravel().tolist())
        if len(self._pending) >= self.FOLD_EVERY * N_MARKS:
            self.fold()

    def next_gap(self) -> int:
        i = self._gap_index
        self._gap_index = (i + 1) & 1023
        return self._gaps[i]

    # -- the tick (hot path) ----------------------------------------------------------------------

    def begin_tick(self) -> list[int]:
        """The marks of a sampled tick, its start set: the engine sets ``marks[end_mark(s)]``
        at the end of each stage ``s``, then hands them to :meth:`end_tick`."""
        marks = self._marks
        marks[0] = time.perf_counter_ns()
        return marks

    def end_tick(self, marks: list[int]) -> None:
        pending = self._pending
        pending.extend(marks)
        if len(pending) >= self.FOLD_EVERY * N_MARKS:
            self.fold()

    def fold(self) -> None:
        """Fold the pending sampled ticks into the stage and tick histograms (vectorised)."""
        pending = self._pending
        if not pending:
            return
        import numpy as np

        marks = np.asarray(pending, dtype=np.int64).reshape(-1, N_MARKS)
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
        """What was measured, by metric name (units in the name): the sampled ticks' and stages'
        timings, the process's RSS and the collections the GC watch saw.

        ``Life.metrics_summary()`` puts these beside the organism's counters and faults.
        """
        self.fold()
        tick = self._tick
        out: dict[str, float] = {
            "sampled_ticks": tick.count,
            "sample_every": self.sample_every,
            "tick_p50_us": tick.percentile(50) / 1e3,
            "tick_p99_us": tick.percentile(99) / 1e3,
            "tick_mean_us": tick.mean / 1e3,
            "tick_max_us": tick.max / 1e3,
        }
        total = sum(h.total for h in self._stages.values()) or 1
        for name, h in self._stages.items():
            out[f"stage_{name}_p50_us"] = h.percentile(50) / 1e3
            out[f"stage_{name}_p99_us"] = h.percentile(99) / 1e3
            out[f"stage_{name}_mean_us"] = h.mean / 1e3
            out[f"stage_{name}_share"] = h.total / total
        out.update(
            rss_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            rss_mb=_rss_mb(),
            gc_collections_gen0=self.gc.collections[0],
            gc_collections_gen1=self.gc.collections[1],
            gc_collections_gen2=self.gc.collections[2],
            gc_pause_ms=self.gc.pause_ms,
        )
        return out

    def frame(self) -> pl.DataFrame:
        """One row per metric of :meth:`summary`: ``metric`` (units in the name) and ``value``."""
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


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
