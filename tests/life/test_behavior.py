"""Decision, action, impact, learning, adaptation and planning (DESIGN.md §1.4, §1.6)."""

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lifelab.exceptions import SnapshotError
from lifelab.life.behavior import (
    ABSORB,
    AMPLIFY,
    DAMPEN,
    IGNORE,
    FeedbackBook,
    action_costs,
    adapt,
    choose_action,
    learn,
    potential_sequences,
    respond,
    respond_batch,
)
from lifelab.life.events import TypeTable
from lifelab.life.meaning import type_multipliers
from lifelab.life.state import SelfState

TABLE = TypeTable(extra=())
N_TYPES = len(TABLE)
SHOCK = TABLE.index("shock")
NOISE = TABLE.index("noise")
RECOVERY = TABLE.index("recovery")
HARMONY = TABLE.index("social_harmony")
BASE = (
    [r.energy for r in TABLE.rows],
    [r.stability for r in TABLE.rows],
    [r.integrity for r in TABLE.rows],
)
BASE_ARR = np.array(BASE).T.copy()
# Default sensitivity 0.2 everywhere: m = 0.6, so each multiplier is 0.6·w_type.
DEFAULT_MULT = type_multipliers(
    [r.meaning_weight for r in TABLE.rows], [0.2] * N_TYPES, [0.2] * N_TYPES
)
DEFAULT_THR = [0.1] * N_TYPES
COEF = {"dampen": 0.5, "absorb": 1.0, "ignore": 0.0}


def _respond(types, intensities, *, stability, ctx=1.0, coef=COEF, efficiency=1.0):
    kept = []
    delta = respond(
        types,
        intensities,
        DEFAULT_MULT,
        DEFAULT_THR,
        BASE,
        ctx,
        stability,
        coef,
        efficiency,
        kept,
    )
    return delta, kept


def _state(n_types=4):
    return SelfState(life_id="x", birth_time=0.0, n_types=n_types, recent_size=8)


# -- decision and cost --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sig", "threshold", "stability", "intensity", "action"),
    [
        (0.05, 0.1, 1.0, 0.5, IGNORE),  # below threshold
        (0.1, 0.1, 1.0, 0.5, DAMPEN),  # at threshold is not ignored
        (0.5, 0.1, 0.81, -0.5, DAMPEN),  # stability > 0.8
        (0.5, 0.1, 0.8, 0.5, ABSORB),  # the 0.8 bound is strict
        (0.5, 0.1, 0.29, 0.5, AMPLIFY),  # unstable and positive
        (0.5, 0.1, 0.29, -0.5, ABSORB),  # negative events are never amplified
        (0.5, 0.1, 0.29, 0.0, ABSORB),  # nor are zero-intensity ones
        (0.5, 0.1, 0.3, 0.5, ABSORB),  # the 0.3 bound is strict
        (0.5, 0.1, 0.5, 0.5, ABSORB),
        (0.05, 0.1, 0.1, 0.9, IGNORE),  # ignoring comes before amplifying
    ],
)
def test_choose_action_rule(sig, threshold, stability, intensity, action):
    """ignore < threshold; dampen if S > 0.8; amplify if S < 0.3 and I > 0; else absorb."""
    assert choose_action(sig, threshold, stability, intensity) == action


@pytest.mark.parametrize(
    ("action", "coef", "expected"),
    [
        (DAMPEN, {"dampen": 0.5, "absorb": 1.0}, 0.005),  # 0.01·(1 − 0.5)
        (DAMPEN, {"dampen": 1.0, "absorb": 1.0}, 0.0),
        (DAMPEN, {"dampen": 0.0, "absorb": 1.0}, 0.01),
        (ABSORB, {"dampen": 0.5, "absorb": 1.0}, 0.0),  # coef ≥ 0.8 costs nothing
        (ABSORB, {"dampen": 0.5, "absorb": 0.8}, 0.0),
        (ABSORB, {"dampen": 0.5, "absorb": 0.5}, 0.0025),  # 0.005·(1 − 0.5)
        (ABSORB, {"dampen": 0.5, "absorb": 0.0}, 0.005),
        (AMPLIFY, {"dampen": 0.0, "absorb": 0.0}, 0.0),
        (IGNORE, {"dampen": 0.0, "absorb": 0.0}, 0.0),
    ],
)
def test_action_cost(action, coef, expected):
    """dampen costs 0.01·(1 − c); absorb with c < 0.8 costs 0.005·(1 − c); others nothing."""
    n_dampen, n_absorb = int(action == DAMPEN), int(action == ABSORB)
    cost = action_costs(n_dampen, n_absorb, coef["dampen"], coef["absorb"])
    assert cost == pytest.approx(expected)
    # a batch of three such actions costs three times as much
    assert action_costs(3 * n_dampen, 3 * n_absorb, coef["dampen"], coef["absorb"]) == (
        pytest.approx(3 * expected)
    )


