"""Life: the tick loop's invariants (DESIGN.md §2), input handling, failures and threading."""

import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.config import LifeConfig
from lifelab.exceptions import EventError, EventTypeError, LifeStateError
from lifelab.life import events
from lifelab.life.environment import Environment
from lifelab.life.events import ECHO, Event, TypeTable, register_event_type
from lifelab.life.loop import Life

TABLE = TypeTable(extra=())
SHOCK = TABLE.index("shock")
NOISE = TABLE.index("noise")
RECOVERY = TABLE.index("recovery")
FLOAT_COLUMNS = (
    "significance",
    "weight",
    "timestamp",
    "subjective_timestamp",
    "feedback_energy",
    "feedback_stability",
    "feedback_integrity",
)
SUMMARY_KEYS = {
    "run_dir",
    "ticks",
    "digest",
    "energy",
    "integrity",
    "stability",
    "memory_active",
    "archive_size",
    "entries_written",
    "events_processed",
    "events_rejected",
}


def _quiet(**overrides):
    """A config with no world events and no echoes: only what a test pushes happens."""
    return LifeConfig(events_per_tick=0.0, echo_probability=0.0, **overrides)


configs = st.builds(
    LifeConfig,
    seed=st.integers(min_value=0, max_value=2**32),
    events_per_tick=st.sampled_from([0.0, 0.5, 1.0, 3.0, 24.0]),
    events_mode=st.sampled_from(["fixed", "poisson"]),
    batch_size=st.sampled_from([1, 4, 16, 64]),
    vector_min_batch=st.sampled_from([1, 4, 16]),
    memory_capacity=st.sampled_from([1, 7, 50, 10_000]),
    min_weight=st.sampled_from([0.0, 0.1, 0.5]),
    decay_every=st.sampled_from([1, 3, 10]),
    learn_every=st.sampled_from([5, 75]),
    adapt_every=st.sampled_from([7, 100]),
    echo_probability=st.sampled_from([0.0, 0.02, 0.5]),
    queue_capacity=st.sampled_from([8, 65_536]),
)
chunks = st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=4)


def _check_invariants(life):
    """DESIGN §2 invariants 1, 4 and 5 on a life between ticks."""
    s = life.state
    assert 0.0 <= s.energy <= 100.0
    assert 0.0 <= s.stability <= 1.0
    assert 0.0 <= s.integrity <= 1.0
    assert np.all(np.isfinite([s.energy, s.stability, s.integrity, s.age, s.subjective_time]))
    assert np.all(np.isfinite([s.last_event_intensity, *s.sensitivity, *s.threshold]))
    active = life.memory.columns()
    archived = life.archive.columns()
    assert len(active["id"]) == len(life.memory) <= life.config.memory_capacity
    assert len(archived["id"]) == len(life.archive)
    assert life.entries_written == len(life.memory) + len(life.archive)
    ids = np.concatenate([active["id"], archived["id"]])
    assert np.array_equal(np.sort(ids), np.arange(life.entries_written))  # no loss, no duplicate
    for name in FLOAT_COLUMNS:
        assert np.all(np.isfinite(active[name])), name
        assert np.all(np.isfinite(archived[name])), name
    assert np.all((active["weight"] >= 0.0) & (active["weight"] <= 1.0))


# -- invariants ------------------------------------------------------------------------------


@given(config=configs, sizes=chunks)
def test_invariants_hold_after_every_run_chunk(config, sizes):
    """Vitals in range and finite; memory within capacity; every entry active xor archived."""
    life = Life(config)
    for n in sizes:
        life.run(n)
        _check_invariants(life)
    assert life.state.ticks == sum(sizes)


@given(config=configs)
def test_memory_within_capacity_after_every_single_tick(config):
    """Active memory never exceeds memory_capacity after a tick (checked tick by tick)."""
    life = Life(config.replace(memory_capacity=min(config.memory_capacity, 7)))
    for _ in range(40):
        life.run(1)
        assert len(life.memory.columns()["id"]) <= life.config.memory_capacity


