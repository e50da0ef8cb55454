"""``lifelab bench realtime``, ``bench import`` and ``bench compile``: real-clock pacing, start-up.

Real time: the organism lives at ``1/interval`` Hz for ``seconds`` on the drift-free real-time
clock (DESIGN.md §1.5) and the clock reports how late each tick started (p50, p99, max), where
the last tick ran relative to its ideal slot (drift) and the CPU the process used over the wall
time (``cpu_percent``: 100 = one core busy), split into the tick thread and the run directory's
writer threads. Persistence is off unless a run directory is given (``run_dir``, or ``persist``
for a temporary one); then the bare pacing loop runs in the same call, on the same wait as the
organism (the compiled engine waits inside its kernel, the Python engine in
``RealtimeClock.wait``), half before and half after, and ``cpu_ratio`` compares the two.

Measured here (issue 13: ≤ 1.5x the bare loop at 100 Hz with a run directory, snapshots and tick
logs every 1 000 ticks), ``lifelab bench realtime --seconds 10 --baseline [--persist]``, medians
of 3, each before/after pair interleaved, on a 2-core VM with another 100 % job running (absolute
figures ~2x those of a quiet machine; ratios are what compares). Before: the compiled engine made
one kernel call per tick after a Python Event.wait, 2.4 % of a core (2.3 % with a run directory)
against 0.84-0.97 % for the bare Event.wait loop (ratio 2.4 / 3.0); the Python engine 2.3 % /
2.3 % (2.3x / 2.9x). After (the compiled engine waits in its kernel, writers wake by time and
amount): compiled 0.48 % against 0.32 % for its bare loop (1.48x), 0.62 % against 0.43 % with
the run directory (1.37x, its writer threads 0.005 %); the Python engine 1.7 % / 2.2 % against
0.80 % / 0.76 % (2.1x / 2.9x: its tick itself is ~100 µs of cold Python; with a run directory its
spills wake the archive writer every decay period, 0.08 %).

Import: ``import lifelab`` timed inside fresh interpreters (cold: nothing cached in-process), the
median of ``repeats``; the interpreter's own start-up is not included.

Compile: the compiled engine's start-up, each in a fresh interpreter timed from inside it (the
interpreter's own start-up excluded): ``Life(LifeConfig()).run(1)`` with ``NUMBA_CACHE_DIR`` set
to a new, empty folder (the first use on a machine: numba compiles the kernel), again with the
cache that run filled (every later start), and a plain ``import lifelab``, which must not import
numba (the engine imports it on first use).

Every fresh interpreter runs through :func:`_fresh_python`, that is
:func:`lifelab.lab.spawn.run_worker`: exit status checked, a timeout, the stderr tail in the
error, one JSON value read from the last stdout line.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lifelab.exceptions import LifelabError
from lifelab.lab.spawn import WorkerError, run_worker

__all__ = [
    "BenchProcessError",
    "bare_pacing",
    "bench_compile",
    "bench_import",
    "bench_realtime",
    "run_json",
]

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


class BenchProcessError(LifelabError, RuntimeError):
    """A benchmark's fresh interpreter failed, timed out, or printed no result."""


