"""Instruction counts (valgrind) as a first-class metric: per tick, per event, per memory op.

Method (DESIGN.md §3: what a few percent must decide is decided with instruction counts, which
repeat within 1 %): a workload runs in a fresh interpreter under ``valgrind --tool=cachegrind
--cache-sim=no`` twice, with the same config and seed and an identical warm-up, doing ``n1`` and
then ``n2`` operations (ticks, decay passes, spilled entries, searches). Start-up — the
interpreter, imports, loading numba's cache, building the organism or the store — is the same in
both and cancels in the difference::

    instructions_per_op = (I(n2) - I(n1)) / (n2 - n1)

and per event, ``(I(n2) - I(n1)) / (events(n2) - events(n1))`` with the events each worker
counted. The total of a run is the ``summary:`` line of the cachegrind out file (``I refs`` on
valgrind's stderr says the same). Every worker runs with ``PYTHONHASHSEED=0`` and one BLAS thread.

The compiled engine must not compile under valgrind (minutes instead of ~20 s): before the
measured runs, the same workload runs once without valgrind (a few ticks), which fills numba's
cache if it is cold (``NUMBA_CACHE_DIR`` is inherited, as everywhere) and reports the CPU name and
features numba keyed that cache on; the valgrind runs pin them (``NUMBA_CPU_NAME``,
``NUMBA_CPU_FEATURES``), since valgrind's virtual CPU (a plainer one) would otherwise miss the
cache and compile. So the measured kernel is the very one a normal run on this machine loads.

:func:`repeatability` runs a measurement ``k`` times and returns its spread; :func:`aa_ratio`
runs two batches of it and returns the ratio of their medians (an A/A test: how far apart two
measurements of the same code land).

Measured here (valgrind 3.19, 2-core AMD EPYC VM, defaults, two batches of 5 interleaved):
the Python engine 78 788 instructions per tick, spread (max - min) / median 0.0015 % and
0.0009 %, A/A ratio 0.999998; the compiled engine 1 849 per tick, spread 0.18 % and 0.40 %, A/A
1.0004. The compiled engine's noise is its sampled cycle-counter timings (``metrics_every``,
~280 instructions a tick): with ``metrics_every=0`` it is 1 572 per tick, spread 0.0025 %.
The figure is per tick of the window n1..n2 (the compiled engine: 1 967 over ticks 2 000-22 000,
1 848 over 2 000-202 000), so compare counts of the same window.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelab.exceptions import LifelabError
from lifelab.lab.bench_realtime import BenchProcessError
from lifelab.lab.spawn import WorkerCancelled, WorkerError, run_worker
from lifelab.lab.spec import TrialSpec

__all__ = [
    "DEFAULT_LOOP_RUNS",
    "DEFAULT_MEMORY_RUNS",
    "MEMORY_ENTRIES",
    "VALGRIND_MISSING",
    "InstructionRun",
    "ValgrindMissing",
    "aa_ratio",
    "bench_loop_instructions",
    "bench_memory_instructions",
    "count_instructions",
    "count_trial",
    "count_window",
    "loop_runs",
    "parse_cachegrind",
    "per_op",
    "repeatability",
    "spread",
    "valgrind_path",
    "valgrind_version",
    "warm_up",
]

VALGRIND_MISSING = "valgrind is not installed: apt-get install valgrind"
# (n1, n2) ticks per engine: valgrind runs Python ~50x slower, the compiled tick ~300x cheaper
# than the Python one. Each default run takes well under a minute on a 2-core VM (the compiled
# engine's is mostly numba's import).
DEFAULT_LOOP_RUNS = {"python": (2_000, 12_000), "compiled": (2_000, 202_000)}
LOOP_WARMUP = 1_000
MEMORY_ENTRIES = 100_000
# (n1, n2) per memory op at E entries: decay passes, spilled entries (share of E), searches.
DEFAULT_MEMORY_RUNS = {"decay": (2, 12), "spill": (0.01, 0.11), "search": (20, 220)}
VALGRIND_TIMEOUT_S = 1_800.0
WARM_TIMEOUT_S = 900.0  # a cold numba cache compiles here, without valgrind (~20 s a kernel)
_WORKER = "lifelab.lab._instructions_worker"
_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


class ValgrindMissing(LifelabError, ImportError):
    """valgrind, which instruction counts need, is not installed (the CLI exits with 2)."""

    def __init__(self, message: str = VALGRIND_MISSING) -> None:
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class InstructionRun:
    """One worker under valgrind: ``ops`` operations done after the common start-up.

    Attributes:
        ops: Operations done (ticks, decay passes, spilled entries, searches).
        instructions: Total instructions the process executed, start-up included.
        events: Events processed over the ``ops`` ticks (None for memory operations).
    """

    ops: int
    instructions: int
    events: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "instructions": self.instructions, "events": self.events}


# -- valgrind ----------------------------------------------------------------------------------


def valgrind_path() -> str:
    """The valgrind program on ``PATH``.

    Raises:
        ValgrindMissing: It is not installed.
    """
    path = shutil.which("valgrind")
    if path is None:
        raise ValgrindMissing()
    return path


@functools.cache
def _version(path: str) -> str:
    try:
        out = run_worker([path, "--version"], timeout=60.0, what="valgrind --version").stdout
    except WorkerError as exc:
        raise BenchProcessError(str(exc)) from exc
    return out.strip().removeprefix("valgrind-")


def valgrind_version() -> str:
    """valgrind's version, e.g. ``"3.19.0"``."""
    return _version(valgrind_path())