@given(config=configs, sizes=chunks)
def test_decay_never_raises_a_weight(config, sizes):
    """An entry's weight never grows between two observations of a life."""
    life = Life(config)
    before = {}
    for n in sizes:
        life.run(n)
        cols = life.memory.columns()
        now = dict(zip(cols["id"].tolist(), cols["weight"].tolist(), strict=True))
        assert all(now[i] <= w for i, w in before.items() if i in now)
        before = now


@given(config=configs, sizes=chunks)
def test_same_seed_and_config_give_the_same_digest(config, sizes):
    """Two lives with one seed and config have one digest after every chunk."""
    a, b = Life(config), Life(config)
    assert a.digest() == b.digest()
    for n in sizes:
        assert a.run(n) == b.run(n)
        assert a.digest() == b.digest()


@given(config=configs, k=st.integers(min_value=0, max_value=150))
def test_chunking_does_not_change_the_trajectory(config, k):
    """run(N) and run(k) + run(N − k) end in the same digest."""
    n = 150
    whole, split = Life(config), Life(config)
    whole.run(n)
    split.run(k)
    split.run(n - k)
    assert whole.digest() == split.digest()


@pytest.mark.parametrize("mode", ["fixed", "poisson"])
def test_vector_path_is_deterministic(mode):
    """Long batches (≥ vector_min_batch, numpy path) are reproducible too, in both modes."""
    config = LifeConfig(
        seed=5,
        events_per_tick=40.0,
        events_mode=mode,
        batch_size=64,
        vector_min_batch=8,
        memory_capacity=300,
    )
    a, b = Life(config), Life(config)
    for _ in range(3):
        a.run(100)
        b.run(100)
        assert a.digest() == b.digest()
    assert a.events_processed > 3 * 100 * 8


@given(seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2, unique=True))
def test_different_seeds_give_different_digests(seeds):
    """Two seeds give two digests, at birth and after running."""
    a, b = (Life(LifeConfig(seed=s)) for s in seeds)
    assert a.digest() != b.digest()
    a.run(30)
    b.run(30)
    assert a.digest() != b.digest()


