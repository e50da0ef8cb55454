"""Experiment files: validation at the edge, path confinement, papermill execution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lifelab.lab.experiment import (
    ExperimentError,
    ExperimentFailed,
    list_experiments,
    load_experiment,
    run_experiment,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    """A throwaway project root holding a copy of the tour notebook."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    shutil.copy(ROOT / "notebooks" / "01_tour.ipynb", tmp_path / "notebooks")
    return tmp_path


def _write(project: Path, text: str, name: str = "x.toml") -> Path:
    path = project / "experiments" / name
    path.write_text(text)
    return path


GOOD = """
name = "tour"
notebook = "notebooks/01_tour.ipynb"
suite = "tour"
[parameters]
TICKS = 300
SAMPLE_EVERY = 50
LIVE_SECONDS = 0.05
"""


def test_every_shipped_experiment_loads():
    """Each experiments/*.toml of the project validates and names an existing notebook."""
    found = list_experiments(ROOT)
    assert found, "no experiment files"
    for exp in found:
        assert exp.notebook.is_file()
        assert exp.notebook.is_relative_to(ROOT / "notebooks")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("surprise = 1\n" + GOOD, "unknown key"),
        (GOOD.replace('name = "tour"', "name = 3"), "'name' must be a string"),
        (GOOD.replace('suite = "tour"', 'suite = "../x"'), "suite"),
        (GOOD.replace("notebooks/01_tour.ipynb", "../outside.ipynb"), "outside"),
        (GOOD.replace("notebooks/01_tour.ipynb", "notebooks/missing.ipynb"), "not an existing"),
        (GOOD + 'OUT_DIR = "../../etc"\n', "outside"),
        (GOOD + 'RESULTS_DIR = "data/x"\n', "set by lifelab"),
        (GOOD + "NESTED = { a = 1 }\n", "values must be"),
        ("name = [", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_a_reason(project, text, message):
    """Unknown keys, wrong types, unsafe paths and bad TOML are refused by name."""
    with pytest.raises(ExperimentError, match=message):
        load_experiment(_write(project, text), root=project)


def test_overrides_are_checked_like_the_file(project):
    """A -p override with a path outside data/ is refused too."""
    exp = load_experiment(_write(project, GOOD), root=project)
    assert exp.resolved_parameters({"TICKS": 10})["TICKS"] == 10
    with pytest.raises(ExperimentError, match="outside"):
        exp.resolved_parameters({"LOG_DIR": "/tmp"})


def test_full_table_merges_over_parameters(project):
    """--full merges [full] over [parameters]; overrides win over both."""
    exp = load_experiment(_write(project, GOOD + "[full]\nTICKS = 9000\n"), root=project)
    assert exp.resolved_parameters(full=True)["TICKS"] == 9000
    assert exp.resolved_parameters({"TICKS": 5}, full=True)["TICKS"] == 5
    assert exp.resolved_parameters()["TICKS"] == 300


@pytest.mark.slow
def test_run_executes_the_notebook_and_records_timings(project):
    """papermill runs the notebook with the parameters and records per-cell timings."""
    record = run_experiment(_write(project, GOOD), {"SEED": 3}, root=project)
    assert record["status"] == "ok"
    run_dir = Path(record["run_dir"])
    assert run_dir.is_relative_to(project / "data" / "runs" / "experiments")
    saved = json.loads((run_dir / "experiment.json").read_text())
    assert saved["parameters"]["SEED"] == 3 and saved["parameters"]["TICKS"] == 300
    # A quick run writes beside, never over, the full-size tables in data/results/<suite>/.
    assert saved["size"] == "quick"
    assert saved["parameters"]["RESULTS_DIR"] == str(
        project / "data" / "results" / "quick" / "tour"
    )
    executed = json.loads(Path(record["notebook"]).read_text())
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert injected and "SEED = 3" in "".join(injected[0]["source"])
    durations = saved["cell_durations_s"]
    assert durations and all(d is None or d >= 0 for d in durations)


def test_a_notebook_that_raises_is_a_failed_run_not_bad_input(project, capsys):
    """A valid experiment whose notebook raises: ExperimentFailed (a RuntimeError, not a
    ValueError), the record says failed, and ``lifelab experiment run`` exits 3 (not 2)."""
    import nbformat

    from lifelab.cli import main

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    params = nbformat.v4.new_code_cell("SEED = 1\nTICKS = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('boom in cell 2')")]
    nbformat.write(nb, project / "notebooks" / "boom.ipynb")
    toml = 'name = "boom"\nsuite = "boom"\nnotebook = "notebooks/boom.ipynb"\n'
    path = _write(project, toml, "boom.toml")
    with pytest.raises(ExperimentFailed, match="boom in cell 2") as caught:
        run_experiment(path, root=project)
    assert not isinstance(caught.value, ValueError)
    runs = sorted((project / "data" / "runs" / "experiments").glob("boom-*"))
    assert json.loads((runs[-1] / "experiment.json").read_text())["status"] == "failed"
    assert main(["experiment", "run", str(path), "--json"]) == 3
    assert "boom in cell 2" in capsys.readouterr().err
