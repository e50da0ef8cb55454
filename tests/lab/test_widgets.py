"""The sweep panel: nothing runs until Run; progress, results, figures, cancel and errors."""

import threading

import pytest

from lifelab.lab.results import read_results
from lifelab.lab.sweep import rows_to_frame
from lifelab.lab.widgets import SweepPanel, cell_medians, sweep_panel

WAIT_S = 300  # a generous bound so a hung sweep fails the test instead of hanging it


def tiny_panel(tmp_path, **kwargs):
    """A panel with a one-trial grid writing into tmp_path (ticks=200, batch 64, default GC)."""
    options = {
        "batch_sizes": [64],
        "gc_modes": ["default"],
        "ticks": 200,
        "repeats": 1,
        "out_dir": tmp_path,
        "timeout_s": 120.0,
    }
    return SweepPanel(**{**options, **kwargs})


def image_count(panel):
    return sum("image/png" in out.get("data", {}) for out in panel.output.outputs)


def test_building_the_panel_starts_nothing():
    """A new panel has no results, no thread and no output folder; Run on, Cancel off."""
    threads = threading.active_count()
    panel = sweep_panel(batch_sizes=[1, 64], ticks=1_000)
    assert isinstance(panel, SweepPanel)
    assert panel.results is None and panel.path is None and panel.out_dir is None
    assert not panel.running and panel.wait(0)
    assert threading.active_count() == threads
    assert panel.output.outputs == ()
    assert panel.progress_bar.value == 0
    assert not panel.run_button.disabled and panel.cancel_button.disabled
    assert panel.batch_select.value == (1, 64)
    assert panel.grid() == (
        {
            "batch_size+events_per_tick": [(1, 1), (64, 64)],
            "gc_mode": ["default", "freeze"],
            "engine": ["compiled"],
            "memory_capacity": [10_000],
            "ticks": 1_000,
        },
        1,
    )


def test_css_classes_for_browser_tests():
    """The main widgets carry the documented lifelab-sweep-* classes."""
    panel = SweepPanel()
    for widget, name in (
        (panel, "panel"),
        (panel.run_button, "run"),
        (panel.cancel_button, "cancel"),
        (panel.progress_bar, "progress"),
        (panel.status_line, "status"),
        (panel.output, "output"),
    ):
        assert f"lifelab-sweep-{name}" in widget._dom_classes


def test_changing_controls_runs_nothing(tmp_path):
    """Editing every control leaves the panel idle: no thread, no results, no files."""
    panel = tiny_panel(tmp_path)
    status = panel.status
    panel.batch_select.value = (1, 16)
    panel.gc_select.value = ("off",)
    panel.engine_select.value = ("python",)
    panel.memory_select.value = (1_000,)
    panel.ticks_input.value = 500
    panel.repeats_input.value = 3
    assert not panel.running and panel.results is None
    assert panel.status == status
    assert list(tmp_path.iterdir()) == []


def test_run_shows_progress_table_figures_and_path(tmp_path):
    """Run: buttons swap while running, progress reaches n/n, results and figures are shown."""
    seen = []

    def hook(done, total, row):
        seen.append((done, total, panel.run_button.disabled, panel.cancel_button.disabled))

    panel = tiny_panel(tmp_path, on_trial=hook)
    thread = panel.run()
    assert isinstance(thread, threading.Thread)
    assert panel.run_button.disabled and not panel.cancel_button.disabled
    assert panel.run() is None  # a second Run while running starts nothing
    assert panel.wait(WAIT_S)
    assert seen == [(1, 1, True, False)]
    assert panel.status.startswith("done: 1 trials in "), panel.status
    assert (panel.progress_bar.value, panel.progress_bar.max) == (1, 1)
    assert panel.progress_label.value.startswith("trial 1/1 · ETA ")
    assert panel.progress_label.value.endswith("· failed 0")
    assert panel.results is not None and panel.results.height == 1
    assert panel.results["status"].to_list() == ["ok"]
    assert panel.results["suite"].to_list() == ["panel"]
    assert panel.path is not None and panel.path.parent == tmp_path and panel.path.is_file()
    assert read_results(panel.path).equals(panel.results)
    assert image_count(panel) == 3
    texts = [out.get("text", "") for out in panel.output.outputs]
    assert any(str(panel.path) in text for text in texts)
    assert not panel.run_button.disabled and panel.cancel_button.disabled


