"""Named experiments: a TOML file names a notebook and its parameters; papermill runs it.

An experiment file (``experiments/NAME.toml``)::

    name = "batch_gc_sweep"
    notebook = "notebooks/03_sweep_batch_gc.ipynb"
    suite = "batch_gc"                  # full-size results go to data/results/<suite>/
    description = "ticks/s and p99 latency vs batch size for each GC mode"

    [parameters]                        # quick size: what `make run` uses
    TICKS = 20000
    BATCH_SIZES = [1, 16, 64]

    [full]                              # merged over [parameters] with --full
    TICKS = 200000

    [smoke]                             # merged with --smoke: seconds, for CI
    TICKS = 500

``run_experiment`` executes the notebook headless with papermill, injecting the parameters plus
``RESULTS_DIR`` and ``RUN_DIR``. ``RESULTS_DIR`` is ``data/results/<suite>/`` at full size and
``data/results/quick/<suite>/`` (or ``smoke/``) otherwise, so a quick run never replaces a
full-size table. The executed notebook, the parameters and papermill's per-cell
timings land in ``data/runs/experiments/<name>-<UTC timestamp>/``. Files are read only here, at
the edge, and every path is confined to the project: notebooks under ``notebooks/``, outputs
under ``data/``.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelab.exceptions import LifelabError
from lifelab.lab.results import suite_dir

__all__ = [
    "Experiment",
    "ExperimentError",
    "ExperimentFailed",
    "find_root",
    "list_experiments",
    "load_experiment",
    "run_experiment",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_KEYS = {"name", "notebook", "suite", "description", "parameters", "full", "smoke"}
_RESERVED = {"RESULTS_DIR", "RUN_DIR"}
# Parameters named like paths (any case, one path or a list of them) must stay inside data/.
_PATH_SUFFIXES = ("_DIR", "_PATH", "_FILE", "_DIRS", "_PATHS", "_FILES")
MAX_FILE_BYTES = 64 * 1024


class ExperimentError(LifelabError, ValueError):
    """An experiment file is malformed, unsafe, or names something that does not exist."""


class ExperimentFailed(LifelabError, RuntimeError):
    """A valid experiment's notebook raised while it ran: a failed run (exit 3), not bad input."""


@dataclass(frozen=True, slots=True)
class Experiment:
    """A validated experiment file."""

    name: str
    notebook: Path  # absolute, inside <root>/notebooks
    suite: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    root: Path = field(default_factory=Path.cwd)

    def resolved_parameters(
        self, overrides: dict[str, Any] | None = None, *, full: bool = False, smoke: bool = False
    ) -> dict[str, Any]:
        """[parameters], then [full] or [smoke] if asked, then overrides (checked alike)."""
        if full and smoke:
            raise ExperimentError("choose --full or --smoke, not both")
        params = dict(self.parameters)
        if full:
            params.update(self.full)
        if smoke:
            params.update(self.smoke)
        for key, value in (overrides or {}).items():
            _check_param(key, value, f"override {key}", self.root)
            params[key] = value
        return params