def parse_cachegrind(text: str) -> int:
    """Total instructions from a cachegrind out file (``summary:``) or its stderr (``I refs:``).

    Raises:
        ValueError: ``text`` holds neither.
    """
    events: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            values = line.split()[1:]
            column = events.index("Ir") if events and "Ir" in events else 0
            return int(values[column])
    found = _I_REFS.findall(text)
    if found:
        return int(found[-1].replace(",", ""))
    raise ValueError("no instruction total (a 'summary:' or 'I refs:' line) in valgrind output")


def per_op(short: InstructionRun, long: InstructionRun) -> dict[str, float | None]:
    """The difference of two runs per extra operation, and per extra event.

    Returns ``instructions_per_op`` = (I(n2) - I(n1)) / (n2 - n1) and ``instructions_per_event``
    (None when either run counted no events, or both counted the same).

    Raises:
        ValueError: ``long`` did not do more operations than ``short``.
    """
    if long.ops <= short.ops:
        raise ValueError(f"the long run must do more ops than the short: {long.ops} <= {short.ops}")
    extra = long.instructions - short.instructions
    per_event = None
    if short.events is not None and long.events is not None and long.events != short.events:
        per_event = extra / (long.events - short.events)
    return {
        "instructions_per_op": extra / (long.ops - short.ops),
        "instructions_per_event": per_event,
    }


