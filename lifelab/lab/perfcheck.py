"""``lifelab perfcheck`` (``make perfcheck``): instruction counts of fixed workloads vs a baseline.

A regression check for people and CI jobs that want one (not a unit test): each workload of
:data:`WORKLOADS` is counted with :func:`lifelab.lab.instructions.bench_loop_instructions`
(valgrind; start-up cancels by differencing two runs), and its instructions per tick are compared
with the committed baseline, ``data/results/perfcheck/baseline.json``. A workload whose count grew
by more than ``threshold`` (3 % by default) is a regression: the command exits 1. Wall-clock
time is never read, so the check means the same on a busy machine.

Counts depend on the interpreter and numba versions and on the CPU numba compiled for, so the
baseline records them; a baseline from another environment is refused (exit 2) rather than
compared. ``--update`` writes a new baseline from this commit's counts.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_THRESHOLD",
    "WORKLOADS",
    "BaselineMismatch",
    "perfcheck",
]

DEFAULT_BASELINE = Path("data/results/perfcheck/baseline.json")
DEFAULT_THRESHOLD = 0.03
BASELINE_VERSION = 1
# The fixed workloads: name -> bench_loop_instructions options. Small enough that the whole check
# takes a few minutes under valgrind; each is a configuration the targets care about. A count
# depends on its tick window (the compiled engine's fixed costs spread over more ticks), so the
# windows are fixed here: the defaults of lifelab.lab.instructions.DEFAULT_LOOP_RUNS or `ticks`.
WORKLOADS: dict[str, dict[str, Any]] = {
    "python_1_event": {"engine": "python", "events_per_tick": 1.0, "batch_size": 64},
    "compiled_1_event": {"engine": "compiled", "events_per_tick": 1.0, "batch_size": 64},
    # 20 000 ticks of 64 events: the default 200 000 would take minutes under valgrind
    "compiled_64_events": {
        "engine": "compiled",
        "events_per_tick": 64.0,
        "batch_size": 64,
        "ticks": 20_000,
    },
}


class BaselineMismatch(ValueError):
    """The baseline was counted in another environment (Python, numba, CPU): not comparable."""


def environment() -> dict[str, str]:
    """What an instruction count depends on besides the code."""
    from lifelab.lab.env import cpu_model, package_version
    from lifelab.lab.instructions import valgrind_version

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numba": package_version("numba"),
        "numpy": package_version("numpy"),
        "cpu_model": cpu_model(),  # numba compiles for this CPU: another one, another kernel
        "valgrind": valgrind_version(),
    }


def perfcheck(
    *,
    baseline: str | Path = DEFAULT_BASELINE,
    threshold: float = DEFAULT_THRESHOLD,
    update: bool = False,
    workloads: dict[str, dict[str, Any]] | None = None,
    count: Callable[..., dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Count every workload and compare with ``baseline`` (or write it, with ``update``).

    Returns a JSON-ready dict: ``baseline`` (path), ``threshold``, ``updated``, ``environment``,
    ``regressions`` (how many), and ``workloads``: per name the baseline and current
    instructions per tick, their ratio and a verdict (``ok``, ``REGRESSION``, ``faster``, or
    ``new`` when the baseline lacks it). ``count`` replaces the valgrind measurement (tests).

    Raises:
        ValgrindMissing: valgrind is not installed.
        ValueError: ``threshold`` not in (0, 1); the baseline is missing (without ``update``) or
            malformed; :class:`BaselineMismatch`: it was counted in another environment.
    """
    from lifelab.lab.instructions import bench_loop_instructions

    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    path = Path(baseline)
    env = environment()
    recorded = None if update else _read_baseline(path, env)
    measure = count or bench_loop_instructions
    say = progress or (lambda _text: None)
    current: dict[str, float] = {}
    for name, options in (workloads or WORKLOADS).items():
        say(name)
        current[name] = float(measure(**options)["instructions_per_tick"])
    rows = {}
    for name, value in current.items():
        before = None if recorded is None else recorded["workloads"].get(name)
        rows[name] = _row(before, value, threshold)
    if update:
        _write_baseline(path, env, current)
    return {
        "baseline": str(path),
        "threshold": threshold,
        "updated": update,
        "environment": env,
        "regressions": sum(r["verdict"] == "REGRESSION" for r in rows.values()),
        "workloads": rows,
    }


def _row(before: float | None, value: float, threshold: float) -> dict[str, Any]:
    if before is None:
        return {"baseline": None, "current": value, "ratio": None, "verdict": "new"}
    ratio = value / before
    if ratio > 1 + threshold:
        verdict = "REGRESSION"
    elif ratio < 1 - threshold:
        verdict = "faster"
    else:
        verdict = "ok"
    return {"baseline": before, "current": value, "ratio": ratio, "verdict": verdict}


def _read_baseline(path: Path, env: dict[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"no baseline at {path}: write one with `lifelab perfcheck --update`"
        ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the baseline {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != BASELINE_VERSION:
        raise ValueError(f"{path}: not a perfcheck baseline of version {BASELINE_VERSION}")
    workloads = data.get("workloads")
    if not isinstance(workloads, dict) or not all(
        isinstance(v, int | float) and v > 0 for v in workloads.values()
    ):
        raise ValueError(f"{path}: 'workloads' must map names to positive counts")
    theirs = data.get("environment", {})
    differ = {k: (theirs.get(k), v) for k, v in env.items() if theirs.get(k) != v}
    if differ:
        shown = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(differ.items()))
        raise BaselineMismatch(
            f"{path} was counted in another environment ({shown}); instruction counts are not "
            "comparable across them: run `lifelab perfcheck --update` on the reference commit"
        )
    return data


def _write_baseline(path: Path, env: dict[str, str], counts: dict[str, float]) -> None:
    from lifelab._files import write_atomic
    from lifelab.lab.env import git_state

    commit, dirty = git_state()
    data = {
        "version": BASELINE_VERSION,
        "git_commit": commit,
        "git_dirty": dirty,
        "environment": env,
        "workloads": {k: round(v, 1) for k, v in sorted(counts.items())},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
