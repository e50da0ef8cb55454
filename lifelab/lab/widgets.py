"""The sweep panel: choose a small batch × GC sweep in a notebook, press Run, watch it, cancel it.

:class:`SweepPanel` is an ipywidgets box. Building and displaying it starts nothing (papermill and
nbval run notebooks headless): a sweep starts only when *Run* is pressed, or :meth:`SweepPanel.run`
is called, and editing a control never runs anything by itself. The sweep runs in a background
thread through :func:`lifelab.lab.sweep.run_sweep` (local executor, one trial at a time, each in
a fresh process), so the kernel stays responsive: the progress bar advances per trial and
*Cancel* stops the sweep at once (no new trial starts and the running trial's worker is killed).
A cancelled sweep writes nothing, like every cancelled sweep: a results file is a whole sweep.

When the sweep finishes, the output area shows a table of per-cell medians, the throughput,
latency and stage-share figures of :mod:`lifelab.lab.plots`, and the parquet path. Results go to
``out_dir`` (default: a fresh temporary folder ``lifelab-panel-*``, made at the first run), never
to ``data/results`` unless asked.

CSS classes, stable for browser tests (``.lifelab-sweep-run`` etc.):
    ``lifelab-sweep-panel``: the whole panel.
    ``lifelab-sweep-run``: the Run button.
    ``lifelab-sweep-cancel``: the Cancel button (enabled only while a sweep runs).
    ``lifelab-sweep-progress``: the progress bar (one step per trial).
    ``lifelab-sweep-progress-label``: "trial k/n · ETA 12 s · failed 0".
    ``lifelab-sweep-status``: the status line ("running…", "done: …", "cancelled …", errors).
    ``lifelab-sweep-output``: the output area (table, figures, parquet path).

Programmatic use (tests, scripts)::

    panel = SweepPanel(batch_sizes=[1, 64], ticks=1_000)
    panel.run()            # same as pressing Run; returns the sweep's thread
    panel.wait(timeout=60)
    panel.results          # the results DataFrame (None until a sweep completes)
    panel.path             # its parquet file
"""

from __future__ import annotations

import base64
import html
import io
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from lifelab.lab.spec import expand
from lifelab.lab.sweep import SweepCancelled, TrialHook, run_sweep

if TYPE_CHECKING:
    import polars as pl
    from matplotlib.figure import Figure

__all__ = [
    "BATCH_CHOICES",
    "ENGINE_CHOICES",
    "GC_CHOICES",
    "MEMORY_CHOICES",
    "SweepPanel",
    "cell_medians",
    "sweep_panel",
]

BATCH_CHOICES = (1, 4, 16, 64, 256)
GC_CHOICES = ("default", "off", "freeze", "tuned")
ENGINE_CHOICES = ("compiled", "python")
MEMORY_CHOICES = (1_000, 10_000, 100_000)
# Parameters that name a cell in the panel's table and split the figures' lines.
_PANEL_PARAMS = ("engine", "batch_size", "gc_mode", "memory_capacity")
# Metrics of the table (display.show_table turns the names into headers with units).
_TABLE_METRICS = ("events_per_s", "ticks_per_s", "tick_p99_us", "gc_pause_ms")


