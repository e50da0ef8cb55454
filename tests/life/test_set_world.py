"""Life.set_world: the world's rate and the batch size changed between ticks, on both engines."""

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab import Event, Life, LifeConfig
from lifelab.exceptions import ConfigError
from lifelab.life import compiled

ENGINES = [
    "python",
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(not compiled.numba_available(), reason="numba is not installed"),
    ),
]
needs_numba = pytest.mark.skipif(not compiled.numba_available(), reason="numba is not installed")

changes = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=59),
        st.one_of(st.none(), st.sampled_from([0.0, 0.3, 1.0, 2.5, 7.0, 40.0])),
        st.one_of(st.none(), st.sampled_from([1, 2, 16, 64])),
    ),
    max_size=6,
)


def _wait_for(predicate, timeout=30.0):
    """Poll ``predicate`` until it holds (a generous bound that only catches hangs)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


@needs_numba
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    vector=st.sampled_from([1, 16]),
    plan=changes,
)
def test_engines_agree_when_the_world_changes(seed, vector, plan):
    """The same set_world() calls at the same ticks: the same digest after every tick."""
    config = LifeConfig(seed=seed, vector_min_batch=vector, queue_capacity=64)
    python = Life(config.replace(engine="python"))
    fast = Life(config.replace(engine="compiled"))
    for tick in range(60):
        for when, rate, batch in plan:
            if when == tick:
                python.set_world(events_per_tick=rate, batch_size=batch)
                fast.set_world(events_per_tick=rate, batch_size=batch)
        python.run(1)
        fast.run(1)
        assert python.digest() == fast.digest(), f"tick {tick + 1}"
    assert python.summary() == fast.summary()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_change_before_the_first_tick_equals_being_born_in_that_world(engine):
    """set_world() then run() has the digest of a Life configured that way from birth."""
    base = LifeConfig(seed=11, engine=engine)
    born = Life(base.replace(events_per_tick=4.5, batch_size=3)).run(200)["digest"]
    life = Life(base)
    life.set_world(events_per_tick=4.5, batch_size=3)
    assert life.run(200)["digest"] == born


@pytest.mark.parametrize("engine", ENGINES)
def test_the_new_rate_and_batch_size_take_effect_from_the_next_tick(engine):
    """Silence stops the world's events; a small batch makes the queue grow by the excess."""
    life = Life(LifeConfig(seed=1, events_per_tick=2.0, echo_probability=0.0, engine=engine))
    life.run(10)
    assert life.events_processed == 20
    returned = life.set_world(events_per_tick=0.0)
    assert returned.events_per_tick == 0.0
    assert life.config.events_per_tick == 2.0  # not before the next tick
    life.run(10)
    assert life.config.events_per_tick == 0.0
    assert life.events_processed == 20
    life.set_world(events_per_tick=5.0, batch_size=2)
    life.run(10)
    assert life.config.batch_size == 2
    assert life.events_processed == 40
    assert life.queue_depth == 30


@pytest.mark.parametrize("engine", ENGINES)
def test_changes_made_before_a_tick_merge(engine):
    """Two calls before the next tick: both fields change, the later value of each wins."""
    life = Life(LifeConfig(seed=2, engine=engine))
    life.set_world(events_per_tick=3.0)
    merged = life.set_world(batch_size=5)
    assert (merged.events_per_tick, merged.batch_size) == (3.0, 5)
    life.run(1)
    assert (life.config.events_per_tick, life.config.batch_size) == (3.0, 5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"batch_size": 0}, "batch_size"), ({"events_per_tick": -1.0}, "events_per_tick")],
)
def test_bad_values_are_refused_and_nothing_changes(kwargs, field):
    """An out-of-range value raises a ConfigError naming the field; the world stays as it was."""
    life = Life(LifeConfig(seed=3))
    before = life.run(5)["digest"]
    with pytest.raises(ConfigError, match=field):
        life.set_world(**kwargs)
    life.run(5)
    twin = Life(LifeConfig(seed=3))
    twin.run(10)
    assert life.config == twin.config
    assert life.digest() == twin.digest() != before


def test_a_poisson_world_refuses_a_new_rate_but_takes_a_batch_size():
    """Poisson counts come in blocks drawn at the birth rate: only the batch size may change."""
    life = Life(LifeConfig(seed=4, events_mode="poisson"))
    with pytest.raises(ConfigError, match="poisson"):
        life.set_world(events_per_tick=3.0)
    life.set_world(batch_size=7)
    life.run(1)
    assert life.config.batch_size == 7


@pytest.mark.parametrize("clock", ["simulated", "realtime"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_living_organism_takes_the_change_from_another_thread(engine, clock):
    """While start() lives in the background, set_world() reaches it at a tick boundary."""
    config = LifeConfig(
        seed=5, engine=engine, clock=clock, tick_interval=0.002, echo_probability=0.0
    )
    life = Life(config)
    life.start()
    try:
        assert _wait_for(lambda: life.state.ticks > 5)
        life.set_world(events_per_tick=0.0)
        assert _wait_for(lambda: life.config.events_per_tick == 0.0)
        processed = life.events_processed
        ticks = life.state.ticks
        assert _wait_for(lambda: life.state.ticks > ticks + 5)
        assert life.events_processed == processed
        life.push(Event("connection", 0.5))
        assert _wait_for(lambda: life.events_processed == processed + 1)
    finally:
        life.stop()
    assert life.config.events_per_tick == 0.0
