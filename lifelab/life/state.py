"""The organism's self-state (DESIGN.md §1.1): the one obvious mutable object of the runtime.

Two faces of one state:

- :class:`SelfState` holds the fields in plain slots. The engines write it (the Python engine
  through :meth:`SelfState.apply_delta` or code that clamps the same way, the compiled engine by
  copying its kernel's values back), so it stays fast: a slot read is ~75 ns cheaper than a
  validating property, and the Python engine reads ~15 fields a tick (measured: properties on
  the engine's own state made its tick 13 % slower).
- :class:`StateView` is what ``life.state`` hands to everyone else. Every write through it is
  checked: a vital or ``last_event_intensity`` is clamped to its range, and a value that is not a
  finite number (NaN, ±inf, a str, a bool), a negative time or a non-integer tick count is
  refused with a :class:`~lifelab.exceptions.StateValueError`, leaving the old value. So NaN
  never enters the state, from the engines (apply_delta refuses a non-finite delta whole) or
  from outside.
"""

from __future__ import annotations

import math
import numbers
from collections import deque
from typing import Any

from lifelab.exceptions import StageError, StateValueError
from lifelab.store.snapshot import check_int, check_number, invalid_field

__all__ = ["ADAPTATION_HISTORY", "CIRCADIAN_PERIOD_S", "ENERGY_MAX", "SelfState", "StateView"]

ENERGY_MAX = 100.0
CIRCADIAN_PERIOD_S = 86_400.0
ADAPTATION_HISTORY = 50  # adaptation passes remembered
_TWO_PI = 2.0 * math.pi
_INF = math.inf
_LEARNED = ("sensitivity", "threshold", "behavior_sensitivity", "behavior_threshold")
_COEFS = ("response_coef", "behavior_response_coef")


def _finite(name: str, value: object, allowed: str) -> float:
    """``value`` as a float if it is a finite real number (a bool is not), else refuse it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StateValueError(
            f"state.{name} = {value!r} refused: not a real number ({type(value).__name__}); "
            f"{name} takes {allowed}"
        )
    try:
        v = float(value)
    except OverflowError:  # an int or Fraction too large for a float
        v = _INF
    if not math.isfinite(v):
        raise StateValueError(
            f"state.{name} = {value!r} refused: not finite; {name} takes {allowed}"
        )
    return v


def _clamped(name: str, value: object, hi: float) -> float:
    """A finite ``value`` clamped to [0, hi] (DESIGN §1.1: every write is clamped to its range)."""
    v = _finite(name, value, f"a finite number, clamped to [0, {hi:g}]")
    return 0.0 if v < 0.0 else hi if v > hi else v


def _non_negative(name: str, value: object) -> float:
    """A finite ``value`` ≥ 0; a negative time is refused, not clamped (it would hide a bug)."""
    allowed = "a finite number >= 0"
    v = _finite(name, value, allowed)
    if v < 0.0:
        raise StateValueError(f"state.{name} = {value!r} refused: negative; {name} takes {allowed}")
    return v


def _count(name: str, value: object) -> int:
    """``value`` as an int if it is an integer ≥ 0 (a bool is not), else refuse it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise StateValueError(f"state.{name} = {value!r} refused; {name} takes an integer >= 0")
    return int(value)


def _finite_list(name: str, values: Any) -> list[float]:
    """Learned parameters from a snapshot, as floats; NaN or ±inf is refused."""
    return [_finite(f"{name}[{i}]", x, "a finite number") for i, x in enumerate(values)]


