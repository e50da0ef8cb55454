"""The built-in environment: draws events from the 22-type table of DESIGN.md §1.2.

Draw weights are normalised; each type's intensity is uniform on its range. The number of events
per tick is either a deterministic carry of a fractional rate (``fixed``) or Poisson. Randomness
comes in blocks from the organism's seeded streams, so two organisms with one seed see one world.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from lifelab.life.events import TypeTable
from lifelab.life.rng import BlockStream, check_position
from lifelab.store.snapshot import check_int, invalid_field

__all__ = ["Environment"]


class Environment:
    """Seeded event source.

    Args:
        table: The organism's type table (draw weights and intensity ranges).
        rate: Mean events per tick.
        mode: ``"fixed"`` or ``"poisson"``.
        gens: Three generators: types, intensities, counts.
    """

    __slots__ = (
        "_den",
        "_num",
        "carry",
        "cdf",
        "counts",
        "lo",
        "lo_arr",
        "mode",
        "rate",
        "span",
        "span_arr",
        "types",
        "uniform",
    )

    def __init__(
        self, table: TypeTable, rate: float, mode: str, gens: list[np.random.Generator]
    ) -> None:
        weights = np.array([0.0 if r.internal else r.draw_weight for r in table.rows])
        p = weights / weights.sum()
        n = len(p)
        self.rate = rate
        self.mode = mode
        self._num, self._den = _fraction(rate)
        self.carry = 0
        self.types = BlockStream(gens[0], lambda g, k: g.choice(n, size=k, p=p))
        # What Generator.choice(p=p) searches (its own two steps), for engines that draw the
        # type stream themselves.
        cdf = p.cumsum()
        cdf /= cdf[-1]
        self.cdf = cdf
        self.uniform = BlockStream(gens[1], lambda g, k: g.random(k))
        self.counts = (
            BlockStream(gens[2], lambda g, k: g.poisson(rate, k)) if mode == "poisson" else None
        )
        self.lo = [r.lo for r in table.rows]
        self.span = [r.hi - r.lo for r in table.rows]
        self.lo_arr = np.array(self.lo)
        self.span_arr = np.array(self.span)

    @property
    def rate_fraction(self) -> tuple[int, int]:
        """The fixed-mode rate as an exact fraction (numerator, denominator)."""
        return self._num, self._den

    def set_rate(self, rate: float) -> None:
        """Emit ``rate`` events per tick from now on (fixed mode only).

        The fractional carry restarts at 0 (a carry of the old denominator means nothing under
        the new one). Poisson counts are drawn in blocks at the rate given at birth, so a Poisson
        world refuses a new rate.
        """
        if self.counts is not None:
            raise ValueError("a Poisson world draws its counts in blocks: its rate cannot change")
        self.rate = rate
        self._num, self._den = _fraction(rate)
        self.carry = 0

    def count(self) -> int:
        """How many events the world emits this tick."""
        if self.counts is not None:
            return int(self.counts.next())
        k, self.carry = divmod(self.carry + self._num, self._den)
        return k

    def draw_one(self) -> tuple[int, float]:
        """One event as (type index, intensity)."""
        t = self.types.next()
        return t, self.lo[t] + self.span[t] * self.uniform.next()

    def draw(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` events as (type indices, intensities) arrays."""
        t = self.types.take(k)
        intensity = self.lo_arr[t] + self.span_arr[t] * self.uniform.take(k)
        return t, intensity

    def get_state(self) -> dict[str, Any]:
        return {
            "carry": self.carry,
            "types": self.types.get_state(),
            "uniform": self.uniform.get_state(),
            "counts": None if self.counts is None else self.counts.get_state(),
        }

    @staticmethod
    def check_state(state: Any) -> None:
        """Refuse (SnapshotError naming the field) a snapshot's ``rng.environment`` piece that
        :meth:`set_state` cannot take: the carry and the positions of the three streams."""
        if not isinstance(state, dict):
            raise invalid_field("rng.environment", state)
        check_int("rng.environment.carry", state.get("carry"))
        check_position(state.get("types"), "rng.environment.types")
        check_position(state.get("uniform"), "rng.environment.uniform")
        if state.get("counts") is not None:
            check_position(state["counts"], "rng.environment.counts")

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume where :meth:`get_state` was taken (checked by :meth:`check_state` first when
        it comes from a file)."""
        self.carry = int(state["carry"])
        self.types.set_state(state["types"])
        self.uniform.set_state(state["uniform"])
        counts = state.get("counts")
        if self.counts is not None and counts is not None:
            self.counts.set_state(counts)


def _fraction(rate: float) -> tuple[int, int]:
    """Fixed mode carries the rate as an exact fraction, so 0.1 events/tick gives exactly one
    event per ten ticks (a float carry loses events to rounding)."""
    frac = Fraction(rate).limit_denominator(1_000_000)
    return frac.numerator, frac.denominator
