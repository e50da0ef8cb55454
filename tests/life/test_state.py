"""The self-state: defaults, clamped writes, refused non-finite values, rhythm and time ratio."""

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.config import LifeConfig
from lifelab.exceptions import LifelabError, SnapshotError, StageError, StateValueError
from lifelab.life.loop import Life
from lifelab.life.state import CIRCADIAN_PERIOD_S, SelfState, StateView, recovery_efficiency

DAY = 86_400.0
# field -> upper end of its clamped range
CLAMPED = {"energy": 100.0, "integrity": 1.0, "stability": 1.0, "last_event_intensity": 1.0}
TIMES = ("age", "subjective_time")
FLOAT_FIELDS = (*CLAMPED, *TIMES)
NON_FINITE = [math.nan, math.inf, -math.inf]


def _state(n_types=4):
    """The state as users see it (life.state): the validating view of a SelfState."""
    return StateView(SelfState(life_id="x", birth_time=0.0, n_types=n_types, recent_size=8))


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


def _snapshot_piece():
    s = _state()
    s.ticks, s.age, s.subjective_time = 7, 7.0, 9.5
    s.recent_events.extend([1, 2, 3])
    s.adaptation_history.append((5, 0.02))
    return s, s.to_dict() | {"adaptation_history": [[5, 0.02]]}


def test_from_snapshot_restores_a_new_state_that_adopt_takes_in_place():
    """from_snapshot(to_dict()) builds an equal state; adopt() copies it into the live object."""
    s, data = _snapshot_piece()
    restored = SelfState.from_snapshot(data, n_types=4, recent_size=8)
    assert restored.to_dict() == s.to_dict()
    live = SelfState(life_id="y", birth_time=1.0, n_types=4, recent_size=8)
    view = StateView(live)
    live.adopt(restored)
    assert view.to_dict() == s.to_dict()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stability", 1.5, "state.stability = 1.5 is invalid"),
        ("energy", math.nan, "state.energy = nan is invalid"),
        ("energy", True, "state.energy = True is invalid"),
        ("ticks", -1, "state.ticks = -1 is invalid"),
        ("age", "1", "state.age = '1' is invalid"),
        ("life_id", 7, "state.life_id = 7 is invalid"),
        ("sensitivity", [0.2] * 3, "state.sensitivity = [0.2, 0.2, 0.2] is invalid"),
        ("threshold", [0.1, 0.1, 0.1, 2.0], "state.threshold[] = 2.0 is invalid"),
        ("response_coef", {"dampen": 0.5}, "state.response_coef = {'dampen': 0.5} is invalid"),
        ("recent_events", [4], "state.recent_events[] = 4 is invalid"),
        ("adaptation_history", [[1]], "state.adaptation_history[] = [1] is invalid"),
    ],
)
def test_from_snapshot_refuses_what_no_run_can_have_written(field, value, message):
    """A snapshot's state piece with an impossible field raises SnapshotError naming it; a vital
    out of range is refused, not clamped (load() would clamp it)."""
    _, data = _snapshot_piece()
    data[field] = value
    with pytest.raises(SnapshotError, match=re.escape(message)):
        SelfState.from_snapshot(data, n_types=4, recent_size=8)


def test_from_snapshot_refuses_a_piece_that_is_not_a_mapping():
    """A state piece that is not a JSON object is refused by name."""
    with pytest.raises(SnapshotError, match=re.escape("state = [] is invalid")):
        SelfState.from_snapshot([], n_types=4, recent_size=8)


