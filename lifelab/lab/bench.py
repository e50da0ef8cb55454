"""``lifelab bench loop``: throughput, tick latency, memory and GC figures of the tick loop.

Method (DESIGN.md §3): warm-up ticks are excluded; the GC mode is applied after warm-up and
``life.metrics`` is emptied; the throughput pass runs untimed ticks in ten equal chunks
(``rate_by_decile``); then a latency pass. Where the tick percentiles come from is reported as
``latency_source``:

- ``"python timer per tick"`` (the Python engine): the pass times single ticks with
  ``perf_counter_ns`` (its timer overhead, ~0.1 µs, is inside the percentiles but not inside
  ``ticks_per_s``);
- ``"kernel cycle counter, sampled ticks"`` (the compiled engine): the pass is one ``life.run(n)``
  and the percentiles are read from ``life.metrics.tick``, the ticks the kernel itself timed with
  the CPU cycle counter (every ``metrics_every``-th on average, in both passes). Timing one
  kernel call from Python would mostly measure the ~5 µs it costs to enter the kernel. With
  ``metrics_every=0`` nothing is sampled and the Python timer is used instead.

A bare loop that does the minimum a tick must do (draw an event, clamp three vitals, append three
columns) gives a same-run yardstick.

Instructions per tick and per event (``bench loop --instructions``, valgrind, two runs
differenced) are :func:`lifelab.lab.instructions.bench_loop_instructions`.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lifelab.config import LifeConfig
from lifelab.life.events import builtin_types
from lifelab.life.loop import Life
from lifelab.observe.gcmode import GcWatch, apply_gc_mode, parse_gc_mode

__all__ = [
    "KERNEL_LATENCY",
    "PYTHON_LATENCY",
    "bare_loop",
    "bench_loop",
    "bench_persisted",
    "measure",
    "peak_rss_mb",
]

PYTHON_LATENCY = "python timer per tick"
KERNEL_LATENCY = "kernel cycle counter, sampled ticks"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_loop(
    *,
    ticks: int = 200_000,
    events_per_tick: float = 1.0,
    batch_size: int = 64,
    memory_capacity: int = 10_000,
    gc: str = "default",
    warmup: int | None = None,
    latency_ticks: int | None = None,
    seed: int = 0,
    engine: str | None = None,
    baseline: bool = False,
    progress: Callable[[int], None] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Benchmark the loop on the simulated clock and return the ``bench loop`` JSON keys.

    ``engine`` is ``"compiled"`` or ``"python"`` (None: LifeConfig's default); the result's
    ``engine`` is the one that ran (``life.engine``: the Python fallback when numba is missing).
    With ``snapshot_every`` or ``log_every`` in ``config`` the organism gets a temporary run
    directory (removed afterwards), so persistence costs are inside the figures.
    """
    if ticks < 10:
        raise ValueError(f"ticks must be >= 10 (ten deciles), got {ticks}")
    if engine is not None:
        config["engine"] = engine
    mode = parse_gc_mode(gc)
    persist = bool(config.get("snapshot_every") or config.get("log_every"))
    config.setdefault("log_every", 0)
    tmp = tempfile.mkdtemp(prefix="lifelab-bench-") if persist else None
    cfg = LifeConfig(
        seed=seed,
        events_per_tick=events_per_tick,
        batch_size=batch_size,
        memory_capacity=memory_capacity,
        run_dir=None if tmp is None else str(Path(tmp) / "run"),
        **config,
    )
    life = Life(cfg)
    try:
        out = measure(
            life, ticks, gc_mode=mode, warmup=warmup, latency_ticks=latency_ticks, progress=progress
        )
    finally:
        life.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out.update(
        events_per_tick=events_per_tick,
        batch_size=batch_size,
        memory_capacity=memory_capacity,
        gc=gc,
        persistence=persist,
    )
    if baseline:
        bare = bare_loop(min(ticks, 1_000_000), seed=seed)
        out["baseline_ticks_per_s"] = bare
        out["ratio_to_baseline"] = out["ticks_per_s"] / bare
    return out


