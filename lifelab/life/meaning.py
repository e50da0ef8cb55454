"""Appraisal: what an event means to the organism (DESIGN.md §1.3, §1.5).

Pure functions of numbers. The per-type multiplier ``w_type · m`` changes only when learning
or adaptation runs, so the loop caches it (:func:`type_multipliers`) rather than recomputing it
per event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "appraise_batch",
    "context",
    "significance",
    "smooth_intensity",
    "subjective_rate",
    "type_multipliers",
]


def type_multipliers(
    weights: Sequence[float], sensitivity: Sequence[float], behavior_sensitivity: Sequence[float]
) -> list[float]:
    """``w_type · m`` per type, ``m = min(1.5, (m_L + m_A)/2)``, ``m_X = 0.5 + 0.5·sensitivity``."""
    return [
        w * min(1.5, ((0.5 + 0.5 * s) + (0.5 + 0.5 * b)) / 2.0)
        for w, s, b in zip(weights, sensitivity, behavior_sensitivity, strict=True)
    ]


def context(integrity: float, stability: float, r: float) -> float:
    """The context factor: fragility and the pace of subjective time sharpen or dull meaning."""
    c = 1.0
    if integrity < 0.3:
        c *= 1.5
    if stability < 0.5:
        c *= 1.2
    if r > 1.1:
        c *= min(1.3, 1.0 + 0.5 * (r - 1.0))
    elif r < 0.9:
        c *= max(0.8, 1.0 - 0.3 * (1.0 - r))
    return c


def significance(intensity: float, multiplier: float, ctx: float) -> float:
    """clamp(|I| · w_type · m · context, 0, 1)."""
    v = abs(intensity) * multiplier * ctx
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def appraise_batch(
    types: np.ndarray, intensities: np.ndarray, multipliers: np.ndarray, ctx: float
) -> np.ndarray:
    """:func:`significance` for a whole batch."""
    sig = np.abs(intensities) * multipliers[types]
    sig *= ctx
    return np.clip(sig, 0.0, 1.0, out=sig)


def smooth_intensity(previous: float, batch_max_abs: float | None) -> float:
    """I_s = 0.3·max|I| + 0.7·I_s on ticks with events, 0.7·I_s on ticks without."""
    if batch_max_abs is None:
        return 0.7 * previous
    return 0.3 * batch_max_abs + 0.7 * previous


def subjective_rate(smoothed_intensity: float, stability: float, energy: float) -> float:
    """clamp(1 + 1.0·I_s + 0.5·(S − 1) + 0.5·(E/100), 0.1, 3.0)."""
    rate = 1.0 + smoothed_intensity + 0.5 * (stability - 1.0) + 0.5 * (energy / 100.0)
    return 0.1 if rate < 0.1 else 3.0 if rate > 3.0 else rate
