"""The canonical-state digest: one function, used by Life.digest() and by the snapshot file.

It lives in ``store``, below ``life``: the snapshot file records the digest and checks it on
read, and the organism computes the same function of its canonical state.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["digest_of"]


def digest_of(canonical: Mapping[str, Any], columns: Mapping[str, np.ndarray]) -> str:
    """Hex blake2b-128 of the canonical JSON (sorted keys) and the active-memory columns."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(canonical, sort_keys=True, default=_json_default).encode())
    for name in sorted(columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(columns[name]).tobytes())
    return h.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
