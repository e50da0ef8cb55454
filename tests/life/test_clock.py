"""Clocks: simulated dt, and drift-free real-time deadlines checked against a fake clock."""

import math
import types

import pytest

from lifelab.config import LifeConfig
from lifelab.life import clock as clock_module
from lifelab.life.clock import RealtimeClock, SimulatedClock
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
    """A stand-in for threading.Event whose wait() sleeps on the fake clock."""

    def __init__(self, fake):
        self.fake = fake

    def wait(self, timeout):
        self.fake.sleep(timeout)
        return False


@pytest.fixture
def fake(monkeypatch):
    """Replace the clock module's view of ``time`` with a controllable fake."""
    ft = FakeTime()
    namespace = types.SimpleNamespace(
        perf_counter=ft.perf_counter, sleep=ft.sleep, process_time=ft.process_time
    )
    monkeypatch.setattr(clock_module, "time", namespace)
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
    c.begin(FakeStop(fake) if use_stop else None)
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
    assert summary["cpu_percent"] >= 0.0
    assert summary["age_s"] > 0.0


def test_simulated_run_has_no_pacing_keys():
    """Simulated runs do not report lateness (there is no schedule)."""
    summary = Life(LifeConfig()).run(5)
    assert "lateness_p50_ms" not in summary
    assert summary["age_s"] == pytest.approx(5.0)
