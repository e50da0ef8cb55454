"""``lifelab bench realtime``, ``bench import`` and ``bench compile``: real-clock pacing, start-up.

Real time: the organism lives at ``1/interval`` Hz for ``seconds`` on the drift-free real-time
clock (DESIGN.md §1.5) and the clock reports how late each tick started (p50, p99, max), where
the last tick ran relative to its ideal slot (drift) and the CPU the process used over the wall
time (``cpu_percent``: 100 = one core busy). Persistence is off unless a run directory is given.

Import: ``import lifelab`` timed inside fresh interpreters (cold: nothing cached in-process), the
median of ``repeats``; the interpreter's own start-up is not included.

Compile: the compiled engine's start-up, each in a fresh interpreter timed from inside it (the
interpreter's own start-up excluded): ``Life(LifeConfig()).run(1)`` with ``NUMBA_CACHE_DIR`` set
to a new, empty folder (the first use on a machine: numba compiles the kernel), again with the
cache that run filled (every later start), and a plain ``import lifelab``, which must not import
numba (the engine imports it on first use).

Every fresh interpreter runs through :func:`_fresh_python`: exit status checked, a timeout, the
stderr tail in the error, one JSON value read from the last stdout line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lifelab.exceptions import LifelabError

__all__ = ["BenchProcessError", "bare_pacing", "bench_compile", "bench_import", "bench_realtime"]

# Prints {"import_ms": ..., "numba_imported": ...}: the time of a cold `import lifelab` and
# whether that import pulled numba in (it must not: the compiled engine imports it on first use).
_IMPORT_SNIPPET = (
    "import sys, time, json; t0 = time.perf_counter(); import lifelab; "
    "t = time.perf_counter() - t0; "
    "print(json.dumps({'import_ms': t * 1e3, 'numba_imported': 'numba' in sys.modules}))"
)
# Prints {"seconds": ..., "engine": ...}: import, build and one tick of the default organism.
_START_SNIPPET = (
    "import time, json; t0 = time.perf_counter(); "
    "from lifelab import Life, LifeConfig; life = Life(LifeConfig()); life.run(1); "
    "t = time.perf_counter() - t0; life.close(); "
    "print(json.dumps({'seconds': t, 'engine': life.engine}))"
)
_STDERR_TAIL_CHARS = 2_000


class BenchProcessError(LifelabError, RuntimeError):
    """A benchmark's fresh interpreter failed, timed out, or printed no result."""


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
        "engine": life.engine,
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
    samples = [float(_fresh_python(_IMPORT_SNIPPET)["import_ms"]) for _ in range(repeats)]
    arr = np.asarray(samples)
    return {
        "repeats": repeats,
        "import_ms_median": float(np.median(arr)),
        "import_ms_min": float(arr.min()),
        "import_ms_max": float(arr.max()),
        "import_ms": samples,
    }


def bench_compile(*, timeout_s: float = 900.0) -> dict[str, Any]:
    """The compiled engine's start-up: cold compile, warm start from the cache, plain import.

    Returns ``first_compile_s`` (import, build and one tick with an empty numba cache: the
    kernel compiles), ``warm_start_s`` (the same with the cache the first run filled),
    ``import_s`` (``import lifelab`` alone) and ``numba_imported_by_import_lifelab`` (must be
    False), plus ``engine`` and ``numba_version``. The cache folder is temporary and removed.

    Raises:
        BenchProcessError: An interpreter failed or timed out, or numba is missing (the organism
            fell back to the Python engine, so there is no compile to time).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        numba_version = version("numba")
    except PackageNotFoundError:
        numba_version = None
    cache = tempfile.mkdtemp(prefix="lifelab-numba-cache-")
    try:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = _fresh_python(_START_SNIPPET, env=env, timeout_s=timeout_s)
        if cold["engine"] != "compiled":
            raise BenchProcessError(
                f"bench compile needs numba, but the organism ran the {cold['engine']} engine "
                f"(numba {'missing' if numba_version is None else numba_version} in "
                f"{sys.executable}): pip install numba"
            )
        warm = _fresh_python(_START_SNIPPET, env=env, timeout_s=timeout_s)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    plain = _fresh_python(_IMPORT_SNIPPET)
    return {
        "engine": cold["engine"],
        "first_compile_s": float(cold["seconds"]),
        "warm_start_s": float(warm["seconds"]),
        "import_s": float(plain["import_ms"]) / 1e3,
        "numba_imported_by_import_lifelab": bool(plain["numba_imported"]),
        "numba_version": numba_version,
    }


def _fresh_python(
    code: str, *, env: Mapping[str, str] | None = None, timeout_s: float = 60.0
) -> Any:
    """Run ``code`` in a fresh interpreter; return the JSON value of its last stdout line.

    Raises:
        BenchProcessError: a timeout, a non-zero exit status (with the stderr tail) or no JSON.
    """
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise BenchProcessError(
            f"a fresh interpreter did not finish within {timeout_s:g} s (killed)"
        ) from None
    except OSError as exc:
        raise BenchProcessError(f"could not start {sys.executable}: {exc}") from exc
    tail = (done.stderr or "").rstrip()[-_STDERR_TAIL_CHARS:] or "(no stderr)"
    if done.returncode != 0:
        raise BenchProcessError(
            f"a fresh interpreter exited with status {done.returncode}. stderr tail:\n{tail}"
        )
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchProcessError(
            f"a fresh interpreter printed no JSON result. stderr tail:\n{tail}"
        ) from None
