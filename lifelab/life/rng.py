"""The organism's one seeded random source, drawn in blocks.

Calling numpy's generator per tick costs ~1 µs per call; drawing 4096 values at once and handing
them out from a Python list costs ~30 ns each. A stream's exact position is (generator state before
the current block, index in the block), so a snapshot stores those two and resume regenerates the
same block: no block contents need saving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lifelab.store.snapshot import check_int, invalid_field

__all__ = ["BlockStream", "check_position", "streams_for_seed"]

BLOCK = 4096


class BlockStream:
    """Values from ``fill(generator, n)`` handed out one at a time or in slices."""

    __slots__ = ("_fill", "_gen", "_state_before", "array", "index", "values")

    def __init__(self, gen: np.random.Generator, fill: Callable[[np.random.Generator, int], Any]):
        self._gen = gen
        self._fill = fill
        self._state_before: dict[str, Any] = {}
        self.array: np.ndarray = np.empty(0)
        self.values: list[Any] = []
        self.index = 0
        self._refill()

    def _refill(self) -> None:
        self._state_before = self._gen.bit_generator.state
        self.array = np.asarray(self._fill(self._gen, BLOCK))
        self.values = self.array.tolist()
        self.index = 0

    def next(self) -> Any:
        """One value (the hot path inlines this; see Life._tick)."""
        i = self.index
        if i == BLOCK:
            self._refill()
            i = 0
        self.index = i + 1
        return self.values[i]

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` values as an array (a view when they sit in one block)."""
        i = self.index
        if i + k <= BLOCK:
            self.index = i + k
            return self.array[i : i + k]
        parts = []
        while k > 0:
            if self.index == BLOCK:
                self._refill()
            j = min(BLOCK, self.index + k)
            parts.append(self.array[self.index : j])
            k -= j - self.index
            self.index = j
        return np.concatenate(parts)

    def refill_if_empty(self) -> None:
        if self.index == BLOCK:
            self._refill()

    @property
    def generator(self) -> np.random.Generator:
        return self._gen

    def adopt_block(self, state_before: dict[str, Any], index: int) -> None:
        """Take a block another engine drew into :attr:`array` in place (the compiled kernel
        refills streams itself): the generator state before it and the position in it."""
        self._state_before = state_before
        self.values = self.array.tolist()
        self.index = index

    def get_state(self) -> dict[str, Any]:
        """JSON-ready position of the stream."""
        return {"state_before": self._state_before, "index": self.index}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume at a position :meth:`get_state` gave (checked by :func:`check_position` when
        it comes from a file)."""
        self._gen.bit_generator.state = state["state_before"]
        self._refill()
        self.index = int(state["index"])


def streams_for_seed(seed: int, n: int) -> list[np.random.Generator]:
    """``n`` independent generators spawned from one seed (one seed, separate streams)."""
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(n)]


def check_position(position: Any, what: str) -> None:
    """Refuse (SnapshotError naming ``what``) a stream position that :meth:`BlockStream.set_state`
    cannot take: it must be a PCG64 state before the block and an index in the block."""
    if not isinstance(position, dict) or not isinstance(position.get("state_before"), dict):
        raise invalid_field(what, position)
    check_int(f"{what}.index", position.get("index"), 0, BLOCK)
    before = position["state_before"]
    inner = before.get("state")
    if before.get("bit_generator") != "PCG64" or not isinstance(inner, dict):
        raise invalid_field(f"{what}.state_before", before)
    check_int(f"{what}.state_before.state.state", inner.get("state"), 0, 2**128 - 1)
    check_int(f"{what}.state_before.state.inc", inner.get("inc"), 0, 2**128 - 1)
    check_int(f"{what}.state_before.has_uint32", before.get("has_uint32"), 0, 1)
    check_int(f"{what}.state_before.uinteger", before.get("uinteger"), 0, 2**32 - 1)
