"""Events and the event-type tables of DESIGN.md §1.2–1.3.

The tables are columnar: each event type has an index, and the meaning weight, the environment's
draw weight and intensity range, and the base impact on (energy, stability, integrity) are looked up
by that index. The hot path only ever sees type indices and floats, never strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifelab.exceptions import EventError, EventTypeError

__all__ = [
    "ECHO",
    "IDLE",
    "RECOVERY",
    "Event",
    "EventType",
    "TypeTable",
    "builtin_types",
    "register_event_type",
]

MAX_METADATA_KEYS = 16
MAX_METADATA_BYTES = 1024


@dataclass(frozen=True, slots=True)
class EventType:
    """One row of the event tables.

    Attributes:
        name: The type's name.
        meaning_weight: ``w_type`` in the significance formula.
        energy, stability, integrity: Base impact per unit of |I|·significance.
        draw_weight: Weight in the built-in environment (0: never drawn).
        lo, hi: Intensity range the environment draws from.
        internal: Internal types (memory echoes) cannot be pushed from outside.
    """

    name: str
    meaning_weight: float
    energy: float
    stability: float
    integrity: float
    draw_weight: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    internal: bool = False


# (name, draw weight, intensity lo, hi, meaning weight, base E, S, I) — DESIGN.md §1.2 and §1.3.
_BUILTIN = (
    ("noise", 0.352, -0.3, 0.3, 0.5, -0.3, -0.02, 0.0),
    ("decay", 0.244, -0.5, 0.0, 1.0, -0.5, -0.01, -0.01),
    ("recovery", 0.180, 0.0, 0.5, 1.0, 1.0, 0.05, 0.02),
    ("shock", 0.040, -1.0, 1.0, 1.5, -1.5, -0.10, -0.05),
    ("idle", 0.040, 0.0, 0.0, 0.2, -0.1, 0.0, 0.0),
    ("social_presence", 0.014, -0.4, 0.4, 0.9, -0.1, -0.03, 0.0),
    ("social_conflict", 0.010, -0.6, 0.0, 1.2, -0.8, -0.08, -0.03),
    ("social_harmony", 0.010, 0.0, 0.6, 1.1, 0.6, 0.06, 0.02),
    ("cognitive_doubt", 0.014, -0.5, 0.0, 0.8, 0.0, -0.04, -0.02),
    ("cognitive_clarity", 0.010, 0.0, 0.5, 1.0, 0.1, 0.05, 0.03),
    ("cognitive_confusion", 0.014, -0.4, 0.0, 0.7, -0.2, -0.06, -0.01),
    ("existential_void", 0.007, -0.7, 0.0, 1.3, -1.0, -0.05, -0.04),
    ("existential_purpose", 0.006, 0.0, 0.7, 1.4, 0.8, 0.08, 0.05),
    ("existential_finitude", 0.008, -0.6, 0.0, 1.1, -0.3, -0.07, -0.03),
    ("connection", 0.007, 0.0, 0.8, 1.1, 0.7, 0.08, 0.03),
    ("isolation", 0.007, -0.7, 0.0, 1.0, -0.6, -0.09, -0.02),
    ("insight", 0.007, 0.0, 0.6, 1.2, 0.2, 0.06, 0.04),
    ("confusion", 0.007, -0.5, 0.0, 0.8, -0.1, -0.07, -0.02),
    ("curiosity", 0.007, -0.3, 0.4, 0.7, -0.1, -0.03, 0.0),
    ("meaning_found", 0.007, 0.0, 0.9, 1.4, 0.9, 0.09, 0.06),
    ("void", 0.007, -0.8, 0.0, 1.3, -1.1, -0.06, -0.05),
    ("acceptance", 0.007, 0.0, 0.5, 0.9, 0.1, 0.04, 0.02),
)


def builtin_types() -> tuple[EventType, ...]:
    """The 22 environment types followed by the internal ``memory_echo``."""
    rows = [
        EventType(name, w, e, s, i, draw_weight=p, lo=lo, hi=hi)
        for name, p, lo, hi, w, e, s, i in _BUILTIN
    ]
    rows.append(EventType("memory_echo", 0.8, -0.05, 0.02, 0.01, lo=-0.2, hi=0.2, internal=True))
    return tuple(rows)


_BUILTIN_TYPES = builtin_types()
RECOVERY = 2  # index of "recovery": its energy impact is scaled by recovery efficiency
IDLE = 4
ECHO = len(_BUILTIN_TYPES) - 1  # index of "memory_echo"

# Types registered by the user at run time (never at import), by name. Explicit and global, like
# codecs.register: a Life copies the table it was born with, so registration never changes a live
# organism under its feet.
_registered: dict[str, EventType] = {}


def register_event_type(
    name: str,
    *,
    meaning_weight: float = 1.0,
    energy: float = 0.0,
    stability: float = 0.0,
    integrity: float = 0.0,
) -> EventType:
    """Register a new event type so that Events of that type are accepted.

    Organisms created afterwards know the type (meaning weight 1.0 unless given, DESIGN §1.3).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise EventError(f"event type name must be an identifier string, got {_brief(name)}")
    if any(t.name == name for t in _BUILTIN_TYPES):
        raise EventError(f"event type {_brief(name)} is built in and cannot be re-registered")
    values = (meaning_weight, energy, stability, integrity)
    if not all(isinstance(v, int | float) and math.isfinite(_as_float(v)) for v in values):
        raise EventError(f"event type {_brief(name)}: weights and impacts must be finite numbers")
    row = EventType(name, float(meaning_weight), float(energy), float(stability), float(integrity))
    _registered[name] = row
    return row


