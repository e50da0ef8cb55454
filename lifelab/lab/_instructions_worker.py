"""The worker that :mod:`lifelab.lab.instructions` runs under valgrind (and once without it).

Usage: ``python -m lifelab.lab._instructions_worker SPEC_JSON``. The spec says what to do:

- ``{"kind": "loop", "config": {...}, "warmup": W, "ticks": N, "gc": "default"}``: build the
  organism, live ``W`` ticks, apply the GC mode, live ``N`` ticks;
- ``{"kind": "memory", "op": "decay"|"spill"|"search", "entries": E, "count": K, "seed": S}``:
  build the bench-memory workload of ``E`` entries (:mod:`lifelab.lab.bench_memory`), then do
  ``K`` decay passes over it, spill ``K`` entries of it in one ``enforce_capacity`` call, or run
  ``K`` archive searches on an archive of it;
- ``{"kind": "resume", "run_dir": DIR, "ticks": N}``: copy the run directory ``DIR`` (a state
  that :mod:`lifelab.lab.bench_degradation` kept) to a temporary one, resume the organism there
  as that bench's timed rounds do (snapshots and tick logs off), live ``N`` ticks, and close
  without a final snapshot (:func:`run_resume` says why).

Two runs of one spec that differ only in ``N`` or ``K`` do the same work up to the end of the
shorter one (every random draw is made in order, one operation at a time), so the difference of
their instruction counts is the cost of the extra operations alone (``resume``: up to the archive
writer's wake-ups, see :func:`run_resume`). The worker prints one JSON line: ``ops`` (N or K),
``events`` (events processed over the N ticks; None for memory), the ``engine`` that ran,
``writer_wakeups`` (``resume`` only), and ``numba_cpu_name`` / ``numba_cpu_features`` when numba
was loaded (the manager pins them under valgrind, whose virtual CPU would otherwise miss numba's
cache).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from lifelab.lab.spawn import spec_argument

USAGE = "usage: python -m lifelab.lab._instructions_worker SPEC_JSON"


def run_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Live ``warmup`` ticks, apply the GC mode, live ``ticks`` ticks; count the events."""
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life
    from lifelab.observe.gcmode import apply_gc_mode, parse_gc_mode

    life = Life(LifeConfig.from_mapping(spec["config"]))
    try:
        if spec["warmup"]:
            life.run(spec["warmup"])
        apply_gc_mode(parse_gc_mode(spec.get("gc", "default")))
        events0 = life.events_processed
        if spec["ticks"]:
            life.run(spec["ticks"])
        events = life.events_processed - events0
    finally:
        life.close()
    return {"ops": spec["ticks"], "events": events, "engine": life.engine}


def run_resume(spec: dict[str, Any]) -> dict[str, Any]:
    """Resume a fresh copy of ``run_dir`` and live ``ticks`` ticks; count the events.

    Every run starts from the same bytes: resuming changes a run directory (the archive is cut
    back to the snapshot, new rows are appended), so the kept state is never resumed in place.
    The close writes no final snapshot: its cost depends on the state it captures, which is not
    the same after two different ``ticks`` (the start state's memory grows over the window), so
    it would not cancel in the difference; the bench's timed rounds do not time it either. The
    archive is still flushed and closed, so every row spilled reaches the writer.

    The archive writer thread gathers rows on a 0.1 s wall-clock timer, so how many times it
    wakes up (``writer_wakeups`` in the output) depends on thread scheduling; the rows it copies
    do not. Each wake-up costs 0.1-0.15 M instructions: :mod:`lifelab.lab.bench_degradation`
    gives the spread that makes.
    """
    from lifelab.life.loop import Life

    tmp = Path(tempfile.mkdtemp(prefix="lifelab-instructions-"))
    try:
        copy = tmp / "run"
        shutil.copytree(spec["run_dir"], copy)
        life = Life.resume(copy, snapshot_every=0, log_every=0)
        persistence = life.persistence
        assert persistence is not None  # a resumed Life always has its run directory
        try:
            events0 = life.events_processed
            if spec["ticks"]:
                life.run(spec["ticks"])
            events = life.events_processed - events0
        finally:
            persistence.close(None)
        return {
            "ops": spec["ticks"],
            "events": events,
            "engine": life.engine,
            # the count's noise (see the docstring): how often the archive writer woke up
            "writer_wakeups": getattr(life.archive, "wakeups", None),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the bench-memory workload and do ``count`` operations ``op`` on it."""
    import numpy as np

    from lifelab.lab.bench_memory import SeededHistory, SpillSink, fill_memory
    from lifelab.memory.active import ActiveMemory

    op, count = spec["op"], spec["count"]
    rng = np.random.default_rng(spec["seed"])
    data = SeededHistory(spec["entries"], rng)
    mem, _ = fill_memory(data, sink=SpillSink())
    if op == "decay":
        for p in range(count):  # min_weight 0: nothing spills
            mem.decay(data.end_s + 10.0 * (p + 1))
    elif op == "spill":
        columns = mem.export()
        copy = ActiveMemory(len(mem) - count, SpillSink(), min_weight=0.0)
        copy.load(columns, next_id=mem.next_id, spilled=0)
        if count:
            copy.enforce_capacity()
    elif op == "search":
        _searches(mem.export(), data, rng, count)
    else:
        raise ValueError(f"op must be decay, spill or search, got {op!r}")
    return {"ops": count, "events": None, "engine": None}


def _searches(columns: dict[str, Any], data: Any, rng: Any, count: int) -> None:
    """Archive every entry in a temporary SQLite archive, then run ``count`` searches on it."""
    from lifelab.lab.bench_memory import ARCHIVE_CHUNK, SEARCH_LIMIT
    from lifelab.memory.sqlite_archive import SQLiteArchive

    tmp = Path(tempfile.mkdtemp(prefix="lifelab-instructions-"))
    try:
        store = SQLiteArchive(tmp / "archive.sqlite", type_names=data.type_names)
        try:
            n = len(columns["id"])
            for start in range(0, n, ARCHIVE_CHUNK):
                store.append({k: col[start : start + ARCHIVE_CHUNK] for k, col in columns.items()})
                store.flush()
            n_types = len(data.type_names)
            for _ in range(count):  # one draw at a time: a longer run repeats a shorter one
                t = int(rng.integers(0, n_types))
                since, until = sorted(rng.uniform(0.0, data.end_s, 2).tolist())
                store.search(event_type=t, since=since, until=until, limit=SEARCH_LIMIT)
        finally:
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def numba_cpu() -> dict[str, str]:
    """The CPU name and features numba compiles for (and keys its cache on), if it is loaded."""
    if "numba" not in sys.modules:
        return {}
    from llvmlite import binding
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    name = config.CPU_NAME or binding.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return {"numba_cpu_name": name, "numba_cpu_features": features}


def main(argv: list[str] | None = None) -> int:
    """Run the spec given as the one argument; print the result as one JSON line."""
    text = spec_argument(argv, USAGE)
    if text is None:
        return 2
    try:
        spec = json.loads(text)
        kind = spec["kind"]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"lifelab instructions worker: bad spec: {exc}", file=sys.stderr)
        return 2
    if kind == "loop":
        result = run_loop(spec)
    elif kind == "memory":
        result = run_memory(spec)
    elif kind == "resume":
        result = run_resume(spec)
    else:
        print(f"lifelab instructions worker: unknown kind {kind!r}", file=sys.stderr)
        return 2
    result.update(numba_cpu())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
