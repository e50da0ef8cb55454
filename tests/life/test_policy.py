"""The weakness policy (DESIGN §1.8): per-vital thresholds, penalty per second, no death."""

import pytest

from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.life.policy import is_weak, weak_vitals, weakness_penalty
from lifelab.life.state import SelfState


def _state(energy=100.0, stability=1.0, integrity=1.0):
    s = SelfState(life_id="x", birth_time=0.0, n_types=1, recent_size=4)
    s.energy, s.stability, s.integrity = energy, stability, integrity
    return s


@pytest.mark.parametrize(
    ("vitals", "weak"),
    [
        ((100.0, 1.0, 1.0), False),
        ((5.0, 1.0, 1.0), True),  # energy at its own threshold (5 of 100)
        ((5.01, 1.0, 1.0), False),
        ((1.0, 1.0, 1.0), True),  # fix: 1 % energy is weak, not only ≤ 0.05
        ((50.0, 0.05, 1.0), True),
        ((50.0, 0.06, 1.0), False),
        ((50.0, 1.0, 0.05), True),
        ((50.0, 0.06, 0.06), False),
    ],
)
def test_weak_when_any_vital_is_at_or_below_its_threshold(vitals, weak):
    """Default thresholds: energy 5, stability 0.05, integrity 0.05, each inclusive."""
    assert is_weak(_state(*vitals), LifeConfig()) is weak


@pytest.mark.parametrize(
    ("vitals", "names"),
    [
        ((100.0, 1.0, 1.0), []),
        ((5.0, 1.0, 1.0), ["energy"]),
        ((50.0, 0.05, 0.05), ["stability", "integrity"]),
        ((0.0, 0.0, 0.0), ["energy", "stability", "integrity"]),
        ((5.01, 0.06, 0.06), []),
    ],
)
def test_weak_vitals_names_what_is_weak_by_the_same_rule(vitals, names):
    """weak_vitals names the vitals at or below their thresholds; non-empty exactly when weak."""
    cfg = LifeConfig()
    assert weak_vitals(*vitals, cfg) == names
    assert bool(weak_vitals(*vitals, cfg)) is is_weak(_state(*vitals), cfg)


def test_thresholds_are_configurable_per_vital():
    """Raising one vital's threshold only makes that vital count."""
    cfg = LifeConfig(weak_stability=0.5)
    assert is_weak(_state(stability=0.5), cfg)
    assert not is_weak(_state(energy=6.0, integrity=0.06, stability=0.51), cfg)


@pytest.mark.parametrize("dt", [1.0, 2.0, 0.25])
def test_penalty_is_per_second(dt):
    """The penalty is −(0.02, 0.04, 0.04)·dt by default."""
    assert weakness_penalty(LifeConfig(), dt) == pytest.approx((-0.02 * dt, -0.04 * dt, -0.04 * dt))


def _quiet(**overrides):
    """A life with no world events and no echoes: only the policy moves its vitals."""
    return LifeConfig(events_per_tick=0.0, echo_probability=0.0, **overrides)


def test_a_weak_life_takes_the_penalty_each_tick():
    """Always weak (weak_energy 100), 10 ticks of dt 1: energy −0.2, the others −0.4."""
    life = Life(_quiet(weak_energy=100.0))
    life.run(10)
    assert life.state.energy == pytest.approx(100.0 - 0.02 * 10)
    assert life.state.stability == pytest.approx(1.0 - 0.04 * 10)
    assert life.state.integrity == pytest.approx(1.0 - 0.04 * 10)


def test_a_healthy_quiet_life_keeps_its_vitals():
    """Without events or weakness nothing changes the vitals."""
    life = Life(_quiet())
    life.run(10)
    assert life.state.vitals() == {"energy": 100.0, "integrity": 1.0, "stability": 1.0}


def test_no_death_by_default():
    """With every vital at 0 the life goes on living without a mortality rule."""
    life = Life(
        _quiet(
            weak_energy=100.0,
            weak_penalty_energy=100.0,
            weak_penalty_stability=1.0,
            weak_penalty_integrity=1.0,
        )
    )
    summary = life.run(10)
    assert summary["ticks"] == 10
    assert summary["alive"] and summary["weak"]
    assert (summary["energy"], summary["stability"], summary["integrity"]) == (0.0, 0.0, 0.0)


def test_optional_mortality_ends_the_run():
    """mortality_ticks=3 ends the run after three ticks with every vital at 0."""
    life = Life(
        _quiet(
            weak_energy=100.0,
            weak_penalty_energy=100.0,
            weak_penalty_stability=1.0,
            weak_penalty_integrity=1.0,
            mortality_ticks=3,
        )
    )
    summary = life.run(10)
    assert summary["ticks"] == 3
    assert not summary["alive"]
