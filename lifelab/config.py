"""LifeConfig: the organism's frozen, keyword-only, validated configuration.

Values are checked at construction against one table of field rules, so an error always names the
field, the bad value and the allowed range. Files (TOML) are read only at the edge, by
:func:`LifeConfig.from_mapping` callers such as the CLI.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lifelab.exceptions import ConfigError, ConfigTypeError

__all__ = ["LifeConfig"]

_INF = math.inf


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: type | tuple[type, ...]
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False


# One rule per field; kept next to the dataclass so a new field without a rule fails the tests.
_RULES: dict[str, _Rule] = {
    "seed": _Rule(int, 0, 2**63 - 1),
    "clock": _Rule(str, choices=("simulated", "realtime")),
    "dt": _Rule(float, 1e-6, 86_400.0),
    "tick_interval": _Rule(float, 1e-4, 3_600.0),
    "events_per_tick": _Rule(float, 0.0, 100_000.0),
    "events_mode": _Rule(str, choices=("fixed", "poisson")),
    "batch_size": _Rule(int, 1, 1_000_000),
    "queue_capacity": _Rule(int, 1, 100_000_000),
    "memory_capacity": _Rule(int, 1, 100_000_000),
    "min_weight": _Rule(float, 0.0, 1.0),
    "decay_every": _Rule(int, 1, 1_000_000),
    "decay_factor": _Rule(float, 0.0, 1.0),
    "learn_every": _Rule(int, 1, 1_000_000),
    "adapt_every": _Rule(int, 1, 1_000_000),
    "feedback_min_ticks": _Rule(int, 1, 10_000),
    "feedback_max_ticks": _Rule(int, 1, 10_000),
    "echo_probability": _Rule(float, 0.0, 1.0),
    "recent_events_size": _Rule(int, 1, 10_000),
    "weak_energy": _Rule(float, 0.0, 100.0),
    "weak_stability": _Rule(float, 0.0, 1.0),
    "weak_integrity": _Rule(float, 0.0, 1.0),
    "weak_penalty_energy": _Rule(float, 0.0, 100.0),
    "weak_penalty_stability": _Rule(float, 0.0, 1.0),
    "weak_penalty_integrity": _Rule(float, 0.0, 1.0),
    "error_integrity_penalty": _Rule(float, 0.0, 1.0),
    "mortality_ticks": _Rule(int, 1, 2**62, optional=True),
    "snapshot_every": _Rule(int, 0, 2**62),
    "snapshot_keep": _Rule(int, 1, 10_000),
    "run_dir": _Rule(str, optional=True),
    "log_every": _Rule(int, 0, 2**62),
    "log_decisions": _Rule(bool),
    "log_max_bytes": _Rule(int, 4096, 2**40),
    "log_max_files": _Rule(int, 1, 1000),
    "vector_min_batch": _Rule(int, 1, 1_000_000),
    "metrics_every": _Rule(int, 0, 1_000_000),
    "archive_cache_mb": _Rule(int, 1, 65_536),
    "engine": _Rule(str, choices=("compiled", "python")),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LifeConfig:
    """Everything that shapes one organism's life.

    Attributes:
        seed: Seed of the one random generator the organism owns.
        clock: ``"simulated"`` (fixed ``dt`` per tick, no sleeping) or ``"realtime"``.
        dt: Simulated seconds per tick.
        tick_interval: Real seconds between tick deadlines in real-time mode.
        events_per_tick: Mean events the built-in environment emits per tick.
        events_mode: ``"fixed"`` (a deterministic carry of the rate) or ``"poisson"``.
        batch_size: The most events drained from the queue in one tick.
        queue_capacity: Bound of the event queue; events beyond it are dropped and counted.
        memory_capacity: Most entries in active memory after a tick; the rest spill to the archive.
        min_weight: Entries whose weight decays below this spill to the archive.
        decay_every: Ticks between decay passes.
        decay_factor: ``f`` in the decay formula (DESIGN §1.7).
        learn_every: Ticks between learning passes.
        adapt_every: Ticks between adaptation passes.
        feedback_min_ticks: Earliest tick, after an action, at which its feedback is due.
        feedback_max_ticks: Latest tick, after an action, at which its feedback is due.
        echo_probability: Base per-tick probability of a memory echo.
        recent_events_size: Length of the ring of recent event types.
        weak_energy: Energy at or below which the organism is weak.
        weak_stability: Stability at or below which the organism is weak.
        weak_integrity: Integrity at or below which the organism is weak.
        weak_penalty_energy: Energy lost per second while weak.
        weak_penalty_stability: Stability lost per second while weak.
        weak_penalty_integrity: Integrity lost per second while weak.
        error_integrity_penalty: Integrity lost when a tick stage raises.
        mortality_ticks: If set, the run ends after this many ticks with every vital at 0.
        snapshot_every: Ticks between snapshots (0: only on request and clean shutdown).
        snapshot_keep: How many snapshots to keep in the run directory.
        run_dir: Run directory; None lets the store choose one under ``data/runs/``.
        log_every: Ticks between tick-summary log records (0: none); needs a run directory.
        log_decisions: Also log every non-ignored decision (costly; for debugging).
        log_max_bytes: Size at which the log file rotates.
        log_max_files: Rotated log files kept (disk use ≤ log_max_bytes × log_max_files).
        vector_min_batch: Batches at least this long take the numpy path (same semantics).
        metrics_every: Time every k-th tick stage by stage for ``life.metrics`` (0: off).
        archive_cache_mb: SQLite page cache per connection of the archive of a run directory of
            format version 1 (lifelab 0.1; newer runs keep a segment archive, which has no cache
            to size). It fills as the archive grows and then stays: the default (SQLite's own
            2 MB) keeps RSS flat in a long real-time run; 64 inserts ~1.5x faster at a million
            rows (docs/reliability.md).
        engine: ``"compiled"`` (the whole tick in one numba function; falls back to the Python
            engine with a warning when numba is missing) or ``"python"`` (the readable
            reference). Both give the same digest at every tick. ``log_decisions`` runs on the
            Python engine (the kernel does not format records); ``Life.engine`` says which ran.
    """

    seed: int = 0
    clock: str = "simulated"
    dt: float = 1.0
    tick_interval: float = 0.01
    events_per_tick: float = 1.0
    events_mode: str = "fixed"
    batch_size: int = 64
    queue_capacity: int = 65_536
    memory_capacity: int = 10_000
    min_weight: float = 0.1
    decay_every: int = 10
    decay_factor: float = 0.99
    learn_every: int = 75
    adapt_every: int = 100
    feedback_min_ticks: int = 3
    feedback_max_ticks: int = 10
    echo_probability: float = 0.02
    recent_events_size: int = 32
    weak_energy: float = 5.0
    weak_stability: float = 0.05
    weak_integrity: float = 0.05
    weak_penalty_energy: float = 0.02
    weak_penalty_stability: float = 0.04
    weak_penalty_integrity: float = 0.04
    error_integrity_penalty: float = 0.01
    mortality_ticks: int | None = None
    snapshot_every: int = 0
    snapshot_keep: int = 3
    run_dir: str | None = field(default=None)
    log_every: int = 1000
    log_decisions: bool = False
    log_max_bytes: int = 8 * 1024 * 1024
    log_max_files: int = 5
    vector_min_batch: int = 16
    metrics_every: int = 32
    archive_cache_mb: int = 2
    engine: str = "compiled"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _check(f.name, value, _RULES[f.name])
            if checked is not value:
                object.__setattr__(self, f.name, checked)
        if self.feedback_max_ticks < self.feedback_min_ticks:
            raise ConfigError(
                f"LifeConfig.feedback_max_ticks must be >= feedback_min_ticks "
                f"({self.feedback_min_ticks}), got {self.feedback_max_ticks}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LifeConfig:
        """Build a config from a mapping (e.g. parsed TOML), refusing unknown keys by name."""
        if not isinstance(values, Mapping):
            raise ConfigTypeError(
                f"LifeConfig values must be a mapping, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown LifeConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**dict(values))

    def replace(self, **changes: Any) -> LifeConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _check(name: str, value: Any, rule: _Rule) -> Any:
    """Validate one field; return the (possibly int→float widened) value."""
    where = f"LifeConfig.{name}"
    if value is None:
        if rule.optional:
            return None
        raise ConfigTypeError(f"{where} must not be None")
    kind = rule.kind
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigTypeError(
                f"{where} must be a number, got {type(value).__name__} {_brief(value)}"
            )
        if not isinstance(value, int) and not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {_brief(value)}")
        try:
            value = float(value)
        except OverflowError:  # an int too large for a float: out of every range
            raise ConfigError(
                f"{where} must be in [{rule.lo}, {rule.hi}], got {_brief(value)}"
            ) from None
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigTypeError(f"{where} must be true or false, got {_brief(value)}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigTypeError(
                f"{where} must be an integer, got {type(value).__name__} {_brief(value)}"
            )
    elif not isinstance(value, kind):
        raise ConfigTypeError(f"{where} must be a {kind.__name__}, got {type(value).__name__}")
    elif kind is str and not value and not rule.choices:
        # run_dir="" would mean the current directory: say None for "let the store choose".
        raise ConfigError(f"{where} must not be empty (use None)")
    if rule.choices is not None and value not in rule.choices:
        raise ConfigError(f"{where} must be one of {list(rule.choices)}, got {_brief(value)}")
    if rule.lo is not None and rule.hi is not None and not rule.lo <= value <= rule.hi:
        hi = "inf" if rule.hi == _INF else rule.hi
        raise ConfigError(f"{where} must be in [{rule.lo}, {hi}], got {_brief(value)}")
    return value


def _brief(value: Any) -> str:
    """repr() cut to 60 characters for error messages (Python refuses the repr of huge ints)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."