_BUILTIN_NAMES = frozenset(t.name for t in _BUILTIN_TYPES)


def _is_known(name: str) -> bool:
    # NOTE: two lookups, no set built per event, for speed: Event() runs on every push.
    return name in _BUILTIN_NAMES or name in _registered


class TypeTable:
    """The event tables one organism uses, frozen at its birth."""

    __slots__ = ("by_name", "names", "rows")

    def __init__(self, extra: tuple[EventType, ...] | None = None) -> None:
        rows = list(_BUILTIN_TYPES)
        rows.extend(extra if extra is not None else _registered.values())
        self.rows: tuple[EventType, ...] = tuple(rows)
        self.names: tuple[str, ...] = tuple(r.name for r in rows)
        self.by_name: dict[str, int] = {n: i for i, n in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, name: str) -> int:
        """Index of a type, or EventError naming the known types."""
        try:
            return self.by_name[name]
        except KeyError:
            raise EventError(
                f"unknown event type {_brief(name)}; register it with register_event_type() first"
            ) from None


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happens to the organism.

    Attributes:
        type: A built-in or registered event type name.
        intensity: Finite, in [-1, 1]; never clamped: out-of-range values are refused.
        timestamp: Informational; the organism stamps what it stores with its own clock.
        metadata: Optional small JSON-serialisable mapping (≤ 16 keys, ≤ 1 KiB encoded).
    """

    type: str
    intensity: float
    timestamp: float | None = None
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str):
            raise EventTypeError(f"Event.type must be a str, got {type(self.type).__name__}")
        if not _is_known(self.type):
            raise EventError(
                f"unknown event type {_brief(self.type)}; "
                "register it with register_event_type() first"
            )
        value = self.intensity
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventTypeError(
                f"Event.intensity must be a number, got {type(value).__name__} {_brief(value)}"
            )
        # an int is finite even when too large for a float (the range check refuses it)
        if not isinstance(value, int) and not math.isfinite(value):
            raise EventError(f"Event.intensity must be finite, got {_brief(value)}")
        if not -1.0 <= value <= 1.0:
            raise EventError(f"Event.intensity must be in [-1, 1], got {_brief(value)}")
        if not isinstance(value, float):
            object.__setattr__(self, "intensity", float(value))
        if self.timestamp is not None and (
            isinstance(self.timestamp, bool)
            or not isinstance(self.timestamp, int | float)
            or not math.isfinite(_as_float(self.timestamp))
        ):
            raise EventError(
                f"Event.timestamp must be a finite number, got {_brief(self.timestamp)}"
            )
        if self.metadata is not None:
            _check_metadata(self.metadata)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from ``{"type": ..., "intensity": ..., ...}``, refusing unknown keys."""
        if not isinstance(data, Mapping):
            raise EventTypeError(
                f"an event must be an Event or a mapping, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - {"type", "intensity", "timestamp", "metadata"})
        if unknown:
            raise EventError(f"unknown event field(s) {unknown}")
        if "type" not in data or "intensity" not in data:
            raise EventError("an event mapping needs 'type' and 'intensity'")
        return cls(**dict(data))


def _as_float(value: int | float) -> float:
    """float(value), with ints too large for a float mapped to inf (refused as not finite)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _brief(value: Any) -> str:
    """repr() cut to 60 characters for error messages (Python refuses the repr of huge ints)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, Mapping):
        raise EventTypeError(f"Event.metadata must be a mapping, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise EventError(
            f"Event.metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed"
        )
    try:
        encoded = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise EventError(f"Event.metadata must be JSON-serialisable without NaN: {exc}") from None
    except RecursionError:
        # json.dumps recurses per level: a deep nest fails before the size check can.
        raise EventError("Event.metadata is nested too deeply to encode as JSON") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise EventError(
            f"Event.metadata encodes to {len(encoded)} bytes; at most {MAX_METADATA_BYTES} allowed"
        )
