"""Clocks: simulated dt, drift-free real-time deadlines checked against a fake clock, and the
compiled engine's waits inside its kernel (woken by pushes and stops, back in Python rarely)."""

import math
import os
import threading
import time
import types

import numpy as np
import pytest

from lifelab.config import LifeConfig
from lifelab.life import clock as clock_module
from lifelab.life import compiled
from lifelab.life.clock import (
    PACE_LAST,
    ClockStopped,
    RealtimeClock,
    SimulatedClock,
    futex_syscall,
)
from lifelab.life.loop import Life


class FakeTime:
    """perf_counter/sleep/process_time that only move when told; records every sleep target."""

    def __init__(self):
        self.now = 0.0
        self.wakeups = []

    def perf_counter(self):
        return self.now

    def process_time(self):
        return self.now / 2

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds
        self.wakeups.append(self.now)

    def work(self, seconds):
        """Simulate a tick body that takes ``seconds``."""
        self.now += seconds


class FakeStop:
    """A stand-in for the stop threading.Event: never set."""

    def is_set(self):
        return False


class FakeGate:
    """A stand-in for the clock's gate lock: a wait with a timeout sleeps on the fake clock."""

    def __init__(self, fake):
        self.fake = fake
        self.held = False

    def acquire(self, blocking=True, timeout=-1):
        if not self.held:
            self.held = True
            return True
        self.fake.sleep(timeout)
        return False

    def release(self):
        self.held = False

    def locked(self):
        return self.held


@pytest.fixture
def fake(monkeypatch):
    """Replace the clock module's view of ``time`` (and its gate lock) with controllable fakes."""
    ft = FakeTime()
    namespace = types.SimpleNamespace(
        # process_time late-bound: a test may replace fake.process_time
        perf_counter=ft.perf_counter,
        sleep=ft.sleep,
        process_time=lambda: ft.process_time(),
    )
    monkeypatch.setattr(clock_module, "time", namespace)
    monkeypatch.setattr(clock_module, "threading", types.SimpleNamespace(Lock=lambda: FakeGate(ft)))
    return ft


def test_simulated_clock_returns_fixed_dt():
    """Each wait() of the simulated clock is exactly dt and never sleeps."""
    c = SimulatedClock(0.25)
    c.begin()
    assert [c.wait() for _ in range(3)] == [0.25, 0.25, 0.25]
    assert c.stats() == {}


@pytest.mark.parametrize("use_stop", [False, True])
def test_a_late_tick_does_not_shift_later_deadlines(fake, use_stop):
    """Deadlines stay at start + k·interval: after a late tick the schedule is the same."""
    c = RealtimeClock(1.0)
    c.begin(FakeStop() if use_stop else None)
    dts = [c.wait()]  # tick 1 due at t = 1
    fake.work(2.5)  # tick 1's body overruns: now 3.5
    dts.append(c.wait())  # tick 2 was due at 2: late by 1.5, no sleep
    dts.append(c.wait())  # tick 3 was due at 3: late by 0.5, no sleep
    dts.append(c.wait())  # tick 4 is due at 4: sleeps 0.5
    fake.work(0.25)
    dts.append(c.wait())  # tick 5 is due at 5: sleeps 0.75
    assert fake.wakeups == [1.0, 4.0, 5.0]
    assert dts == pytest.approx([1.0, 2.5, 0.0, 0.5, 1.0])
    stats = c.stats()
    assert stats["drift_ms"] == pytest.approx(0.0)  # back on the ideal schedule
    # lateness samples: 0, 1.5, 0.5, 0, 0 seconds → median 0, p99 near 1.5 s
    assert stats["lateness_p50_ms"] == pytest.approx(0.0)
    assert 1000.0 < stats["lateness_p99_ms"] <= 1500.0


def test_drift_reports_where_the_last_tick_ran(fake):
    """If the last tick is late, drift is its distance from the ideal slot."""
    c = RealtimeClock(0.5)
    c.begin()
    c.wait()
    fake.work(0.8)  # now 1.3; tick 2 was due at 1.0
    c.wait()
    assert c.stats()["drift_ms"] == pytest.approx(300.0)


