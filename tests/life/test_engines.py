"""The compiled and the Python engine agree tick by tick (DESIGN §2 invariant 9).

Differential tests: the same seed, config and pushed events give the same digest after every
tick in both engines, over random configs that reach every stage (long and empty batches, tiny
and large memories, every period, the weak regime, echoes, mortality, a full queue, registered
event types, refused deltas), and a snapshot of either engine resumes in the other.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab import Event, Life, LifeConfig
from lifelab.life import compiled, events
from lifelab.life.events import register_event_type

pytestmark = pytest.mark.skipif(
    not compiled.numba_available(), reason="numba is not installed (pip install numba)"
)

configs = st.builds(
    LifeConfig,
    seed=st.integers(min_value=0, max_value=2**32),
    events_per_tick=st.sampled_from([0.0, 0.3, 1.0, 3.0, 16.0, 64.0, 256.0]),
    events_mode=st.sampled_from(["fixed", "poisson"]),
    batch_size=st.sampled_from([1, 2, 16, 64, 256]),
    vector_min_batch=st.sampled_from([1, 4, 16]),
    memory_capacity=st.sampled_from([1, 7, 100, 1_000, 100_000]),
    min_weight=st.sampled_from([0.0, 0.1, 0.5]),
    decay_every=st.sampled_from([1, 3, 10]),
    learn_every=st.sampled_from([2, 5, 75]),
    adapt_every=st.sampled_from([3, 7, 100]),
    feedback_min_ticks=st.sampled_from([1, 3]),
    feedback_max_ticks=st.sampled_from([3, 10, 40]),
    echo_probability=st.sampled_from([0.0, 0.02, 0.5]),
    queue_capacity=st.sampled_from([4, 64, 65_536]),
    weak_energy=st.sampled_from([5.0, 99.0]),
    weak_stability=st.sampled_from([0.05, 0.9]),
    mortality_ticks=st.sampled_from([None, 1, 5]),
    metrics_every=st.sampled_from([0, 1, 32]),
    dt=st.sampled_from([1.0, 0.25, 3600.0]),
)
pushes = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=39),
        st.sampled_from(["shock", "noise", "recovery", "connection", "void", "idle"]),
        st.floats(min_value=-1.0, max_value=1.0),
    ),
    max_size=30,
)


def _pair(config):
    python = Life(config.replace(engine="python"))
    fast = Life(config.replace(engine="compiled"))
    assert (python.engine, fast.engine) == ("python", "compiled")
    return python, fast


def _same_life(python, fast):
    assert python.digest() == fast.digest()
    assert python.summary() == fast.summary()
    assert np.array_equal(python.archive.columns()["id"], fast.archive.columns()["id"])


@given(config=configs, pushed=pushes)
def test_engines_agree_at_every_tick(config, pushed):
    """Same seed, config and pushed events: the same digest after each of 40 ticks."""
    python, fast = _pair(config.replace(feedback_min_ticks=min(3, config.feedback_max_ticks)))
    for tick in range(40):
        for when, kind, intensity in pushed:
            if when == tick:
                python.push(Event(kind, intensity))
                fast.push(Event(kind, intensity))
        python.run(1)
        fast.run(1)
        assert python.digest() == fast.digest(), f"tick {tick + 1}"
    _same_life(python, fast)


@given(config=configs, sizes=st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_engines_agree_over_long_runs_in_any_chunks(config, sizes):
    """Runs of hundreds of ticks in uneven chunks (many kernel ticks per call) end equal."""
    python, fast = _pair(config.replace(feedback_min_ticks=1))
    for n in sizes:
        python.run(n)
        fast.run(n)
        assert python.digest() == fast.digest()
    _same_life(python, fast)


@pytest.mark.parametrize("events_per_tick", [1.0, 64.0])
def test_engines_agree_with_memory_held_at_capacity(events_per_tick):
    """Thousands of ticks at capacity: the victim list, hole filling and decay spills agree."""
    config = LifeConfig(
        seed=5,
        events_per_tick=events_per_tick,
        batch_size=64,
        memory_capacity=300,
        min_weight=0.0,  # nothing decays out: the capacity bound does all the spilling
    )
    python, fast = _pair(config)
    for _ in range(6):
        python.run(500)
        fast.run(500)
        assert python.digest() == fast.digest()
    assert len(fast.memory) == 300
    _same_life(python, fast)


def test_engines_agree_on_registered_types_and_refused_deltas(monkeypatch):
    """A registered type whose impact overflows: both engines refuse it the same way."""
    monkeypatch.setattr(events, "_registered", {})
    register_event_type("meteor", meaning_weight=1.0, energy=-1e308, stability=1e308)
    register_event_type("breeze", energy=0.5, stability=0.01)
    python, fast = _pair(LifeConfig(seed=2, events_per_tick=1.0, batch_size=8))
    for tick in range(30):
        for life in (python, fast):
            if tick % 7 == 3:  # two overflowing impacts in one tick sum to -inf: refused
                life.push({"type": "meteor", "intensity": 1.0})
                life.push({"type": "meteor", "intensity": -1.0})
            if tick % 5 == 1:
                life.push({"type": "breeze", "intensity": 0.7})
            life.run(1)
        assert python.digest() == fast.digest()
    assert fast.errors == python.errors
    assert sum(fast.errors.values()) > 0
    assert fast.last_error == python.last_error
    _same_life(python, fast)


@pytest.mark.parametrize(("first", "second"), [("python", "compiled"), ("compiled", "python")])
def test_a_snapshot_of_either_engine_resumes_in_the_other(tmp_path, first, second):
    """Run, close, resume in the other engine: the same digest as one uninterrupted run."""
    config = LifeConfig(seed=9, events_per_tick=3.0, memory_capacity=200, snapshot_every=250)
    straight = Life(config.replace(engine="python"))
    straight.run(1_000)
    life = Life(config.replace(run_dir=str(tmp_path / "run"), engine=first))
    life.run(600)
    life.close()
    resumed = Life.resume(tmp_path / "run", engine=second)
    assert resumed.engine == second
    resumed.run(400)
    assert resumed.digest() == straight.digest()
    resumed.close()


def test_a_full_queue_drops_the_same_events():
    """World events beyond the queue's capacity are dropped and counted alike."""
    config = LifeConfig(seed=4, events_per_tick=40.0, batch_size=8, queue_capacity=50)
    python, fast = _pair(config)
    for _ in range(20):
        python.run(3)
        fast.run(3)
        assert python.digest() == fast.digest()
    assert fast.events_dropped == python.events_dropped > 0
    assert fast.queue_depth == python.queue_depth