class SweepPanel(w.VBox):
    """A batch size × GC mode sweep with Run and Cancel buttons, progress, results and figures.

    Args:
        batch_sizes: Batch sizes selected at first (events per tick follow the batch size:
            ``"batch_size+events_per_tick": [(b, b), …]``, as notebook 03 sweeps them).
        gc_modes: GC modes selected at first (default, off, freeze, tuned).
        engines: Engines selected at first (compiled, python).
        memory_capacities: Active memory capacities selected at first.
        ticks: Measured ticks per trial (a multiple of 10).
        repeats: Runs per cell, interleaved.
        out_dir: Folder the parquet files go into (default: a temporary ``lifelab-panel-*``
            folder made at the first run).
        suite: Suite name written into the results.
        timeout_s: Seconds each trial may take before its worker is killed.
        on_trial: Called as ``on_trial(done, total, row)`` after each trial, in the sweep's
            thread, after the panel has updated its progress (see run_sweep).

    Values outside the usual choices are added to them, so a notebook's parameters always show.

    Attributes:
        results: The last completed sweep's results table (None before one completes).
        path: Its parquet file (None before a sweep completes).
        error: The last error shown in the status line (None after a good start).
        out_dir: Where results go (None until the first run when no folder was given).
        batch_select, gc_select, engine_select, memory_select, ticks_input, repeats_input,
        run_button, cancel_button, progress_bar, progress_label, status_line, output: The
            widgets, for tests and for arranging them differently.
    """

    def __init__(
        self,
        *,
        batch_sizes: Iterable[int] = (1, 64),
        gc_modes: Iterable[str] = ("default", "freeze"),
        engines: Iterable[str] = ("compiled",),
        memory_capacities: Iterable[int] = (10_000,),
        ticks: int = 1_000,
        repeats: int = 1,
        out_dir: str | Path | None = None,
        suite: str = "panel",
        timeout_s: float = 600.0,
        on_trial: TrialHook | None = None,
    ) -> None:
        super().__init__()
        self.add_class("lifelab-sweep-panel")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.suite = suite
        self.timeout_s = timeout_s
        self.on_trial = on_trial
        self.results: pl.DataFrame | None = None
        self.path: Path | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self._lock = threading.Lock()
        self._status = ""

        self.batch_select = _multi("batch sizes", BATCH_CHOICES, batch_sizes)
        self.gc_select = _multi("GC modes", GC_CHOICES, gc_modes)
        self.engine_select = _multi("engines", ENGINE_CHOICES, engines)
        self.memory_select = _multi("memory cap.", MEMORY_CHOICES, memory_capacities)
        self.ticks_input = w.BoundedIntText(
            value=int(ticks), min=10, max=10_000_000, step=1_000, description="ticks"
        )
        self.repeats_input = w.BoundedIntText(
            value=int(repeats), min=1, max=max(20, int(repeats)), description="repeats"
        )
        self.run_button = w.Button(
            description="Run", button_style="primary", icon="play", tooltip="run the sweep"
        )
        self.cancel_button = w.Button(
            description="Cancel", icon="stop", disabled=True, tooltip="stop the sweep"
        )
        self.progress_bar = w.IntProgress(value=0, min=0, max=1, description="trials")
        self.progress_label = w.Label(value="")
        self.status_line = w.HTML()
        self.output = w.Output()
        for widget, name in (
            (self, "panel"),
            (self.run_button, "run"),
            (self.cancel_button, "cancel"),
            (self.progress_bar, "progress"),
            (self.progress_label, "progress-label"),
            (self.status_line, "status"),
            (self.output, "output"),
        ):
            widget.add_class(f"lifelab-sweep-{name}")
        self.run_button.on_click(lambda _button: self.run())
        self.cancel_button.on_click(lambda _button: self.cancel())
        self._set_status("choose a grid, then press Run")
        self.children = [
            w.HBox([self.batch_select, self.gc_select, self.engine_select, self.memory_select]),
            w.HBox([self.ticks_input, self.repeats_input, self.run_button, self.cancel_button]),
            w.HBox([self.progress_bar, self.progress_label]),
            self.status_line,
            self.output,
        ]

    # -- the programmatic API ----------------------------------------------------------------

    @property
    def status(self) -> str:
        """The status line as plain text."""
        return self._status

    @property
    def running(self) -> bool:
        """True while a sweep's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def grid(self) -> tuple[dict[str, Any], int]:
        """The sweep grid and repeats that the controls describe.

        Raises:
            ValueError: A control has no value selected.
        """
        batches = sorted(self.batch_select.value)
        chosen = {
            "batch size": batches,
            "GC mode": list(self.gc_select.value),
            "engine": list(self.engine_select.value),
            "memory capacity": sorted(self.memory_select.value),
        }
        empty = [name for name, values in chosen.items() if not values]
        if empty:
            raise ValueError(f"choose at least one {' and one '.join(empty)}")
        grid = {
            # Events arrive at the rate the batch drains: one linked axis, not two.
            "batch_size+events_per_tick": [(b, b) for b in batches],
            "gc_mode": chosen["GC mode"],
            "engine": chosen["engine"],
            "memory_capacity": chosen["memory capacity"],
            "ticks": int(self.ticks_input.value),
        }
        return grid, int(self.repeats_input.value)

    def run(self) -> threading.Thread | None:
        """Start a sweep of the chosen grid in a background thread (what *Run* does).

        Returns:
            The sweep's thread; None if nothing started (a sweep is already running, or the
            selection is invalid: the status line says why).
        """
        with self._lock:
            if self.running:
                return None
            try:
                grid, repeats = self.grid()
                total = len(expand(grid, repeats=repeats, base={"timeout_s": self.timeout_s}))
            except (ValueError, TypeError) as exc:
                self.error = str(exc)
                self._set_status(f"error: {exc}")
                return None
            if self.out_dir is None:
                self.out_dir = Path(tempfile.mkdtemp(prefix="lifelab-panel-"))
            self.error = None
            self._cancel = threading.Event()
            self.run_button.disabled = True
            self.cancel_button.disabled = False
            self.progress_bar.bar_style = "info"
            self.progress_bar.max = total
            self.progress_bar.value = 0
            self.progress_label.value = f"trial 0/{total} · ETA … · failed 0"
            self.output.outputs = ()
            self._set_status(f"running… {total} trials into {self.out_dir}")
            self._thread = threading.Thread(
                target=self._work,
                args=(grid, repeats, total, self._cancel),
                name="lifelab-sweep-panel",
                daemon=True,
            )
            self._thread.start()
            return self._thread

    def cancel(self) -> None:
        """Stop the running sweep (what *Cancel* does): no new trial, the running one killed."""
        if self._cancel is not None and self.running:
            self._cancel.set()
            self.cancel_button.disabled = True
            self._set_status("cancelling…")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running sweep, if any; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    # -- the sweep thread ---------------------------------------------------------------------

    def _work(
        self, grid: dict[str, Any], repeats: int, total: int, cancel: threading.Event
    ) -> None:
        t0 = time.perf_counter()
        failed = 0

        def progress(done: int, planned: int, row: dict[str, Any]) -> None:
            nonlocal failed
            failed += row["status"] != "ok"
            # ETA from the mean time per trial so far (process start and warm-up included).
            eta_s = (time.perf_counter() - t0) / done * (planned - done)
            self.progress_bar.value = done
            self.progress_label.value = (
                f"trial {done}/{planned} · ETA {_seconds(eta_s)} · failed {failed}"
            )
            if self.on_trial is not None:
                self.on_trial(done, planned, row)

        # Everything is caught: an exception escaping a thread would print a traceback into
        # whichever notebook cell runs next; the status line is where the panel reports.
        try:
            df = run_sweep(
                grid,
                repeats=repeats,
                executor="local",
                suite=self.suite,
                out=self.out_dir,
                base={"timeout_s": self.timeout_s},
                progress=False,
                cancel=cancel,
                on_trial=progress,
            )
        except SweepCancelled as exc:
            self.progress_bar.bar_style = "warning"
            self._set_status(f"cancelled after {exc.completed}/{exc.total} trials; nothing written")
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.progress_bar.bar_style = "danger"
            self._set_status(f"error: {self.error}")
        else:
            self.results = df
            assert self.out_dir is not None  # set by run()
            self.path = self.out_dir / f"{df['sweep_id'][0]}.parquet"
            elapsed_s = time.perf_counter() - t0
            self._set_status("rendering the table and figures…")
            self._show(df, self.path)
            failures = df.height - df["status"].to_list().count("ok")
            self.progress_bar.bar_style = "success" if not failures else "warning"
            note = f", {failures} failed (see the 'error' column)" if failures else ""
            self._set_status(f"done: {df.height} trials in {elapsed_s:.1f} s{note}")
        finally:
            self.run_button.disabled = False
            self.cancel_button.disabled = True

    def _show(self, df: pl.DataFrame, path: Path) -> None:
        """The table, the figures and the path, appended to the output area."""
        # Outputs are appended as display_data dicts rather than through ``with self.output``:
        # that context manager follows the kernel's current request, which belongs to the main
        # thread, not to this one.
        from lifelab.lab import plots
        from lifelab.lab.display import show_table

        outputs: list[dict[str, Any]] = []
        try:
            table = show_table(cell_medians(df), caption="median per cell (n: ok trials)")
            outputs.append(_data({"text/html": table._repr_html_(), "text/plain": repr(table)}))
        except ValueError as exc:
            outputs.append(_text(f"no table: {exc}\n"))

        varying = [c for c in _PANEL_PARAMS if df[c].n_unique() > 1]
        by_x = [c for c in varying if c != "batch_size"] or None
        figures = (
            ("throughput", lambda: plots.throughput_vs_batch(df, metric="events_per_s", by=by_x)),
            ("latency", lambda: plots.latency_percentiles(df, by=by_x, x="batch_size")),
            ("stage shares", lambda: plots.stage_shares(df, by=varying or None)),
        )
        for name, make in figures:
            try:
                fig = make()
            except ValueError as exc:  # e.g. every trial failed: say so instead of a figure
                outputs.append(_text(f"no {name} figure: {exc}\n"))
                continue
            outputs.append(_figure_data(fig))
        outputs.append(_text(f"results: {path}\n"))
        self.output.outputs = tuple(outputs)

    def _set_status(self, text: str) -> None:
        self._status = text
        self.status_line.value = f"<span style='white-space: pre-wrap'>{html.escape(text)}</span>"


def sweep_panel(**defaults: Any) -> SweepPanel:
    """``SweepPanel(**defaults)``: a sweep panel with these controls selected at first."""
    return SweepPanel(**defaults)


def cell_medians(df: pl.DataFrame) -> pl.DataFrame:
    """One row per cell of a results table: its "ok" trial count and median metrics.

    Columns: engine, batch_size, gc_mode, memory_capacity, n, events_per_s, ticks_per_s,
    tick_p99_us, gc_pause_ms (:func:`lifelab.lab.display.show_table` rounds them for display).

    Raises:
        ValueError: No trial has status "ok".
    """
    import polars as pl

    ok = df.filter(pl.col("status") == "ok")
    if ok.height == 0:
        raise ValueError(f"none of the {df.height} trials has status 'ok'")
    keys = list(_PANEL_PARAMS)
    medians = [pl.col(c).median() for c in _TABLE_METRICS]
    return ok.group_by(keys).agg(pl.len().alias("n"), *medians).sort(keys)


# -- helpers ---------------------------------------------------------------------------------


def _multi(description: str, choices: Sequence[Any], chosen: Iterable[Any]) -> w.SelectMultiple:
    """A multi-select of ``choices`` (plus any chosen value not among them), ``chosen`` selected."""
    chosen = tuple(chosen)
    options = list(dict.fromkeys([*choices, *chosen]))
    if all(isinstance(o, int | float) for o in options):
        options.sort()
    return w.SelectMultiple(
        options=options,
        value=chosen,
        rows=min(len(options), 5),
        description=description,
        layout=w.Layout(width="auto"),
    )


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


def _data(data: dict[str, str]) -> dict[str, Any]:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def _text(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _figure_data(fig: Figure) -> dict[str, Any]:
    """A PNG display_data output of ``fig``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    title = fig.get_suptitle() or (fig.axes[0].get_title() if fig.axes else "")
    # lifelab.lab.plots builds figures without pyplot, so there is normally nothing to close; if
    # pyplot does hold this one, close it so it is not drawn again in the cell's own output.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return _data({"image/png": png, "text/plain": f"<Figure: {title}>"})
