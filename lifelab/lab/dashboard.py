"""The live dashboard: one organism living in the background, watched and steered from a notebook.

``Dashboard(life)`` builds the widgets and starts nothing: displaying it (or running its notebook
headless under papermill or nbval) costs one static frame. **Start** lives the organism with
:meth:`Life.start` in its daemon thread (``lifelab-life``) and starts a refresh thread
(``lifelab-dashboard``) that samples it and redraws a few times a second; **Pause** stops both
and keeps the organism (Start continues it from the tick it reached); **Stop** ends it for good
(:meth:`Life.close`: a final snapshot when it has a run directory). **Push** queues an event of
the chosen type and intensity; the **events/tick** and **batch** sliders change the world with
:meth:`Life.set_world`, which the living thread applies between two ticks on either engine.

What is read while the organism lives: only fields that the living thread replaces whole — the
vitals and tick count of ``life.state``, ``events_processed``, ``queue_depth``, ``len(life.memory)``
and ``len(life.archive)`` — each an attribute read that cannot tear or raise. The compiled
engine refreshes those after every burst of kernel ticks (at most every 0.25 s in real time). Never
``summary()``, ``digest()`` or ``plan()`` while it lives: they settle the whole state and walk
structures the living thread mutates; the dashboard reads ``summary()`` only once it has paused.

One live dashboard per kernel: constructing a new one closes the earlier ones (so re-running a
cell never leaves an organism or a refresh thread behind); :meth:`Dashboard.close` does it by
hand. Both threads are daemons; the refresh thread waits on an event between frames (it never
spins) and ends when the organism stops — paused, stopped, dead by its mortality rule, or asked
to stop by someone else — or when the interpreter's main thread has ended. A KeyboardInterrupt
(the notebook's interrupt button) reaches only the cell running in the main thread: a dashboard
keeps living between cells until Pause, Stop, :meth:`~Dashboard.close`, a newer dashboard, or a
kernel restart (which ends the daemon threads with the process).

CSS classes for browser tests (stable, added with ``add_class``): ``lifelab-dash`` (the whole
dashboard), ``lifelab-dash-start``,
``lifelab-dash-pause``, ``lifelab-dash-stop``, ``lifelab-dash-push`` (buttons),
``lifelab-dash-type`` (event type dropdown), ``lifelab-dash-intensity`` (intensity slider),
``lifelab-dash-rate`` (events per tick slider), ``lifelab-dash-batch`` (batch size slider),
``lifelab-dash-plot`` (the figure, an Image), ``lifelab-dash-status`` (the status line: it names
the state, the tick count, the tick rate, the events processed, the events pushed, the queue depth
and weakness, so a test sees it change after a push).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lifelab.config import LifeConfig
from lifelab.exceptions import LifeStateError
from lifelab.life.events import Event
from lifelab.life.loop import Life
from lifelab.life.policy import weak_vitals

if TYPE_CHECKING:
    import ipywidgets as widgets
    from matplotlib.figure import Figure

__all__ = ["Dashboard", "Sample", "default_config", "live_dashboards"]

# Every dashboard that may still be live, so a new one can close them (one per kernel).
_REGISTRY: weakref.WeakSet[Dashboard] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()

RATE_MAX = 32.0  # events per tick: the slider's top (the organism takes up to 100 000)
BATCH_MAX = 256


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the living organism (the dashboard's rolling history holds these).

    ``ticks_per_s`` is measured against the previous sample (0 for the first one after a start).
    """

    wall_s: float
    tick: int
    energy: float
    stability: float
    integrity: float
    memory_active: int
    archive_size: int
    events_processed: int
    queue_depth: int
    ticks_per_s: float
    weak: bool


def default_config() -> LifeConfig:
    """The dashboard's organism when none is given: the reference world at 100 ticks/s."""
    return LifeConfig(clock="realtime", tick_interval=0.01)