# -- impacts through respond() ---------------------------------------------------------------------


def test_shock_dampened_when_stable():
    """Shock at I=0.5, m=0.6, ctx=1: sig 0.45; dampen 0.5 → impact factor 0.1125, cost 0.005."""
    (d_e, d_s, d_i, cost), kept = _respond([SHOCK], [0.5], stability=1.0)
    factor = 0.5 * 0.45 * 0.5  # |I| · sig · coef
    assert (d_e, d_s, d_i) == pytest.approx((-1.5 * factor, -0.10 * factor, -0.05 * factor))
    assert (d_e, d_s, d_i) == pytest.approx((-0.16875, -0.01125, -0.005625))
    assert cost == pytest.approx(0.005)
    assert kept == [(SHOCK, DAMPEN, pytest.approx(0.45))]


def test_shock_absorbed_at_medium_stability():
    """Absorb with coef 1.0 takes the full impact and costs nothing."""
    (d_e, d_s, d_i, cost), kept = _respond([SHOCK], [-0.5], stability=0.5)
    assert (d_e, d_s, d_i) == pytest.approx((-0.3375, -0.0225, -0.01125))
    assert cost == 0.0
    assert kept == [(SHOCK, ABSORB, pytest.approx(0.45))]


def test_absorb_with_low_coefficient_costs_energy():
    """Absorb coef 0.6: impact × 0.6 and cost 0.005·0.4."""
    coef = {"dampen": 0.5, "absorb": 0.6, "ignore": 0.0}
    (d_e, _, _, cost), _ = _respond([SHOCK], [0.5], stability=0.5, coef=coef)
    assert d_e == pytest.approx(-1.5 * 0.5 * 0.45 * 0.6)
    assert cost == pytest.approx(0.002)


def test_positive_shock_amplified_when_unstable():
    """At stability 0.2 a positive event's impact is ×1.5 (and amplifying is free)."""
    (d_e, d_s, _, cost), kept = _respond([SHOCK], [0.5], stability=0.2)
    assert d_e == pytest.approx(-1.5 * 0.5 * 0.45 * 1.5)
    assert d_s == pytest.approx(-0.10 * 0.5 * 0.45 * 1.5)
    assert cost == 0.0
    assert kept[0][1] == AMPLIFY


def test_recovery_energy_is_scaled_by_efficiency():
    """Recovery I=0.4, sig 0.24, efficiency 0.7: only the energy impact is scaled."""
    (d_e, d_s, d_i, _), _ = _respond([RECOVERY], [0.4], stability=0.5, efficiency=0.7)
    factor = 0.4 * 0.24  # |I| · sig, absorb coef 1
    assert d_e == pytest.approx(1.0 * factor * 0.7)
    assert (d_s, d_i) == pytest.approx((0.05 * factor, 0.02 * factor))


def test_efficiency_does_not_touch_other_types():
    """A non-recovery event ignores the recovery efficiency."""
    a, _ = _respond([HARMONY], [0.5], stability=0.5, efficiency=0.4)
    b, _ = _respond([HARMONY], [0.5], stability=0.5, efficiency=1.0)
    assert a == b


def test_events_below_threshold_are_ignored_entirely():
    """Noise at I=0.1: sig 0.03 < 0.1, so no impact, no cost and nothing kept."""
    delta, kept = _respond([NOISE], [0.1], stability=1.0)
    assert delta == (0.0, 0.0, 0.0, 0.0)
    assert kept == []


def test_context_raises_significance():
    """ctx 1.3 turns shock sig 0.45 into 0.585."""
    _, kept = _respond([SHOCK], [0.5], stability=1.0, ctx=1.3)
    assert kept[0][2] == pytest.approx(0.585)


