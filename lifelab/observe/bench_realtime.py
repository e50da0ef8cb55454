"""``lifelab bench realtime`` and ``lifelab bench import``: pacing on a real clock, startup cost.

Real time: the organism lives at ``1/interval`` Hz for ``seconds`` on the drift-free real-time
clock (DESIGN.md §1.5) and the clock reports how late each tick started (p50, p99, max), where
the last tick ran relative to its ideal slot (drift) and the CPU the process used over the wall
time (``cpu_percent``: 100 = one core busy). Persistence is off unless a run directory is given.

Import: ``import lifelab`` timed inside fresh interpreters (cold: nothing cached in-process), the
median of ``repeats``; the interpreter's own start-up is not included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["bare_pacing", "bench_import", "bench_realtime"]

_IMPORT_SNIPPET = (
    "import time, json; t0 = time.perf_counter(); import lifelab; "
    "print(json.dumps((time.perf_counter() - t0) * 1e3))"
)


def bench_realtime(
    *,
    seconds: float = 60.0,
    interval: float = 0.01,
    seed: int = 0,
    baseline: bool = False,
    progress: Callable[[int], None] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Live ``seconds`` at ``1/interval`` Hz; return lateness, drift and CPU figures.

    With ``baseline`` a bare pacing loop (wait for each deadline, do nothing) runs for up to
    10 s first: the CPU that waking up 1/interval times a second costs on this machine alone.

    Raises:
        ValueError: ``seconds`` shorter than ten intervals.
    """
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life

    ticks = round(seconds / interval)
    if ticks < 10:
        raise ValueError(f"seconds must cover at least 10 intervals, got {seconds} s")
    config.setdefault("log_every", 0)
    bare = bare_pacing(min(seconds, 10.0), interval) if baseline else None
    life = Life(LifeConfig(seed=seed, clock="realtime", tick_interval=interval, **config))
    try:
        # One start() keeps one schedule for the whole span (each run() call would begin a new
        # one); this thread only polls for the progress bar and sleeps in between.
        life.start()
        done = 0
        while done < ticks:
            time.sleep(min(0.25, interval * (ticks - done)))
            now = min(life.state.ticks, ticks)
            if progress is not None and now > done:
                progress(now - done)
            done = max(done, now)
        life.stop()
        stats = life._clock.stats()
        lateness = life._clock.lateness_ms()
    finally:
        life.close()
    return {
        "seconds": seconds,
        "interval_s": interval,
        "ticks": ticks,
        "lateness_p50_ms": stats["lateness_p50_ms"],
        "lateness_p99_ms": stats["lateness_p99_ms"],
        "lateness_max_ms": float(lateness.max()) if lateness.size else 0.0,
        "drift_ms": stats["drift_ms"],
        "drift_intervals": abs(stats["drift_ms"]) / (interval * 1e3),
        "cpu_percent": stats["cpu_percent"],
        **({} if bare is None else {"baseline_cpu_percent": bare}),
    }


def bare_pacing(seconds: float, interval: float) -> float:
    """CPU percent of a loop that only waits for each deadline (the clock's own wait)."""
    stop = threading.Event()
    ticks = max(1, round(seconds / interval))
    t0 = time.perf_counter()
    c0 = time.process_time()
    for k in range(1, ticks + 1):
        now = time.perf_counter()
        deadline = t0 + k * interval
        if now < deadline:
            stop.wait(deadline - now)
    return 100.0 * (time.process_time() - c0) / (time.perf_counter() - t0)


def bench_import(*, repeats: int = 15) -> dict[str, Any]:
    """Milliseconds to ``import lifelab`` in ``repeats`` fresh interpreters (median, max)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    samples = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_SNIPPET],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        samples.append(float(json.loads(done.stdout.strip().splitlines()[-1])))
    arr = np.asarray(samples)
    return {
        "repeats": repeats,
        "import_ms_median": float(np.median(arr)),
        "import_ms_min": float(arr.min()),
        "import_ms_max": float(arr.max()),
        "import_ms": samples,
    }
