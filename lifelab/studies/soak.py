"""Soak: live long in real time and in simulated time; watch RSS, containers and disk.

The command is ``lifelab soak``; not part of CI (10 minutes in real time, then the simulated
phase at the loop's own speed)::

    lifelab soak --realtime-seconds 600 --interval 0.01 --sim-ticks 10000000

Two phases, each in its own run directory under ``--root`` (a temporary folder by default,
removed at the end unless ``--keep``):

1. **real time**: ``start()`` at ``1/interval`` Hz for ``--realtime-seconds``;
2. **simulated**: ``run()`` for ``--sim-ticks`` ticks, in ``--samples`` chunks.

At each of ``--samples`` sample points the soak records the process RSS (``/proc/self/statm``),
the length of every list, dict, deque, set and queue attribute reachable from the Life through
lifelab objects (state, memory, feedback.pending, the event queue, metrics, persistence and its
writers…), and the bytes and files of the run directory (snapshots, logs, archive). After a
warm-up (the first ``--warmup`` fraction of the samples) it reports:

- ``rss_growth_pct``: peak RSS of the last third of the samples over the first third (target ≤ 5);
- ``growing_containers``: every container whose largest size in the second half of the samples
  exceeds its largest size in the first half (by more than 5 % and 16 items) — a history that is
  not bounded grows with time;
- ``backlogs``: the event queue and the writers' backlogs, read from their public gauges
  (:func:`backlogs`: ``life.queue_depth``, the archive's ``backlog``, the log writer's
  ``buffered``) with their design bounds. They fill while a writer catches up. A growing
  container held by one of their owners is listed under ``bounded_backlogs`` instead of
  ``growing_containers`` when its owner's gauge explains it: it never held more items than
  the gauge counted, and the gauge stayed within its bound;
- ``disk``: the largest snapshot and log footprint seen, checked against retention
  (``snapshot_keep`` files, plus one being replaced) and rotation (``log_max_bytes`` ×
  ``log_max_files``, plus one record); the archive grows by design (spill, never delete) and is
  reported in bytes per row.

``lifelab soak`` prints the report as one JSON object; ``--strict`` makes its exit status 1 when
a target is missed. The walk reads private attributes by reflection on purpose: a leak can be in
any container, and the report names each by its attribute path.
"""

from __future__ import annotations

import collections
import math
import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["analyse", "backlogs", "container_sizes", "disk_usage", "rss_bytes", "run_soak"]

RSS_TARGET_PCT = 5.0
GROWTH_MIN_ITEMS = 16  # a container must grow by more than this (and 5 %) to be reported
GROWTH_MIN_FRACTION = 0.05
_WALK_DEPTH = 6
_WALK_FANOUT = 64  # dicts/lists of lifelab objects larger than this are sized, not entered


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux ``/proc/self/statm``), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _size(value: Any) -> int | None:
    """The number of items a growable container holds, or None for anything else."""
    if isinstance(value, list | dict | set | collections.deque | bytearray):
        return len(value)
    if isinstance(value, queue.Queue):
        return value.qsize()
    if isinstance(value, np.ndarray):
        return int(value.size)
    return None


def _is_ours(value: Any) -> bool:
    return type(value).__module__.startswith("lifelab.")


def _attributes(obj: Any) -> list[tuple[str, Any]]:
    """(name, value) of an object's instance attributes: __dict__ and every __slots__."""
    names: list[str] = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    out = []
    for name in dict.fromkeys(names):  # ordered, unique
        if name in ("__dict__", "__weakref__"):
            continue
        try:
            out.append((name, getattr(obj, name)))
        except AttributeError:  # an unset slot
            continue
    return out


