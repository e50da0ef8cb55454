"""argparse value types shared by the command-line modules (one definition, clear messages)."""

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
    "int_at_least",
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


def finite_number(low: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number (>= ``low`` when given)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or (low is not None and value < low):
            bound = "" if low is None else f" >= {low:g}"
            raise argparse.ArgumentTypeError(f"expected a finite number{bound}, got {text!r}")
        return value

    return parse


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
