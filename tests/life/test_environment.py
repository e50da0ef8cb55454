"""The built-in environment: normalised draw weights, intensity ranges, event counts."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.exceptions import SnapshotError
from lifelab.life.environment import Environment
from lifelab.life.events import ECHO, TypeTable
from lifelab.life.rng import streams_for_seed


def _env(rate=1.0, mode="fixed", seed=0):
    return Environment(TypeTable(extra=()), rate, mode, streams_for_seed(seed, 3))


def test_draws_respect_each_types_intensity_range():
    """Every drawn intensity lies in its type's range; memory_echo is never drawn."""
    table = TypeTable(extra=())
    types, intensities = _env(seed=1).draw(50_000)
    assert not np.any(types == ECHO)
    lo = np.array([r.lo for r in table.rows])[types]
    hi = np.array([r.hi for r in table.rows])[types]
    assert np.all(intensities >= lo) and np.all(intensities <= hi)
    assert np.all(intensities[types == table.index("idle")] == 0.0)


def test_draw_one_respects_ranges_too():
    """The one-event path draws from the same table."""
    table = TypeTable(extra=())
    env = _env(seed=2)
    for _ in range(2_000):
        t, intensity = env.draw_one()
        row = table.rows[t]
        assert not row.internal
        assert row.lo <= intensity <= row.hi


def test_draw_frequencies_follow_the_normalised_weights():
    """Type frequencies match draw_weight / sum(draw_weights) (the table sums to 1.005)."""
    table = TypeTable(extra=())
    weights = np.array([0.0 if r.internal else r.draw_weight for r in table.rows])
    expected = weights / weights.sum()
    types, _ = _env(seed=3).draw(100_000)
    observed = np.bincount(types, minlength=len(table)) / len(types)
    # ~6 binomial standard deviations for the most common type (noise, p ≈ 0.35)
    assert np.allclose(observed, expected, atol=0.009)
    assert observed[ECHO] == 0.0


def test_draw_one_and_draw_share_one_stream():
    """Drawing one at a time or k at once from the same seed yields the same events."""
    a, b = _env(seed=4), _env(seed=4)
    singles = [a.draw_one() for _ in range(100)]
    types, intensities = b.draw(100)
    assert [t for t, _ in singles] == types.tolist()
    assert np.allclose([i for _, i in singles], intensities)


@given(
    rate=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.75, 8.0]),
    ticks=st.integers(min_value=1, max_value=300),
)
def test_fixed_mode_carries_the_fractional_rate(rate, ticks):
    """In fixed mode the counts over n ticks add up to floor(n·rate), never more than ceil."""
    env = _env(rate=rate)
    counts = [env.count() for _ in range(ticks)]
    assert sum(counts) == int(ticks * rate)
    assert all(int(rate) <= c <= int(rate) + 1 for c in counts)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.7])
def test_fixed_mode_is_exact_for_decimal_rates(rate):
    """Ten ticks at a rate of k/10 per tick emit exactly k events."""
    env = _env(rate=rate)
    assert sum(env.count() for _ in range(10)) == round(10 * rate)


@pytest.mark.parametrize("rate", [0.5, 3.0, 20.0])
def test_poisson_mode_has_the_right_mean(rate):
    """Poisson counts average to the rate (within 6 standard errors over 4000 ticks)."""
    env = _env(rate=rate, mode="poisson", seed=5)
    counts = np.array([env.count() for _ in range(4_000)])
    assert abs(counts.mean() - rate) < 6 * np.sqrt(rate / len(counts))
    assert counts.min() >= 0


def test_environment_checks_the_state_it_restores():
    """check_state takes get_state(), and refuses a negative carry or a junk stream by name."""
    env = _env(rate=2.5, mode="poisson", seed=6)
    saved = env.get_state()
    Environment.check_state(saved)
    with pytest.raises(SnapshotError, match=re.escape("rng.environment.carry = -1 is invalid")):
        Environment.check_state({**saved, "carry": -1})
    with pytest.raises(SnapshotError, match=re.escape("rng.environment.counts = 3 is invalid")):
        Environment.check_state({**saved, "counts": 3})
    with pytest.raises(SnapshotError, match=re.escape("rng.environment = None is invalid")):
        Environment.check_state(None)


def test_environment_state_round_trips():
    """get_state/set_state resumes the same world."""
    env = _env(rate=2.5, mode="poisson", seed=6)
    for _ in range(10):
        env.draw(env.count())
    saved = env.get_state()
    expected = [(env.count(), env.draw(3)[1].tolist()) for _ in range(5)]
    env.set_state(saved)
    assert [(env.count(), env.draw(3)[1].tolist()) for _ in range(5)] == expected
