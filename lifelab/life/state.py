"""The organism's self-state (DESIGN.md §1.1): the one obvious mutable object of the runtime.

Vitals are written only through :meth:`SelfState.apply_delta` (or by code that clamps the same
way), so they never leave their ranges; a delta carrying NaN or ±inf is refused whole.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from lifelab.exceptions import StageError

__all__ = ["CIRCADIAN_PERIOD_S", "ENERGY_MAX", "SelfState"]

ENERGY_MAX = 100.0
CIRCADIAN_PERIOD_S = 86_400.0
_TWO_PI = 2.0 * math.pi


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
        self.adaptation_history: deque[tuple[int, float]] = deque(maxlen=50)

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

    def load(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`to_dict` output."""
        for name in (
            "life_id",
            "birth_time",
            "ticks",
            "age",
            "subjective_time",
            "energy",
            "integrity",
            "stability",
            "last_event_intensity",
        ):
            setattr(self, name, data[name])
        self.recent_events.clear()
        self.recent_events.extend(int(x) for x in data["recent_events"])
        for name in ("sensitivity", "threshold", "behavior_sensitivity", "behavior_threshold"):
            setattr(self, name, [float(x) for x in data[name]])
        # Keep the birth order of the keys, not the file's (a snapshot's JSON may sort them):
        # adapt() sums over these dicts, and another order rounds the sum differently.
        self.response_coef = {k: float(data["response_coef"][k]) for k in self.response_coef}
        self.behavior_response_coef = {
            k: float(data["behavior_response_coef"][k]) for k in self.behavior_response_coef
        }
        self.adaptation_history.clear()
        self.adaptation_history.extend((int(a), float(b)) for a, b in data["adaptation_history"])


def recovery_efficiency(age: float) -> float:
    """clamp(0.4 + 0.6·cos φ, 0.4, 1.0) with φ the circadian phase at ``age`` seconds."""
    v = 0.4 + 0.6 * math.cos(_TWO_PI * ((age % CIRCADIAN_PERIOD_S) / CIRCADIAN_PERIOD_S))
    return 0.4 if v < 0.4 else 1.0 if v > 1.0 else v
