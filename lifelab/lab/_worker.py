"""Worker process of a lab trial: build a Life from a TrialSpec, measure it, print one JSON line.

The manager (:mod:`lifelab.lab.runner`) starts this module in a fresh process, pyperf style,
with the trial spec as its one argument::

    python -m lifelab.lab._worker '{"ticks": 2000, ...}'

The measurement is ``lifelab bench loop``'s (:func:`lifelab.lab.bench.measure`): warm-up
ticks, then the GC mode, ten timed deciles, then a latency pass (single ticks timed from Python
for the Python engine; the compiled kernel's own timings of its sampled ticks). The stage
histograms of ``life.metrics`` are emptied after warm-up, so stage shares describe the measured
ticks only. The machine's load and the process's CPU time (:mod:`lifelab.lab.load`) are sampled
just before and after the measured ticks, so the warm-up is outside them too. The environment
is captured here, after the trial, so ``gc_threshold`` is the one the GC mode left behind.

Output: the last line of stdout is one JSON object with the metric, environment and load columns
of the results schema; anything else the run prints goes to stderr. Exit status: 0 done, 2 bad
arguments or spec (message on stderr), 1 the trial failed (traceback on stderr). Never imports
matplotlib or dask.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from lifelab.lab import load
from lifelab.lab.env import PER_TRIAL_COLUMNS, capture_environment
from lifelab.lab.schema import ENV_COLUMNS, LOAD_COLUMNS, METRIC_COLUMNS, STAGE_NAMES
from lifelab.lab.spawn import spec_argument
from lifelab.lab.spec import TrialSpec

__all__ = ["RESULT_KEYS", "USAGE", "main", "run_spec"]

USAGE = "usage: python -m lifelab.lab._worker SPEC_JSON  (one trial spec, as JSON text)"

# What the worker reports: every metric column, the environment it can see and the load.
RESULT_KEYS = (
    tuple(name for name, _ in METRIC_COLUMNS)
    + tuple(name for name, _ in ENV_COLUMNS if name not in PER_TRIAL_COLUMNS)
    + tuple(name for name, _ in LOAD_COLUMNS)
)


def run_spec(spec: TrialSpec) -> dict[str, Any]:
    """Run one trial in this process and return its metric, environment and load columns.

    With ``snapshot_every`` or ``log_every`` in the spec's config the organism gets a temporary
    run directory (removed afterwards), as in ``bench loop``, so persistence costs are inside the
    figures. An organism that dies (``mortality_ticks``) fails the trial: its ticks stopped, and
    so does an organism that runs another engine than the spec's (the compiled engine falls back
    to the Python one without numba): its row would be filed under the wrong engine.
    """
    from lifelab.lab.bench import measure
    from lifelab.life.loop import Life
    from lifelab.observe.gcmode import parse_gc_mode

    overrides = dict(spec.config)
    persist = bool(overrides.get("snapshot_every") or overrides.get("log_every"))
    changes: dict[str, Any] = {}
    if "log_every" not in overrides:
        changes["log_every"] = 0
    tmp = None
    if persist:
        tmp = tempfile.mkdtemp(prefix="lifelab-trial-")
        changes["run_dir"] = str(Path(tmp) / "run")
    life = Life(spec.life_config(**changes))
    try:
        if life.engine != spec.engine:
            raise RuntimeError(
                f"the trial asks for the {spec.engine} engine but the organism runs the "
                f"{life.engine} engine (numba missing, or a setting the compiled engine does not "
                "support such as log_decisions): install numba or sweep engine='python'"
            )
        life.run(spec.warmup_ticks)
        _check_alive(life, "warm-up")
        # Forget the warm-up's stage timings (fresh histograms, same shape as Metrics makes).
        life.metrics.reset()
        gc_mode = parse_gc_mode(spec.gc_mode)
        before = load.sample()
        measured = measure(life, spec.ticks, gc_mode=gc_mode, warmup=0)
        after = load.sample()
        _check_alive(life, "the measured ticks")
        summary = life.metrics.summary()
    finally:
        life.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    gens = measured["gc_collections_by_gen"]
    out: dict[str, Any] = {
        key: measured[key]
        for key in (
            "wall_s",
            "events",
            "ticks_per_s",
            "events_per_s",
            "tick_p50_us",
            "tick_p99_us",
            "tick_max_us",
            "peak_rss_mb",
            "gc_collections",
            "gc_pause_ms",
            "last_decile_ratio",
            "memory_active",
            "archive_size",
        )
    }
    out.update(gc_gen0=gens[0], gc_gen1=gens[1], gc_gen2=gens[2])
    for i, rate in enumerate(measured["rate_by_decile"]):
        out[f"rate_decile_{i}_ticks_per_s"] = rate
    for name in STAGE_NAMES:
        out[f"stage_{name}_share"] = float(summary.get(f"stage_{name}_share", 0.0))
    env = capture_environment()
    out.update((k, v) for k, v in env.items() if k not in PER_TRIAL_COLUMNS)
    out.update(load.load_columns(before, after))
    return {key: out[key] for key in RESULT_KEYS}


def _check_alive(life: Any, when: str) -> None:
    """Refuse to report a run cut short: a dead organism stops ticking, so its rates are bogus."""
    if not life.alive:
        raise RuntimeError(
            f"the organism died during {when} (tick {life.state.ticks}, mortality_ticks="
            f"{life.config.mortality_ticks}): a trial must live all its ticks to measure them; "
            "leave mortality_ticks unset or make the organism less fragile"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the trial whose spec is the one argument; the exit status says how it went."""
    text = spec_argument(argv, USAGE)
    if text is None:
        return 2
    try:
        spec = TrialSpec.from_json(text)
    except (ValueError, TypeError) as exc:
        print(f"lifelab trial worker: bad spec: {exc}", file=sys.stderr)
        return 2
    stdout = sys.stdout
    try:
        # Whatever the run prints must not be taken for the result line.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_spec(spec)
    except Exception:
        traceback.print_exc(file=sys.stderr)
        return 1
    stdout.write(json.dumps(result) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