class Dashboard:
    """A live view of one organism: Start/Pause/Stop, push an event, steer the world, plots.

    Args:
        life: The organism to watch; a new ``Life(default_config())`` (real time at 100 Hz)
            when None. A simulated clock works too, but lives as fast as it can: its in-memory
            archive grows by about an entry per tick.
        window: Samples kept in the rolling history (and plotted).
        refresh_hz: Redraws per second while the organism lives.

    Display the dashboard (the last expression of a cell, or ``display(dash)``); nothing starts
    until Start is pressed or :meth:`start` is called.
    """

    def __init__(self, life: Life | None = None, *, window: int = 240, refresh_hz: float = 4.0):
        import ipywidgets as widgets

        if life is not None and not isinstance(life, Life):
            raise TypeError(f"life must be a Life, got {type(life).__name__}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        if not 0.1 <= refresh_hz <= 30.0:
            raise ValueError(f"refresh_hz must be in [0.1, 30], got {refresh_hz!r}")
        _close_others()
        self._life = life if life is not None else Life(default_config())
        self._period_s = 1.0 / refresh_hz
        self._history: deque[Sample] = deque(maxlen=window)
        self._draw_lock = threading.Lock()  # one sample-and-draw at a time (thread or refresh())
        self._halt = threading.Event()  # tells the refresh thread to end
        self._refresher: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self._state = "ready"  # ready | running | paused | stopped | closed
        self.last_error: str | None = None
        self._rate_from: Sample | None = None
        self._figure: Figure | None = None
        self._lines: dict[str, Any] = {}
        self._build(widgets)
        self.refresh()  # one static frame: the organism as it is now
        with _REGISTRY_LOCK:
            _REGISTRY.add(self)

    # -- widgets ---------------------------------------------------------------------------------

    def _build(self, widgets: Any) -> None:
        life = self._life
        cfg = life.config
        self.start_button = _button(widgets, "Start", "play", "success", "lifelab-dash-start")
        self.pause_button = _button(widgets, "Pause", "pause", "warning", "lifelab-dash-pause")
        self.stop_button = _button(widgets, "Stop", "stop", "danger", "lifelab-dash-stop")
        self.push_button = _button(widgets, "Push", "paper-plane", "info", "lifelab-dash-push")
        pushable = [r.name for r in life.types.rows if not r.internal]
        self.type_dropdown = widgets.Dropdown(
            options=pushable,
            value="connection" if "connection" in pushable else pushable[0],
            description="event",
            layout=widgets.Layout(width="260px"),
        )
        self.intensity_slider = widgets.FloatSlider(
            value=0.5, min=-1.0, max=1.0, step=0.05, description="intensity"
        )
        self.rate_slider = widgets.FloatSlider(
            value=min(cfg.events_per_tick, RATE_MAX),
            min=0.0,
            max=RATE_MAX,
            step=0.25,
            description="events/tick",
            continuous_update=False,
            disabled=cfg.events_mode == "poisson",
            tooltip="the world's rate (a Poisson world keeps the rate it was born with)",
        )
        self.batch_slider = widgets.IntSlider(
            value=min(cfg.batch_size, BATCH_MAX),
            min=1,
            max=BATCH_MAX,
            description="batch",
            continuous_update=False,
            tooltip="the most events drained from the queue in one tick",
        )
        self.plot = widgets.Image(format="png")
        self.status = widgets.HTML()
        for widget, name in (
            (self.type_dropdown, "lifelab-dash-type"),
            (self.intensity_slider, "lifelab-dash-intensity"),
            (self.rate_slider, "lifelab-dash-rate"),
            (self.batch_slider, "lifelab-dash-batch"),
            (self.plot, "lifelab-dash-plot"),
            (self.status, "lifelab-dash-status"),
        ):
            widget.add_class(name)
        self.start_button.on_click(lambda _: self._from_button(self.start))
        self.pause_button.on_click(lambda _: self._from_button(self.pause))
        self.stop_button.on_click(lambda _: self._from_button(self.stop))
        self.push_button.on_click(lambda _: self._from_button(self._push_from_widgets))
        self.rate_slider.observe(self._on_world, names="value")
        self.batch_slider.observe(self._on_world, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.start_button, self.pause_button, self.stop_button]),
                widgets.HBox([self.type_dropdown, self.intensity_slider, self.push_button]),
                widgets.HBox([self.rate_slider, self.batch_slider]),
                self.status,
                self.plot,
            ]
        )
        self.widget.add_class("lifelab-dash")
        self._sync_buttons()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _from_button(self, action: Any) -> None:
        """Run a button's action; an error goes to the status line, not to a lost traceback."""
        try:
            action()
        except Exception as exc:  # shown, not raised: a callback's exception has no cell
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.refresh()

    def _push_from_widgets(self) -> None:
        self.push(self.type_dropdown.value, self.intensity_slider.value)

    def _on_world(self, _change: Any) -> None:
        self._from_button(
            lambda: self._life.set_world(
                events_per_tick=float(self.rate_slider.value),
                batch_size=int(self.batch_slider.value),
            )
        )

    def _sync_buttons(self) -> None:
        state = self._state
        over = state in ("stopped", "closed")
        self.start_button.disabled = over or state == "running"
        self.pause_button.disabled = state != "running"
        self.stop_button.disabled = over
        self.push_button.disabled = over
        self.rate_slider.disabled = over or self._life.config.events_mode == "poisson"
        self.batch_slider.disabled = over

    # -- the programmatic API ----------------------------------------------------------------------

    @property
    def life(self) -> Life:
        """The organism this dashboard watches."""
        return self._life

    @property
    def history(self) -> list[Sample]:
        """The rolling window of samples, oldest first (a copy)."""
        with self._draw_lock:
            return list(self._history)

    @property
    def state(self) -> str:
        """``"ready"``, ``"running"``, ``"paused"``, ``"stopped"`` or ``"closed"``."""
        return self._state

    @property
    def running(self) -> bool:
        """Whether the organism is living in its background thread now."""
        return self._life.running

    def start(self) -> None:
        """Live the organism in the background (again after a pause) and refresh the view.

        Raises:
            LifeStateError: the dashboard was stopped or closed, or the organism is already
                living in a run() or start() of someone else.
        """
        if self._state in ("stopped", "closed"):
            raise LifeStateError(f"this dashboard is {self._state}: build a new one")
        if self._state == "running" and self._life.running:
            return
        self._join_refresher()  # a refresher that saw the organism stop may still be ending
        self._life.start()
        self._state = "running"
        self._rate_from: Sample | None = None  # the tick rate is not measured across a pause
        self._halt.clear()
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="lifelab-dashboard", daemon=True
        )
        self._refresher.start()
        self._sync_buttons()

    def pause(self) -> dict[str, Any] | None:
        """Stop living but keep the organism (start() continues it); return its summary.

        Returns None (and does nothing) when the organism is not living.
        """
        self._halt.set()
        summary = None
        if self._life.running:
            summary = self._life.stop()
        self._join_refresher()
        if self._state == "running":
            self._state = "paused"
        self._sync_buttons()
        self.refresh()
        return summary

    def stop(self) -> dict[str, Any]:
        """End the organism for good (:meth:`Life.close`) and return its final summary."""
        if self._state == "closed":
            raise LifeStateError("this dashboard is closed")
        self.pause()
        self._life.close()
        self._state = "stopped"
        self._sync_buttons()
        self.refresh()
        with _REGISTRY_LOCK:
            _REGISTRY.discard(self)
        return self._life.summary()

    def close(self) -> None:
        """Pause the organism, end the refresh thread and disable the controls. Idempotent.

        The organism is not ended (another dashboard may watch it); :meth:`stop` ends it.
        """
        if self._state == "closed":
            return
        self.pause()
        self._state = "closed"
        self._sync_buttons()
        self.refresh()
        with _REGISTRY_LOCK:
            _REGISTRY.discard(self)

    def push(self, event_type: str, intensity: float) -> None:
        """Queue an event (thread-safe); the organism takes it at its next tick.

        Raises:
            EventError: an unknown or internal type, or an intensity outside [-1, 1].
            LifeStateError: the dashboard was stopped or closed.
        """
        if self._state in ("stopped", "closed"):
            raise LifeStateError(f"this dashboard is {self._state}: build a new one")
        self._life.push(Event(event_type, float(intensity)))

    def refresh(self) -> bytes:
        """Sample the organism once and redraw the figure and status now; return the PNG."""
        with self._draw_lock:
            self._sample()
            png = self._render()
            self.plot.value = png
            self.status.value = self._status_html()
        return png

    # -- the refresh thread ------------------------------------------------------------------------

    def _refresh_loop(self) -> None:
        life = self._life
        main = threading.main_thread()
        try:
            while not self._halt.wait(self._period_s):
                if not main.is_alive():  # interpreter shutting down: stop living too
                    life.request_stop()
                    return
                if not life.running:
                    break
                self.refresh()
            if not life.running and self._state == "running":
                # it stopped by itself (mortality) or through someone else's stop()
                self._state = "paused"
                self._sync_buttons()
                self.refresh()
        except Exception as exc:  # the view stops; the organism lives on
            self.last_error = f"refresh: {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # best effort: the view is failing already
                self.status.value = self._status_html()

    def _join_refresher(self) -> None:
        thread = self._refresher
        if thread is None or thread is threading.current_thread():
            return
        self._halt.set()
        thread.join(10.0)
        if thread.is_alive():
            raise LifeStateError("the dashboard's refresh thread did not end within 10 s")
        self._refresher = None

    # -- sampling and drawing (under _draw_lock) ---------------------------------------------------

    def _sample(self) -> None:
        life = self._life
        s = life.state
        cfg = life.config
        tick = s.ticks
        energy, stability, integrity = s.energy, s.stability, s.integrity
        now = time.perf_counter() - self._t0
        rate = 0.0
        last = self._rate_from
        if last is not None and now > last.wall_s and tick >= last.tick:
            rate = (tick - last.tick) / (now - last.wall_s)
        sample = Sample(
            wall_s=now,
            tick=tick,
            energy=energy,
            stability=stability,
            integrity=integrity,
            memory_active=len(life.memory),
            archive_size=len(life.archive),
            events_processed=life.events_processed,
            queue_depth=life.queue_depth,
            ticks_per_s=rate if life.running else 0.0,
            weak=bool(weak_vitals(energy, stability, integrity, cfg)),
        )
        self._history.append(sample)
        self._rate_from = sample

    def _status_html(self) -> str:
        h = self._history[-1]
        text = (
            f"<b>{self._state}</b> · tick {h.tick:,} · {h.ticks_per_s:,.0f} ticks/s · "
            f"events processed {h.events_processed:,} · pushed {self._life.events_pushed:,} · "
            f"queue {h.queue_depth:,} · "
            f"weak: {'yes' if h.weak else 'no'} · {self._life.engine} engine"
        )
        if self.last_error:
            text += f" · <span style='color:#b00'>{_escape(self.last_error)}</span>"
        return text

    def _render(self) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self._figure
        if fig is None:
            fig = self._figure = self._new_figure()
        rows = list(self._history)
        t = [r.wall_s - rows[-1].wall_s for r in rows]  # seconds before now
        lines = self._lines
        lines["energy"].set_data(t, [r.energy / 100.0 for r in rows])
        lines["stability"].set_data(t, [r.stability for r in rows])
        lines["integrity"].set_data(t, [r.integrity for r in rows])
        lines["memory"].set_data(t, [r.memory_active for r in rows])
        lines["archive"].set_data(t, [r.archive_size for r in rows])
        lines["rate"].set_data(t, [r.ticks_per_s for r in rows])
        lines["queue"].set_data(t, [r.queue_depth for r in rows])
        left = min(t[0], -1.0)
        for ax in fig.axes:
            ax.set_xlim(left, 0.0)
            if ax is not fig.axes[0]:
                ax.relim()
                ax.autoscale_view(scalex=False)
                # counts and rates are never negative: an all-zero line sits on the x axis,
                # not in the middle of a -0.05..0.05 range
                ax.set_ylim(0.0, max(ax.get_ylim()[1], 1.0))
        fig.axes[0].set_title(f"tick {rows[-1].tick:,}", loc="right", fontsize=9)
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf)
        return buf.getvalue()

    def _new_figure(self) -> Figure:
        """The figure with its lines and the weakness thresholds; _render only moves data."""
        from matplotlib.figure import Figure

        cfg = self._life.config
        fig = Figure(figsize=(8.0, 5.6), dpi=80, layout="constrained")
        vitals, memory, pace = fig.subplots(3, 1, sharex=True)
        lines: dict[str, Any] = {}
        for name, scale, threshold in (
            ("energy", "energy / 100", cfg.weak_energy / 100.0),
            ("stability", "stability", cfg.weak_stability),
            ("integrity", "integrity", cfg.weak_integrity),
        ):
            (line,) = vitals.plot([], [], label=scale)
            lines[name] = line
            vitals.axhline(threshold, color=line.get_color(), linestyle="--", linewidth=0.8)
        vitals.set_ylim(-0.02, 1.02)
        vitals.set_ylabel("vital (0–1)")
        vitals.set_title("Vitals (dashed: weak at or below)", loc="left", fontsize=9)
        vitals.legend(loc="lower left", fontsize=8)
        (lines["memory"],) = memory.plot([], [], label="active memory")
        (lines["archive"],) = memory.plot([], [], label="archive")
        memory.set_ylabel("entries")
        memory.legend(loc="upper left", fontsize=8)
        (lines["rate"],) = pace.plot([], [], label="ticks/s", color="tab:green")
        pace.set_ylabel("ticks/s")
        depth = pace.twinx()
        (lines["queue"],) = depth.plot([], [], label="queue depth", color="tab:red")
        depth.set_ylabel("queue depth")
        pace.set_xlabel("seconds before now")
        pace.legend(handles=[lines["rate"], lines["queue"]], loc="upper left", fontsize=8)
        self._lines = lines
        return fig


def _button(widgets: Any, text: str, icon: str, style: str, css: str) -> widgets.Button:
    button = widgets.Button(description=text, icon=icon, button_style=style)
    button.add_class(css)
    return button


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _close_others() -> None:
    """Close every dashboard built before (re-running a cell must not leave one living)."""
    with _REGISTRY_LOCK:
        earlier = list(_REGISTRY)
    for dash in earlier:
        dash.close()


def live_dashboards() -> list[Dashboard]:
    """The dashboards not yet closed or stopped (at most one after a construction)."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY)
