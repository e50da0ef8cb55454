"""A Hypothesis state machine drives Life through push, run, snapshot, resume and start-stop.

After every step the invariants of DESIGN.md §2 must hold on the organism under test, which lives
in a run directory. A reference organism without a run directory receives the same pushes and
lives the same number of ticks, and must have the same digest after every step: persistence,
snapshots, close + resume and background runs change nothing of the trajectory (invariants 2, 3).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lifelab.config import LifeConfig
from lifelab.exceptions import EventError, EventTypeError
from lifelab.life.events import TypeTable
from lifelab.life.loop import Life
from lifelab.store.snapshot import read_snapshot

PUSHABLE = [row.name for row in TypeTable().rows if not row.internal]

VALID_EVENTS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(PUSHABLE),
        "intensity": st.floats(-1.0, 1.0, allow_nan=False),
    },
    optional={"metadata": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)},
)
INVALID_EVENTS = st.sampled_from(
    [
        ({"type": "shock", "intensity": math.nan}, EventError),
        ({"type": "shock", "intensity": -math.inf}, EventError),
        ({"type": "shock", "intensity": 1.5}, EventError),
        ({"type": "shock", "intensity": "0.5"}, EventTypeError),
        ({"type": "shock", "intensity": True}, EventTypeError),
        ({"type": "earthquake", "intensity": 0.1}, EventError),
        ({"type": "memory_echo", "intensity": 0.1}, EventError),
        ({"type": "shock", "intensity": 0.1, "metadata": {"a": {1}}}, EventError),
        ({"type": "shock", "intensity": 0.1, "colour": "red"}, EventError),
        ({"type": "shock"}, EventError),
        (42, EventTypeError),
    ]
)


class LifeMachine(RuleBasedStateMachine):
    """The organism under test (``life``, with a run directory) and its reference (``ref``)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="lifelab-stateful-"))
        self.run_dir = self.tmp / "run"
        self.life: Life | None = None
        self.ref: Life | None = None
        self.pushed = 0
        self.rejected = 0
        self.last_ticks = 0

    @initialize(
        seed=st.integers(0, 2**32),
        rate=st.sampled_from([0.0, 1.0, 3.0]),
        poisson=st.booleans(),
        capacity=st.sampled_from([4, 16, 200]),
        batch=st.sampled_from([1, 4, 32]),
        queue=st.sampled_from([3, 1000]),
        snapshot_every=st.sampled_from([0, 7]),
        log_every=st.sampled_from([0, 5]),
    )
    def birth(self, seed, rate, poisson, capacity, batch, queue, snapshot_every, log_every):
        config = LifeConfig(
            seed=seed,
            events_per_tick=rate,
            events_mode="poisson" if poisson else "fixed",
            memory_capacity=capacity,
            batch_size=batch,
            queue_capacity=queue,
            snapshot_every=snapshot_every,
            log_every=log_every,
            decay_every=3,
            learn_every=5,
            adapt_every=7,
            feedback_min_ticks=1,
            feedback_max_ticks=4,
            vector_min_batch=4,  # both the scalar and the numpy path get used
            echo_probability=0.2,
            run_dir=str(self.run_dir),
        )
        self.life = Life(config)
        self.ref = Life(config.replace(run_dir=None))

    # -- rules -------------------------------------------------------------------------------------

    @rule(event=VALID_EVENTS)
    def push_valid(self, event):
        self.life.push(event)
        self.ref.push(event)
        self.pushed += 1

    @rule(case=INVALID_EVENTS)
    def push_invalid(self, case):
        bad, error = case
        with pytest.raises(error):
            self.life.push(bad)
        with pytest.raises(error):
            self.ref.push(bad)
        self.rejected += 1

    @rule(ticks=st.integers(0, 30))
    def run(self, ticks):
        self.life.run(ticks)
        self.ref.run(ticks)

    @rule()
    def snapshot(self):
        path = self.life.snapshot()
        assert read_snapshot(path).digest == self.life.digest()

    @rule()
    def close_and_resume(self):
        final = self.life.close()
        assert final is not None and read_snapshot(final).ticks == self.life.state.ticks
        self.life = Life.resume(self.run_dir)
        assert self.life.corrupt_files == []
        event("resumed")

    # A background run in simulated mode lives whole chunks of 4096 ticks between stop checks,
    # so each start/stop may add thousands of ticks: at most one or two per example.
    @precondition(lambda self: self.life is not None and self.life.state.ticks < 4096)
    @rule()
    def start_and_stop(self):
        before = self.life.state.ticks
        self.life.start()
        assert self.life.running
        self.life.stop()
        assert not self.life.running
        event(f"start/stop lived {self.life.state.ticks - before} ticks")
        self.ref.run(self.life.state.ticks - self.ref.state.ticks)

    # -- invariants (DESIGN §2) --------------------------------------------------------------------

    @invariant()
    def vitals_in_range_and_finite(self):
        if self.life is None:
            return
        s = self.life.state
        assert 0.0 <= s.energy <= 100.0
        assert 0.0 <= s.stability <= 1.0
        assert 0.0 <= s.integrity <= 1.0
        for value in (s.age, s.subjective_time, s.last_event_intensity):
            assert math.isfinite(value)
        assert all(math.isfinite(v) for v in (*s.sensitivity, *s.threshold))

    @invariant()
    def every_entry_is_active_or_archived_exactly_once(self):
        if self.life is None:
            return
        life = self.life
        assert life.entries_written == len(life.memory) + len(life.archive)
        active = life.memory.export()
        archived = life.archive.columns()
        a_ids, r_ids = active["id"], archived["id"]
        assert len(np.unique(r_ids)) == len(r_ids), "archive ids repeat"
        assert np.intersect1d(a_ids, r_ids).size == 0, "an entry is both active and archived"
        every = np.sort(np.concatenate([a_ids, r_ids]))
        assert np.array_equal(every, np.arange(life.entries_written)), "an entry was lost"
        for columns in (active, archived):
            for name in ("significance", "weight", "timestamp", "subjective_timestamp"):
                assert np.isfinite(columns[name]).all(), name
            assert ((columns["significance"] >= 0) & (columns["significance"] <= 1)).all()

    @invariant()
    def memory_within_capacity(self):
        if self.life is None:
            return
        assert len(self.life.memory) <= self.life.config.memory_capacity

    @invariant()
    def ticks_never_go_backwards(self):
        if self.life is None:
            return
        assert self.life.state.ticks >= self.last_ticks
        self.last_ticks = self.life.state.ticks

    @invariant()
    def pushes_are_counted(self):
        if self.life is None:
            return
        life = self.life
        assert (life.events_pushed, life.events_rejected) == (self.pushed, self.rejected)

    @invariant()
    def same_life_as_the_reference(self):
        if self.life is None:
            return
        life, ref = self.life, self.ref
        assert life.state.ticks == ref.state.ticks
        assert life.digest() == ref.digest()
        counters = ("events_processed", "events_dropped", "queue_depth", "entries_written")
        assert [getattr(life, c) for c in counters] == [getattr(ref, c) for c in counters]

    def teardown(self):
        try:
            if self.life is not None:
                self.life.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


TestLifeMachine = LifeMachine.TestCase
TestLifeMachine.settings = settings(
    # ~20 s in CI; HYPOTHESIS_PROFILE=thorough searches five times longer.
    max_examples=20 if settings.default.max_examples <= 30 else 100,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
