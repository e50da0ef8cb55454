"""lifelab: a research workbench for a fast, lean, steady continuously-living agent runtime.

``import lifelab`` stays cheap: the public names are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Event",
    "EventError",
    "Life",
    "LifeConfig",
    "LifelabError",
    "__version__",
    "register_event_type",
]

_LAZY = {
    "ConfigError": "lifelab.exceptions",
    "Event": "lifelab.life.events",
    "EventError": "lifelab.exceptions",
    "Life": "lifelab.life.loop",
    "LifeConfig": "lifelab.config",
    "LifelabError": "lifelab.exceptions",
    "register_event_type": "lifelab.life.events",
}

if TYPE_CHECKING:
    from lifelab.config import LifeConfig
    from lifelab.exceptions import ConfigError, EventError, LifelabError
    from lifelab.life.events import Event, register_event_type
    from lifelab.life.loop import Life


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lifelab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
