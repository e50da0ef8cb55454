"""lifelab's exceptions.

Every exception derives from :class:`LifelabError` and also from the built-in that matches its
meaning, so ``except ValueError`` in user code keeps working (the attrs model).
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ArchiveSchemaError",
    "ConfigError",
    "ConfigTypeError",
    "EventError",
    "EventTypeError",
    "LifeStateError",
    "LifelabError",
    "StageError",
    "StateValueError",
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


class ArchiveError(LifelabError, OSError):
    """The archive could not be opened, or rows could not be committed to it."""


class ArchiveSchemaError(LifelabError, ValueError):
    """A file is not a lifelab archive, or has a schema version this lifelab cannot read."""