def test_begin_restarts_the_schedule(fake):
    """A new begin() starts counting deadlines from the new start time."""
    c = RealtimeClock(1.0)
    c.begin()
    c.wait()
    fake.work(10.0)  # a pause between two runs: now 11
    c.begin()
    c.wait()
    assert fake.wakeups == [1.0, 12.0]


def test_cpu_percent_counts_until_end_not_until_the_summary(fake):
    """After end() (a run's last line), later work (a summary's digest, close()'s snapshot)
    does not count: CPU and wall time are read over begin() .. end()."""
    c = RealtimeClock(1.0)
    c.begin()
    c.wait()
    c.wait()  # now 2.0: the fake process used 1.0 s of CPU
    c.end()
    fake.process_time = lambda: 6.0  # 5 s of CPU after the run
    fake.now = 3.0
    assert c.stats()["cpu_percent"] == pytest.approx(50.0)


def test_stats_before_any_tick_are_zero():
    """A real-time clock that never ticked reports zeros."""
    c = RealtimeClock(0.01)
    c.begin()
    assert c.stats() == {
        "lateness_p50_ms": 0.0,
        "lateness_p99_ms": 0.0,
        "drift_ms": 0.0,
        "cpu_percent": 0.0,
    }


def test_realtime_run_reports_lateness_drift_and_cpu():
    """A short real-time run adds the pacing keys to its summary (sanity, not timing)."""
    life = Life(LifeConfig(clock="realtime", tick_interval=0.005, events_per_tick=1.0))
    summary = life.run(20)
    assert summary["ticks"] == 20
    keys = ("lateness_p50_ms", "lateness_p99_ms", "drift_ms", "cpu_percent")
    for key in keys:
        assert math.isfinite(summary[key]), key
    assert 0.0 <= summary["lateness_p50_ms"] <= summary["lateness_p99_ms"]
    # the tick thread did work, and one process cannot use more than all its cores
    assert 0.0 < summary["cpu_percent"] <= 100.0 * (os.cpu_count() or 1)
    assert summary["age_s"] > 0.0


def test_simulated_run_has_no_pacing_keys():
    """Simulated runs do not report lateness (there is no schedule)."""
    summary = Life(LifeConfig()).run(5)
    assert "lateness_p50_ms" not in summary
    assert summary["age_s"] == pytest.approx(5.0)


def test_interrupt_ends_a_wait_at_once_and_every_later_one():
    """A stop (event set, then interrupt()) ends a sleep of half a minute; the deadline is not
    consumed, and later waits end at once until begin() starts a new schedule."""
    stop = threading.Event()
    c = RealtimeClock(30.0)
    c.begin(stop)
    threading.Timer(0.02, lambda: (stop.set(), c.interrupt())).start()
    with pytest.raises(ClockStopped):
        c.wait()
    with pytest.raises(ClockStopped):
        c.wait()
    assert c.stats()["lateness_p50_ms"] == 0.0  # no tick ran
    stop.clear()
    c.interval = 0.001
    c.begin(stop)
    assert c.wait() > 0.0  # a new schedule: the gate is shut again


def test_a_stop_set_before_begin_ends_the_first_wait():
    """The stop event already set when the schedule begins: the first wait ends at once."""
    stop = threading.Event()
    stop.set()
    c = RealtimeClock(30.0)
    c.begin(stop)
    with pytest.raises(ClockStopped):
        c.wait()


def test_lend_and_reclaim_hand_the_schedule_to_the_kernel_and_back(fake):
    """While lent, the clock reads its schedule from the kernel's arrays; reclaimed, it goes on
    from where the kernel left it."""
    c = RealtimeClock(1.0)
    c.begin()
    c.wait()  # tick 1 at t = 1
    f, i = np.zeros(3), np.zeros(2, np.int64)
    c.lend(f, i)
    assert f.tolist() == [0.0, 1.0, 1.0]
    assert i.tolist() == [1, 1]
    c.lateness_ring[1] = 0.25  # what the kernel writes for tick 2, run at t = 2.25
    f[PACE_LAST] = 2.25
    i[:] = (2, 2)
    assert c.stats()["drift_ms"] == pytest.approx(250.0)
    assert c.lateness_ms().tolist() == pytest.approx([0.0, 250.0])
    c.reclaim()
    fake.now = 2.5
    assert c.wait() == pytest.approx(0.75)  # tick 3 at t = 3: dt since the kernel's tick 2
    assert fake.wakeups == [1.0, 3.0]