def container_sizes(root: Any, name: str = "life") -> dict[str, int]:
    """Sizes of every container attribute reachable from ``root`` through lifelab objects.

    Keys are attribute paths (``life.feedback.pending``, ``life.metrics._stages[tick]…``).
    Only lifelab objects are entered (a thread's or a lock's internals are not ours); a dict or
    list of lifelab objects is entered item by item when it is small (its own size is recorded
    either way). Safe to call while the organism runs in its thread: it only reads.
    """
    sizes: dict[str, int] = {}
    seen: set[int] = set()

    def visit(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > _WALK_DEPTH:
            return
        seen.add(id(obj))
        for attr, value in _attributes(obj):
            here = f"{path}.{attr}"
            n = _size(value)
            if n is not None:
                sizes[here] = n
                if isinstance(value, dict) and n <= _WALK_FANOUT:
                    for key, item in list(value.items()):
                        if _is_ours(item):
                            visit(item, f"{here}[{key}]", depth + 1)
                elif isinstance(value, list) and n <= _WALK_FANOUT:
                    for i, item in enumerate(list(value)):
                        if _is_ours(item):
                            visit(item, f"{here}[{i}]", depth + 1)
            elif _is_ours(value):
                visit(value, here, depth + 1)

    for _ in range(3):  # the life thread may resize a dict while we iterate: try again
        try:
            visit(root, name, 0)
            return sizes
        except RuntimeError:
            sizes.clear()
            seen.clear()
    return sizes


def backlogs(life: Any) -> dict[str, dict[str, int]]:
    """The queue and writer backlogs of a Life, from public gauges, with their design bounds.

    Keys are gauge paths whose owner (the path without its last part) is the object holding the
    backlog: ``life.queue_depth`` (events waiting; bound ``queue_capacity``), and with a run
    directory ``life.persistence.archive.backlog`` (rows not yet durable; ``backlog_max``) and
    ``life.persistence.logs.buffered`` (records not yet written; ``buffer_max``). Values are
    ``{"items": n, "bound": b}``.
    """
    out = {"life.queue_depth": {"items": life.queue_depth, "bound": life.config.queue_capacity}}
    store = life.persistence
    if store is not None:
        archive, logs = store.archive, store.logs
        out["life.persistence.archive.backlog"] = {
            "items": archive.backlog,
            "bound": archive.backlog_max,
        }
        out["life.persistence.logs.buffered"] = {
            "items": logs.stats()["buffered"],
            "bound": logs.buffer_max,
        }
    return out


def disk_usage(run_dir: Path) -> dict[str, int]:
    """Bytes and files of a run directory's snapshots, logs and archive (segments, or the SQLite
    file of a format 1 run with its -wal/-shm)."""

    def folder(path: Path, pattern: str) -> tuple[int, int]:
        total = files = 0
        for p in path.glob(pattern) if path.is_dir() else ():
            try:
                total += p.stat().st_size
                files += 1
            except FileNotFoundError:  # removed by retention or rotation meanwhile
                continue
        return total, files

    snap_bytes, snap_files = folder(run_dir / "snapshots", "snap-*.lls")
    log_bytes, log_files = folder(run_dir / "logs", "*.jsonl")
    archive_bytes, _ = folder(run_dir, "archive.sqlite*")
    segment_bytes, _ = folder(run_dir / "archive", "*")
    archive_bytes += segment_bytes
    return {
        "snapshots_bytes": snap_bytes,
        "snapshots_files": snap_files,
        "logs_bytes": log_bytes,
        "logs_files": log_files,
        "archive_bytes": archive_bytes,
    }


def _sample(life: Any, t0: float) -> dict[str, Any]:
    before = backlogs(life)
    containers = container_sizes(life)
    # The gauges are read on both sides of the walk and the larger reading kept: the writers
    # move meanwhile, and a backlog's containers were sized in between.
    gauges = {
        path: {**gauge, "items": max(gauge["items"], before[path]["items"])}
        for path, gauge in backlogs(life).items()
    }
    return {
        "elapsed_s": time.perf_counter() - t0,
        "ticks": life.state.ticks,
        "rss_bytes": rss_bytes(),
        "containers": containers,
        "backlogs": gauges,
        "disk": disk_usage(Path(life.run_dir)) if life.run_dir is not None else {},
    }


def analyse(samples: Sequence[dict[str, Any]], warmup: float = 0.2) -> dict[str, Any]:
    """RSS growth, growing containers and backlogs over the samples after the warm-up fraction.

    A sample is ``{"ticks", "rss_bytes", "containers": {path: size}}``, and optionally
    ``"backlogs"`` as :func:`backlogs` returns them; see the module docstring for the keys.
    """
    if not samples:
        raise ValueError("no samples to analyse")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be in [0, 1), got {warmup!r}")
    skip = min(math.ceil(len(samples) * warmup), len(samples) - 2)
    steady = list(samples[max(skip, 0) :])
    third = max(1, len(steady) // 3)
    rss = [s["rss_bytes"] for s in steady]
    growth_pct = None
    if all(r is not None for r in rss):
        early, late = max(rss[:third]), max(rss[-third:])
        growth_pct = 100.0 * (late - early) / early
    half = max(1, len(steady) // 2)
    growing = {}
    paths = set().union(*(s["containers"] for s in steady))
    for path in sorted(paths):
        series = [s["containers"].get(path, 0) for s in steady]
        first, second = max(series[:half]), max(series[half:] or series)
        if second - first > max(GROWTH_MIN_ITEMS, GROWTH_MIN_FRACTION * first):
            growing[path] = {"first_half_max": first, "second_half_max": second}
    queues = _backlog_report(steady, half)
    last = samples[-1]["containers"]
    largest = dict(sorted(last.items(), key=lambda kv: -kv[1])[:10])
    return {
        "samples_after_warmup": len(steady),
        "ticks_after_warmup": steady[-1]["ticks"] - steady[0]["ticks"],
        "rss_warm_mb": None if rss[0] is None else rss[0] / 2**20,
        "rss_end_mb": None if rss[-1] is None else rss[-1] / 2**20,
        "rss_growth_pct": growth_pct,
        "growing_containers": growing,
        "bounded_backlogs": _explained(growing, queues),
        "backlogs": queues,
        "largest_containers": largest,
    }


def _backlog_report(steady: Sequence[dict[str, Any]], half: int) -> dict[str, dict[str, Any]]:
    """Per backlog gauge: its largest reading in each half, its bound, whether it stayed within."""
    out = {}
    paths = set().union(*(s.get("backlogs", {}) for s in steady))
    for path in sorted(paths):
        readings = [s["backlogs"][path] for s in steady if path in s.get("backlogs", {})]
        items = [r["items"] for r in readings]
        bound = readings[-1]["bound"]
        out[path] = {
            "first_half_max": max(items[:half] or items),
            "second_half_max": max(items[half:] or items),
            "bound": bound,
            "within_bound": max(items) <= bound,
        }
    return out


def _explained(
    growing: dict[str, dict[str, int]], queues: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Move out of ``growing`` the containers that a backlog gauge of their owner explains.

    A container is explained when it is an attribute of the gauge's owner, it never held more
    items than the gauge's largest reading (a queue or a backlog holds at most as many entries,
    batches or records as it counts), and the gauge stayed within its bound.
    """
    out = {}
    for path, sizes in list(growing.items()):
        owner = path.rpartition(".")[0]
        for gauge, reading in queues.items():
            most = max(reading["first_half_max"], reading["second_half_max"])
            if gauge.rpartition(".")[0] != owner or not reading["within_bound"]:
                continue
            if sizes["second_half_max"] <= most:
                out[path] = {**sizes, "gauge": gauge, "gauge_max": most, "bound": reading["bound"]}
                del growing[path]
                break
    return out


def _disk_report(samples: Sequence[dict[str, Any]], config: Any) -> dict[str, Any]:
    disks = [s["disk"] for s in samples if s["disk"]]
    if not disks:
        return {}
    log_cap = config.log_max_bytes * config.log_max_files
    out = {
        "snapshots_files_max": max(d["snapshots_files"] for d in disks),
        "snapshots_bytes_max": max(d["snapshots_bytes"] for d in disks),
        "logs_files_max": max(d["logs_files"] for d in disks),
        "logs_bytes_max": max(d["logs_bytes"] for d in disks),
        "logs_bytes_cap": log_cap,
        "archive_bytes_end": disks[-1]["archive_bytes"],
    }
    # One snapshot may be written before retention removes the oldest; the current log file may
    # pass log_max_bytes by one record before it rotates.
    out["bounded"] = (
        out["snapshots_files_max"] <= config.snapshot_keep + 1
        and out["logs_files_max"] <= config.log_max_files
        and out["logs_bytes_max"] <= log_cap + 64 * 1024
    )
    return out


def _phase(
    life: Any, advance: Callable[[int], None], samples: int, warmup: float
) -> dict[str, Any]:
    """Advance the life ``samples`` times, sampling after each step, then close and report."""
    t0 = time.perf_counter()
    series = []
    for i in range(samples):
        advance(i)
        series.append(_sample(life, t0))
    summary = life.stop() if life.running else life.summary()
    life.close()
    final_disk = disk_usage(Path(life.run_dir))
    report = analyse(series, warmup)
    report["disk"] = _disk_report(series, life.config)
    report["disk_after_close"] = final_disk
    archived = summary["archive_size"]
    report["archive_bytes_per_row"] = final_disk["archive_bytes"] / archived if archived else None
    report["summary"] = {k: v for k, v in summary.items() if k != "run_dir"}
    report["wall_s"] = time.perf_counter() - t0
    report["series"] = {
        "elapsed_s": [round(s["elapsed_s"], 3) for s in series],
        "ticks": [s["ticks"] for s in series],
        "rss_mb": [None if s["rss_bytes"] is None else s["rss_bytes"] / 2**20 for s in series],
    }
    return report


def run_soak(
    *,
    realtime_seconds: float,
    interval: float,
    sim_ticks: int,
    samples: int = 60,
    warmup: float = 0.2,
    root: str | Path | None = None,
    keep: bool = False,
    **config: Any,
) -> dict[str, Any]:
    """Run both phases and return the report (see the module docstring). ``config`` holds
    LifeConfig overrides (seed, events_per_tick, snapshot_every, log_every, …)."""
    from lifelab import __version__
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life

    if samples < 3:
        raise ValueError(f"samples must be >= 3, got {samples}")
    if realtime_seconds < 0 or sim_ticks < 0:
        raise ValueError("realtime_seconds and sim_ticks must be >= 0")
    base = LifeConfig(**config)  # validated before anything is created
    folder = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="lifelab-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "lifelab_version": __version__,
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "realtime_seconds": realtime_seconds,
        "interval_s": interval,
        "sim_ticks": sim_ticks,
        "samples": samples,
        "warmup_fraction": warmup,
        "config": {k: v for k, v in base.to_dict().items() if k not in ("run_dir", "clock")},
        "root": str(folder),
    }
    try:
        if realtime_seconds > 0:
            life = Life(
                base.replace(clock="realtime", tick_interval=interval, run_dir=str(folder / "rt"))
            )
            step_s = realtime_seconds / samples
            life.start()
            t0 = time.perf_counter()

            def wait(i: int) -> None:
                time.sleep(max(0.0, t0 + (i + 1) * step_s - time.perf_counter()))

            report["realtime"] = _phase(life, wait, samples, warmup)
        if sim_ticks > 0:
            life = Life(base.replace(clock="simulated", run_dir=str(folder / "sim")))
            bounds = np.linspace(0, sim_ticks, samples + 1).astype(np.int64)

            def step(i: int) -> None:
                life.run(int(bounds[i + 1] - bounds[i]))

            report["simulated"] = _phase(life, step, samples, warmup)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    phases = [report[p] for p in ("realtime", "simulated") if p in report]
    report["targets"] = {"rss_growth_pct_max": RSS_TARGET_PCT}
    report["ok"] = all(
        (p["rss_growth_pct"] is None or p["rss_growth_pct"] <= RSS_TARGET_PCT)
        and not p["growing_containers"]
        and p["disk"].get("bounded", True)
        for p in phases
    )
    return report
