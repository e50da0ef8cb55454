"""Notebooks and experiments: parameters tags, clean outputs, papermill injection, smoke runs."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from lifelab.lab.experiment import list_experiments, run_experiment

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_eight_notebooks():
    """The eight notebooks of the performance documentation are present."""
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_first(path):
    """Exactly one code cell is tagged 'parameters', and it is the first code cell."""
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c["metadata"].get("tags", [])]
    assert tagged == [0]
    source = "".join(code[0]["source"])
    assert "RESULTS_DIR = None" in source and "RUN_DIR = None" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_hold_no_machine_paths(path):
    """No stored output names a home, temp or checkout path of some machine."""
    text = json.dumps([c.get("outputs", []) for c in _load(path)["cells"]])
    assert not re.search(r"/(work|home|tmp|root|Users)/", text), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_interactive_flag(path):
    """Controls show whenever a notebook is opened: no flag hides them (issue 14)."""
    for cell in _load(path)["cells"]:
        assert "INTERACTIVE" not in "".join(cell["source"]), path.name


@pytest.mark.parametrize(
    ("name", "widget"),
    [("01_tour.ipynb", "Dashboard("), ("03_sweep_batch_gc.ipynb", "SweepPanel(")],
)
def test_workbench_widget_is_shown_by_a_code_cell(name, widget):
    """The tour shows the live dashboard and 03 the sweep panel, as a cell's value (displayed)."""
    cells = [c for c in _load(ROOT / "notebooks" / name)["cells"] if c["cell_type"] == "code"]
    shown = [c for c in cells if widget in "".join(c["source"])]
    assert shown, f"{name} never builds {widget[:-1]}"
    # A cell's value is displayed when its last statement is an expression (the widget itself
    # or the name it was bound to).
    ends_shown = [isinstance(ast.parse("".join(c["source"])).body[-1], ast.Expr) for c in shown]
    assert any(ends_shown), f"{name} builds {widget[:-1]} but no cell ends by showing it"


def _scratch_project(tmp_path: Path) -> Path:
    """A copy of the notebooks and experiments in a throwaway project root."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    (tmp_path / "data").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    return tmp_path


def _output_text(notebook: Path) -> str:
    cells = _load(notebook)["cells"]
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.slow
def test_parameter_injection_changes_the_outcome(tmp_path):
    """The tour run with TICKS=200 and TICKS=400 reports 200 and 400 ticks respectively."""
    root = _scratch_project(tmp_path)
    texts = {}
    for ticks in (200, 400):
        record = run_experiment(
            root / "experiments" / "tour.toml", {"TICKS": ticks, "LIVE_SECONDS": 0.05}, root=root
        )
        texts[ticks] = _output_text(Path(record["notebook"]))
    assert "'ticks': 200" in texts[200] and "'ticks': 400" not in texts[200]
    assert "'ticks': 400" in texts[400]


@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in list_experiments(ROOT)])
def test_every_experiment_smoke_runs(tmp_path, name):
    """Each experiment file runs headless with its [smoke] parameters."""
    root = _scratch_project(tmp_path)
    record = run_experiment(root / "experiments" / f"{name}.toml", smoke=True, root=root)
    assert record["status"] == "ok"
    assert Path(record["notebook"]).is_file()
    assert record["cell_durations_s"]