def bench_persisted(
    *,
    ticks: int = 200_000,
    rounds: int = 5,
    snapshot_every: int = 10_000,
    log_every: int = 1_000,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """What a run directory costs: the same run without and with one, interleaved.

    Each round times one fresh organism without a run directory and one with a temporary run
    directory (``snapshot_every``, ``log_every``), in alternating order so that machine noise
    falls on both; returns the medians, the ratio of the medians (``persist_ratio``; the
    persistence target is >= 0.7), each round's ratio and the archive rows the persisted runs
    wrote per second. ``options`` are :func:`bench_loop`'s.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    plain: list[dict[str, Any]] = []
    persisted: list[dict[str, Any]] = []
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for persist in order:
            extra = {"snapshot_every": snapshot_every, "log_every": log_every} if persist else {}
            out = bench_loop(ticks=ticks, progress=progress, **options, **extra)
            (persisted if persist else plain).append(out)
    a = float(np.median([o["ticks_per_s"] for o in plain]))
    b = float(np.median([o["ticks_per_s"] for o in persisted]))
    archived = [o["archive_size"] / o["wall_s"] for o in persisted]
    return {
        "engine": plain[0]["engine"],
        "ticks": plain[0]["ticks"],
        "rounds": rounds,
        "events_per_tick": plain[0]["events_per_tick"],
        "snapshot_every": snapshot_every,
        "log_every": log_every,
        "ticks_per_s": a,
        "persisted_ticks_per_s": b,
        "persist_ratio": b / a,
        "round_ratios": [
            p["ticks_per_s"] / q["ticks_per_s"] for p, q in zip(persisted, plain, strict=True)
        ],
        "archive_rows_per_s": float(np.median(archived)),
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(
    life: Life,
    ticks: int,
    *,
    gc_mode: str | tuple[int, int, int] = "default",
    warmup: int | None = None,
    latency_ticks: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Measure an organism the way ``bench loop`` does (the module docstring's method).

    Runs ``warmup`` ticks (None: a tenth of ``ticks``, between 1 000 and 20 000; 0: none), applies
    ``gc_mode`` (as :func:`~lifelab.observe.gcmode.parse_gc_mode` returns it) and empties
    ``life.metrics``, then times ``ticks`` rounded down to ten equal chunks and runs the latency
    pass (``latency_ticks``, None: up to 100 000). Returns the measured keys of ``bench loop``
    (``engine``, ``ticks``, ``wall_s``, ``ticks_per_s``, ``events_per_s``, the tick percentiles
    and ``latency_source``, GC figures, ``rate_by_decile``, sizes); ``progress`` gets each chunk's
    ticks. The GC mode stays applied, so run it in a process of its own (``lifelab bench`` and
    the trial worker do); the caller closes ``life``.
    """
    life.run(warmup if warmup is not None else min(20_000, max(1_000, ticks // 10)))
    apply_gc_mode(gc_mode)
    life.metrics.reset()  # the sampled ticks describe the measured ticks only
    events0 = life.events_processed
    chunk = ticks // 10
    rates = []
    with GcWatch() as watch:
        t0 = time.perf_counter()
        for _ in range(10):
            c0 = time.perf_counter()
            life.run(chunk)
            rates.append(chunk / (time.perf_counter() - c0))
            if progress is not None:
                progress(chunk)
        wall = time.perf_counter() - t0
    events = life.events_processed - events0
    n = latency_ticks if latency_ticks is not None else min(ticks, 100_000)
    latency = None
    if life.engine == "compiled" and life.config.metrics_every > 0:
        latency = _kernel_latency(life, n)
    if latency is None:
        lat = _latency_pass(life, n)
        latency = {
            "latency_source": PYTHON_LATENCY,
            "latency_samples": len(lat),
            "tick_p50_us": float(np.percentile(lat, 50)) / 1e3,
            "tick_p99_us": float(np.percentile(lat, 99)) / 1e3,
            "tick_max_us": float(lat.max()) / 1e3,
        }
    return {
        "engine": life.engine,
        "ticks": chunk * 10,
        "events": events,
        "wall_s": wall,
        "ticks_per_s": chunk * 10 / wall,
        "events_per_s": events / wall,
        **latency,
        "peak_rss_mb": peak_rss_mb(),
        "gc_collections": sum(watch.collections),
        "gc_collections_by_gen": list(watch.collections),
        "gc_pause_ms": watch.pause_ms,
        "rate_by_decile": rates,
        "last_decile_ratio": rates[-1] / rates[0],
        "memory_active": len(life.memory),
        "archive_size": len(life.archive),
    }


def _kernel_latency(life: Life, n: int) -> dict[str, Any] | None:
    """Tick percentiles from the ticks the compiled kernel timed itself, after ``n`` more ticks.

    ``life.metrics`` was emptied after warm-up, so the samples cover the throughput pass and
    these ``n`` ticks. Resolution: the log histogram's buckets are an eighth of an octave wide.
    None when no tick was sampled (a run shorter than the sampling gap).
    """
    if n:
        life.run(n)
    tick = life.metrics.tick
    if tick.count == 0:
        return None
    return {
        "latency_source": KERNEL_LATENCY,
        "latency_samples": tick.count,
        "tick_p50_us": tick.percentile(50) / 1e3,
        "tick_p99_us": tick.percentile(99) / 1e3,
        "tick_max_us": tick.max / 1e3,
    }


def _latency_pass(life: Life, n: int) -> np.ndarray:
    """Per-tick wall times (ns) of ``n`` single ticks, errors handled as in Life.run."""
    step = life.step
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        step()
        samples[i] = clock() - t0
    return np.asarray(samples, dtype=np.int64)


def bare_loop(ticks: int, seed: int = 0) -> float:
    """Ticks/s of the minimum a tick must do: draw an event, clamp three vitals, append 3 columns.

    The yardstick for "how close to what CPython can do": ``ratio_to_baseline`` compares the
    loop to it.
    """
    rows = builtin_types()[:-1]
    p = np.array([r.draw_weight for r in rows])
    rng = np.random.default_rng(seed)
    types = rng.choice(len(rows), size=ticks, p=p / p.sum()).tolist()
    intensities = rng.random(ticks).tolist()
    base_e = [r.energy for r in rows]
    base_s = [r.stability for r in rows]
    base_i = [r.integrity for r in rows]
    col_t: list[int] = []
    col_i: list[float] = []
    col_k: list[int] = []
    energy, stability, integrity = 100.0, 1.0, 1.0
    t0 = time.perf_counter()
    for k in range(ticks):
        t = types[k]
        x = intensities[k]
        e = energy + base_e[t] * x
        energy = 0.0 if e < 0.0 else 100.0 if e > 100.0 else e
        s = stability + base_s[t] * x
        stability = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
        i = integrity + base_i[t] * x
        integrity = 0.0 if i < 0.0 else 1.0 if i > 1.0 else i
        col_t.append(t)
        col_i.append(x)
        col_k.append(k)
    return ticks / (time.perf_counter() - t0)
