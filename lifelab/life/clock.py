"""Clocks: simulated (fixed dt, never sleeps) and real-time with drift-free deadlines.

Real-time pacing schedules tick k at ``start + k·interval`` — not ``now + interval`` — so a late
tick never shifts the ticks after it and error cannot accumulate (DESIGN.md §1.5).

Who waits: the Python engine (and the compiled engine where the kernel cannot) calls
:meth:`RealtimeClock.wait` once per tick. The compiled engine waits inside its kernel instead
(``kernel.pace_ticks``): it sleeps on the clock's :attr:`~RealtimeClock.wake` word with a Linux
futex whose timeout is the next deadline, so a tick costs no Python at all, and :meth:`poke`
(a pushed event) or :meth:`interrupt` (a stop) end that sleep at once. Both keep the schedule in
the same fields (:meth:`~RealtimeClock.lend` and :meth:`~RealtimeClock.reclaim` hand them over),
so lateness, drift and CPU mean the same whichever waited.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import platform
import sys
import threading
import time
from typing import Any

import numpy as np

__all__ = [
    "PACE_COUNT",
    "PACE_INTERVAL",
    "PACE_K",
    "PACE_LAST",
    "PACE_START",
    "ClockStopped",
    "RealtimeClock",
    "SimulatedClock",
    "futex_syscall",
]

# The schedule as the compiled kernel reads and writes it: floats (start, last, interval) and
# ints (k: deadlines passed, count: lateness samples taken); see RealtimeClock.lend.
PACE_START, PACE_LAST, PACE_INTERVAL = 0, 1, 2
PACE_K, PACE_COUNT = 0, 1

_FUTEX_WAIT_BITSET_PRIVATE = 9 | 128  # an absolute CLOCK_MONOTONIC timeout
_FUTEX_WAKE_PRIVATE = 1 | 128
_FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


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

    def end(self) -> None:
        """Nothing to record: a simulated clock has no CPU or wall readings."""

    def interrupt(self) -> None:
        """Nothing to interrupt: a simulated clock never sleeps."""

    def poke(self) -> None:
        """Nothing to wake: a simulated clock never sleeps."""

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
        self._end: tuple[float, float] | None = None  # (perf_counter, process_time) at end()
        self._stop: threading.Event | None = None
        self._gate: threading.Lock | None = None
        self._lent: tuple[np.ndarray, np.ndarray] | None = None  # see lend()
        # The futex word a wait inside the compiled kernel sleeps on: non-zero = go back to
        # Python now (poke, interrupt). Python clears it before it calls the kernel again.
        self.wake = np.zeros(1, np.int32)

    def begin(self, stop: threading.Event | None = None) -> None:
        """Start a new schedule now; :meth:`interrupt` (after ``stop`` is set) ends a sleep."""
        self._start = self._last = time.perf_counter()
        self._cpu0 = time.process_time()
        self._end = None
        self._k = 0
        self._count = 0
        self._lent = None
        self._stop = stop
        self.wake[0] = 0
        # NOTE: a held lock that interrupt() releases, for speed: in a bare 100 Hz loop a wait
        # on it costs ~34 µs of CPU per wake-up against ~47 µs for threading.Event.wait (which
        # builds a lock and a Condition round per call); time.sleep (~29 µs) cannot be
        # interrupted. Medians of three 4 s loops of each, interleaved, one process.
        gate = threading.Lock()
        gate.acquire()
        self._gate = gate
        if stop is not None and stop.is_set():
            self.interrupt()  # a stop that came before this begin() still ends the first wait

    def wait(self) -> float:
        """Sleep until the next deadline; return the real seconds since the previous tick.

        Raises:
            ClockStopped: the ``stop`` event given to :meth:`begin` is set (before or during
                the sleep); the deadline is not consumed.
        """
        self._k += 1
        deadline = self._start + self._k * self.interval
        now = time.perf_counter()
        if now < deadline:
            stop = self._stop
            if stop is not None:
                # the gate stays taken after an interrupt: is_set() answers every later wait
                if stop.is_set() or self._gate.acquire(True, deadline - now):  # type: ignore[union-attr]
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

    def end(self) -> None:
        """The run is over: CPU and wall time stop counting here (a summary read afterwards, or
        a close() with its final snapshot, does not count)."""
        self._sync()
        self._end = (time.perf_counter(), time.process_time())

    def interrupt(self) -> None:
        """End the wait in progress (Python or kernel) and every later one until :meth:`begin`.

        For stop requests: call it after setting the ``stop`` event. Safe from any thread and
        from a signal handler.
        """
        self.poke()
        gate = self._gate
        if gate is not None and gate.locked():
            with contextlib.suppress(RuntimeError):  # another interrupt released it first
                gate.release()

    def poke(self) -> None:
        """Make a wait inside the compiled kernel return to Python at once (pushed events)."""
        if not self.wake[0]:
            self.wake[0] = 1
            _futex_wake(self.wake)

    def lend(self, f: np.ndarray, i: np.ndarray) -> None:
        """Hand the schedule to the kernel: write it into ``f`` and ``i`` (``PACE_*`` slots).

        Until :meth:`reclaim` the kernel keeps it there (and writes the lateness ring), and
        :meth:`stats` and :meth:`lateness_ms` read it from there: the kernel's returns to Python
        pay nothing for it (three numpy reads cost ~28 µs with caches cold at 100 Hz).
        """
        f[PACE_START] = self._start
        f[PACE_LAST] = self._last
        f[PACE_INTERVAL] = self.interval
        i[PACE_K] = self._k
        i[PACE_COUNT] = self._count
        self._lent = (f, i)

    def reclaim(self) -> None:
        """Take the schedule back from the kernel (after :meth:`lend`; idempotent)."""
        self._sync()
        self._lent = None

    def _sync(self) -> None:
        lent = self._lent
        if lent is not None:
            f, i = lent
            self._last = float(f[PACE_LAST])
            self._k = int(i[PACE_K])
            self._count = int(i[PACE_COUNT])

    @property
    def lateness_ring(self) -> np.ndarray:
        """The ring of lateness samples in seconds (sample n at ``n % len``), for the kernel."""
        return self._lateness

    def lateness_ms(self) -> np.ndarray:
        """The kept lateness samples (the latest ``keep`` ticks), in milliseconds."""
        self._sync()
        return self._lateness[: min(self._count, len(self._lateness))] * 1e3

    def stats(self) -> dict[str, float]:
        """Lateness percentiles, drift from the ideal schedule, and CPU use since begin()."""
        self._sync()
        if self._count == 0:
            return {
                "lateness_p50_ms": 0.0,
                "lateness_p99_ms": 0.0,
                "drift_ms": 0.0,
                "cpu_percent": 0.0,
            }
        samples = self._lateness[: min(self._count, len(self._lateness))]
        # CPU over wall time from begin() to end(), or to now while the run goes on
        now, cpu_now = self._end or (time.perf_counter(), time.process_time())
        wall = now - self._start
        cpu = cpu_now - self._cpu0
        return {
            "lateness_p50_ms": float(np.percentile(samples, 50) * 1e3),
            "lateness_p99_ms": float(np.percentile(samples, 99) * 1e3),
            # where the last tick ran relative to its slot on the ideal schedule
            "drift_ms": float((self._last - (self._start + self._k * self.interval)) * 1e3),
            "cpu_percent": float(100.0 * cpu / wall) if wall > 0 else 0.0,
        }


# -- the futex: probed once per process -----------------------------------------------------------

_futex: Any = False  # False: not probed yet; None: unavailable; else (number, syscall)


def futex_syscall() -> int | None:
    """The futex system call number when a kernel wait can use it here, else None.

    Linux on x86-64 or arm64 only, checked once per process by a real 0.2 ms timed wait (a
    sandbox may refuse the call; the kernel would then spin instead of sleeping).
    """
    global _futex
    if _futex is False:
        _futex = _probe_futex()
    return None if _futex is None else _futex[0]


def _futex_wake(word: np.ndarray) -> None:
    if _futex is False:
        futex_syscall()
    if _futex:
        number, call = _futex
        call(number, word.ctypes.data, _FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _probe_futex() -> tuple[int, Any] | None:
    number = _SYS_FUTEX.get(platform.machine().lower())
    if not sys.platform.startswith("linux") or number is None:
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_long
    call.argtypes = [ctypes.c_long] * 7
    word = np.zeros(1, np.int32)
    # perf_counter is CLOCK_MONOTONIC on Linux, the futex's clock for an absolute timeout
    t0 = time.perf_counter()
    deadline = t0 + 2e-4
    ts = _Timespec(int(deadline), int((deadline - int(deadline)) * 1e9))
    ret = call(
        number,
        word.ctypes.data,
        _FUTEX_WAIT_BITSET_PRIVATE,
        0,
        ctypes.addressof(ts),
        0,
        _FUTEX_BITSET_MATCH_ANY,
    )
    if ret != -1 or ctypes.get_errno() != errno.ETIMEDOUT or time.perf_counter() < deadline:
        return None
    return number, call
