"""The self-state: defaults, clamped writes, refused non-finite deltas, rhythm and time ratio."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.exceptions import StageError
from lifelab.life.state import CIRCADIAN_PERIOD_S, SelfState, recovery_efficiency

DAY = 86_400.0


def _state(n_types=4):
    return SelfState(life_id="x", birth_time=0.0, n_types=n_types, recent_size=8)


def test_defaults_match_the_design():
    """Vitals start full; learned and adapted parameters start at the DESIGN §1.1 values."""
    s = _state()
    assert (s.energy, s.integrity, s.stability) == (100.0, 1.0, 1.0)
    assert (s.ticks, s.age, s.subjective_time, s.last_event_intensity) == (0, 0.0, 0.0, 0.0)
    assert s.sensitivity == s.behavior_sensitivity == [0.2] * 4
    assert s.threshold == s.behavior_threshold == [0.1] * 4
    expected = {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}
    assert s.response_coef == s.behavior_response_coef == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, 1.0),  # cos 0 = 1 → 0.4 + 0.6
        (DAY / 6, 0.7),  # φ = π/3, cos = 0.5 → 0.4 + 0.3
        (DAY / 4, 0.4),  # φ = π/2, cos = 0 → 0.4
        (DAY / 2, 0.4),  # φ = π, 0.4 − 0.6 = −0.2 → clamped to 0.4
        (DAY, 1.0),  # one full period
        (DAY + DAY / 6, 0.7),
    ],
)
def test_recovery_efficiency_hand_computed(age, expected):
    """recovery_efficiency = clamp(0.4 + 0.6·cos φ, 0.4, 1.0) over the 86 400 s rhythm."""
    assert recovery_efficiency(age) == pytest.approx(expected, abs=1e-12)


@given(st.floats(min_value=0.0, max_value=1e9))
def test_recovery_efficiency_stays_in_range(age):
    """Efficiency is always within [0.4, 1.0]."""
    assert 0.4 <= recovery_efficiency(age) <= 1.0


def test_circadian_phase_and_state_efficiency_follow_age():
    """The state's phase is 2π·(age mod period)/period and its efficiency uses it."""
    s = _state()
    s.age = CIRCADIAN_PERIOD_S * 1.25
    assert s.circadian_phase == pytest.approx(math.pi / 2)
    assert s.recovery_efficiency == pytest.approx(0.4)


def test_apply_delta_clamps_every_vital():
    """Deltas past the ends clamp energy to [0, 100] and the others to [0, 1]."""
    s = _state()
    s.apply_delta(50.0, 2.0, 3.0)
    assert (s.energy, s.stability, s.integrity) == (100.0, 1.0, 1.0)
    s.apply_delta(-500.0, -2.0, -3.0)
    assert (s.energy, s.stability, s.integrity) == (0.0, 0.0, 0.0)
    s.apply_delta(12.5, 0.25, 0.5)
    assert (s.energy, s.stability, s.integrity) == (12.5, 0.25, 0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_non_finite_delta_is_refused_whole(bad, position):
    """A delta carrying NaN or ±inf raises StageError and changes no vital."""
    s = _state()
    s.apply_delta(-10.0, -0.1, -0.1)
    before = s.vitals()
    delta = [-1.0, -0.01, -0.01]
    delta[position] = bad
    with pytest.raises(StageError, match="non-finite"):
        s.apply_delta(*delta)
    assert s.vitals() == before


@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)),
        max_size=30,
    )
)
def test_vitals_stay_in_range_under_any_finite_deltas(deltas):
    """Whatever finite deltas arrive, the vitals stay within their ranges."""
    s = _state()
    for delta in deltas:
        s.apply_delta(*delta)
        assert 0.0 <= s.energy <= 100.0
        assert 0.0 <= s.stability <= 1.0
        assert 0.0 <= s.integrity <= 1.0


@pytest.mark.parametrize(
    ("subjective", "age", "perception"),
    [
        (0.0, 0.0, "normal"),  # before the first tick r is 1
        (110.0, 100.0, "accelerated"),  # r = 1.1 is accelerated (≥ 1.1)
        (109.0, 100.0, "normal"),
        (90.0, 100.0, "slowed"),  # r = 0.9 is slowed (≤ 0.9)
        (91.0, 100.0, "normal"),
    ],
)
def test_time_perception_thresholds(subjective, age, perception):
    """r = subjective/age: accelerated ≥ 1.1, slowed ≤ 0.9, else normal."""
    s = _state()
    s.subjective_time, s.age = subjective, age
    assert s.time_perception == perception


def test_to_dict_and_load_round_trip():
    """load(to_dict()) restores every field."""
    s = _state()
    s.ticks, s.age, s.subjective_time = 7, 7.0, 9.5
    s.apply_delta(-3.0, -0.2, -0.1)
    s.recent_events.extend([1, 2, 3])
    s.sensitivity[1] = 0.4
    s.behavior_threshold[2] = 0.3
    s.response_coef["dampen"] = 0.45
    s.adaptation_history.append((5, 0.02))
    t = _state()
    t.load(s.to_dict())
    assert t.to_dict() == s.to_dict()


def test_load_keeps_the_birth_order_of_the_coefficients():
    """A snapshot may store the coefficient dicts with sorted keys; the order summed must not move.

    adapt() sums its moves over response_coef in dict order: restoring "absorb" first made a
    resumed life differ from an uninterrupted one by one ulp after ~100 adaptations.
    """
    s = _state()
    data = s.to_dict()
    for name in ("response_coef", "behavior_response_coef"):
        data[name] = dict(sorted(data[name].items()))
    t = _state()
    t.load(data)
    assert list(t.response_coef) == list(s.response_coef) == ["dampen", "absorb", "ignore"]
    assert list(t.behavior_response_coef) == list(s.behavior_response_coef)