def bench_realtime(
    *,
    seconds: float = 60.0,
    interval: float = 0.01,
    seed: int = 0,
    baseline: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    persist: bool = False,
    progress: Callable[[int], None] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Live ``seconds`` at ``1/interval`` Hz; return lateness, drift and CPU figures.

    With ``baseline`` the bare pacing loop (:func:`bare_pacing`, on the same wait as the
    organism's) runs for up to 10 s, half before the organism and half after, in this process:
    ``baseline_cpu_percent`` and ``cpu_ratio`` (organism over bare loop) compare the two.

    With ``run_dir`` (a new directory) or ``persist`` (a temporary one, removed afterwards) the
    organism keeps a run directory: snapshots every 1 000 ticks and tick logs every 1 000
    unless ``config`` says otherwise, and the baseline is always measured. Without either,
    persistence and logs are off.

    Raises:
        ValueError: ``seconds`` shorter than ten intervals, or both ``run_dir`` and ``persist``.
    """
    from lifelab.config import LifeConfig
    from lifelab.life.clock import futex_syscall
    from lifelab.life.loop import Life

    ticks = round(seconds / interval)
    if ticks < 10:
        raise ValueError(f"seconds must cover at least 10 intervals, got {seconds} s")
    if run_dir is not None and persist:
        raise ValueError("give run_dir or persist, not both")
    temp = tempfile.mkdtemp(prefix="lifelab-bench-realtime-") if persist else None
    path = os.path.join(temp, "run") if temp is not None else run_dir
    if path is None:
        config.setdefault("log_every", 0)
    else:
        config.setdefault("snapshot_every", 1_000)
        baseline = True
    try:
        life = Life(
            LifeConfig(
                seed=seed,
                clock="realtime",
                tick_interval=interval,
                run_dir=None if path is None else os.fspath(path),
                **config,
            )
        )
        try:
            wait = "python"
            if life.engine == "compiled" and futex_syscall() is not None:
                wait = "kernel"
            bare_s = min(seconds, 10.0) / 2
            bare = [bare_pacing(bare_s, interval, wait=wait)] if baseline else []
            # NOTE: one run() in a thread of its own, and this thread wakes once a second for
            # the progress bar: its wake-ups count in the organism's CPU (the process's), and
            # polling 4 times a second cost ~0.02 % of a core, a tenth of the bare loop.
            threads0 = _thread_cpu_s()
            end: dict[str, Any] = {}

            def live() -> None:
                try:
                    end["summary"] = life.run(ticks)
                    end["threads"] = _thread_cpu_s()  # its CPU is readable until it ends
                except BaseException as exc:  # raised again in the calling thread
                    end["error"] = exc

            worker = threading.Thread(target=live, name="lifelab-life", daemon=True)
            w0 = time.perf_counter()
            worker.start()
            shown = 0
            while worker.is_alive():
                worker.join(1.0)
                done = min(life.state.ticks, ticks)
                if progress is not None and done > shown:
                    progress(done - shown)
                    shown = done
            w1 = time.perf_counter()
            if "error" in end:
                raise end["error"]
            summary, threads1 = end["summary"], end["threads"]
            if progress is not None and ticks > shown:
                progress(ticks - shown)
            lateness = life._clock.lateness_ms()  # type: ignore[union-attr]
        finally:
            life.close()
        if baseline:
            bare.append(bare_pacing(bare_s, interval, wait=wait))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    out: dict[str, Any] = {
        "engine": life.engine,
        "seconds": seconds,
        "interval_s": interval,
        "ticks": ticks,
        "lateness_p50_ms": summary["lateness_p50_ms"],
        "lateness_p99_ms": summary["lateness_p99_ms"],
        "lateness_max_ms": float(lateness.max()) if lateness.size else 0.0,
        "drift_ms": summary["drift_ms"],
        "drift_intervals": abs(summary["drift_ms"]) / (interval * 1e3),
        "cpu_percent": summary["cpu_percent"],
        "wait": wait,
        **_thread_split(threads0, threads1, w1 - w0),
        "persist": path is not None,
        "run_dir": None if path is None or temp is not None else os.fspath(path),
    }
    if life.persistence is not None:
        store = life.persistence
        out["snapshots_written"] = store.snapshots.written  # the final one of close() included
        out["log_records_written"] = store.logs.stats()["records_written"]
        out["archive_size"] = summary["archive_size"]
    if baseline:
        base = sum(bare) / len(bare)  # equal spans before and after the organism: their mean
        out["baseline_cpu_percent"] = base
        out["baseline_cpu_percent_before"], out["baseline_cpu_percent_after"] = bare
        out["cpu_ratio"] = out["cpu_percent"] / base if base > 0 else math.inf
    return out


def bare_pacing(seconds: float, interval: float, *, wait: str = "python") -> float:
    """CPU percent of a loop that only waits for each deadline of a real-time clock.

    ``wait="python"``: :meth:`RealtimeClock.wait` with a stop event, as the Python engine
    waits; ``"kernel"``: the compiled engine's wait inside its kernel
    (:func:`lifelab.life.compiled.idle_pacing`), back in Python as often as the organism.

    Raises:
        ValueError: ``wait`` is neither.
        RuntimeError: ``"kernel"`` where the kernel cannot wait (no numba, or no futex).
    """
    from lifelab.life.clock import RealtimeClock
    from lifelab.life.compiled import idle_pacing  # imports numba only when called

    if wait not in ("python", "kernel"):
        raise ValueError(f"wait must be 'python' or 'kernel', got {wait!r}")
    ticks = max(1, round(seconds / interval))
    clock = RealtimeClock(interval)
    if wait == "kernel":
        idle_pacing(clock, 0)  # loads the kernel function: not part of the loop's CPU
    clock.begin(threading.Event())
    t0 = time.perf_counter()
    c0 = time.process_time()
    if wait == "kernel":
        idle_pacing(clock, ticks)
    else:
        for _ in range(ticks):
            clock.wait()
    return 100.0 * (time.process_time() - c0) / (time.perf_counter() - t0)


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds of each live thread, by name (none where threads have no CPU clocks)."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
            out[thread.name] = out.get(thread.name, 0.0) + time.clock_gettime(clock)
        except (AttributeError, OSError, TypeError, OverflowError):
            continue  # no per-thread clocks on this platform, or the thread just ended
    return out


def _thread_split(
    before: dict[str, float], after: dict[str, float], wall_s: float
) -> dict[str, float | None]:
    """Where the organism's CPU went (percent of ``wall_s``): the tick thread and the writers
    (the run directory's archive, snapshot and log threads); None where unknown."""
    used = {name: cpu - before.get(name, 0.0) for name, cpu in after.items()}
    life = used.pop("lifelab-life", None)
    writers = sum(cpu for name, cpu in used.items() if name.startswith("lifelab-"))
    if life is None or wall_s <= 0:
        return {"life_thread_cpu_percent": None, "writers_cpu_percent": None}
    return {
        "life_thread_cpu_percent": 100.0 * life / wall_s,
        "writers_cpu_percent": 100.0 * writers / wall_s,
    }


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
        env = {"NUMBA_CACHE_DIR": cache}
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

    ``env``: variables set on top of :func:`lifelab.lab.spawn.worker_env`.

    Raises:
        BenchProcessError: a timeout, a non-zero exit status (with the stderr tail) or no JSON.
    """
    return run_json([sys.executable, "-c", code], env=env, timeout_s=timeout_s)


def run_json(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    what: str = "a fresh interpreter",
) -> Any:
    """A bench's worker process (:func:`lifelab.lab.spawn.run_worker`): the JSON value of its
    last stdout line, every failure a :class:`BenchProcessError`.

    Raises:
        BenchProcessError: a timeout, a non-zero exit status (with the stderr tail) or no JSON.
    """
    try:
        return run_worker(argv, timeout=timeout_s, env=env, what=what).json_line()
    except WorkerError as exc:  # chained to the OSError when it could not start
        raise BenchProcessError(str(exc)) from exc.__cause__
