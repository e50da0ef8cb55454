"""lifelab's exceptions.

Every exception derives from :class:`LifelabError` and also from the built-in that matches its
meaning, so ``except ValueError`` in user code keeps working (the attrs model).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

__all__ = [
    "ArchiveError",
    "ArchiveSchemaError",
    "ConfigError",
    "ConfigTypeError",
    "EventError",
    "EventTypeError",
    "LifeStateError",
    "LifelabError",
    "SnapshotError",
    "StageError",
    "StateValueError",
    "error_kind",
    "fault_counts",
]


class LifelabError(Exception):
    """Base class of every error lifelab raises on purpose."""


class ConfigError(LifelabError, ValueError):
    """A configuration value is outside its allowed range or set."""


class ConfigTypeError(LifelabError, TypeError):
    """A configuration value has the wrong type."""


class EventError(LifelabError, ValueError):
    """An event was refused at the door (bad type, intensity or metadata)."""


class EventTypeError(LifelabError, TypeError):
    """An event (or a mapping standing for one) has fields of the wrong type."""


class LifeStateError(LifelabError, RuntimeError):
    """An operation does not fit the organism's current state (e.g. run() while started)."""


class StageError(LifelabError, RuntimeError):
    """A tick stage raised; the loop counted it and kept running."""


class StateValueError(LifelabError, ValueError):
    """A value written to the self-state is not a finite number of the field's kind.

    Raised at the write (``state.energy = nan``) so NaN never enters the state and spreads.
    """


class SnapshotError(LifelabError, ValueError):
    """A snapshot file is corrupt, truncated, of an unknown version, or inconsistent.

    The file layer (``store.snapshot``) raises it for the file; each owner of a piece of the
    organism (state, feedback book, random streams, active memory, Life's counters) raises it
    for its own piece, so it lives here, below all of them.
    """


class ArchiveError(LifelabError, OSError):
    """The archive could not be opened, or rows could not be committed to it."""


class ArchiveSchemaError(LifelabError, ValueError):
    """A file is not a lifelab archive, or has a schema version this lifelab cannot read."""


# SQLite result codes (primary code, the extended suffix cut off) -> the errno name they stand for,
# so the three writers count faults in one vocabulary (ENOSPC, EIO, EACCES, ...).
_SQLITE_KINDS = {
    "SQLITE_FULL": "ENOSPC",
    "SQLITE_IOERR": "EIO",
    "SQLITE_PERM": "EACCES",
    "SQLITE_READONLY": "EACCES",
    "SQLITE_AUTH": "EACCES",
}


def error_kind(exc: BaseException) -> str:
    """The kind an I/O fault is counted under: its errno name (``ENOSPC``, ``EIO``, ``EACCES``),
    the errno name a SQLite result code stands for, that of its ``__cause__``, else the class name.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        code = getattr(cur, "errno", None)
        if isinstance(code, int) and code in errno.errorcode:
            return errno.errorcode[code]
        name = getattr(cur, "sqlite_errorname", None)
        if isinstance(name, str) and name:
            return _SQLITE_KINDS.get("_".join(name.split("_")[:2]), name)
        cur = cur.__cause__
    return type(exc).__name__


def fault_counts(prefix: str, counts: Mapping[str, int]) -> dict[str, int]:
    """One ``<prefix>_<kind>`` key per kind counted (kind lower-cased, non-alphanumerics as
    ``_``), e.g. ``snapshot_errors_enospc``: how summaries name the faults of each kind."""
    out = {}
    for kind, n in dict(counts).items():  # dict(): one atomic copy of a counter others bump
        key = "".join(c if c.isalnum() else "_" for c in str(kind).lower())
        out[f"{prefix}_{key}"] = n
    return out
