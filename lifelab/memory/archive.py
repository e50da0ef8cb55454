"""Archives: where entries that leave active memory go. Nothing is ever deleted.

This module holds the in-memory archive, which keeps spilled columns in a list of chunks. It is the
reference behaviour for search (a brute-force filter) that durable archives must match.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from lifelab.memory.active import COLUMNS

__all__ = ["SORT_KEYS", "Archive", "MemoryArchive", "check_query", "filter_columns", "type_code"]

SORT_KEYS = ("timestamp", "significance", "weight", "id")


class Archive(Protocol):
    """What the organism needs from an archive."""

    def append(self, columns: dict[str, np.ndarray]) -> None: ...

    def __len__(self) -> int: ...

    def search(self, **query: Any) -> dict[str, np.ndarray]: ...


def check_query(sort: str, limit: int | None) -> None:
    """Refuse a sort key or a limit that no archive's search accepts."""
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {list(SORT_KEYS)}, got {sort!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def type_code(event_type: int | str, type_index: Mapping[str, int]) -> int | float:
    """The code a search compares ``event_type`` with: a name's index, or the number itself.

    Raises:
        ValueError: ``event_type`` is a name ``type_index`` (name -> index, in index order)
            does not know.
    """
    if isinstance(event_type, str):
        try:
            return type_index[event_type]
        except KeyError:
            raise ValueError(
                f"unknown event type {event_type!r}; this archive knows {list(type_index)}"
            ) from None
    if isinstance(event_type, numbers.Integral):
        return int(event_type)
    return float(event_type)


def filter_columns(
    cols: dict[str, np.ndarray],
    *,
    event_type: int | None = None,
    min_sig: float | None = None,
    max_sig: float | None = None,
    since: float | None = None,
    until: float | None = None,
    min_weight: float | None = None,
    max_weight: float | None = None,
    sort: str = "timestamp",
    descending: bool = False,
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    """Brute-force search over columns: every bound inclusive; ties broken by id."""
    check_query(sort, limit)
    mask = np.ones(len(cols["id"]), dtype=bool)
    if event_type is not None:
        mask &= cols["event_type"] == event_type
    for name, lo, hi in (
        ("significance", min_sig, max_sig),
        ("timestamp", since, until),
        ("weight", min_weight, max_weight),
    ):
        if lo is not None:
            mask &= cols[name] >= lo
        if hi is not None:
            mask &= cols[name] <= hi
    idx = np.flatnonzero(mask)
    key = cols[sort][idx]
    ids = cols["id"][idx]
    order = np.lexsort((ids, -key)) if descending else np.lexsort((ids, key))
    idx = idx[order]
    if limit is not None:
        idx = idx[:limit]
    return {name: col[idx] for name, col in cols.items()}


class MemoryArchive:
    """An archive held in RAM: growable columns (capacity doubles), no object per spill.

    Keeping each spilled batch as its own dict of arrays made the garbage collector walk an
    ever-growing list of containers: a million-tick run slowed by a third. Copying into
    preallocated columns keeps appends amortised O(rows) and the object count constant.
    """

    def __init__(self, type_names: Sequence[str] = ()) -> None:
        """``type_names``: the event types in index order, so a search may name a type
        (``event_type="shock"``) as the durable archives allow; an unknown name is refused."""
        self._cols = {name: np.empty(1024, dtype) for name, dtype in COLUMNS.items()}
        self._count = 0
        self.type_names = tuple(type_names)
        self._type_index = {name: i for i, name in enumerate(self.type_names)}

    def append(self, columns: dict[str, np.ndarray]) -> None:
        k = len(columns["id"])
        start = self._count
        end = start + k
        cols = self._cols
        if end > len(cols["id"]):
            size = max(end, 2 * len(cols["id"]))
            for name, col in cols.items():
                grown = np.empty(size, col.dtype)
                grown[:start] = col[:start]
                cols[name] = grown
        for name, col in cols.items():
            col[start:end] = columns[name]
        self._count = end

    def __len__(self) -> int:
        return self._count

    def columns(self) -> dict[str, np.ndarray]:
        """Every archived entry, as columns in archive (spill) order (views, do not modify)."""
        return {name: col[: self._count] for name, col in self._cols.items()}

    def search(self, **query: Any) -> dict[str, np.ndarray]:
        """Entries matching the query (see :func:`filter_columns`); ``event_type`` may be a
        type index or name.

        Raises:
            ValueError: ``event_type`` names a type this archive does not know.
        """
        if query.get("event_type") is not None:
            query["event_type"] = type_code(query["event_type"], self._type_index)
        return filter_columns(self.columns(), **query)
