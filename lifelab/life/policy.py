"""The weakness policy (DESIGN.md §1.8): no death, only weakness — unless mortality is asked for."""

from __future__ import annotations

from lifelab.config import LifeConfig
from lifelab.life.state import SelfState

__all__ = ["is_weak", "weakness_penalty"]


def is_weak(state: SelfState, config: LifeConfig) -> bool:
    """Weak when any vital is at or below its own threshold."""
    return (
        state.energy <= config.weak_energy
        or state.stability <= config.weak_stability
        or state.integrity <= config.weak_integrity
    )


def weakness_penalty(config: LifeConfig, dt: float) -> tuple[float, float, float]:
    """The (energy, stability, integrity) delta a weak organism takes over ``dt`` seconds."""
    return (
        -config.weak_penalty_energy * dt,
        -config.weak_penalty_stability * dt,
        -config.weak_penalty_integrity * dt,
    )