def _all_rows(life):
    """Every entry ever written (active and archived) as sortable rows, ids left out."""
    active, archived = life.memory.columns(), life.archive.columns()
    cols = {name: np.concatenate([active[name], archived[name]]) for name in active}
    rows = zip(
        cols["tick"].tolist(),
        cols["kind"].tolist(),
        cols["event_type"].tolist(),
        cols["action"].tolist(),
        np.round(cols["significance"], 9).tolist(),
        strict=True,
    )
    return sorted(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scalar_and_vector_paths_give_the_same_life(seed):
    """The scalar and the numpy path of the Python engine give the same digest at every tick.

    One rule (behavior.py's docstring) states the floats to the last bit, so the paths agree
    exactly, not approximately; the compiled engine is held to the same digest elsewhere.
    """
    base = LifeConfig(
        seed=seed,
        events_per_tick=6.0,
        events_mode="poisson",
        memory_capacity=200,
        learn_every=25,
        adapt_every=30,
        engine="python",
    )
    scalar = Life(base.replace(vector_min_batch=1_000_000))
    vector = Life(base.replace(vector_min_batch=1))
    for _ in range(40):
        scalar.run(10)
        vector.run(10)
        assert scalar.digest() == vector.digest()
    assert _all_rows(scalar) == _all_rows(vector)


def test_digest_is_a_pure_reading():
    """digest() is a 32-hex-digit string that does not change the life; a tick changes it."""
    life = Life(LifeConfig(seed=3))
    first = life.digest()
    assert len(first) == 32 and int(first, 16) >= 0
    assert life.digest() == first
    life.run(1)
    assert life.digest() != first


# -- hand-computed ticks ----------------------------------------------------------------------


def test_first_tick_with_one_pushed_shock_hand_computed():
    """Shock I=0.5 on tick 1: I_s 0.15, rate 1.65, ctx 1.3, sig 0.585, dampened ×0.5."""
    life = Life(_quiet())
    life.push(Event("shock", 0.5))
    life.run(1)
    s = life.state
    assert s.last_event_intensity == pytest.approx(0.15)  # 0.3·0.5
    assert s.subjective_time == pytest.approx(1.65)  # 1 + 0.15 + 0 + 0.5
    sig = 0.5 * (1.5 * 0.6) * 1.3  # |I| · w·m · min(1.3, 1 + 0.5·0.65)
    factor = 0.5 * sig * 0.5  # |I| · sig · dampen coef
    assert s.energy == pytest.approx(100.0 - 1.5 * factor - 0.01 * 0.5)
    assert s.stability == pytest.approx(1.0 - 0.10 * factor)
    assert s.integrity == pytest.approx(1.0 - 0.05 * factor)
    cols = life.memory.columns()
    assert cols["event_type"].tolist() == [SHOCK]
    assert cols["action"].tolist() == [1]  # dampen
    assert cols["significance"][0] == pytest.approx(sig)
    assert cols["weight"][0] == 1.0
    assert cols["tick"][0] == 1 and cols["timestamp"][0] == 1.0


def test_quiet_life_subjective_time_runs_at_one_and_a_half():
    """No events, full vitals: rate 1 + 0 + 0 + 0.5 = 1.5 per simulated second."""
    life = Life(_quiet(dt=2.0))
    summary = life.run(10)
    assert summary["age_s"] == pytest.approx(20.0)
    assert summary["subjective_time_s"] == pytest.approx(30.0)
    assert summary["time_perception"] == "accelerated"


def test_smoothed_intensity_decays_on_quiet_ticks():
    """One event of |I| = 0.8, then two empty ticks: I_s = 0.24, 0.168, 0.1176."""
    life = Life(_quiet())
    life.push({"type": "noise", "intensity": -0.8})
    seen = []
    for _ in range(3):
        life.run(1)
        seen.append(life.state.last_event_intensity)
    assert seen == pytest.approx([0.24, 0.168, 0.1176])


def test_feedback_becomes_a_memory_within_the_window():
    """An acted-on event yields a feedback entry 3–10 ticks later carrying the vital deltas."""
    life = Life(_quiet(weak_energy=100.0))  # weakness keeps the vitals moving after the action
    life.push(Event("shock", -1.0))
    life.run(12)
    cols = life.memory.columns()
    feedback = np.flatnonzero(cols["kind"] == 1)
    assert len(feedback) == 1
    row = feedback[0]
    assert 1 + 3 <= cols["tick"][row] <= 1 + 10
    assert cols["event_type"][row] == SHOCK
    assert cols["feedback_energy"][row] < 0.0
    assert cols["feedback_stability"][row] < 0.0


# -- input --------------------------------------------------------------------------------------


def test_pushed_events_and_mappings_are_processed_in_order():
    """push() takes Events and mappings; a tick drains them first-in first-out."""
    life = Life(_quiet())
    life.push(Event("shock", 0.5))
    life.push({"type": "recovery", "intensity": 0.3})
    life.push({"type": "noise", "intensity": 0.0, "metadata": {"source": "test"}})
    assert life.queue_depth == 3
    summary = life.run(1)
    assert summary["events_processed"] == 3
    assert life.queue_depth == 0
    assert list(life.state.recent_events) == [SHOCK, RECOVERY, NOISE]
    assert set(life.memory.columns()["event_type"].tolist()) == {SHOCK, RECOVERY}


def test_batch_size_bounds_the_events_per_tick():
    """At most batch_size queued events are drained per tick; the rest wait their turn."""
    life = Life(_quiet(batch_size=4))
    for _ in range(10):
        life.push(Event("noise", 0.2))
    life.run(1)
    assert (life.events_processed, life.queue_depth) == (4, 6)
    life.run(2)
    assert (life.events_processed, life.queue_depth) == (10, 0)


def test_a_full_queue_drops_and_counts():
    """Pushes beyond queue_capacity are dropped and counted; the rest are processed."""
    life = Life(_quiet(queue_capacity=3))
    for _ in range(5):
        life.push(Event("shock", 0.5))
    summary = life.run(1)
    assert summary["events_dropped"] == 2
    assert summary["events_processed"] == 3
    assert summary["events_rejected"] == 0


@given(
    rate=st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.0, 12.0]),
    batch=st.sampled_from([1, 2, 5, 64]),
    queue=st.sampled_from([1, 4, 100]),
    pushes=st.integers(min_value=0, max_value=20),
    ticks=st.integers(min_value=1, max_value=60),
    vector=st.sampled_from([1, 16]),
)
def test_every_event_is_processed_queued_or_dropped(rate, batch, queue, pushes, ticks, vector):
    """processed + still queued + dropped = world events + pushed events (no echoes)."""
    life = Life(
        LifeConfig(
            events_per_tick=rate,
            batch_size=batch,
            queue_capacity=queue,
            echo_probability=0.0,
            vector_min_batch=vector,
        )
    )
    for _ in range(pushes):
        life.push({"type": "noise", "intensity": 0.1})
    life.run(ticks)
    world = int(rate * ticks)  # fixed mode carries the rate exactly for these rates
    assert life.events_processed + life.queue_depth + life.events_dropped == world + pushes


