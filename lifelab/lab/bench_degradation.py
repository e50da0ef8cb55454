"""``lifelab bench degradation``: does the tick slow down over a long run? A paired test.

The decile ratio of ``bench loop`` (ticks/s of the last tenth of one run over its first tenth)
compares two stretches that ran minutes apart, so on a shared machine it swings more than any
effect worth finding (0.68, 0.97, 0.84, 1.18 for the same code). This bench compares the same two
stretches side by side instead:

1. One organism lives ``ticks`` ticks with a run directory. Its state at tick 0 (the start of the
   first tenth) and at tick ``ticks − sample_ticks`` (the start of the last tenth) are kept as
   snapshots, each in a run directory of its own. ``sample_ticks`` is a tenth by default.
2. ``rounds`` rounds, each resuming both states (a fresh copy of each run directory) and timing
   ``sample_ticks`` ticks of each, alternately: start, end, then end, start in the next round
   (ABBA), so a slow minute of the machine falls on both. One untimed round comes first (imports,
   the compiled kernel's cache, the page cache of the copies).
3. The ratio of the median rates (end / start) with a bootstrap interval over rounds, resampled
   in pairs (:func:`lifelab.lab.stats.paired_ratio_ci`), and each round's own ratio.

Everything runs in this process, on the simulated clock. The timed ticks include what a run with
a run directory does (the archive writer thread takes the spilled rows), with snapshots and tick
logs off so the two states do the same I/O.

With ``instructions``, the two states are then also compared by instruction count, which the
machine's load does not move (DESIGN.md §3): each is resumed in fresh interpreters under
valgrind (:mod:`lifelab.lab.instructions`, worker kind ``resume``), living ``n1`` and ``n2``
ticks, and the difference per tick is its count over the window n1..n2 (``n2 - n1`` =
``sample_ticks``, capped at :data:`INSTRUCTION_TICKS_MAX` so a count stays near a minute). The
ratio is start / end, so it reads like the wall-clock ``ratio``: below 1, the end state does more
work per tick.

How far a count repeats: the archive writer thread wakes on a 0.1 s wall-clock timer and each
wake-up costs 0.1-0.15 M instructions (the hand-off, the GIL, the commit), so how many there are
varies with scheduling (13-23 in one 3 000-tick Python run, the count rising with them), and more
of them fall on a tick under valgrind than in a normal run. The runtime has no synchronous
archive that would remove it. Measured here (valgrind 3.19, 2-core VM, 3-4 counts of each state):

- Python engine, ``--ticks 20000 --memory-capacity 10000``, ticks 1 000-3 000: 81 911-82 424
  instructions per tick from the start (spread 0.6 %), 81 467-81 683 from the end (0.3 %);
  ``instructions_ratio`` 1.005.
- Compiled engine, ``--ticks 200000 --memory-capacity 100000``, ticks 1 000-21 000: 2 376-2 385
  from the start (0.4 %), 2 084-2 095 from the end (0.5 %); ``instructions_ratio`` 1.14. The
  first tenth holds the organism's youth, dearer per tick: counted from the start state, 2 745
  per tick over ticks 1 000-5 000, 2 286 over 5 000-21 000, 1 903 over 21 000-41 000.

So read an ``instructions_ratio`` to about ±1 % at these windows (without a run directory the
Python engine's loop count repeats within 0.002 %: :mod:`lifelab.lab.instructions`).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifelab.config import LifeConfig

# The runtime (numpy, numba) is imported inside the functions: `lifelab --help` reads this module.

__all__ = ["DEFAULT_ROUNDS", "INSTRUCTION_TICKS_MAX", "bench_degradation"]

DEFAULT_ROUNDS = 7
# The counted window by engine: at most this many ticks (valgrind runs the Python engine ~50x
# slower; its count over 10 000 ticks takes about half a minute, the compiled engine's over
# 200 000 about as long, mostly numba's import), after INSTRUCTION_SHORT_TICKS ticks (or the
# window, if shorter) that both runs of a count live first.
INSTRUCTION_TICKS_MAX = {"python": 10_000, "compiled": 200_000}
INSTRUCTION_SHORT_TICKS = 1_000


def bench_degradation(
    *,
    ticks: int,
    memory_capacity: int = 100_000,
    events_per_tick: float = 1.0,
    engine: str = "compiled",
    seed: int = 0,
    rounds: int = DEFAULT_ROUNDS,
    sample_ticks: int | None = None,
    root: str | Path | None = None,
    instructions: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time the first and the last tenth of a ``ticks``-tick run side by side; see the module.

    Returns a JSON-ready dict: the run (ticks, memory_capacity, events_per_tick, engine, seed,
    sample_ticks, rounds, start_tick, end_tick, the memory and archive sizes of each state), the
    median ticks/s of each state, ``ratio`` (end / start; 1.0 is no degradation) with
    ``ratio_ci_low``/``ratio_ci_high`` (95 %), each round's ticks/s (``start_rates``,
    ``end_rates``) and ``round_ratios``. ``progress`` is told what
    is being done ("live 900000 ticks", "round 3/7"): ``rounds + 3`` steps, 3 more with
    ``instructions``.

    With ``instructions`` (valgrind; see the module), also ``instructions_per_tick_start`` and
    ``instructions_per_tick_end`` over the same window of ``instruction_ticks`` ticks,
    ``instructions_ratio`` (start / end; 1.0 is no degradation), ``instructions_tool`` and
    ``instruction_runs`` (each state's two runs: ``ops`` ticks, ``instructions``, ``events``);
    all None without it.

    Raises:
        ValueError: ``ticks`` < 20, ``rounds`` < 2, or ``sample_ticks`` outside [1, ticks / 2].
        ConfigError: a LifeConfig field out of range (memory_capacity, events_per_tick, engine).
        ValgrindMissing: ``instructions`` without valgrind installed (before any work).
        BenchProcessError: a valgrind worker failed.
    """
    from lifelab.lab.stats import paired_ratio_ci

    sample = ticks // 10 if sample_ticks is None else sample_ticks
    if isinstance(ticks, bool) or not isinstance(ticks, int) or ticks < 20:
        raise ValueError(f"ticks must be an integer >= 20, got {ticks!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ValueError(f"rounds must be an integer >= 2, got {rounds!r}")
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= ticks // 2:
        raise ValueError(f"sample_ticks must be an integer in [1, {ticks // 2}], got {sample!r}")
    config = LifeConfig(
        seed=seed,
        engine=engine,
        events_per_tick=events_per_tick,
        memory_capacity=memory_capacity,
        snapshot_every=0,  # only the snapshots asked for: both states do the same I/O
        log_every=0,
    )
    tool = None
    if instructions:
        from lifelab.lab.instructions import valgrind_version

        tool = f"cachegrind {valgrind_version()}"  # no valgrind: refused before the long run
    say = progress or (lambda _text: None)
    folder = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="lifelab-degr-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        end_tick = ticks - sample
        say("capture the start (tick 0)")
        start = _capture(config, folder, "start", 0)
        say(f"live {end_tick} ticks to the start of the last tenth")
        end = _capture(config, folder, "end", end_tick)
        rates: dict[str, list[float]] = {"start": [], "end": []}
        for r in range(rounds + 1):  # round 0 is untimed
            say("warm-up round" if r == 0 else f"round {r}/{rounds}")
            order = (start, end) if r % 2 else (end, start)
            for state in order:
                rate = _time_from(state, folder / f"round-{r}", sample)
                if r:
                    rates[state["name"]].append(rate)
        counts = _count_instructions(start, end, engine, sample, say) if instructions else {}
    finally:
        if root is None:
            shutil.rmtree(folder, ignore_errors=True)
    ratio, low, high = paired_ratio_ci(rates["end"], rates["start"], stream=("degradation",))
    median = statistics.median
    return {
        "ticks": ticks,
        "memory_capacity": memory_capacity,
        "events_per_tick": events_per_tick,
        "engine": engine,
        "seed": seed,
        "sample_ticks": sample,
        "rounds": rounds,
        "start_tick": 0,
        "end_tick": end_tick,
        "start_memory_active": start["memory_active"],
        "end_memory_active": end["memory_active"],
        "start_archive_size": start["archive_size"],
        "end_archive_size": end["archive_size"],
        "start_ticks_per_s": median(rates["start"]),
        "end_ticks_per_s": median(rates["end"]),
        "ratio": ratio,
        "ratio_ci_low": low,
        "ratio_ci_high": high,
        "start_rates": rates["start"],
        "end_rates": rates["end"],
        "round_ratios": [e / s for e, s in zip(rates["end"], rates["start"], strict=True)],
        "instructions_per_tick_start": counts.get("start"),
        "instructions_per_tick_end": counts.get("end"),
        "instructions_ratio": counts["start"] / counts["end"] if counts else None,
        "instructions_tool": tool,
        "instruction_ticks": counts.get("ticks"),
        "instruction_runs": counts.get("runs"),
    }


def _capture(config: LifeConfig, folder: Path, name: str, ticks: int) -> dict[str, Any]:
    """Live ``ticks`` ticks in ``folder/name`` and close (the final snapshot is the state kept)."""
    from lifelab.life.loop import Life

    run_dir = folder / name
    life = Life(config.replace(run_dir=str(run_dir)))
    try:
        if ticks:
            life.run(ticks)
        return {
            "name": name,
            "run_dir": run_dir,
            "memory_active": len(life.memory),
            "archive_size": len(life.archive),
        }
    finally:
        life.close()


def _count_instructions(
    start: dict[str, Any], end: dict[str, Any], engine: str, sample: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Instructions per tick of each state over one window of ticks after resuming it."""
    from lifelab.lab.instructions import count_window, per_op, warm_up

    say("warm-up for the instruction counts (no valgrind)")
    specs = {s["name"]: {"kind": "resume", "run_dir": str(s["run_dir"])} for s in (start, end)}
    n1, n2 = _window(engine, sample)
    # Each state's own warm-up, so the code paths of both are compiled before valgrind.
    warm = {name: warm_up({**spec, "ticks": n2}) for name, spec in specs.items()}
    ran = warm["end"][1]["engine"]
    if ran != engine:  # no numba: the compiled engine ran as the Python one
        n1, n2 = _window(ran, sample)
    out: dict[str, Any] = {"ticks": n2 - n1, "runs": {}}
    for name, spec in specs.items():
        say(f"{name}: {n1} and {n2} ticks under valgrind")
        short, long, _ = count_window(spec, "ticks", n1, n2, env=warm[name][0])
        out[name] = per_op(short, long)["instructions_per_op"]
        out["runs"][name] = [short.to_dict(), long.to_dict()]
    return out


def _window(engine: str, sample: int) -> tuple[int, int]:
    """(n1, n2) ticks of the two runs of a count: ``sample`` ticks capped for the engine."""
    ticks = min(sample, INSTRUCTION_TICKS_MAX["python" if engine == "python" else "compiled"])
    n1 = min(INSTRUCTION_SHORT_TICKS, ticks)
    return n1, n1 + ticks


def _time_from(state: dict[str, Any], scratch: Path, ticks: int) -> float:
    """Ticks/s of ``ticks`` ticks resumed from a fresh copy of ``state``'s run directory."""
    from lifelab.life.loop import Life

    copy = scratch / state["name"]
    shutil.copytree(state["run_dir"], copy)
    try:
        life = Life.resume(copy)
        try:
            t0 = time.perf_counter()
            life.run(ticks)
            wall = time.perf_counter() - t0
        finally:
            life.close()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return ticks / wall
