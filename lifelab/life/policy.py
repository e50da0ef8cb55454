"""The weakness policy (DESIGN.md §1.8): no death, only weakness — unless mortality is asked for."""

from __future__ import annotations

from lifelab.config import LifeConfig
from lifelab.life.state import SelfState

__all__ = ["is_weak", "weak_vitals", "weakness_penalty"]


def is_weak(state: SelfState, config: LifeConfig) -> bool:
    """Weak when any vital is at or below its own threshold."""
    return (
        state.energy <= config.weak_energy
        or state.stability <= config.weak_stability
        or state.integrity <= config.weak_integrity
    )


def weak_vitals(energy: float, stability: float, integrity: float, config: LifeConfig) -> list[str]:
    """The vitals at or below their thresholds, in (energy, stability, integrity) order.

    The same rule as :func:`is_weak`, which stays a short-circuit ``or`` because the tick calls
    it; this one names the vitals, for readers that took one reading of the three (a live
    organism's values may change between attribute reads).
    """
    return [
        name
        for name, value, threshold in (
            ("energy", energy, config.weak_energy),
            ("stability", stability, config.weak_stability),
            ("integrity", integrity, config.weak_integrity),
        )
        if value <= threshold
    ]


def weakness_penalty(config: LifeConfig, dt: float) -> tuple[float, float, float]:
    """The (energy, stability, integrity) delta a weak organism takes over ``dt`` seconds."""
    return (
        -config.weak_penalty_energy * dt,
        -config.weak_penalty_stability * dt,
        -config.weak_penalty_integrity * dt,
    )