def find_root(start: Path | None = None) -> Path:
    """The lifelab project root (a folder with pyproject.toml and notebooks/), else cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    return here


def load_experiment(path: str | Path, *, root: Path | None = None) -> Experiment:
    """Read and validate an experiment TOML file; ExperimentError names what is wrong."""
    path = Path(path)
    root = (root or find_root(path.parent)).resolve()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExperimentError(f"cannot read experiment file {path}: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ExperimentError(f"{path}: {len(raw)} bytes; experiment files are at most 64 KiB")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, an int of > 4300 digits
        raise ExperimentError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise ExperimentError(f"{path}: not valid TOML (nested too deeply)") from None
    where = str(path)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("name", "notebook", "suite"):
        if not isinstance(data.get(key), str):
            raise ExperimentError(f"{where}: '{key}' must be a string")
    for key in ("name", "suite"):
        if not _NAME.match(data[key]):
            raise ExperimentError(
                f"{where}: {key} {data[key]!r} must be lowercase letters, digits, '_' or '-'"
            )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ExperimentError(f"{where}: 'description' must be a string")
    notebook = _inside(root / data["notebook"], root / "notebooks", f"{where}: notebook")
    if notebook.suffix != ".ipynb" or not _is_file(notebook):
        raise ExperimentError(f"{where}: notebook {data['notebook']!r} is not an existing .ipynb")
    tables = {}
    for key in ("parameters", "full", "smoke"):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise ExperimentError(f"{where}: [{key}] must be a table")
        for name, value in table.items():
            _check_param(name, value, f"{where}: [{key}] {name}", root)
        tables[key] = table
    return Experiment(
        name=data["name"],
        notebook=notebook,
        suite=data["suite"],
        description=description,
        parameters=tables["parameters"],
        full=tables["full"],
        smoke=tables["smoke"],
        source=path,
        root=root,
    )


def _check_param(name: str, value: Any, where: str, root: Path) -> None:
    if not isinstance(name, str) or not _PARAM.match(name):
        raise ExperimentError(f"{where}: parameter names must be identifiers")
    if name in _RESERVED:
        raise ExperimentError(f"{where}: {name} is set by lifelab and cannot be given")
    if not _plain(value):
        raise ExperimentError(
            f"{where}: values must be numbers, strings, booleans or lists of those, got "
            f"{type(value).__name__}"
        )
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        raise ExperimentError(f"{where}: numbers must be finite (nan and inf are refused)")
    if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in items):
        raise ExperimentError(f"{where}: integers must fit in 64 bits")
    if name.upper().endswith(_PATH_SUFFIXES):
        for item in items:
            if isinstance(item, str):
                _inside(root / item, root / "data", where)


def _plain(value: Any) -> bool:
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return len(value) <= 1000 and all(isinstance(v, bool | int | float | str) for v in value)
    return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # e.g. ENAMETOOLONG, which is_file() does not swallow
        return False


def _inside(path: Path, folder: Path, where: str) -> Path:
    try:
        resolved = path.resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop, a name too long
        shown = str(path)[:200]
        raise ExperimentError(f"{where}: {shown!r} is not a usable path ({exc})") from None
    if not resolved.is_relative_to(folder.resolve()):
        raise ExperimentError(f"{where}: {path} is outside {folder} (refused)")
    return resolved


def list_experiments(root: Path | None = None) -> list[Experiment]:
    root = (root or find_root()).resolve()
    return [load_experiment(p, root=root) for p in sorted((root / "experiments").glob("*.toml"))]


def run_experiment(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    full: bool = False,
    smoke: bool = False,
    root: Path | None = None,
    results_dir: str | Path | None = None,
    kernel_name: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Execute an experiment's notebook headless with papermill and record what happened.

    Returns a JSON-ready dict: name, run_dir, notebook (executed copy), parameters, duration_s,
    cell_durations_s, results (parquet files written under the results dir during the run).
    """
    exp = load_experiment(path, root=root)
    params = exp.resolved_parameters(overrides, full=full, smoke=smoke)
    # Every check comes before the first write: a refused run leaves nothing behind.
    size = "full" if full else "smoke" if smoke else "quick"
    # Only a full run writes beside the committed full-size tables; the other sizes get their
    # own folder, so `make run` never replaces a full table.
    default = suite_dir(exp.root / "data" / "results", exp.suite, size)
    out_results = Path(results_dir) if results_dir else default
    out_results = _inside(
        out_results if out_results.is_absolute() else exp.root / out_results,
        exp.root / "data",
        "results_dir",
    )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = exp.root / "data" / "runs" / "experiments" / f"{exp.name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = run_dir.with_name(f"{exp.name}-{stamp}-{suffix}")
    import papermill  # heavy (seconds to import): only once the experiment is valid

    run_dir.mkdir(parents=True)
    injected = {**params, "RESULTS_DIR": str(out_results), "RUN_DIR": str(run_dir)}
    before = _parquet_files(out_results)
    executed = run_dir / exp.notebook.name
    start = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(
            str(exp.notebook),
            str(executed),
            parameters=injected,
            cwd=str(exp.notebook.parent),
            kernel_name=kernel_name,
            progress_bar=progress,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell traceback
        error = f"{type(exc).__name__}: {exc}"
    duration = time.perf_counter() - start
    record = {
        "name": exp.name,
        "suite": exp.suite,
        "source": str(exp.source),
        "notebook": str(executed),
        "run_dir": str(run_dir),
        "parameters": injected,
        "full": full,
        "smoke": smoke,
        "size": size,
        "duration_s": duration,
        "cell_durations_s": _cell_durations(executed),
        "results": sorted(str(p) for p in _parquet_files(out_results) - before),
        "status": "failed" if error else "ok",
        "error": error or "",
    }
    (run_dir / "experiment.json").write_text(json.dumps(record, indent=2) + "\n")
    if error:
        raise ExperimentFailed(f"experiment {exp.name} failed (see {executed}): {error[:2000]}")
    return record


def _parquet_files(folder: Path) -> set[Path]:
    return set(folder.rglob("*.parquet")) if folder.is_dir() else set()


def _cell_durations(notebook: Path) -> list[float | None]:
    """papermill's per-cell execution time, from the executed notebook's metadata."""
    try:
        nb = json.loads(notebook.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            out.append(cell.get("metadata", {}).get("papermill", {}).get("duration"))
    return out