def count_instructions(
    spec: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 900.0,
    python: str | None = None,
    cancel: threading.Event | None = None,
) -> tuple[InstructionRun, dict[str, Any]]:
    """Run the instructions worker on ``spec`` under cachegrind; return its run and its output.

    ``python`` is the interpreter to run it with (default this one); ``cancel`` kills it when
    set (:class:`lifelab.lab.spawn.WorkerCancelled` is raised).

    Raises:
        ValgrindMissing: valgrind is not installed.
        BenchProcessError: the worker failed, timed out or printed no result.
    """
    valgrind = valgrind_path()
    with tempfile.TemporaryDirectory(prefix="lifelab-cachegrind-") as tmp:
        out_file = Path(tmp) / "cachegrind.out"
        argv = [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={out_file}",
            python or sys.executable,
            "-m",
            _WORKER,
            json.dumps(dict(spec)),
        ]
        child_env = {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        child_env.update(env or {})
        what = "the instructions worker under valgrind"
        result = _run(argv, child_env, timeout_s, what, cancel)
        try:
            total = parse_cachegrind(out_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchProcessError(f"cachegrind wrote no instruction total: {exc}") from exc
    return InstructionRun(int(result["ops"]), total, result.get("events")), result


def _run(
    argv: list[str],
    env: Mapping[str, str],
    timeout_s: float,
    what: str,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """The worker's JSON result; a cancel passes through as WorkerCancelled."""
    try:
        result = run_worker(argv, timeout=timeout_s, env=env, cancel=cancel, what=what).json_line()
    except WorkerCancelled:
        raise
    except WorkerError as exc:  # chained to the OSError when it could not start
        raise BenchProcessError(str(exc)) from exc.__cause__
    if not isinstance(result, dict):
        raise BenchProcessError(f"{what} printed {result!r}, not a JSON object")
    return result


def warm_up(
    spec: Mapping[str, Any], *, python: str | None = None, cancel: threading.Event | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Run ``spec`` once without valgrind (filling numba's cache if it is cold); return the
    numba CPU pins for the valgrind runs (none when numba was not loaded) and the worker's
    output. Give it the longest run's spec, so everything that run needs is compiled."""
    argv = [python or sys.executable, "-m", _WORKER, json.dumps(dict(spec))]
    what = "the instructions worker (warm-up, no valgrind)"
    result = _run(argv, {}, WARM_TIMEOUT_S, what, cancel)
    if "numba_cpu_name" not in result:
        return {}, result
    pins = {
        "NUMBA_CPU_NAME": result["numba_cpu_name"],
        "NUMBA_CPU_FEATURES": result["numba_cpu_features"],
    }
    return pins, result


def count_window(
    spec: Mapping[str, Any],
    key: str,
    n1: int,
    n2: int,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = VALGRIND_TIMEOUT_S,
    python: str | None = None,
    cancel: threading.Event | None = None,
) -> tuple[InstructionRun, InstructionRun, dict[str, Any]]:
    """The two runs of ``spec`` with ``key`` set to ``n1`` and ``n2``, under valgrind at once.

    Both run concurrently (one per core on a 2-core machine): an instruction count does not
    depend on what else the machine does, so this halves the wait and changes no figure (the
    A/A and spread figures in the module docstring were taken this way and sequentially alike).
    Returns the short run, the long run and the long run's worker output.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> tuple[InstructionRun, dict[str, Any]]:
        return count_instructions(
            {**spec, key: n}, env=env, timeout_s=timeout_s, python=python, cancel=cancel
        )

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="lifelab-valgrind") as pool:
        short_future, long_future = pool.submit(one, n1), pool.submit(one, n2)
        (short, _), (long, out) = short_future.result(), long_future.result()
    return short, long, out


# -- the loop ----------------------------------------------------------------------------------


def loop_runs(
    engine: str, ticks: int | None = None, short_ticks: int | None = None
) -> tuple[int, int]:
    """(n1, n2) ticks of the two loop runs: the engine's defaults (:data:`DEFAULT_LOOP_RUNS`),
    with n1 = ``short_ticks`` and n2 = n1 + ``ticks`` where given."""
    n1, n2 = DEFAULT_LOOP_RUNS["python" if engine == "python" else "compiled"]
    ticks = n2 - n1 if ticks is None else ticks
    n1 = n1 if short_ticks is None else short_ticks
    for name, value, low in (("ticks", ticks, 1), ("short_ticks", n1, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return n1, n1 + ticks


def bench_loop_instructions(
    *,
    ticks: int | None = None,
    short_ticks: int | None = None,
    events_per_tick: float = 1.0,
    batch_size: int = 64,
    memory_capacity: int = 10_000,
    gc: str = "default",
    warmup: int = LOOP_WARMUP,
    seed: int = 0,
    engine: str | None = None,
    timeout_s: float = VALGRIND_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Instructions per tick and per event of the loop (``bench loop --instructions``).

    ``ticks`` is n2 - n1 and ``short_ticks`` n1 (None: :data:`DEFAULT_LOOP_RUNS`); ``warmup``
    ticks run before either count; the other options are :func:`lifelab.lab.bench.bench_loop`'s.
    No run directory: its writer threads would make the counts vary with thread scheduling.

    Returns ``engine``, ``ticks`` (n2 - n1), ``instructions_per_tick``,
    ``instructions_per_event``, ``instructions_tool`` and ``instruction_runs`` (each run's
    ``ticks``, ``instructions`` and ``events``), with the workload's options.

    Raises:
        ValgrindMissing: valgrind is not installed.
        ValueError: a bad option, or a run directory asked for.
        BenchProcessError: a worker failed.
    """
    from lifelab.config import LifeConfig
    from lifelab.observe.gcmode import parse_gc_mode

    tool = f"cachegrind {valgrind_version()}"
    parse_gc_mode(gc)
    if config.get("snapshot_every") or config.get("log_every") or config.get("run_dir"):
        raise ValueError(
            "instruction counts run without a run directory: drop snapshot_every/log_every"
        )
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if engine is not None:
        config["engine"] = engine
    config["log_every"] = 0
    cfg = LifeConfig(
        seed=seed,
        events_per_tick=events_per_tick,
        batch_size=batch_size,
        memory_capacity=memory_capacity,
        **config,
    )
    n1, n2 = loop_runs(cfg.engine, ticks, short_ticks)
    spec = {"kind": "loop", "config": cfg.to_dict(), "warmup": warmup, "gc": gc}
    if progress is not None:
        progress("warm-up (no valgrind)")
    pins, warm = warm_up({**spec, "ticks": n2})  # the long run's work: all it needs is compiled
    if ticks is None and warm["engine"] != cfg.engine:  # no numba: the Python engine's ticks
        n1, n2 = loop_runs(warm["engine"], None, short_ticks)
    if progress is not None:
        progress(f"{n1} and {n2} ticks under valgrind")
    short, long, out = count_window(spec, "ticks", n1, n2, env=pins, timeout_s=timeout_s)
    diff = per_op(short, long)
    return {
        "engine": out["engine"],
        "ticks": n2 - n1,
        "warmup": warmup,
        "events_per_tick": events_per_tick,
        "batch_size": batch_size,
        "memory_capacity": memory_capacity,
        "gc": gc,
        "seed": seed,
        "instructions_per_tick": diff["instructions_per_op"],
        "instructions_per_event": diff["instructions_per_event"],
        "instructions_tool": tool,
        "instruction_runs": [
            {"ticks": r.ops, "instructions": r.instructions, "events": r.events}
            for r in (short, long)
        ],
    }


def count_trial(
    spec: TrialSpec, *, python: str | None = None, cancel: threading.Event | None = None
) -> dict[str, Any]:
    """The instruction columns of a trial's row (schema.INSTRUCTION_COLUMNS): its measured ticks
    counted under valgrind (``TrialSpec(instructions=True)``; :func:`lifelab.lab.runner.run_trial`
    calls this after the timed run).

    The window is exactly the trial's: both runs build the spec's organism and live its
    ``warmup_ticks`` and apply its GC mode; the short run stops there (n1 = 0), the long one lives
    the ``ticks`` measured ticks too, so the difference is their cost alone. Each valgrind run
    may take ``max(spec.timeout_s, VALGRIND_TIMEOUT_S)`` seconds.

    Raises:
        ValgrindMissing: valgrind is not installed.
        BenchProcessError: a worker failed, or ran another engine than the spec's.
        lifelab.lab.spawn.WorkerCancelled: ``cancel`` was set.
    """
    tool = f"cachegrind {valgrind_version()}"
    work = {
        "kind": "loop",
        # No run directory, as the trial worker runs it: a counted spec has refused
        # snapshot_every and log_every, and log_every=0 overrides LifeConfig's default.
        "config": spec.life_config(log_every=0).to_dict(),
        "warmup": spec.warmup_ticks,
        "gc": spec.gc_mode,
    }
    # The long run's work without valgrind first: every module it imports, even late, is
    # compiled to a .pyc before the counted runs, which must not differ in that.
    pins, _ = warm_up({**work, "ticks": spec.ticks}, python=python, cancel=cancel)
    timeout_s = max(spec.timeout_s, VALGRIND_TIMEOUT_S)
    short, long, out = count_window(
        work, "ticks", 0, spec.ticks, env=pins, timeout_s=timeout_s, python=python, cancel=cancel
    )
    if out["engine"] != spec.engine:
        raise BenchProcessError(
            f"the counted run used the {out['engine']} engine, the trial asks for {spec.engine}"
        )
    diff = per_op(short, long)
    return {
        "instructions_per_tick": diff["instructions_per_op"],
        "instructions_per_event": diff["instructions_per_event"],
        "instructions_tool": tool,
    }


# -- memory ------------------------------------------------------------------------------------


def _memory_counts(op: str, entries: int) -> tuple[int, int]:
    a, b = DEFAULT_MEMORY_RUNS[op]
    if op == "spill":
        return int(entries * a), int(entries * b)
    return int(a), int(b)


def bench_memory_instructions(
    *,
    entries: int = MEMORY_ENTRIES,
    seed: int = 0,
    ops: tuple[str, ...] = ("decay", "spill", "search"),
    timeout_s: float = VALGRIND_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Instructions per decay pass, per spilled entry and per search (``bench memory
    --instructions``) on :mod:`lifelab.lab.bench_memory`'s workload of ``entries`` entries.

    Decay: passes over every entry that spill nothing (``instructions_per_decay_pass``, and per
    entry). Spill: one ``enforce_capacity`` call spilling 1 % and one spilling 11 % of the
    entries from a fresh copy; the difference is the marginal cost of a spilled entry (the
    call's fixed part, a selection over all entries, cancels). Search: type + time-window
    searches (limit 100) on a SQLite archive of every entry, the writer's flush hand-shake
    included. Each op is two valgrind runs (:data:`DEFAULT_MEMORY_RUNS`); ``instruction_runs``
    has them by op.

    Raises:
        ValgrindMissing: valgrind is not installed.
        ValueError: ``entries`` below 1 000, or an unknown op.
        BenchProcessError: a worker failed.
    """
    tool = f"cachegrind {valgrind_version()}"
    if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1_000:
        raise ValueError(f"entries must be an int >= 1000, got {entries!r}")
    unknown = set(ops) - set(DEFAULT_MEMORY_RUNS)
    if unknown or not ops:
        raise ValueError(f"ops must be among {sorted(DEFAULT_MEMORY_RUNS)}, got {list(ops)}")
    out: dict[str, Any] = {"entries": entries, "seed": seed}
    runs: dict[str, Any] = {}
    names = {
        "decay": "instructions_per_decay_pass",
        "spill": "instructions_per_spilled_entry",
        "search": "instructions_per_search",
    }
    for op in ("decay", "spill", "search"):
        if op not in ops:
            out[names[op]] = None
            continue
        spec = {"kind": "memory", "op": op, "entries": entries, "seed": seed}
        n1, n2 = _memory_counts(op, entries)
        if progress is not None:
            progress(f"{op}: warm-up")
        pins, _ = warm_up({**spec, "count": n2})
        if progress is not None:
            progress(f"{op}: {n1} and {n2} under valgrind")
        short, long, _ = count_window(spec, "count", n1, n2, env=pins, timeout_s=timeout_s)
        out[names[op]] = per_op(short, long)["instructions_per_op"]
        runs[op] = [short.to_dict(), long.to_dict()]
    decay = out["instructions_per_decay_pass"]
    out["instructions_per_decay_entry"] = None if decay is None else decay / entries
    out["instructions_tool"] = tool
    out["instruction_runs"] = runs
    return out


# -- repeatability -----------------------------------------------------------------------------


def repeatability(measure: Callable[[], float], repeats: int = 5) -> dict[str, Any]:
    """Run ``measure`` ``repeats`` times; return the values, min, median, max and the relative
    spread ``(max - min) / median``.

    E.g. ``repeatability(lambda: bench_loop_instructions(engine="python")
    ["instructions_per_tick"])``.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    values = [float(measure()) for _ in range(repeats)]
    return spread(values)


def spread(values: list[float]) -> dict[str, Any]:
    """min, median, max and ``relative_spread`` = (max - min) / median of ``values``."""
    ordered = sorted(values)
    median = statistics.median(ordered)
    return {
        "values": values,
        "min": ordered[0],
        "median": median,
        "max": ordered[-1],
        "relative_spread": (ordered[-1] - ordered[0]) / median if median else float("nan"),
    }


def aa_ratio(measure: Callable[[], float], repeats: int = 5) -> dict[str, Any]:
    """An A/A test: two batches of ``repeats`` measurements of the same code, interleaved
    (a, b, a, b…); returns each batch's spread and ``ratio_of_medians`` (b over a)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        a.append(float(measure()))
        b.append(float(measure()))
    sa, sb = spread(a), spread(b)
    return {"a": sa, "b": sb, "ratio_of_medians": sb["median"] / sa["median"]}