def test_batch_impacts_add_up():
    """A batch's deltas are the sums of its events' deltas against one start state."""
    types, intensities = [SHOCK, RECOVERY, HARMONY], [-0.5, 0.4, 0.3]
    total, kept = _respond(types, intensities, stability=0.5, efficiency=0.8)
    parts = [
        _respond([t], [i], stability=0.5, efficiency=0.8)[0]
        for t, i in zip(types, intensities, strict=True)
    ]
    assert total == pytest.approx(tuple(map(sum, zip(*parts, strict=True))))
    assert [k[0] for k in kept] == types


# -- the numpy twin ----------------------------------------------------------------------------

REGIMES = {
    "dampen": st.floats(min_value=0.8, max_value=1.0, exclude_min=True),
    "absorb": st.floats(min_value=0.3, max_value=0.8),
    "amplify": st.floats(min_value=0.0, max_value=0.3, exclude_max=True),
}


@st.composite
def batches(draw, regime):
    n = draw(st.integers(min_value=0, max_value=48))
    return {
        "types": draw(hnp.arrays(np.int64, n, elements=st.integers(0, N_TYPES - 1))),
        "intensities": draw(
            hnp.arrays(np.float64, n, elements=st.floats(-1.0, 1.0) | st.sampled_from([0.0]))
        ),
        "multipliers": draw(hnp.arrays(np.float64, N_TYPES, elements=st.floats(0.0, 2.1))),
        "thresholds": draw(
            hnp.arrays(np.float64, N_TYPES, elements=st.floats(0.0, 1.0) | st.just(0.0))
        ),
        "ctx": draw(st.floats(min_value=0.8, max_value=2.34)),
        "stability": draw(REGIMES[regime]),
        "coef": {
            "dampen": draw(st.floats(0.0, 1.0)),
            "absorb": draw(st.floats(0.0, 1.0)),
            "ignore": 0.0,
        },
        "efficiency": draw(st.floats(min_value=0.4, max_value=1.0)),
    }


def _check_paths_agree(b):
    kept = []
    d_e, d_s, d_i, cost = respond(
        b["types"].tolist(),
        b["intensities"].tolist(),
        b["multipliers"].tolist(),
        b["thresholds"].tolist(),
        BASE,
        b["ctx"],
        b["stability"],
        b["coef"],
        b["efficiency"],
        kept,
    )
    delta, cost_b, k_types, k_actions, k_sigs = respond_batch(
        b["types"],
        b["intensities"],
        b["multipliers"],
        b["thresholds"],
        BASE_ARR,
        b["ctx"],
        b["stability"],
        b["coef"],
        b["efficiency"],
    )
    assert np.allclose(delta, [d_e, d_s, d_i], rtol=1e-12, atol=1e-12)
    assert np.isclose(cost_b, cost, rtol=1e-12, atol=1e-15)
    assert k_types.tolist() == [k[0] for k in kept]
    assert k_actions.tolist() == [k[1] for k in kept]
    assert np.array_equal(k_sigs, [k[2] for k in kept])


@given(batches("dampen"))
def test_scalar_and_numpy_paths_agree_when_stable(b):
    """respond and respond_batch agree on deltas, cost, kept types and actions (S > 0.8)."""
    _check_paths_agree(b)


@given(batches("absorb"))
def test_scalar_and_numpy_paths_agree_at_medium_stability(b):
    """respond and respond_batch agree on deltas, cost, kept types and actions (0.3 ≤ S ≤ 0.8)."""
    _check_paths_agree(b)


@given(batches("amplify"))
def test_scalar_and_numpy_paths_agree_when_unstable(b):
    """respond and respond_batch agree on deltas, cost, kept types and actions (S < 0.3)."""
    _check_paths_agree(b)


def test_respond_batch_does_not_modify_the_base_table():
    """Scaling recovery by efficiency works on a copy of the caller's table."""
    base = BASE_ARR.copy()
    respond_batch(
        np.array([RECOVERY]),
        np.array([0.5]),
        np.array(DEFAULT_MULT),
        np.array(DEFAULT_THR),
        base,
        1.0,
        0.5,
        COEF,
        0.5,
    )
    assert np.array_equal(base, BASE_ARR)