class SelfState:
    """Identity, time, vitals, perception, rhythm, learned and adapted parameters."""

    __slots__ = (
        "adaptation_history",
        "age",
        "behavior_response_coef",
        "behavior_sensitivity",
        "behavior_threshold",
        "birth_time",
        "energy",
        "integrity",
        "last_event_intensity",
        "life_id",
        "recent_events",
        "response_coef",
        "sensitivity",
        "stability",
        "subjective_time",
        "threshold",
        "ticks",
    )

    def __init__(self, *, life_id: str, birth_time: float, n_types: int, recent_size: int) -> None:
        self.life_id = life_id
        self.birth_time = birth_time
        self.ticks = 0
        self.age = 0.0
        self.subjective_time = 0.0
        self.energy = ENERGY_MAX
        self.integrity = 1.0
        self.stability = 1.0
        self.last_event_intensity = 0.0  # the smoothed intensity I_s (DESIGN §1.5)
        self.recent_events: deque[int] = deque(maxlen=recent_size)
        self.sensitivity = [0.2] * n_types
        self.threshold = [0.1] * n_types
        self.response_coef = {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}
        self.behavior_sensitivity = [0.2] * n_types
        self.behavior_threshold = [0.1] * n_types
        self.behavior_response_coef = {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}
        self.adaptation_history: deque[tuple[int, float]] = deque(maxlen=ADAPTATION_HISTORY)

    # -- derived values --------------------------------------------------------------------------

    @property
    def circadian_phase(self) -> float:
        """Phase in [0, 2π) of the 86 400 s rhythm, from the organism's age."""
        return _TWO_PI * ((self.age % CIRCADIAN_PERIOD_S) / CIRCADIAN_PERIOD_S)

    @property
    def recovery_efficiency(self) -> float:
        """clamp(0.4 + 0.6·cos φ, 0.4, 1.0)."""
        return recovery_efficiency(self.age)

    @property
    def time_ratio(self) -> float:
        """r = subjective_time / age (1.0 before the first tick)."""
        return self.subjective_time / self.age if self.age > 0 else 1.0

    @property
    def time_perception(self) -> str:
        """``accelerated`` (r ≥ 1.1), ``slowed`` (r ≤ 0.9) or ``normal``."""
        r = self.time_ratio
        return "accelerated" if r >= 1.1 else "slowed" if r <= 0.9 else "normal"

    # -- writing -------------------------------------------------------------------------------

    def apply_delta(self, d_energy: float, d_stability: float, d_integrity: float) -> None:
        """Add a delta to the vitals, clamped; NaN or ±inf anywhere refuses the whole delta."""
        if not math.isfinite(d_energy + d_stability + d_integrity):
            raise StageError(
                f"refused non-finite vital delta (energy {d_energy!r}, stability {d_stability!r}, "
                f"integrity {d_integrity!r})"
            )
        e = self.energy + d_energy
        self.energy = 0.0 if e < 0.0 else ENERGY_MAX if e > ENERGY_MAX else e
        s = self.stability + d_stability
        self.stability = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
        i = self.integrity + d_integrity
        self.integrity = 0.0 if i < 0.0 else 1.0 if i > 1.0 else i

    def vitals(self) -> dict[str, float]:
        return {"energy": self.energy, "integrity": self.integrity, "stability": self.stability}

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (used by summaries and snapshots)."""
        return {
            "life_id": self.life_id,
            "birth_time": self.birth_time,
            "ticks": self.ticks,
            "age": self.age,
            "subjective_time": self.subjective_time,
            "energy": self.energy,
            "integrity": self.integrity,
            "stability": self.stability,
            "last_event_intensity": self.last_event_intensity,
            "recent_events": list(self.recent_events),
            "sensitivity": list(self.sensitivity),
            "threshold": list(self.threshold),
            "response_coef": dict(self.response_coef),
            "behavior_sensitivity": list(self.behavior_sensitivity),
            "behavior_threshold": list(self.behavior_threshold),
            "behavior_response_coef": dict(self.behavior_response_coef),
            "adaptation_history": [list(x) for x in self.adaptation_history],
        }

    @classmethod
    def from_snapshot(cls, data: Any, *, n_types: int, recent_size: int) -> SelfState:
        """The state a snapshot's ``state`` piece describes, every field checked first.

        Raises :class:`~lifelab.exceptions.SnapshotError` naming the first field that no run
        can have written (a vital out of its range, a learned list of the wrong length, a type
        this organism does not know…): nothing from disk is trusted, and :meth:`load` would
        clamp what it should refuse.
        """
        if not isinstance(data, dict):
            raise invalid_field("state", data)
        _check_scalars(data)
        _check_learned(data, n_types)
        _check_history(data, n_types)
        state = cls(
            life_id=data["life_id"],
            birth_time=data["birth_time"],
            n_types=n_types,
            recent_size=recent_size,
        )
        state.load(data)
        return state

    def adopt(self, other: SelfState) -> None:
        """Take every field of ``other`` (a restored snapshot's) in place: ``life.state`` and
        the engines keep this object."""
        for name in SelfState.__slots__:
            setattr(self, name, getattr(other, name))

    def load(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`to_dict` output, all or nothing.

        Every value is checked before any is written, so a refused snapshot (NaN, ±inf, a
        negative time, a non-integer tick count) raises :class:`StateValueError` and leaves the
        state as it was. Vitals and the smoothed intensity are clamped like any other write.
        """
        ticks = _count("ticks", data["ticks"])
        age = _non_negative("age", data["age"])
        subjective_time = _non_negative("subjective_time", data["subjective_time"])
        energy = _clamped("energy", data["energy"], ENERGY_MAX)
        integrity = _clamped("integrity", data["integrity"], 1.0)
        stability = _clamped("stability", data["stability"], 1.0)
        intensity = _clamped("last_event_intensity", data["last_event_intensity"], 1.0)
        recent = [int(x) for x in data["recent_events"]]
        learned = {name: _finite_list(name, data[name]) for name in _LEARNED}
        # Keep the birth order of the keys, not the file's (a snapshot's JSON may sort them):
        # adapt() sums over these dicts, and another order rounds the sum differently.
        response_coef = {
            k: _finite(f"response_coef[{k!r}]", data["response_coef"][k], "a finite number")
            for k in self.response_coef
        }
        behavior_response_coef = {
            k: _finite(
                f"behavior_response_coef[{k!r}]",
                data["behavior_response_coef"][k],
                "a finite number",
            )
            for k in self.behavior_response_coef
        }
        history = [
            (int(a), _finite("adaptation_history", b, "a finite number"))
            for a, b in data["adaptation_history"]
        ]

        self.life_id = data["life_id"]
        self.birth_time = data["birth_time"]
        self.ticks = ticks
        self.age = age
        self.subjective_time = subjective_time
        self.energy = energy
        self.integrity = integrity
        self.stability = stability
        self.last_event_intensity = intensity
        self.recent_events.clear()
        self.recent_events.extend(recent)
        self.sensitivity = learned["sensitivity"]
        self.threshold = learned["threshold"]
        self.behavior_sensitivity = learned["behavior_sensitivity"]
        self.behavior_threshold = learned["behavior_threshold"]
        self.response_coef = response_coef
        self.behavior_response_coef = behavior_response_coef
        self.adaptation_history.clear()
        self.adaptation_history.extend(history)


def _check_scalars(data: dict[str, Any]) -> None:
    """Vitals, times, identity: numbers in their ranges, an int tick count, a short id."""
    for name, hi in (("energy", ENERGY_MAX), ("integrity", 1.0), ("stability", 1.0)):
        check_number(f"state.{name}", data.get(name), 0.0, hi)
    check_int("state.ticks", data.get("ticks"))
    for name in ("age", "subjective_time"):
        check_number(f"state.{name}", data.get(name), 0.0, 1e18)
    check_number("state.last_event_intensity", data.get("last_event_intensity"), 0.0, 1.0)
    life_id = data.get("life_id")
    if not isinstance(life_id, str) or len(life_id) > 64:
        raise invalid_field("state.life_id", life_id)
    check_number("state.birth_time", data.get("birth_time"), -1e18, 1e18)


def _check_learned(data: dict[str, Any], n_types: int) -> None:
    """Learned and adapted parameters: one value in [0, 1] per type, the three coefficients."""
    for name in _LEARNED:
        values = data.get(name)
        if not isinstance(values, list) or len(values) != n_types:
            raise invalid_field(f"state.{name}", values)
        for v in values:
            check_number(f"state.{name}[]", v, 0.0, 1.0)
    for name in _COEFS:
        coef = data.get(name)
        if not isinstance(coef, dict) or set(coef) != {"dampen", "absorb", "ignore"}:
            raise invalid_field(f"state.{name}", coef)
        for key, v in coef.items():
            check_number(f"state.{name}.{key}", v, 0.0, 1.0)


def _check_history(data: dict[str, Any], n_types: int) -> None:
    """The recent types (known ones) and the adaptation history ([tick, moved] rows)."""
    recent = data.get("recent_events")
    if not isinstance(recent, list) or len(recent) > 100_000:
        raise invalid_field("state.recent_events", recent)
    for t in recent:
        check_int("state.recent_events[]", t, 0, n_types - 1)
    history = data.get("adaptation_history")
    if not isinstance(history, list) or len(history) > ADAPTATION_HISTORY:
        raise invalid_field("state.adaptation_history", history)
    for row in history:
        if not isinstance(row, list) or len(row) != 2:
            raise invalid_field("state.adaptation_history[]", row)
        check_int("state.adaptation_history[].tick", row[0])
        check_number("state.adaptation_history[].moved", row[1], 0.0, 1e9)


def recovery_efficiency(age: float) -> float:
    """clamp(0.4 + 0.6·cos φ, 0.4, 1.0) with φ the circadian phase at ``age`` seconds."""
    v = 0.4 + 0.6 * math.cos(_TWO_PI * ((age % CIRCADIAN_PERIOD_S) / CIRCADIAN_PERIOD_S))
    return 0.4 if v < 0.4 else 1.0 if v > 1.0 else v


class StateView:
    """``life.state``: the organism's :class:`SelfState`, with every write validated.

    Reads of any field or method pass through; writes to the validated fields are clamped or
    refused (see the module docstring); writes to the other fields (learned lists, identity)
    pass through unchanged.
    """

    __slots__ = ("_state",)

    def __init__(self, state: SelfState) -> None:
        object.__setattr__(self, "_state", state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    def __setattr__(self, name: str, value: Any) -> None:
        check = _CHECKS.get(name)
        setattr(self._state, name, value if check is None else check(name, value))

    def __repr__(self) -> str:
        s = self._state
        return (
            f"<SelfState ticks={s.ticks} energy={s.energy:.6g} integrity={s.integrity:.6g} "
            f"stability={s.stability:.6g}>"
        )

    def __dir__(self) -> list[str]:
        return sorted(set(dir(type(self._state))) | set(SelfState.__slots__))


_CHECKS: dict[str, Any] = {
    "ticks": _count,
    "age": _non_negative,
    "subjective_time": _non_negative,
    "energy": lambda name, v: _clamped(name, v, ENERGY_MAX),
    "integrity": lambda name, v: _clamped(name, v, 1.0),
    "stability": lambda name, v: _clamped(name, v, 1.0),
    "last_event_intensity": lambda name, v: _clamped(name, v, 1.0),
}