def test_the_kernel_draws_numpy_streams():
    """The kernel's PCG64 step and type search equal numpy's random() and choice(p=...)."""
    from lifelab.life import kernel

    gen, twin = np.random.default_rng(7), np.random.default_rng(7)
    words = compiled._pcg_words(gen)
    out = np.empty(5000)
    kernel.pcg64_random(words, out)
    assert np.array_equal(out, twin.random(5000))
    assert gen.bit_generator.state == twin.bit_generator.state
    p = np.array([0.5, 0.0, 0.25, 0.125, 0.125, 0.0])
    cdf = p.cumsum()
    cdf /= cdf[-1]
    block = np.empty(kernel.BLOCK, np.int64)
    before = np.empty(4, np.uint64)
    kernel._refill_types(words, before, block, cdf, kernel.type_lut(cdf))
    assert np.array_equal(block, twin.choice(len(p), size=kernel.BLOCK, p=p))


def test_without_numba_the_python_engine_runs_with_one_warning(monkeypatch):
    """engine='compiled' falls back to the Python engine, warning once, when numba is missing."""
    import sys

    monkeypatch.setitem(sys.modules, "lifelab.life.kernel", None)  # import fails
    monkeypatch.setattr(compiled, "_warned", False)
    with pytest.warns(RuntimeWarning, match="needs numba"):
        life = Life(LifeConfig(seed=1, engine="compiled"))
    assert life.engine == "python"
    life.run(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Life(LifeConfig(seed=1, engine="compiled")).engine == "python"
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]  # warned once


def test_push_from_another_thread_reaches_the_compiled_engine():
    """Events pushed while the compiled engine lives in the background are all processed."""
    import time

    life = Life(LifeConfig(seed=3, events_per_tick=0.0, echo_probability=0.0))
    life.start()
    try:
        for _ in range(50):
            life.push(Event("shock", 0.9))
            time.sleep(0.001)
    finally:
        life.stop()
    life.run(10)  # whatever was still queued at stop() is taken now
    assert life.events_pushed == 50
    assert life.events_processed == 50
    assert life.queue_depth == 0


def test_the_kernel_decay_pass_equals_active_memory_decay():
    """decay_pass (what bench memory times) leaves the same weights and rows as decay()."""
    from lifelab.life.kernel import decay_pass
    from lifelab.memory.active import ActiveMemory

    spilled = []
    python, kernel = (ActiveMemory(5_000, spilled.append, min_weight=0.3) for _ in range(2))
    for mem in (python, kernel):
        sig = np.random.default_rng(1).random(4_000)
        mem.add_batch(np.arange(4_000) % 22, 0, 2, sig, 0.0, 0.0, 1)
    total = 0
    for now in (100.0, 5_000.0, 40_000.0):
        gone = python.decay(now)
        assert decay_pass(kernel, now)[0] == gone
        total += gone
        assert len(python) == len(kernel)
        for name, col in python.columns().items():
            assert np.array_equal(col, kernel.columns()[name]), name
    assert 0 < total < 4_000  # some rows spilled (holes filled), some stayed


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_a_queue_longer_than_a_lowered_capacity_resumes(tmp_path, engine):
    """Resumed with queue_capacity below the snapshot's queue: every queued event is kept and
    drained (the compiled engine's ring used to overflow), the same life in both engines."""
    config = LifeConfig(seed=2, events_per_tick=0.0, queue_capacity=100, batch_size=4)
    for name in ("run", "reference"):
        life = Life(config.replace(run_dir=str(tmp_path / name), engine=engine))
        for _ in range(80):
            life.push(Event("shock", 0.5))
        life.close()
    resumed = Life.resume(tmp_path / "run", queue_capacity=10, engine=engine)
    reference = Life.resume(tmp_path / "reference", queue_capacity=10, engine="python")
    assert resumed.queue_depth == reference.queue_depth == 80
    for _ in range(25):
        resumed.run(1)
        reference.run(1)
        assert resumed.digest() == reference.digest()
    assert resumed.queue_depth == 0
    assert resumed.events_processed == 80
    resumed.close()
    reference.close()


def test_engines_agree_across_poisson_count_blocks_in_one_run():
    """One run() longer than a block of Poisson counts (4 096 ticks): the refill the kernel asks
    for continues the stream where the kernel left it (it used to rewind to a stale position)."""
    config = LifeConfig(seed=8, events_per_tick=1.0, events_mode="poisson", memory_capacity=500)
    python, fast = _pair(config)
    python.run(9_000)
    fast.run(9_000)
    _same_life(python, fast)
