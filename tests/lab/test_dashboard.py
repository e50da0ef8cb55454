"""The live dashboard: nothing starts at display; start, push, pause, continue, stop."""

import threading

import pytest

from lifelab import Life, LifeConfig
from lifelab.exceptions import EventError, LifeStateError
from lifelab.lab.dashboard import Dashboard, live_dashboards
from lifelab.life import compiled

ENGINES = [
    "python",
    pytest.param(
        "compiled",
        marks=pytest.mark.skipif(not compiled.numba_available(), reason="numba is not installed"),
    ),
]
CSS = {
    "start_button": "lifelab-dash-start",
    "pause_button": "lifelab-dash-pause",
    "stop_button": "lifelab-dash-stop",
    "push_button": "lifelab-dash-push",
    "type_dropdown": "lifelab-dash-type",
    "intensity_slider": "lifelab-dash-intensity",
    "rate_slider": "lifelab-dash-rate",
    "batch_slider": "lifelab-dash-batch",
    "plot": "lifelab-dash-plot",
    "status": "lifelab-dash-status",
}


@pytest.fixture(autouse=True)
def _close_dashboards():
    """No dashboard of one test lives into the next."""
    yield
    for dash in live_dashboards():
        dash.close()


def _threads():
    return {t for t in threading.enumerate() if t.name.startswith("lifelab-") and t.is_alive()}


def _wait_for(predicate, timeout=30.0):
    """Poll ``predicate`` until it holds (a generous bound that only catches a hang)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


def _realtime(engine, **kw):
    return Life(LifeConfig(seed=3, clock="realtime", tick_interval=0.002, engine=engine, **kw))


def test_building_and_displaying_starts_nothing():
    """A new dashboard, displayed, runs no thread and no tick; it shows one static frame."""
    before = _threads()
    life = _realtime("python")
    dash = Dashboard(life)
    bundle = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert _threads() == before
    assert not life.running and life.state.ticks == 0
    assert dash.state == "ready" and len(dash.history) == 1
    assert bytes(dash.plot.value).startswith(b"\x89PNG")
    assert "tick 0" in dash.status.value
    assert not dash.start_button.disabled and dash.pause_button.disabled


def test_every_control_carries_its_css_class():
    """The browser test finds each control by its documented class."""
    dash = Dashboard(_realtime("python"))
    for attribute, css in CSS.items():
        assert css in getattr(dash, attribute)._dom_classes, attribute


def test_the_event_types_offered_are_the_pushable_ones():
    """Internal types (memory_echo) cannot be pushed, so they are not offered."""
    life = _realtime("python")
    dash = Dashboard(life)
    offered = set(dash.type_dropdown.options)
    assert offered == {r.name for r in life.types.rows if not r.internal}
    assert "memory_echo" not in offered and "shock" in offered


@pytest.mark.parametrize("engine", ENGINES)
def test_start_push_pause_continue_stop(engine):
    """The organism ticks, takes a pushed event, keeps its state over a pause, then ends."""
    before = _threads()
    life = _realtime(engine, echo_probability=0.0)
    dash = Dashboard(life)
    dash.start()
    assert dash.state == "running" and life.running
    assert _wait_for(lambda: dash.refresh() and dash.history[-1].tick > 0)

    dash.rate_slider.value = 0.0  # a silent world: every processed event is a pushed one
    assert _wait_for(lambda: life.config.events_per_tick == 0.0)
    processed = life.events_processed
    dash.push("connection", 0.8)
    assert _wait_for(lambda: dash.refresh() and dash.history[-1].events_processed > processed)
    assert dash.history[-1].events_processed == processed + 1
    assert f"events processed {processed + 1:,}" in dash.status.value

    summary = dash.pause()
    assert summary is not None and dash.state == "paused"
    paused_at = summary["ticks"]
    assert not life.running and _threads() == before
    dash.refresh()
    assert dash.history[-1].tick == paused_at == life.state.ticks
    assert life.events_processed == processed + 1

    dash.start()
    assert _wait_for(lambda: dash.refresh() and dash.history[-1].tick > paused_at + 5)
    ticks = [s.tick for s in dash.history]
    assert ticks == sorted(ticks)  # continued from where it was, never restarted

    final = dash.stop()
    assert dash.state == "stopped" and final["ticks"] >= paused_at + 5
    assert _threads() == before
    assert dash.start_button.disabled and dash.push_button.disabled
    with pytest.raises(LifeStateError):
        dash.start()
    with pytest.raises(LifeStateError):
        dash.push("connection", 0.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_sliders_change_the_world_and_the_queue_shows_it(engine):
    """A batch smaller than the rate makes the queue grow by the excess, tick after tick."""
    life = _realtime(engine)
    dash = Dashboard(life)
    dash.batch_slider.value = 1
    dash.rate_slider.value = 4.0
    dash.start()
    assert _wait_for(lambda: (life.config.batch_size, life.config.events_per_tick) == (1, 4.0))
    assert _wait_for(lambda: dash.refresh() and dash.history[-1].queue_depth > 30)
    dash.pause()


def test_the_buttons_drive_it():
    """Clicking Start, Push, Pause and Stop does what the methods do."""
    before = _threads()
    life = _realtime("python", echo_probability=0.0, events_per_tick=0.0)
    dash = Dashboard(life)
    dash.start_button.click()
    assert _wait_for(lambda: life.state.ticks > 0)
    assert dash.start_button.disabled and not dash.pause_button.disabled
    dash.type_dropdown.value = "shock"
    dash.intensity_slider.value = -0.9
    dash.push_button.click()
    assert _wait_for(lambda: life.events_processed == 1)
    dash.pause_button.click()
    assert dash.state == "paused" and not life.running
    dash.stop_button.click()
    assert dash.state == "stopped" and _threads() == before


def test_refresh_draws_a_png_that_changes_as_the_organism_lives():
    """refresh() samples and redraws synchronously; the picture follows the organism."""
    life = Life(LifeConfig(seed=1, events_per_tick=2.0))
    dash = Dashboard(life)
    first = dash.refresh()
    assert first.startswith(b"\x89PNG") and bytes(dash.plot.value) == first
    life.run(300)
    second = dash.refresh()
    assert second.startswith(b"\x89PNG") and second != first
    assert [s.tick for s in dash.history] == [0, 0, 300]
    assert dash.history[-1].memory_active == len(life.memory) > 0


def test_the_history_is_a_rolling_window():
    """Only the last ``window`` samples are kept."""
    life = Life(LifeConfig(seed=1))
    dash = Dashboard(life, window=3)
    for _ in range(5):
        life.run(10)
        dash.refresh()
    assert [s.tick for s in dash.history] == [30, 40, 50]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_new_dashboard_closes_the_earlier_one(engine):
    """Re-running the cell: the earlier dashboard's organism and refresh thread stop."""
    before = _threads()
    old = Dashboard(_realtime(engine))
    old.start()
    assert _wait_for(lambda: old.life.state.ticks > 0)
    new = Dashboard(_realtime(engine))
    assert old.state == "closed" and not old.life.running
    assert _threads() == before
    assert live_dashboards() == [new] and new.state == "ready"
    old.close()  # idempotent
    with pytest.raises(LifeStateError):
        old.start()


