"""Clocks: simulated (fixed dt, never sleeps) and real-time with drift-free deadlines.

Real-time pacing schedules tick k at ``start + k·interval`` — not ``now + interval`` — so a late
tick never shifts the ticks after it and error cannot accumulate (DESIGN.md §1.5).
"""

from __future__ import annotations

import threading
import time

import numpy as np

__all__ = ["ClockStopped", "RealtimeClock", "SimulatedClock"]


class ClockStopped(Exception):
    """Raised by a clock's wait() when a stop was requested during the wait: no tick runs."""


class SimulatedClock:
    """Every tick advances the organism by exactly ``dt`` simulated seconds."""

    realtime = False

    def __init__(self, dt: float) -> None:
        self.dt = dt

    def begin(self, stop: threading.Event | None = None) -> None:
        """Nothing to do: simulated time does not depend on when the run starts."""

    def wait(self) -> float:
        return self.dt

    def stats(self) -> dict[str, float]:
        return {}


class RealtimeClock:
    """Sleeps until each tick's deadline; dt is the measured time since the previous tick.

    Args:
        interval: Seconds between deadlines.
        keep: How many recent lateness samples to keep for percentiles (bounded memory).
    """

    realtime = True

    def __init__(self, interval: float, keep: int = 65_536) -> None:
        self.interval = interval
        self._lateness = np.zeros(keep)
        self._count = 0
        self._k = 0
        self._start = 0.0
        self._last = 0.0
        self._cpu0 = 0.0
        self._stop: threading.Event | None = None

    def begin(self, stop: threading.Event | None = None) -> None:
        """Start a new schedule now; ``stop`` interrupts a sleep at once."""
        self._start = self._last = time.perf_counter()
        self._cpu0 = time.process_time()
        self._k = 0
        self._count = 0
        self._stop = stop

    def wait(self) -> float:
        """Sleep until the next deadline; return the real seconds since the previous tick."""
        self._k += 1
        deadline = self._start + self._k * self.interval
        now = time.perf_counter()
        if now < deadline:
            if self._stop is not None:
                if self._stop.wait(deadline - now):
                    self._k -= 1
                    raise ClockStopped
            else:
                time.sleep(deadline - now)
            now = time.perf_counter()
        keep = len(self._lateness)
        self._lateness[self._count % keep] = now - deadline
        self._count += 1
        dt = now - self._last
        self._last = now
        return dt

    def lateness_ms(self) -> np.ndarray:
        """The kept lateness samples (the latest ``keep`` ticks), in milliseconds."""
        return self._lateness[: min(self._count, len(self._lateness))] * 1e3

    def stats(self) -> dict[str, float]:
        """Lateness percentiles, drift from the ideal schedule, and CPU use since begin()."""
        if self._count == 0:
            return {
                "lateness_p50_ms": 0.0,
                "lateness_p99_ms": 0.0,
                "drift_ms": 0.0,
                "cpu_percent": 0.0,
            }
        samples = self._lateness[: min(self._count, len(self._lateness))]
        wall = self._last - self._start
        cpu = time.process_time() - self._cpu0
        return {
            "lateness_p50_ms": float(np.percentile(samples, 50) * 1e3),
            "lateness_p99_ms": float(np.percentile(samples, 99) * 1e3),
            # where the last tick ran relative to its slot on the ideal schedule
            "drift_ms": float((self._last - (self._start + self._k * self.interval)) * 1e3),
            "cpu_percent": float(100.0 * cpu / wall) if wall > 0 else 0.0,
        }
