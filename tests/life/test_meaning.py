"""Appraisal (DESIGN §1.3, §1.5): significance, context, smoothed intensity, subjective rate."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lifelab.life.meaning import (
    appraise_batch,
    context,
    significance,
    smooth_intensity,
    subjective_rate,
    type_multipliers,
)


@pytest.mark.parametrize(
    ("weight", "sens", "behavior_sens", "expected"),
    [
        (1.5, 0.2, 0.2, 0.9),  # m_L = m_A = 0.6 → m = 0.6; shock: 1.5·0.6
        (0.5, 0.2, 0.2, 0.3),  # noise: 0.5·0.6
        (1.0, 0.6, 0.2, 0.7),  # m_L = 0.8, m_A = 0.6 → m = 0.7
        (1.4, 1.0, 1.0, 1.4),  # m = (1 + 1)/2 = 1
        (1.0, 3.0, 3.0, 1.5),  # m = (2 + 2)/2 = 2 → capped at 1.5
        (0.2, 0.0, 0.0, 0.1),  # idle with no sensitivity: m = 0.5
    ],
)
def test_type_multiplier_is_weight_times_capped_mean_sensitivity(
    weight, sens, behavior_sens, expected
):
    """w_type · min(1.5, (m_L + m_A)/2) with m_X = 0.5 + 0.5·sensitivity."""
    (got,) = type_multipliers([weight], [sens], [behavior_sens])
    assert got == pytest.approx(expected)


def test_type_multipliers_refuse_mismatched_lengths():
    """The three per-type lists must have one length."""
    with pytest.raises(ValueError):
        type_multipliers([1.0, 1.0], [0.2], [0.2, 0.2])


@pytest.mark.parametrize(
    ("integrity", "stability", "r", "expected"),
    [
        (1.0, 1.0, 1.0, 1.0),
        (0.29, 1.0, 1.0, 1.5),  # fragile integrity
        (0.3, 1.0, 1.0, 1.0),  # the bound is strict
        (1.0, 0.49, 1.0, 1.2),  # unstable
        (1.0, 0.5, 1.0, 1.0),
        (1.0, 1.0, 1.2, 1.1),  # 1 + 0.5·0.2
        (1.0, 1.0, 2.0, 1.3),  # min(1.3, 1.5)
        (1.0, 1.0, 1.1, 1.0),  # r > 1.1 is strict
        (1.0, 1.0, 0.5, 0.85),  # max(0.8, 1 − 0.3·0.5)
        (1.0, 1.0, 0.0, 0.8),  # max(0.8, 0.7)
        (1.0, 1.0, 0.9, 1.0),  # r < 0.9 is strict
        (0.1, 0.1, 1.4, 1.5 * 1.2 * 1.2),  # all three factors multiply
        (0.0, 0.0, 0.2, 1.5 * 1.2 * 0.8),
    ],
)
def test_context_factor_hand_computed(integrity, stability, r, expected):
    """×1.5 if integrity < 0.3, ×1.2 if stability < 0.5, and the time-ratio factor."""
    assert context(integrity, stability, r) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("intensity", "multiplier", "ctx", "expected"),
    [
        (0.5, 0.9, 1.0, 0.45),
        (-0.5, 0.9, 1.0, 0.45),  # |I|
        (0.4, 0.6, 1.3, 0.312),
        (1.0, 1.5, 2.16, 1.0),  # clamped to 1
        (0.0, 1.5, 2.16, 0.0),
    ],
)
def test_significance_hand_computed(intensity, multiplier, ctx, expected):
    """significance = clamp(|I| · w_type · m · context, 0, 1)."""
    assert significance(intensity, multiplier, ctx) == pytest.approx(expected)


@given(
    data=st.data(),
    n=st.integers(min_value=0, max_value=40),
    ctx=st.floats(min_value=0.8, max_value=2.34),
)
def test_appraise_batch_equals_the_scalar_formula(data, n, ctx):
    """The numpy appraisal equals significance() event by event."""
    multipliers = data.draw(hnp.arrays(np.float64, 23, elements=st.floats(0.0, 2.1)))
    types = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 22)))
    intensities = data.draw(hnp.arrays(np.float64, n, elements=st.floats(-1.0, 1.0)))
    got = appraise_batch(types, intensities, multipliers, ctx)
    expected = [
        significance(i, multipliers[t], ctx) for t, i in zip(types, intensities, strict=True)
    ]
    assert np.allclose(got, expected, rtol=1e-15, atol=0.0)
    assert np.all((got >= 0.0) & (got <= 1.0))


@pytest.mark.parametrize(
    ("previous", "peak", "expected"),
    [
        (0.5, None, 0.35),  # no events: 0.7·I_s
        (0.0, 1.0, 0.3),
        (0.5, 0.8, 0.59),  # 0.3·0.8 + 0.7·0.5
        (1.0, 1.0, 1.0),
    ],
)
def test_smoothed_intensity_hand_computed(previous, peak, expected):
    """I_s = 0.3·max|I| + 0.7·I_s with events, 0.7·I_s without."""
    assert smooth_intensity(previous, peak) == pytest.approx(expected)


def test_smoothed_intensity_sequence():
    """A single event of |I| = 0.8 then quiet ticks: 0.24, 0.168, 0.1176."""
    values = []
    i_s = smooth_intensity(0.0, 0.8)
    values.append(i_s)
    for _ in range(2):
        i_s = smooth_intensity(i_s, None)
        values.append(i_s)
    assert values == pytest.approx([0.24, 0.168, 0.1176])


@pytest.mark.parametrize(
    ("i_s", "stability", "energy", "expected"),
    [
        (0.0, 1.0, 100.0, 1.5),  # 1 + 0 + 0 + 0.5
        (1.0, 1.0, 100.0, 2.5),
        (0.0, 0.0, 0.0, 0.5),  # 1 + 0 − 0.5 + 0
        (0.4, 0.6, 50.0, 1.45),  # 1 + 0.4 − 0.2 + 0.25
        (5.0, 1.0, 100.0, 3.0),  # clamped high
        (-5.0, 0.0, 0.0, 0.1),  # clamped low
    ],
)
def test_subjective_rate_hand_computed(i_s, stability, energy, expected):
    """rate = clamp(1 + I_s + 0.5·(S − 1) + 0.5·E/100, 0.1, 3.0)."""
    assert subjective_rate(i_s, stability, energy) == pytest.approx(expected)