def test_simulated_clock_interrupt_and_poke_do_nothing():
    """A simulated clock never sleeps: stop requests and pushes need not wake it."""
    c = SimulatedClock(0.5)
    c.interrupt()
    c.poke()
    assert c.wait() == 0.5


@pytest.fixture
def paced():
    """Skip unless the compiled engine can wait in its kernel here (numba and Linux futexes)."""
    if not compiled.numba_available() or futex_syscall() is None:
        pytest.skip("the kernel cannot wait here (needs numba and Linux futexes)")


def _paced_life(interval):
    return Life(
        LifeConfig(
            clock="realtime",
            tick_interval=interval,
            engine="compiled",
            events_per_tick=0.0,
            echo_probability=0.0,
        )
    )


def _wait_until(predicate, guard_s=10.0):
    """Poll; the guard only stops a hang and is not a timing check."""
    end = time.monotonic() + guard_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached before the guard timeout")
        time.sleep(0.002)


def test_the_compiled_engine_waits_in_its_kernel_not_per_tick_in_python(paced, monkeypatch):
    """40 real-time ticks in a few kernel calls (none per tick), with lateness and drift
    reported as on the Python clock."""
    life = _paced_life(0.002)
    calls = {"pace": 0, "run": 0}
    pace, run = life._engine.k.pace_ticks, life._engine.k.run_ticks

    def counted_pace(*args):
        calls["pace"] += 1
        return pace(*args)

    def counted_run(*args):
        calls["run"] += 1
        return run(*args)

    monkeypatch.setattr(life._engine.k, "pace_ticks", counted_pace)
    monkeypatch.setattr(life._engine.k, "run_ticks", counted_run)
    summary = life.run(40)
    assert summary["ticks"] == 40
    assert 1 <= calls["pace"] <= 5  # 0.08 s of ticks, back in Python every PACE_REFRESH_S
    assert calls["run"] == 0
    assert 0.0 <= summary["lateness_p50_ms"] <= summary["lateness_p99_ms"]
    assert math.isfinite(summary["drift_ms"])
    assert len(life._clock.lateness_ms()) == 40


def test_a_push_wakes_the_kernel_and_shows_after_the_tick_that_takes_it(paced, monkeypatch):
    """With no refresh for an hour, a pushed event still reaches the organism at the next tick,
    and life.state shows that tick at once (the kernel comes back right after it)."""
    monkeypatch.setattr(compiled, "PACE_REFRESH_S", 3600.0)
    life = _paced_life(0.01)
    life.start()
    try:
        life.push({"type": "shock", "intensity": 0.9})
        _wait_until(lambda: life.events_processed >= 1)
        tick = life.state.ticks
    finally:
        life.stop()
    ticks = life.memory.columns()["tick"].tolist()
    assert ticks == [tick]  # the one entry, written on the tick life.state showed


@pytest.mark.parametrize("engine", ["compiled", "python"])
def test_stop_and_request_stop_end_an_hour_long_wait(engine, monkeypatch):
    """Both engines: stop() of a background life and request_stop() of a run() end the wait for
    a deadline an hour away at once (stop() would raise after its 10 s timeout)."""
    monkeypatch.setattr(compiled, "PACE_REFRESH_S", 3600.0)
    life = Life(LifeConfig(clock="realtime", tick_interval=3600.0, engine=engine))
    life.start()
    time.sleep(0.05)  # asleep until the first deadline
    assert life.stop(timeout=10.0)["ticks"] == 0
    threading.Timer(0.05, life.request_stop).start()
    assert life.run(5)["ticks"] == 0


def test_settling_from_another_thread_parks_the_paced_run(paced):
    """digest() from another thread while the kernel runs without the GIL: the run parks for
    the settle, so nothing written is lost (every entry is active or archived)."""
    life = Life(
        LifeConfig(
            clock="realtime",
            tick_interval=0.001,
            engine="compiled",
            events_per_tick=3.0,
            memory_capacity=50,
        )
    )
    life.start()
    try:
        for _ in range(20):
            assert len(life.digest()) == 32
            time.sleep(0.005)
    finally:
        summary = life.stop()
    assert summary["ticks"] > 0
    assert summary["entries_written"] == summary["memory_active"] + summary["archive_size"]
    assert life._engine._pacer is None
