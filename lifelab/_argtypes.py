"""What the command line parses: argparse value types, shared options and option-value parsers.

Only :mod:`lifelab.cli` imports this module: the library takes plain keyword arguments, and the
strings a user types are turned into values here, at the edge (one definition, clear messages).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = [
    "ENGINES",
    "ENGINE_HELP",
    "add_engine_option",
    "add_set_option",
    "config_overrides",
    "engine_choice",
    "finite_number",
    "fraction",
    "int_at_least",
    "positive_number",
    "split_gc_modes",
    "sweep_grid",
]

# LifeConfig.engine's choices (tests/test_cli.py checks that LifeConfig accepts each one).
ENGINES = ("compiled", "python")
ENGINE_HELP = (
    "compiled: the whole tick in one numba function, many ticks per call (its first use on a "
    "machine compiles it, ~20 s, then it is cached; falls back to python with a warning when "
    "numba is missing); python: the plain reference engine, one Python call per stage. Both "
    "give the same digest at every tick"
)


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def _number(text: str) -> float:
    """``float(text)``, or argparse's error for a value that is not a number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def finite_number(low: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number (>= ``low`` when given)."""

    def parse(text: str) -> float:
        value = _number(text)
        if not math.isfinite(value) or (low is not None and value < low):
            bound = "" if low is None else f" >= {low:g}"
            raise argparse.ArgumentTypeError(f"expected a finite number{bound}, got {text!r}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0 (seconds, intervals)."""
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    value = _number(text)
    if not (0 <= value < 1):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_set_option(parser: argparse.ArgumentParser, example: str = "min_weight=0.01") -> None:
    """The repeatable ``--set KEY=VALUE`` option, parsed by :func:`config_overrides`."""
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"any other LifeConfig field, e.g. --set {example} (repeatable)",
    )


def add_engine_option(
    parser: argparse.ArgumentParser, default_text: str = "compiled, the LifeConfig default"
) -> None:
    """The ``--engine {compiled,python}`` option; None (not given) leaves LifeConfig's default."""
    parser.add_argument(
        "--engine", choices=ENGINES, default=None, help=f"{ENGINE_HELP} ({default_text})"
    )


def engine_choice(engine: str | None, overrides: dict[str, Any]) -> str | None:
    """``--engine``, or ``--set engine=…`` (taken out of ``overrides``); both must agree.

    Raises:
        ConfigError: both were given, with different engines.
    """
    from lifelab.exceptions import ConfigError

    if "engine" not in overrides:
        return engine
    other = overrides.pop("engine")
    if engine is not None and other != engine:
        raise ConfigError(f"--engine {engine} and --set engine={other} disagree: give it once")
    return other


def config_overrides(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` LifeConfig overrides; values parsed as JSON, else kept as strings."""
    from lifelab.config import LifeConfig
    from lifelab.exceptions import ConfigError

    known = set(LifeConfig.__dataclass_fields__)
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in known:
            raise ConfigError(f"--set: unknown LifeConfig field {key!r}; known: {sorted(known)}")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


# -- the sweep grid: comma-separated lists make axes ----------------------------------------------


def sweep_grid(
    *,
    ticks: str = "100000",
    seed: str = "0",
    events_per_tick: str = "1",
    batch_size: str = "64",
    memory_capacity: str = "10000",
    gc: list[str] | None = None,
    engine: str | None = None,
    warmup_ticks: str | None = None,
    sets: list[str] | None = None,
) -> dict[str, Any]:
    """The sweep grid (see :func:`lifelab.lab.spec.expand`) that ``lifelab sweep`` options describe.

    Each option is a comma-separated list of values, one axis; ``gc`` and ``sets`` are the
    repeatable ``--gc`` and ``--set KEY=VALUE[,VALUE…]`` (JSON values, bare words as strings).

    Raises:
        ValueError: a value does not parse, naming the option.
    """
    grid: dict[str, Any] = {
        "ticks": _ints(ticks, "--ticks"),
        "seed": _ints(seed, "--seed"),
        "events_per_tick": _floats(events_per_tick, "--events-per-tick"),
        "batch_size": _ints(batch_size, "--batch-size"),
        "memory_capacity": _ints(memory_capacity, "--memory-capacity"),
        "gc_mode": split_gc_modes(gc or ["default"]),
    }
    if engine is not None:  # else TrialSpec's default, LifeConfig's
        grid["engine"] = _engines(engine)
    if warmup_ticks is not None:
        grid["warmup_ticks"] = _ints(warmup_ticks, "--warmup-ticks")
    for item in sets or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE[,VALUE…], got {item!r}")
        if key in grid or key == "engine":
            raise ValueError(f"--set {key}: use its own option instead")
        grid[key] = _json_values(text)
    return grid


def split_gc_modes(items: list[str]) -> list[str]:
    """``["default,freeze,700,10,10"]`` -> ``["default", "freeze", "700,10,10"]``.

    Named modes stand alone; integers are taken three at a time as thresholds T0,T1,T2.
    """
    modes: list[str] = []
    for item in items:
        tokens = [t.strip() for t in item.split(",") if t.strip()]
        numbers: list[str] = []
        for token in tokens:
            if token.isdigit():
                numbers.append(token)
                if len(numbers) == 3:
                    modes.append(",".join(numbers))
                    numbers = []
            elif numbers:
                raise ValueError(f"--gc: thresholds come three at a time (T0,T1,T2), got {item!r}")
            else:
                modes.append(token)
        if numbers:
            raise ValueError(f"--gc: thresholds come three at a time (T0,T1,T2), got {item!r}")
    if not modes:
        raise ValueError("--gc: give at least one mode")
    return modes


def _split(text: str, flag: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"{flag}: give at least one value")
    return parts


def _ints(text: str, flag: str) -> list[int]:
    out = []
    for part in _split(text, flag):
        try:
            out.append(int(part.replace("_", "")))
        except ValueError:
            raise ValueError(f"{flag}: expected integers, got {part!r}") from None
    return out


def _engines(text: str) -> list[str]:
    out = _split(text, "--engine")
    for name in out:
        if name not in ENGINES:
            raise ValueError(f"--engine: expected {' or '.join(ENGINES)}, got {name!r}")
    return out


def _floats(text: str, flag: str) -> list[float]:
    out = []
    for part in _split(text, flag):
        try:
            out.append(float(part))
        except ValueError:
            raise ValueError(f"{flag}: expected numbers, got {part!r}") from None
    return out


def _json_values(text: str) -> list[Any]:
    """A JSON list, or comma-separated JSON values (bare words kept as strings)."""
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except ValueError:
            raise ValueError(f"--set: not a JSON list: {text!r}") from None
        return list(values)
    out = []
    for part in _split(text, "--set"):
        try:
            out.append(json.loads(part))
        except ValueError:
            out.append(part)
    return out
