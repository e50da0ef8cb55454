"""Worker process of ``lifelab profile``: build a Life from a JSON spec, run it under a profiler.

The manager (:mod:`lifelab.lab.profile`) starts this module in a fresh process, pyperf style::

    python -m lifelab.lab._profile_worker '{"tool": "cprofile", ...}'
    python -m scalene run --off ... -m lifelab.lab._profile_worker --- '{...}'

and reads back one JSON result from the spec's ``result_path``. A file, not stdout, carries the
result because Scalene and the organism may both print. The workload: ``warmup`` ticks unprofiled,
then ``ticks`` ticks of ``Life(config).run`` with the profiler on. Around the profiled ticks the
worker reads the wall clock (``perf_counter``) and the process CPU clock (``process_time``); in
real-time mode their difference is the time the process spent not running, i.e. sleeping until
tick deadlines (``sleeping_share``). The same reading over the unprofiled warm-up
(``warmup_sleeping_share``) is free of the profiler's overhead.

Exit status: 0 done, 2 bad arguments or spec (message on stderr), 1 the workload failed
(traceback on stderr).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from lifelab.exceptions import LifelabError
from lifelab.lab.spawn import spec_argument

SPEC_VERSION = 1  # 1: tool, config, ticks, warmup, result_path, profile_path
USAGE = "usage: python -m lifelab.lab._profile_worker SPEC_JSON  (the spec, as JSON text)"
TOOLS = ("cprofile", "scalene", "none")


class SpecError(LifelabError, ValueError):
    """The spec the manager passed is not one this worker can run (exit status 2)."""


def parse_spec(text: str) -> dict[str, Any]:
    """Check a JSON spec and return it with defaults filled in; raise SpecError naming the field."""
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"the spec is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError(f"the spec must be a JSON object, got {type(spec).__name__}")
    version = spec.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError(f"spec.version must be {SPEC_VERSION}, got {version!r}")
    tool = spec.get("tool", "none")
    if tool not in TOOLS:
        raise SpecError(f"spec.tool must be one of {list(TOOLS)}, got {tool!r}")
    for key, lo in (("ticks", 1), ("warmup", 0)):
        value = spec.get(key, lo)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise SpecError(f"spec.{key} must be an integer >= {lo}, got {value!r}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise SpecError(f"spec.config must be a JSON object, got {type(config).__name__}")
    if not isinstance(spec.get("result_path"), str):
        raise SpecError("spec.result_path (where to write the result JSON) is required")
    if tool == "cprofile" and not isinstance(spec.get("profile_path"), str):
        raise SpecError("spec.profile_path (where to dump the cProfile stats) is required")
    return {
        "version": SPEC_VERSION,
        "tool": tool,
        "config": config,
        "ticks": spec.get("ticks", 1),
        "warmup": spec.get("warmup", 0),
        "result_path": spec["result_path"],
        "profile_path": spec.get("profile_path"),
    }


class _Profiler:
    """Start/stop one profiler around the measured ticks (none, cProfile, or Scalene's API)."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self._prof: Any = None

    def start(self) -> None:
        if self.tool == "cprofile":
            import cProfile

            self._prof = cProfile.Profile()
            self._prof.enable()
        elif self.tool == "scalene":
            # Scalene was started with --off: only the measured ticks are sampled.
            from scalene import scalene_profiler

            scalene_profiler.start()

    def stop(self) -> None:
        if self.tool == "cprofile":
            self._prof.disable()
        elif self.tool == "scalene":
            from scalene import scalene_profiler

            scalene_profiler.stop()

    def dump(self, path: str | None) -> None:
        if self.tool == "cprofile" and path is not None:
            self._prof.dump_stats(path)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workload a checked spec describes and return the result record."""
    from lifelab import __version__
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life

    config = LifeConfig.from_mapping(spec["config"])
    life = Life(config)
    profiler = _Profiler(spec["tool"])
    try:
        warm_wall_s, warm_cpu_s = _timed(life, spec["warmup"])
        ticks0 = life.state.ticks
        profiler.start()
        try:
            wall_s, cpu_s = _timed(life, spec["ticks"])
        finally:
            profiler.stop()
        summary = life.summary()
    finally:
        life.close()
    profiler.dump(spec["profile_path"])
    return {
        "tool": spec["tool"],
        "clock": config.clock,
        "engine": life.engine,  # what ran (config.engine asks; numba missing: python)
        "ticks": summary["ticks"] - ticks0,
        "warmup": spec["warmup"],
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        # Wall time the process was off the CPU. With no run directory nothing else blocks, so
        # in real-time mode this is the clock's sleep until each deadline.
        "idle_s": max(0.0, wall_s - cpu_s),
        "sleeping_share": _idle_share(wall_s, cpu_s),
        # The same reading over the unprofiled warm-up: free of profiler overhead.
        "warmup_wall_s": warm_wall_s,
        "warmup_cpu_s": warm_cpu_s,
        "warmup_sleeping_share": _idle_share(warm_wall_s, warm_cpu_s) if spec["warmup"] else None,
        "peak_rss_mb": _peak_rss_mb(),
        "life_summary": summary,
        "config": config.to_dict(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "lifelab_version": __version__,
        "profiler_version": _profiler_version(spec["tool"]),
    }


def _timed(life: Any, ticks: int) -> tuple[float, float]:
    """Run ``ticks`` ticks; return (wall seconds, process CPU seconds) they took."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if ticks:
        life.run(ticks)
    return time.perf_counter() - wall0, time.process_time() - cpu0


def _idle_share(wall_s: float, cpu_s: float) -> float:
    return max(0.0, wall_s - cpu_s) / wall_s if wall_s > 0 else 0.0


def _peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (None where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _profiler_version(tool: str) -> str:
    if tool == "scalene":
        from importlib.metadata import version

        return version("scalene")
    if tool == "cprofile":
        return f"cProfile (CPython {platform.python_version()})"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run the workload whose spec is the one argument; the exit status says how it went."""
    text = spec_argument(argv, USAGE)
    if text is None:
        return 2
    from lifelab.config import LifeConfig

    try:
        spec = parse_spec(text)
        try:
            LifeConfig.from_mapping(spec["config"])  # refuse a bad config before any work
        except (ValueError, TypeError) as exc:
            raise SpecError(f"spec.config: {exc}") from None
    except SpecError as exc:
        print(f"lifelab profile worker: bad spec: {exc}", file=sys.stderr)
        return 2
    result = run(spec)
    path = Path(spec["result_path"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