# -- learning ----------------------------------------------------------------------------------


def test_learning_hand_computed():
    """Shares, mean significance and action frequencies nudge parameters by 0.01."""
    s = _state()
    counts = np.array([5, 1, 0, 4])  # shares 0.5, 0.1, 0, 0.4
    sig_sums = np.array([3.0, 0.1, 0.0, 1.2])  # means 0.6, 0.1, –, 0.3
    actions = np.array([0, 4, 5, 1])  # ignore 0, dampen 0.4, absorb 0.5, amplify 0.1
    learn(s, counts, sig_sums, actions)
    assert s.sensitivity == pytest.approx([0.21, 0.2, 0.2, 0.21])  # share 0.1 is neither side
    assert s.threshold == pytest.approx([0.09, 0.11, 0.1, 0.1])
    assert s.response_coef == pytest.approx({"dampen": 0.51, "absorb": 1.0, "ignore": 0.0})


def test_learning_lowers_sensitivity_of_rare_types():
    """A type with a share under 0.1 loses 0.01 sensitivity."""
    s = _state(2)
    learn(s, np.array([19, 1]), np.array([5.7, 0.3]), np.array([0, 0, 20, 0]))
    assert s.sensitivity == pytest.approx([0.21, 0.19])


def test_learning_clamps_to_the_unit_interval():
    """Parameters at 0 or 1 are not pushed past their ends."""
    s = _state(2)
    s.sensitivity = [1.0, 0.0]
    s.threshold = [0.0, 1.0]
    s.response_coef = {"dampen": 1.0, "absorb": 1.0, "ignore": 0.0}
    # type 0: share 0.95, mean 0.9; type 1: share 0.05, mean 0.1; dampen 0.95, absorb 0.05
    learn(s, np.array([19, 1]), np.array([17.1, 0.1]), np.array([0, 19, 1, 0]))
    assert s.sensitivity == [1.0, 0.0]
    assert s.threshold == [0.0, 1.0]
    assert s.response_coef["dampen"] == 1.0
    assert s.response_coef["absorb"] == pytest.approx(0.99)
    assert s.response_coef["ignore"] == 0.0


def test_learning_leaves_absent_types_and_empty_memory_alone():
    """Types with no entries keep their values; an empty memory teaches nothing."""
    s = _state(3)
    before = s.to_dict()
    learn(s, np.zeros(3, np.int64), np.zeros(3), np.zeros(4, np.int64))
    assert s.to_dict() == before
    learn(s, np.array([0, 10, 0]), np.array([0.0, 3.0, 0.0]), np.array([0, 0, 10, 0]))
    assert s.sensitivity[0] == s.sensitivity[2] == 0.2
    assert s.threshold[0] == s.threshold[2] == 0.1


@given(
    counts=hnp.arrays(np.int64, 5, elements=st.integers(0, 50)),
    means=hnp.arrays(np.float64, 5, elements=st.floats(0.0, 1.0)),
    actions=hnp.arrays(np.int64, 4, elements=st.integers(0, 50)),
    start=st.floats(0.0, 1.0),
)
def test_learning_moves_at_most_a_step_and_stays_in_range(counts, means, actions, start):
    """Every learned value moves by at most 0.01 and stays within [0, 1]."""
    s = _state(5)
    s.sensitivity = [start] * 5
    s.threshold = [start] * 5
    s.response_coef = {"dampen": start, "absorb": start, "ignore": start}
    learn(s, counts, counts * means, actions)
    values = [*s.sensitivity, *s.threshold, *s.response_coef.values()]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(abs(v - start) <= 0.01 + 1e-12 for v in values)


# -- adaptation --------------------------------------------------------------------------------


def test_adaptation_moves_toward_learned_values_by_at_most_001():
    """Each behaviour value moves by min(|diff|, 0.01) toward its learned value."""
    s = _state(3)
    s.ticks = 100
    s.sensitivity = [0.5, 0.205, 0.2]
    s.threshold = [0.0, 0.1, 0.3]
    s.response_coef["dampen"] = 0.45
    moved = adapt(s)
    assert s.behavior_sensitivity == pytest.approx([0.21, 0.205, 0.2])
    assert s.behavior_threshold == pytest.approx([0.09, 0.1, 0.11])
    assert s.behavior_response_coef == pytest.approx({"dampen": 0.49, "absorb": 1.0, "ignore": 0.0})
    assert moved == pytest.approx(0.01 + 0.005 + 0.01 + 0.01 + 0.01)
    assert list(s.adaptation_history) == [(100, pytest.approx(moved))]