def test_a_dashboard_may_watch_the_organism_of_a_closed_one():
    """close() pauses without ending the organism: a new dashboard continues it."""
    life = _realtime("python")
    first = Dashboard(life)
    first.start()
    assert _wait_for(lambda: life.state.ticks > 0)
    second = Dashboard(life)
    ticks = life.state.ticks
    assert first.state == "closed" and not life.running
    second.start()
    assert _wait_for(lambda: life.state.ticks > ticks)
    second.stop()


def test_the_refresh_thread_ends_when_the_organism_stops_by_itself():
    """An organism stopped behind the dashboard's back: the view notices and ends its thread."""
    before = _threads()
    life = _realtime("python")
    dash = Dashboard(life, refresh_hz=20.0)
    dash.start()
    assert _wait_for(lambda: life.state.ticks > 0)
    life.request_stop()
    assert _wait_for(lambda: _threads() == before)
    assert _wait_for(lambda: dash.state == "paused")
    assert not dash.start_button.disabled


def test_bad_arguments_are_refused():
    """A non-Life, a tiny window, a wild refresh rate or a bad event raise clear errors."""
    with pytest.raises(TypeError, match="Life"):
        Dashboard("not a life")
    with pytest.raises(ValueError, match="window"):
        Dashboard(window=1)
    with pytest.raises(ValueError, match="refresh_hz"):
        Dashboard(refresh_hz=0.0)
    dash = Dashboard(_realtime("python"))
    with pytest.raises(EventError):
        dash.push("memory_echo", 0.1)
    with pytest.raises(EventError):
        dash.push("shock", 2.0)


def test_a_failing_button_shows_its_error_in_the_status_line():
    """A button's exception has no cell to go to: it is shown instead of lost."""
    life = Life(LifeConfig(seed=1, events_mode="poisson"))
    dash = Dashboard(life)
    assert dash.rate_slider.disabled
    life.run(1)
    dash._from_button(lambda: life.set_world(events_per_tick=5.0))
    assert "ConfigError" in dash.status.value and "ConfigError" in dash.last_error