def test_cancel_stops_the_sweep_and_writes_nothing(tmp_path):
    """Cancel after the first of four trials: the sweep stops there and says so."""
    panel = tiny_panel(
        tmp_path,
        batch_sizes=[1, 64],
        gc_modes=["default", "off"],
        on_trial=lambda done, total, row: panel.cancel(),
    )
    panel.run_button.click()
    assert panel.wait(WAIT_S)
    assert panel.status == "cancelled after 1/4 trials; nothing written"
    assert (panel.progress_bar.value, panel.progress_bar.max) == (1, 4)
    assert panel.results is None and panel.path is None
    assert list(tmp_path.iterdir()) == []
    assert panel.output.outputs == ()
    assert not panel.run_button.disabled and panel.cancel_button.disabled


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_sizes": []}, "error: choose at least one batch size"),
        ({"gc_modes": [], "engines": []}, "error: choose at least one GC mode and one engine"),
        ({"ticks": 205}, "multiple of 10"),
    ],
)
def test_a_bad_selection_is_reported_and_starts_nothing(tmp_path, kwargs, message):
    """An empty selection or an invalid value shows in the status line; nothing runs."""
    panel = tiny_panel(tmp_path, **kwargs)
    assert panel.run() is None
    panel.run_button.click()
    assert message in panel.status and panel.status.startswith("error: ")
    assert panel.error is not None
    assert not panel.running and panel.results is None
    assert not panel.run_button.disabled and panel.cancel_button.disabled
    assert list(tmp_path.iterdir()) == []


def test_an_error_during_the_sweep_lands_in_the_status(tmp_path):
    """An exception in the sweep thread becomes the status line, not a traceback."""

    def hook(done, total, row):
        raise RuntimeError("boom")

    panel = tiny_panel(tmp_path, on_trial=hook)
    panel.run()
    assert panel.wait(WAIT_S)
    assert panel.status == "error: RuntimeError: boom"
    assert panel.progress_bar.bar_style == "danger"
    assert panel.results is None
    assert not panel.run_button.disabled and panel.cancel_button.disabled


def test_cell_medians_one_row_per_cell():
    """The table has one row per cell: its count of ok trials and its medians."""
    rows = [
        {"batch_size": 1, "gc_mode": "off", "engine": "compiled", "memory_capacity": 10,
         "status": "ok", "events_per_s": 1000.4, "ticks_per_s": 10.6, "tick_p99_us": 1.26,
         "gc_pause_ms": 0.123},
        {"batch_size": 1, "gc_mode": "off", "engine": "compiled", "memory_capacity": 10,
         "status": "ok", "events_per_s": 3000.4, "ticks_per_s": 30.6, "tick_p99_us": 3.26,
         "gc_pause_ms": 0.323},
        {"batch_size": 1, "gc_mode": "off", "engine": "compiled", "memory_capacity": 10,
         "status": "failed"},
        {"batch_size": 64, "gc_mode": "off", "engine": "compiled", "memory_capacity": 10,
         "status": "ok", "events_per_s": 5.0, "ticks_per_s": 1.0, "tick_p99_us": 9.0,
         "gc_pause_ms": 0.0},
    ]  # fmt: skip
    table = cell_medians(rows_to_frame(rows))
    assert table.columns == [
        "engine", "batch_size", "gc_mode", "memory_capacity", "n",
        "events_per_s", "ticks_per_s", "tick_p99_us", "gc_pause_ms",
    ]  # fmt: skip
    assert table.select("engine", "batch_size", "gc_mode", "memory_capacity", "n").rows() == [
        ("compiled", 1, "off", 10, 2),
        ("compiled", 64, "off", 10, 1),
    ]
    assert table["events_per_s"].to_list() == pytest.approx([2000.4, 5.0])
    assert table["ticks_per_s"].to_list() == pytest.approx([20.6, 1.0])
    assert table["tick_p99_us"].to_list() == pytest.approx([2.26, 9.0])
    assert table["gc_pause_ms"].to_list() == pytest.approx([0.223, 0.0])
    with pytest.raises(ValueError, match="status 'ok'"):
        cell_medians(rows_to_frame(rows[2:3]))