def test_adaptation_converges_and_history_is_bounded():
    """Repeated adaptation reaches the learned values exactly; history keeps the last 50."""
    s = _state(2)
    s.sensitivity = [0.7, 0.0]
    for tick in range(60):
        s.ticks = tick
        adapt(s)
    assert s.behavior_sensitivity == s.sensitivity
    assert len(s.adaptation_history) == 50
    assert s.adaptation_history[0][0] == 10
    assert s.adaptation_history[-1] == (59, 0.0)


# -- planning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recent", "ratio", "expected"),
    [
        ([5, 1, 2, 7, 1, 2, 8, 5, 1, 2], 1.0, {7: 1, 8: 1}),  # k = 2, pattern [1, 2]
        ([5, 1, 2, 7, 1, 2, 8, 5, 1, 2], 0.5, {7: 1, 8: 1}),  # slowed also uses k = 2
        ([5, 1, 2, 7, 1, 2, 8, 5, 1, 2], 1.2, {7: 1}),  # accelerated: k = 3, pattern [5, 1, 2]
        ([5, 1, 2, 7, 1, 2, 8, 5, 1, 2], 1.6, {}),  # k = 4, pattern [8, 5, 1, 2] is new
        ([3, 4, 9, 9, 3, 4, 9, 9, 3, 4], 1.6, {9: 1}),  # k = 4, pattern [9, 9, 3, 4]
        ([1, 1, 1, 1], 1.0, {1: 2}),  # overlapping matches count
        ([1, 2], 1.0, {}),  # too short for any pattern
    ],
)
def test_potential_sequences(recent, ratio, expected):
    """Types that followed the last k types (k = 2; 3 from r ≥ 1.1; 4 from r ≥ 1.5)."""
    assert potential_sequences(recent, ratio) == Counter(expected)


def _book() -> FeedbackBook:
    book = FeedbackBook()
    book.add(12, (90.0, 0.5, 0.9, 3, DAMPEN, 0.25))
    grouped = (np.array([1, 2]), np.array([ABSORB, AMPLIFY], np.int8), np.array([0.5, 1.0]))
    book.add(9, (90.0, 0.5, 0.9, *grouped))
    return book


def test_feedback_book_from_snapshot_round_trips():
    """from_snapshot(to_list()) holds the same pending events, in the same order."""
    rows = _book().to_list()
    assert FeedbackBook.from_snapshot(rows, n_types=4).to_list() == rows
    assert len(FeedbackBook.from_snapshot(rows, n_types=4)) == 3


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1, 2], "feedback[] = [1, 2] is invalid"),
        ([9, 90.0, 0.5, 0.9, 4, DAMPEN, 0.25], "feedback[].type = 4 is invalid"),
        ([9, 90.0, 0.5, 0.9, 1, 7, 0.25], "feedback[].action = 7 is invalid"),
        ([9, 90.0, 0.5, 0.9, 1, DAMPEN, 1.5], "feedback[].significance = 1.5 is invalid"),
        ([-1, 90.0, 0.5, 0.9, 1, DAMPEN, 0.5], "feedback[].due = -1 is invalid"),
        ([9, 101.0, 0.5, 0.9, 1, DAMPEN, 0.5], "feedback[].vital = 101.0 is invalid"),
        ([9, 90.0, 0.5, 0.9, [1, 2], [DAMPEN], [0.5, 0.5]], "feedback[].arrays"),
    ],
)
def test_feedback_book_from_snapshot_refuses_impossible_rows(row, message):
    """A row no run can have registered raises SnapshotError naming the field."""
    with pytest.raises(SnapshotError, match=re.escape(message)):
        FeedbackBook.from_snapshot([*_book().to_list(), row], n_types=4)
    with pytest.raises(SnapshotError, match=re.escape("feedback = None is invalid")):
        FeedbackBook.from_snapshot(None, n_types=4)
