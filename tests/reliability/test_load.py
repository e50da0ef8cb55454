"""Load: producer threads flood a living organism with events, valid and invalid.

The organism lives in its background thread (``start()``) with no environment events and no
memory echoes, so every event it processes was pushed. Afterwards every push attempt is accounted
for, exactly: attempts = processed + rejected + dropped + still queued. Nothing deadlocks and the
organism stops cleanly. The default size runs in CI (marked slow); for the full flood run

    LIFELAB_LOAD_EVENTS=1000000 .venv/bin/python -m pytest tests/reliability/test_load.py -q
"""

from __future__ import annotations

import math
import os
import threading

import pytest

from lifelab.config import LifeConfig
from lifelab.exceptions import EventError, EventTypeError
from lifelab.life.events import Event, TypeTable
from lifelab.life.loop import Life

EVENTS = int(os.environ.get("LIFELAB_LOAD_EVENTS", "200000"))
PRODUCERS = 4
INVALID_EVERY = 10  # one push attempt in ten is bad input
JOIN_TIMEOUT_S = 600.0  # a deadlock fails the test instead of hanging CI

PUSHABLE = [row.name for row in TypeTable().rows if not row.internal]
INVALID = [
    {"type": "shock", "intensity": math.nan},
    {"type": "shock", "intensity": 2.0},
    {"type": "earthquake", "intensity": 0.1},
    {"type": "memory_echo", "intensity": 0.1},
    {"type": "shock", "intensity": "0.1"},
    {"type": "shock", "intensity": 0.1, "colour": "red"},
    None,
]


class Producer(threading.Thread):
    """Pushes ``n`` attempts (every INVALID_EVERY-th one bad) and counts what it saw."""

    def __init__(self, life: Life, n: int, index: int, barrier: threading.Barrier) -> None:
        super().__init__(name=f"producer-{index}", daemon=True)
        self.life, self.n, self.index, self.barrier = life, n, index, barrier
        self.accepted = 0
        self.refused = 0
        self.unexpected: list[BaseException] = []

    def run(self) -> None:
        push = self.life.push
        self.barrier.wait()
        for i in range(self.n):
            k = i + self.index
            if i % INVALID_EVERY == INVALID_EVERY - 1:
                event = INVALID[k % len(INVALID)]
            elif k % 2:
                event = Event(PUSHABLE[k % len(PUSHABLE)], (k % 201 - 100) / 100)
            else:
                event = {"type": PUSHABLE[k % len(PUSHABLE)], "intensity": (k % 21 - 10) / 10}
            try:
                push(event)
            except (EventError, EventTypeError):
                self.refused += 1
            except BaseException as exc:  # anything else is a failure of the test
                self.unexpected.append(exc)
                return
            else:
                self.accepted += 1


def _flood(life: Life, total: int) -> list[Producer]:
    barrier = threading.Barrier(PRODUCERS)
    producers = [Producer(life, total // PRODUCERS, i, barrier) for i in range(PRODUCERS)]
    for p in producers:
        p.start()
    for p in producers:
        p.join(JOIN_TIMEOUT_S)
        assert not p.is_alive(), f"{p.name} is stuck in push() (deadlock?)"
        assert not p.unexpected, p.unexpected
    return producers


@pytest.mark.slow
@pytest.mark.parametrize("queue_capacity", [512, 10_000_000], ids=["small-queue", "large-queue"])
def test_every_push_attempt_is_accounted_for_under_load(queue_capacity):
    """attempts == processed + rejected + dropped + queued, exactly; then a clean stop."""
    life = Life(
        LifeConfig(
            seed=3,
            events_per_tick=0,
            echo_probability=0,
            batch_size=256,
            queue_capacity=queue_capacity,
            memory_capacity=5_000,
            metrics_every=0,
        )
    )
    life.start()
    try:
        producers = _flood(life, EVENTS)
    finally:
        summary = life.stop(timeout=60)  # raises LifeStateError if the thread does not stop
    assert not life.running
    attempts = sum(p.n for p in producers)
    accepted = sum(p.accepted for p in producers)
    refused = sum(p.refused for p in producers)
    assert accepted + refused == attempts
    assert refused == attempts // INVALID_EVERY
    assert life.events_pushed == accepted
    assert life.events_rejected == refused == summary["events_rejected"]
    assert attempts == (
        life.events_processed + life.events_rejected + life.events_dropped + life.queue_depth
    )
    if queue_capacity >= attempts:
        assert life.events_dropped == 0
    # What was still queued is processed by plain ticks afterwards: nothing is lost.
    queued = life.queue_depth
    processed = life.events_processed
    life.run(-(-queued // 256) + 1)  # ceil(queued / batch_size) ticks drain it (one run call:
    # run() returns a summary whose digest covers the queue, so calling it per tick is quadratic)
    assert life.queue_depth == 0
    assert life.events_processed == processed + queued
    assert life.events_pushed == life.events_processed + life.events_dropped
    assert life.entries_written == len(life.memory) + len(life.archive)
    assert summary["errors"] == 0 and life.errors == {}


@pytest.mark.slow
def test_a_paced_realtime_life_under_load_stops_cleanly(tmp_path):
    """The same accounting holds for a real-time life with a run directory, then close()."""
    life = Life(
        LifeConfig(
            clock="realtime",
            tick_interval=0.001,
            events_per_tick=0,
            echo_probability=0,
            batch_size=64,
            queue_capacity=2_000,
            run_dir=str(tmp_path / "run"),
            snapshot_every=200,
            log_every=100,
        )
    )
    life.start()
    try:
        producers = _flood(life, min(EVENTS, 40_000))
    finally:
        life.stop(timeout=60)
    attempts = sum(p.n for p in producers)
    assert attempts == (
        life.events_processed + life.events_rejected + life.events_dropped + life.queue_depth
    )
    final = life.close()
    assert final is not None and final.is_file()
    resumed = Life.resume(tmp_path / "run")
    try:
        assert resumed.events_pushed == life.events_pushed
        assert resumed.events_rejected == life.events_rejected
        assert resumed.events_dropped == life.events_dropped
        assert resumed.queue_depth == life.queue_depth
    finally:
        resumed.close()
