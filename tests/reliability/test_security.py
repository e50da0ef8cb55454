"""Security: lifelab never executes what it reads, and writes only where it is told to.

- No module under lifelab/ imports pickle-like modules or calls eval/exec/compile/__import__ on
  anything (an AST scan of the source tree; nothing is allow-listed).
- Snapshot, archive, experiment and results loading validate their input (test_bad_input.py and
  test_fuzz.py); here the CLI refuses experiment files and options that point outside data/.
- A Life writes only inside its run directory; importing lifelab writes nothing.
- The Dask executor passes dask's TLS ``security`` settings through (the scheduler itself
  belongs on a trusted network: docs/reliability.md).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lifelab.config import LifeConfig
from lifelab.life.loop import Life

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lifelab"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# Modules whose loaders run code found in the data they read.
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "pickletools",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "joblib",
    "jsonpickle",
}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
# Calls that unpickle or execute when given the wrong argument, by attribute name.
UNSAFE_ATTRIBUTES = {"read_pickle", "unsafe_load", "full_load", "system", "popen"}


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    out.append(f"{where}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNSAFE_MODULES:
                out.append(f"{where}:{node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
                out.append(f"{where}:{node.lineno}: {func.id}()")
            elif isinstance(func, ast.Attribute):
                if func.attr in UNSAFE_ATTRIBUTES:
                    out.append(f"{where}:{node.lineno}: .{func.attr}()")
                if func.attr == "load" and _is_numpy(func.value) and not _no_pickle(node):
                    out.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
                if func.attr == "load" and _name(func.value) == "yaml":
                    out.append(f"{where}:{node.lineno}: yaml.load (use safe_load)")
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    out.append(f"{where}:{node.lineno}: a call with shell=True")
            # import_module("pickle") and the like: a module name given as a string
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in UNSAFE_MODULES:
                    out.append(f"{where}:{node.lineno}: {arg.value!r} passed to a call")
        elif (
            isinstance(node, ast.Name)
            and node.id in ("eval", "exec")
            and not isinstance(node.ctx, ast.Store)
        ):
            out.append(f"{where}:{node.lineno}: reference to {node.id}")
    return out


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def _is_numpy(node: ast.AST) -> bool:
    return _name(node) in ("np", "numpy")


def _no_pickle(call: ast.Call) -> bool:
    return any(
        kw.arg == "allow_pickle" and isinstance(kw.value, ast.Constant) and kw.value.value is False
        for kw in call.keywords
    )


def test_the_scan_sees_the_whole_package():
    """The scan covers every module (loaders included), so an empty result means something."""
    names = {p.relative_to(PACKAGE).as_posix() for p in SOURCES}
    for module in (
        "store/snapshot.py",
        "memory/sqlite_archive.py",
        "memory/segment_archive.py",
        "lab/experiment.py",
        "lab/results.py",
        "cli.py",
    ):
        assert module in names


def test_no_module_unpickles_or_evaluates_anything():
    """No pickle/marshal/shelve import, no eval/exec/compile/__import__, no unsafe loaders."""
    problems = [problem for path in SOURCES for problem in _problems(path)]
    assert problems == []


def test_the_scan_catches_what_it_looks_for(tmp_path):
    """The scanner itself flags each pattern (so that a pass is not a blind spot)."""
    bad = tmp_path / "lifelab" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import pickle\nfrom marshal import loads\nimport numpy as np\nimport importlib\n"
        "eval('1')\nexec('x = 1')\nnp.load('f.npy')\nimportlib.import_module('shelve')\n"
        "import subprocess\nsubprocess.run('ls', shell=True)\nf = eval\n"
    )
    found = _problems(bad, tmp_path)
    lines = {int(problem.split(":")[1]) for problem in found}
    assert lines == {1, 2, 5, 6, 7, 8, 10, 11}, found


# -- the CLI refuses paths outside the project's data directory ------------------------------------

GOOD_TOML = """
name = "tour"
notebook = "notebooks/01_tour.ipynb"
suite = "tour"
[parameters]
TICKS = 300
"""


@pytest.fixture
def project(tmp_path):
    """A project root inside tmp_path/outer; tmp_path/outer/../escaped is the traversal target."""
    root = tmp_path / "project"
    for folder in ("notebooks", "experiments", "data"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    shutil.copy(ROOT / "notebooks" / "01_tour.ipynb", root / "notebooks")
    return root


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    ("toml", "extra", "fragment"),
    [
        (GOOD_TOML + 'OUT_DIR = "../escaped"\n', [], "outside"),
        (GOOD_TOML + 'out_path = ["data/ok", "../../escaped"]\n', [], "outside"),
        (GOOD_TOML.replace("notebooks/01_tour", "../escaped/x"), [], "outside"),
        (GOOD_TOML, ["-p", "OUT_DIR", "../escaped"], "outside"),
        (GOOD_TOML, ["-p", "RESULTS_DIR", "data/x"], "set by lifelab"),
        (GOOD_TOML, ["--results-dir", "../escaped"], "outside"),
        (GOOD_TOML, ["--results-dir", "/tmp"], "outside"),
    ],
    ids=[
        "toml-out-dir",
        "toml-path-list",
        "toml-notebook",
        "override",
        "reserved-override",
        "results-dir-relative",
        "results-dir-absolute",
    ],
)
def test_experiment_run_refuses_path_traversal(toml, extra, fragment, project):
    """`lifelab experiment run` exits 2 with one error line; nothing is written anywhere."""
    path = project / "experiments" / "x.toml"
    path.write_text(toml)
    outer = project.parent
    before = _files(outer)
    proc = subprocess.run(
        [sys.executable, "-m", "lifelab.cli", "experiment", "run", str(path), *extra, "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert _files(outer) == before  # no run folder under data/runs, nothing escaped
    assert not (outer / "escaped").exists()


# -- writes stay in the run directory --------------------------------------------------------------


def test_a_life_writes_only_inside_its_run_directory(tmp_path, monkeypatch):
    """Snapshots, archive, logs and metrics all land under run_dir; the cwd stays empty."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    run = tmp_path / "run"
    life = Life(
        LifeConfig(seed=2, events_per_tick=3, memory_capacity=20, snapshot_every=25,
                   log_every=5, run_dir=str(run))
    )  # fmt: skip
    life.run(100)
    life.close()
    resumed = Life.resume(run)
    resumed.run(10)
    resumed.close()
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "run"]
    assert {p.name for p in run.iterdir()} <= {
        "run.json",
        "snapshots",
        "archive",
        "logs",
        "metrics",
    }