BAD_PUSHES = [
    ({"type": "shock", "intensity": float("nan")}, EventError),
    ({"type": "shock", "intensity": float("inf")}, EventError),
    ({"type": "shock", "intensity": 1.5}, EventError),
    ({"type": "shock", "intensity": -1.01}, EventError),
    ({"type": "shock", "intensity": True}, EventTypeError),
    ({"type": "earthquake", "intensity": 0.1}, EventError),
    ({"type": "shock", "intensity": 0.1, "colour": "red"}, EventError),
    ({"type": "shock"}, EventError),
    ({"type": "shock", "intensity": 0.1, "metadata": {"blob": "x" * 5000}}, EventError),
    ({"type": "shock", "intensity": 0.1, "metadata": {"bad": {1, 2}}}, EventError),
    ({"type": "memory_echo", "intensity": 0.1}, EventError),
    (Event("memory_echo", 0.1), EventError),
    ("shock", EventTypeError),
    (42, EventTypeError),
    (None, EventTypeError),
]


@pytest.mark.parametrize(("bad", "error"), BAD_PUSHES)
def test_bad_pushes_are_refused_counted_and_the_life_goes_on(bad, error):
    """Every refusal raises a clear error, counts once, queues nothing; ticks still run."""
    life = Life(_quiet())
    with pytest.raises(error):
        life.push(bad)
    assert life.events_rejected == 1
    assert life.queue_depth == 0
    life.push(Event("shock", 0.5))
    summary = life.run(5)
    assert summary["ticks"] == 5
    assert summary["events_rejected"] == 1
    assert summary["events_processed"] == 1


def test_internal_echo_refusal_names_the_type():
    """Pushing memory_echo is refused because it is internal."""
    life = Life(_quiet())
    with pytest.raises(EventError, match=r"memory_echo.*internal"):
        life.push({"type": "memory_echo", "intensity": 0.0})


def test_types_registered_after_birth_are_refused(monkeypatch):
    """A life knows only the types registered before it was born."""
    monkeypatch.setattr(events, "_registered", {})
    old = Life(_quiet())
    register_event_type("earthquake", energy=-1.0)
    young = Life(_quiet())
    with pytest.raises(EventError, match="earthquake"):
        old.push(Event("earthquake", -0.5))
    assert old.events_rejected == 1
    young.push(Event("earthquake", -0.5))
    young.run(1)
    assert young.events_processed == 1