# -- validated writes (DESIGN §1.1: every write is clamped; NaN or ±inf never enters) ---------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("energy", 150.0, 100.0),
        ("energy", -5.0, 0.0),
        ("energy", 42.5, 42.5),
        ("energy", 150, 100.0),  # an int is a number too, stored as a float
        ("integrity", -3.0, 0.0),
        ("integrity", 0.25, 0.25),
        ("stability", 2.0, 1.0),
        ("stability", -0.1, 0.0),
        ("last_event_intensity", 1.5, 1.0),
        ("last_event_intensity", -0.2, 0.0),
    ],
)
def test_direct_writes_are_clamped_to_the_range(field, value, expected):
    """A direct write to a vital or to the smoothed intensity reads back clamped."""
    s = _state()
    setattr(s, field, value)
    assert getattr(s, field) == expected
    assert type(getattr(s, field)) is float


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_non_finite_writes_are_refused_and_the_old_value_kept(field, bad):
    """NaN or ±inf raises StateValueError naming the field and the value; nothing changes."""
    s = _state()
    setattr(s, field, 0.5)
    before = s.to_dict()
    with pytest.raises(StateValueError, match=re.escape(f"state.{field} = {bad!r}")):
        setattr(s, field, bad)
    assert s.to_dict() == before


@pytest.mark.parametrize("bad", ["50", None, True, False, [1.0], 1j])
@pytest.mark.parametrize("field", FLOAT_FIELDS)
def test_non_numbers_are_refused(field, bad):
    """A str, None, a bool, a list or a complex is not a finite real number: refused."""
    s = _state()
    before = s.to_dict()
    with pytest.raises(StateValueError, match=re.escape(f"state.{field} = {bad!r}")):
        setattr(s, field, bad)
    assert s.to_dict() == before


@pytest.mark.parametrize("field", TIMES)
def test_negative_times_are_refused_not_clamped(field):
    """A negative age or subjective time would hide a bug, so it is refused."""
    s = _state()
    setattr(s, field, 3.0)
    with pytest.raises(StateValueError, match=rf"state\.{field} = -1\.0 refused: negative"):
        setattr(s, field, -1.0)
    assert getattr(s, field) == 3.0
    setattr(s, field, 0.0)
    assert getattr(s, field) == 0.0


@pytest.mark.parametrize("bad", [-1, 1.5, 2.0, "3", True, None, math.nan])
def test_ticks_must_be_a_non_negative_int(bad):
    """ticks takes an int ≥ 0; floats, bools, strings and negatives are refused."""
    s = _state()
    s.ticks = 7
    with pytest.raises(StateValueError, match=re.escape(f"state.ticks = {bad!r}")):
        s.ticks = bad
    assert s.ticks == 7


def test_state_value_error_is_a_value_error():
    """StateValueError is a LifelabError and a ValueError, so ``except ValueError`` catches it."""
    assert issubclass(StateValueError, LifelabError)
    assert issubclass(StateValueError, ValueError)