def test_importing_lifelab_writes_nothing(tmp_path):
    """Importing the package and its modules creates no file (DESIGN §1.9)."""
    code = (
        "import lifelab, lifelab.cli, lifelab.life.loop, lifelab.store.snapshot, "
        "lifelab.memory.sqlite_archive, lifelab.memory.segment_archive, lifelab.lab.experiment, "
        "lifelab.lab.results, lifelab.studies.soak"
    )
    proc = subprocess.run(
        [sys.executable, "-B", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- Dask: TLS settings pass through ---------------------------------------------------------------


class _Sentinel(Exception):
    pass


@pytest.mark.parametrize("scheduler", [None, "tls://scheduler.invalid:8786"])
def test_run_sweep_passes_dask_security_through(scheduler, monkeypatch, tmp_path):
    """The ``security`` object given to run_sweep reaches dask's LocalCluster and Client."""
    distributed = pytest.importorskip("distributed")
    from lifelab.lab.sweep import run_sweep

    seen: dict[str, dict] = {}

    def fake(name):
        def build(*args, **kwargs):
            seen[name] = kwargs
            raise _Sentinel(name)

        return build

    monkeypatch.setattr(distributed, "LocalCluster", fake("LocalCluster"))
    monkeypatch.setattr(distributed, "Client", fake("Client"))
    security = object()
    with pytest.raises(_Sentinel):
        run_sweep(
            {"ticks": 100},
            repeats=1,
            executor="dask",
            scheduler=scheduler,
            out=tmp_path / "r.parquet",
            progress=False,
            security=security,
        )
    name = "LocalCluster" if scheduler is None else "Client"
    assert seen[name]["security"] is security
    assert not (tmp_path / "r.parquet").exists()