def test_life_refuses_a_non_config():
    """Life(config) needs a LifeConfig."""
    with pytest.raises(TypeError, match="LifeConfig"):
        Life({"seed": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("ticks", [-1, 1.5, True, "3"])
def test_run_refuses_bad_tick_counts(ticks):
    """run() needs a non-negative int."""
    with pytest.raises(ValueError, match="ticks"):
        Life(_quiet()).run(ticks)


def test_summary_has_the_contract_keys():
    """run() returns the DESIGN §5 summary keys, consistent with the life."""
    life = Life(LifeConfig(seed=4, memory_capacity=20))
    summary = life.run(50)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["ticks"] == 50
    assert summary["digest"] == life.digest()
    assert summary["memory_active"] + summary["archive_size"] == summary["entries_written"]


def test_plan_predicts_what_followed_the_latest_pattern():
    """plan() names the type that followed the last few types in recent events."""
    life = Life(_quiet())
    names = ["shock", "noise", "recovery", "decay", "idle", "shock", "noise", "recovery", "decay"]
    for name in names:
        life.push(Event(name, 0.0))
    life.run(1)
    assert life.plan() == {"idle": 1}


# -- memory echoes ------------------------------------------------------------------------------


class FixedUniform:
    """Stands in for the life's uniform stream: always the same value."""

    def __init__(self, value):
        self.value = value

    def next(self):
        return self.value

    def take(self, k):
        return np.full(k, self.value)

    def get_state(self):
        return {"value": self.value}


def test_echo_every_tick_at_probability_one():
    """p = 1: an echo is rolled every tick and processed on the next one."""
    life = Life(LifeConfig(events_per_tick=0.0, echo_probability=1.0))
    life.run(20)
    assert life.echoes == 20
    assert life.events_processed == 19
    assert ECHO in life.state.recent_events


def test_no_echo_at_probability_zero():
    """p = 0: no echo ever."""
    life = Life(_quiet())
    life.run(200)
    assert life.echoes == 0 and life.events_processed == 0


def test_echo_probability_doubles_after_50_quiet_ticks():
    """With a roll of 0.03 and p = 0.02 the first echo comes on tick 51 (p doubled to 0.04)."""
    # the Python engine: this test swaps its uniform stream (the kernel reads the stream's blocks)
    life = Life(LifeConfig(events_per_tick=0.0, echo_probability=0.02, engine="python"))
    life._uniform = FixedUniform(0.03)
    life.run(50)
    assert life.echoes == 0
    life.run(1)
    assert life.echoes == 1
    life.run(1)  # back to p = 0.02 after an echo
    assert life.echoes == 1


@pytest.mark.parametrize(("capacity", "echoes"), [(10, 1), (100, 0)])
def test_echo_probability_rises_when_memory_is_over_80_percent_full(capacity, echoes):
    """Nine entries in a memory of ten (> 80 %) lift p = 0.02 to 0.03 > a roll of 0.025."""
    life = Life(
        LifeConfig(
            events_per_tick=0.0, echo_probability=0.02, memory_capacity=capacity, engine="python"
        )
    )
    life._uniform = FixedUniform(0.025)  # (the Python engine: see the test above)
    for _ in range(9):
        life.push(Event("shock", 1.0))
    life.run(1)
    assert len(life.memory) == 9
    assert life.echoes == echoes


# -- failing stages -----------------------------------------------------------------------------


def _fail_on(ticks_to_fail, life):
    original = life._maybe_echo

    def maybe_echo():
        if life.state.ticks in ticks_to_fail:
            raise RuntimeError(f"echo stage broke on tick {life.state.ticks}")
        original()

    return maybe_echo


def test_a_raising_stage_is_counted_and_costs_integrity():
    """Two failing ticks out of ten: ticks advance, 2 errors, integrity −2·0.01, run returns."""
    life = Life(_quiet(engine="python"))  # a patched stage: the Python engine's
    life._maybe_echo = _fail_on({3, 7}, life)
    summary = life.run(10)
    assert summary["ticks"] == 10
    assert summary["errors"] == 2
    assert life.errors["RuntimeError"] == 2
    assert "tick 7" in life.last_error
    assert life.state.integrity == pytest.approx(1.0 - 2 * 0.01)


def test_a_stage_raising_every_tick_does_not_stop_the_loop(monkeypatch):
    """The environment failing on every tick: all ticks run, each costs the configured penalty."""

    def broken(self):
        raise ValueError("the world is broken")

    monkeypatch.setattr(Environment, "count", broken)
    life = Life(LifeConfig(error_integrity_penalty=0.1, engine="python"))  # a patched stage
    summary = life.run(5)
    assert summary["ticks"] == 5
    assert life.errors["ValueError"] == 5
    assert life.state.integrity == pytest.approx(0.5)
    life.run(10)
    assert life.state.integrity == 0.0  # the penalty clamps at zero
    _check_invariants(life)


def test_memory_within_capacity_even_after_a_failing_tick():
    """Capacity holds after every tick, including ticks on which a stage raised."""
    life = Life(LifeConfig(events_per_tick=5.0, memory_capacity=3, echo_probability=0.0))
    life._maybe_echo = _fail_on(set(range(1, 1000)), life)
    life.run(10)
    assert len(life.memory) <= life.config.memory_capacity


# -- living in the background -------------------------------------------------------------------


def _wait_until(predicate, timeout=10.0):
    """Poll a condition; the timeout only guards against a hang and is not a timing check."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached before the guard timeout")
        time.sleep(0.002)


def test_start_stop_in_realtime_with_a_push_from_another_thread():
    """A started life ticks in the background, processes a cross-thread push, stops cleanly."""
    life = Life(_quiet(clock="realtime", tick_interval=0.002))
    life.start()
    try:
        assert life.running
        with pytest.raises(LifeStateError, match="already running"):
            life.run(1)
        with pytest.raises(LifeStateError):
            life.start()
        pusher = threading.Thread(target=life.push, args=({"type": "shock", "intensity": 0.5},))
        pusher.start()
        pusher.join()
        _wait_until(lambda: life.events_processed >= 1)
    finally:
        summary = life.stop()
    assert not life.running
    assert summary["ticks"] >= 1
    assert summary["events_processed"] == 1
    assert "lateness_p50_ms" in summary
    assert SHOCK in life.memory.columns()["event_type"].tolist()


def test_start_stop_in_simulated_mode_then_run_again():
    """A simulated life lives in the background until stop(); afterwards run() works again."""
    life = Life(LifeConfig(seed=2, memory_capacity=100))
    life.start()
    try:
        _wait_until(lambda: life.state.ticks > 0)
    finally:
        summary = life.stop()
    assert summary["ticks"] > 0
    _check_invariants(life)
    before = life.state.ticks
    life.run(5)
    assert life.state.ticks == before + 5


def test_stop_does_not_run_a_tick_ahead_of_its_deadline():
    """Stopping while the clock waits for tick 2 (due 0.5 s after start) ends after tick 1."""
    life = Life(_quiet(clock="realtime", tick_interval=0.5))
    life.start()
    try:
        _wait_until(lambda: life.state.ticks >= 1)
        time.sleep(0.05)  # let tick 1 finish so the thread is waiting for tick 2's deadline
    finally:
        summary = life.stop()
    assert summary["ticks"] == 1
    assert summary["lateness_p50_ms"] >= 0.0


def test_stop_without_start_is_refused():
    """stop() on a life that was never started (or already stopped) raises LifeStateError."""
    life = Life(_quiet(clock="realtime", tick_interval=0.002))
    with pytest.raises(LifeStateError, match="without start"):
        life.stop()
    life.start()
    life.stop()
    with pytest.raises(LifeStateError):
        life.stop()


def test_life_state_error_is_a_runtime_error():
    """LifeStateError can be caught as RuntimeError."""
    assert issubclass(LifeStateError, RuntimeError)


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_step_lives_one_tick_as_run_does(engine):
    """step() ten times is run(10): the same digest (events, echoes, memory), either engine."""
    config = LifeConfig(seed=5, events_per_tick=4.0, engine=engine)
    a, b = Life(config), Life(config)
    a.run(10)
    for _ in range(10):
        b.step()
    assert b.state.ticks == 10
    assert a.digest() == b.digest()


def test_step_handles_a_failing_stage_as_run_does():
    """A stage raising inside step() is counted and costs integrity; step() does not raise."""
    life = Life(_quiet(engine="python"))  # a patched stage: the Python engine's
    life._maybe_echo = _fail_on({2}, life)
    for _ in range(4):
        life.step()
    assert life.state.ticks == 4 and life.errors["RuntimeError"] == 1
    assert life.state.integrity == pytest.approx(1.0 - 0.01)


def test_step_is_refused_while_the_organism_lives_in_a_thread():
    life = Life(_quiet(clock="realtime", tick_interval=0.01))
    life.start()
    try:
        with pytest.raises(LifeStateError, match="already running"):
            life.step()
    finally:
        life.stop()