@given(st.sampled_from(sorted(CLAMPED)), st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_written_reads_back_clamped_or_is_refused(field, value):
    """Any float written to a clamped field reads back clamped; a non-finite one raises."""
    s = _state()
    before = getattr(s, field)
    if math.isfinite(value):
        setattr(s, field, value)
        assert getattr(s, field) == min(max(value, 0.0), CLAMPED[field])
    else:
        with pytest.raises(StateValueError, match=field):
            setattr(s, field, value)
        assert getattr(s, field) == before


@given(st.sampled_from(TIMES), st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_written_to_a_time_is_kept_or_refused(field, value):
    """A finite time ≥ 0 is stored as is; NaN, ±inf or a negative value raises."""
    s = _state()
    if math.isfinite(value) and value >= 0.0:
        setattr(s, field, value)
        assert getattr(s, field) == value
    else:
        with pytest.raises(StateValueError, match=field):
            setattr(s, field, value)
        assert getattr(s, field) == 0.0


def test_nan_written_to_a_living_organism_is_refused_at_the_assignment():
    """``life.state.energy = nan`` raises there, so NaN cannot spread into subjective time."""
    life = Life(LifeConfig(seed=1, engine="python"))
    with pytest.raises(StateValueError, match="energy"):
        life.state.energy = math.nan
    life.run(5)
    s = life.state
    assert s.energy == s.energy and 0.0 <= s.energy <= 100.0
    assert math.isfinite(s.subjective_time) and s.subjective_time > 0.0


def test_energy_over_the_top_is_clamped_and_stays_in_range_while_living():
    """``life.state.energy = 150`` reads back 100.0 and the vitals stay in range over a run."""
    life = Life(LifeConfig(seed=1, engine="python"))
    life.state.energy = 150
    assert life.state.energy == 100.0
    life.run(5)
    s = life.state
    assert 0.0 <= s.energy <= 100.0
    assert 0.0 <= s.stability <= 1.0
    assert 0.0 <= s.integrity <= 1.0
    assert math.isfinite(s.subjective_time)


def test_apply_delta_still_clamps_after_direct_writes():
    """Direct writes and deltas share one range: a delta from a clamped write stays clamped."""
    s = _state()
    s.energy, s.stability, s.integrity = 150.0, -1.0, 0.5
    s.apply_delta(10.0, 0.25, 1.0)
    assert (s.energy, s.stability, s.integrity) == (100.0, 0.25, 1.0)


# -- snapshots: the to_dict/load format does not move ---------------------------------------


def test_to_dict_keys_and_scalar_types_are_unchanged():
    """to_dict keeps its keys, their order and the scalar types snapshots depend on."""
    d = _state().to_dict()
    assert list(d) == [
        "life_id",
        "birth_time",
        "ticks",
        "age",
        "subjective_time",
        "energy",
        "integrity",
        "stability",
        "last_event_intensity",
        "recent_events",
        "sensitivity",
        "threshold",
        "response_coef",
        "behavior_sensitivity",
        "behavior_threshold",
        "behavior_response_coef",
        "adaptation_history",
    ]
    assert type(d["ticks"]) is int
    assert all(type(d[name]) is float for name in FLOAT_FIELDS)


@given(
    st.integers(0, 2**40),
    st.floats(0.0, 1e12),
    st.floats(0.0, 1e12),
    st.floats(0.0, 100.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_load_round_trips_any_valid_state(ticks, age, subjective, energy, integ, stab, smooth):
    """load(to_dict()) restores any in-range scalars exactly."""
    s = _state()
    s.ticks, s.age, s.subjective_time = ticks, age, subjective
    s.energy, s.integrity, s.stability, s.last_event_intensity = energy, integ, stab, smooth
    t = _state()
    t.load(s.to_dict())
    assert t.to_dict() == s.to_dict()


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("energy", math.nan),
        ("integrity", math.inf),
        ("stability", -math.inf),
        ("last_event_intensity", math.nan),
        ("age", math.inf),
        ("age", -1.0),
        ("subjective_time", math.nan),
        ("ticks", -1),
        ("ticks", 1.5),
    ],
)
def test_load_refuses_bad_scalars_and_changes_nothing(field, bad):
    """A snapshot carrying NaN, ±inf, a negative time or a bad tick count is refused whole."""
    s = _state()
    s.apply_delta(-10.0, -0.1, -0.1)
    before = s.to_dict()
    data = _state().to_dict()
    data["life_id"] = "other"
    data[field] = bad
    with pytest.raises(StateValueError, match=re.escape(f"state.{field} = {bad!r}")):
        s.load(data)
    assert s.to_dict() == before


@pytest.mark.parametrize("name", ["sensitivity", "behavior_threshold"])
def test_load_refuses_non_finite_learned_values(name):
    """Learned parameters in a snapshot must be finite too: the state never holds NaN."""
    s = _state()
    data = s.to_dict()
    data[name][1] = math.nan
    with pytest.raises(StateValueError, match=re.escape(f"state.{name}[1] = nan")):
        s.load(data)
    assert s.to_dict() == _state().to_dict()


def test_load_clamps_out_of_range_vitals_like_any_write():
    """A vital past its range in the input is clamped on load, as on any other write."""
    s = _state()
    data = s.to_dict()
    data["energy"], data["integrity"] = 150.0, -0.5
    s.load(data)
    assert (s.energy, s.integrity) == (100.0, 0.0)
