"""Tables on disk: one versioned parquet writer and reader, and the results tables of sweeps.

Every table the notebooks and ``lifelab report`` read is written by :func:`write_table` and read
by :func:`read_table`. Its parquet key-value metadata names what the table is and the version of
that kind's columns (``lifelab_table`` and ``lifelab_table_version``), beside the writer's own keys
(suite, question, environment…). Writers never overwrite: an existing path is refused unless the
caller passes ``replace=True`` (a fixed-name table that holds "the newest measurement", such as an
ablation), and even then only a table of the same kind, or an unversioned one, is replaced.

Older files stay readable. Before the common keys, results tables carried their version under
``lifelab_results_schema`` and ablation tables under ``lifelab_ablation``: those keys are read as
kind ``results`` and ``ablation``. Tables written without any (the "plain" tables of notebooks 04
and 05 and of the targets, e.g. the committed ``data/results/memory_scaling/*.parquet``) read as
kind ``plain``, version 0. Each kind's own reader upgrades the versions it knows.

Results tables (``data/results/<suite>/<sweep_id>.parquet``, kind ``results``) have exactly the
columns of :mod:`lifelab.lab.schema`; their metadata also keeps the version under
``lifelab_results_schema``, with the suite and the sweep id. :func:`read_results` checks the
version and loads every version it knows (one loader each, upgrading to the current columns: see
the history in :mod:`lifelab.lab.schema`) and refuses newer or unknown ones. :func:`load_results`
merges tables and, like pyperf, never mixes rows measured on different machines or Pythons unless
told to.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.env import CHECKED_ENVIRONMENT
from lifelab.lab.schema import METADATA_KEY, RESULTS_SCHEMA_VERSION, polars_schema

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "DEFAULT_RESULTS_ROOT",
    "KIND_KEY",
    "PLAIN",
    "RESULTS_KIND",
    "VERSION_KEY",
    "ResultsExistsError",
    "ResultsSchemaError",
    "Table",
    "load_results",
    "read_metadata",
    "read_results",
    "read_table",
    "results_size",
    "table_files",
    "validate_results",
    "write_results",
    "write_table",
]

DEFAULT_RESULTS_ROOT = Path("data/results")
# Experiments run at three sizes. Full-size tables live in <root>/<suite>/ (the committed
# performance record); quick runs (make run) and smoke runs (the tests) write to
# <root>/quick/<suite>/ and <root>/smoke/<suite>/, so a quick run never replaces a full table.
SIZES = ("full", "quick", "smoke")
STATUSES = ("ok", "failed")

KIND_KEY = "lifelab_table"  # what a table is: "results", "ablation", "memory_scaling"…
VERSION_KEY = "lifelab_table_version"  # the version of that kind's columns, an integer >= 1
PLAIN = "plain"  # the kind of a table written with no kind (before write_table): version 0
RESULTS_KIND = "results"
# Keys that held a table's version before the common keys, and the kind each one means.
_LEGACY_VERSION_KEYS = {METADATA_KEY: RESULTS_KIND, "lifelab_ablation": "ablation"}


class ResultsSchemaError(LifelabError, ValueError):
    """A file is not a lifelab table of the kind asked for, has an unknown version, or has the
    wrong columns."""


class ResultsExistsError(LifelabError, FileExistsError):
    """A table already exists at the path a writer would use (tables are never overwritten)."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table read from disk: its rows as stored, its kind and version, and the writer's keys.

    ``metadata`` holds the parquet key-value metadata less the kind and version keys and
    parquet's own (``ARROW:*``) ones: e.g. ``suite`` and ``sweep_id``, or ``question``.
    """

    data: pl.DataFrame
    kind: str
    version: int
    metadata: dict[str, str]


def write_table(
    df: pl.DataFrame,
    path: str | os.PathLike[str],
    *,
    kind: str,
    version: int,
    metadata: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Path:
    """Write ``df`` to a new parquet file with its kind and schema version; return the path.

    Parents are created. The file appears whole or not at all (written beside it, then linked
    or renamed into place). ``metadata`` adds string key-values (e.g. ``question``).

    Args:
        kind: What the table is (a short name such as ``"ablation"``); not ``"plain"``.
        version: The version of this kind's columns, >= 1; bump it when the columns change and
            teach the kind's reader to upgrade the older version.
        replace: Replace an existing table of the same kind (or an unversioned one) instead of
            refusing: for fixed-name tables that hold the newest measurement of something.

    Raises:
        ResultsExistsError: ``path`` exists (and ``replace`` is false, or it holds another kind
            of table).
        ResultsSchemaError: A bad kind, version or metadata key.
    """
    path = Path(path)
    if not kind or kind == PLAIN or not isinstance(kind, str):
        raise ResultsSchemaError(
            f"kind must be a non-empty name other than {PLAIN!r}, got {kind!r}"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultsSchemaError(f"version must be an integer >= 1, got {version!r}")
    extra = dict(metadata or {})
    reserved = [k for k in extra if k in (KIND_KEY, VERSION_KEY) or k.startswith("ARROW:")]
    if reserved:
        raise ResultsSchemaError(f"metadata keys {reserved} are reserved for the table format")
    bad = [k for k, v in extra.items() if not isinstance(v, str)]
    if bad:
        raise ResultsSchemaError(f"metadata values must be strings; not for {bad}")
    if path.exists():
        if not replace:
            raise ResultsExistsError(
                f"{path} already exists; tables are never overwritten: pick another path (or "
                "pass replace=True for a table that holds the newest measurement)"
            )
        old_kind = _kind_and_version(read_metadata(path), path)[0]
        if old_kind not in (kind, PLAIN):
            raise ResultsExistsError(
                f"{path} holds a {old_kind!r} table: replace=True replaces only a {kind!r} table "
                "or an unversioned one; pick another path"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.write_parquet(tmp, metadata={KIND_KEY: kind, VERSION_KEY: str(version), **extra})
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def read_table(
    path: str | os.PathLike[str], *, kind: str | None = None, max_version: int | None = None
) -> Table:
    """Read a table written by :func:`write_table`, or an older one (see the module docstring).

    The rows come back as stored: upgrading an older version is the kind's own reader's work
    (e.g. :func:`read_results`). With ``kind``, a table of another kind is refused (an unversioned
    one is accepted, as version 0); with ``max_version``, so is a newer version.

    Raises:
        FileNotFoundError: No file at ``path``.
        ResultsSchemaError: Not a parquet file, corrupt, another kind, or too new a version.
    """
    import polars as pl
    from polars.exceptions import PanicException

    meta = read_metadata(path)
    found, version = _kind_and_version(meta, path)
    if kind is not None and found not in (kind, PLAIN):
        raise ResultsSchemaError(f"{path} is a {found!r} table, not a {kind!r} table")
    if max_version is not None and version > max_version:
        raise ResultsSchemaError(
            f"{path} is a {found!r} table of version {version}, newer than this lifelab reads "
            f"(up to {max_version}): upgrade lifelab to read it"
        )
    try:
        data = pl.read_parquet(path)
    except FileNotFoundError:
        raise
    except (Exception, PanicException) as exc:  # corrupt pages pass the metadata check
        raise ResultsSchemaError(f"{path}: cannot read the table (corrupt file?): {exc}") from exc
    own = {KIND_KEY, VERSION_KEY}
    extra = {k: v for k, v in meta.items() if k not in own and not k.startswith("ARROW:")}
    return Table(data, found, version, extra)


def _kind_and_version(meta: Mapping[str, str], path: object) -> tuple[str, int]:
    """A table's kind and version from its metadata: the common keys, a legacy key, or plain."""
    if KIND_KEY in meta:
        kind, text = meta[KIND_KEY], meta.get(VERSION_KEY)
    else:
        legacy = next((k for k in _LEGACY_VERSION_KEYS if k in meta), None)
        if legacy is None:
            return PLAIN, 0
        kind, text = _LEGACY_VERSION_KEYS[legacy], meta[legacy]
    try:
        return kind, int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ResultsSchemaError(f"{path}: unknown {kind} schema version {text!r}") from None


def _link_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path``, refusing an existing ``path`` atomically."""
    # link() refuses an existing target atomically, closing the race a check leaves open.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ResultsExistsError(
            f"{path} already exists; tables are never overwritten: pick another path"
        ) from None
    except OSError:
        # A file system without hard links: fall back to a checked rename.
        if path.exists():
            raise ResultsExistsError(f"{path} already exists; pick another path") from None
        os.rename(tmp, path)


def validate_results(df: pl.DataFrame, *, where: str = "results table") -> pl.DataFrame:
    """Check columns, dtypes and a few ranges against the schema; return df in schema order."""
    import polars as pl

    expected = polars_schema()
    got = df.schema
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    wrong = [
        f"{name}: {got[name]} (expected {dtype})"
        for name, dtype in expected.items()
        if name in got and got[name] != dtype
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        if wrong:
            parts.append(f"wrong dtypes {wrong}")
        raise ResultsSchemaError(
            f"{where} does not match results schema version {RESULTS_SCHEMA_VERSION}: "
            + "; ".join(parts)
        )
    df = df.select(list(expected))
    bad_status = df.filter(~pl.col("status").is_in(STATUSES) | pl.col("status").is_null())
    if bad_status.height:
        raise ResultsSchemaError(
            f"{where}: status must be one of {list(STATUSES)}, got "
            f"{sorted(set(map(str, bad_status['status'].to_list())))}"
        )
    ok = df.filter(pl.col("status") == "ok")
    rates = ok["ticks_per_s"].to_list()
    if any(r is None or not math.isfinite(r) or r <= 0 for r in rates):
        raise ResultsSchemaError(f"{where}: rows with status ok must have ticks_per_s > 0")
    if df.filter(pl.col("repeat") < 0).height:
        raise ResultsSchemaError(f"{where}: repeat must be >= 0")
    return df


def write_results(
    df: pl.DataFrame, path: str | os.PathLike[str], *, suite: str, sweep_id: str
) -> Path:
    """Write a results table to a new parquet file (parents created) and return its path.

    Raises:
        ResultsExistsError: ``path`` exists (results are a record: never overwritten).
        ResultsSchemaError: ``df`` does not have the schema's columns and dtypes.
    """
    path = Path(path)
    df = validate_results(df, where=f"the table for {path}")
    if path.exists():
        raise ResultsExistsError(
            f"{path} already exists; results are never overwritten: pick another path"
        )
    # The legacy key stays beside the common ones, so lifelab 0.1 still reads new sweeps.
    metadata = {METADATA_KEY: str(RESULTS_SCHEMA_VERSION), "suite": suite, "sweep_id": sweep_id}
    return write_table(
        df, path, kind=RESULTS_KIND, version=RESULTS_SCHEMA_VERSION, metadata=metadata
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The parquet key-value metadata of a table file (kind, version and the writer's keys)."""
    import polars as pl
    from polars.exceptions import PanicException

    try:
        return dict(pl.read_parquet_metadata(path))
    except FileNotFoundError:
        raise
    # polars raises ComputeError & co. for a file that is not parquet, and a Rust panic (a
    # BaseException) for some corrupt ones: either way the file is not a table we can read.
    except (Exception, PanicException) as exc:
        raise ResultsSchemaError(f"{path} is not a parquet file: {exc}") from exc


def read_results(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read one results table, checking its schema version, columns and dtypes.

    Raises:
        ResultsSchemaError: Not a results table, a newer or unknown schema version, or wrong
            columns.
    """
    table = read_table(path)
    if table.kind != RESULTS_KIND:
        what = "no version in its parquet metadata" if table.kind == PLAIN else table.kind
        raise ResultsSchemaError(
            f"{path} is not a lifelab results table ({what}; results tables carry "
            f"{KIND_KEY!r} = {RESULTS_KIND!r} or the older {METADATA_KEY!r})"
        )
    version = table.version
    if version > RESULTS_SCHEMA_VERSION:
        raise ResultsSchemaError(
            f"{path} has results schema version {version}, newer than this lifelab reads "
            f"(up to {RESULTS_SCHEMA_VERSION}): upgrade lifelab to read it"
        )
    loader = _LOADERS.get(version)
    if loader is None:
        raise ResultsSchemaError(
            f"{path}: unknown results schema version {version} (known: {sorted(_LOADERS)})"
        )
    return validate_results(loader(table.data, Path(path)), where=str(path))


def _load_v1(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Version 1 had no ``engine`` column: its trials all ran the Python engine."""
    import polars as pl

    if "engine" in df.columns:
        raise ResultsSchemaError(
            f"{path} says results schema version 1 but has an 'engine' column (version 2): "
            "its metadata is wrong"
        )
    return df.with_columns(pl.lit("python", pl.String).alias("engine"))


def _load_v2(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    return df


# One loader per schema version ever written; a new version adds a loader that upgrades.
_LOADERS: dict[int, Callable[[pl.DataFrame, Path], Any]] = {1: _load_v1, 2: _load_v2}


def results_size(root: str | os.PathLike[str]) -> str:
    """The size of the tables under ``root``: "quick" or "smoke" for those folders, else "full"."""
    name = Path(root).name
    return name if name in SIZES else "full"


def table_files(root: str | os.PathLike[str], pattern: str = "*.parquet") -> list[Path]:
    """The tables under ``root`` of ``root``'s own size, sorted by path.

    Names starting with "." are a writer's temporary files (or hidden folders) and are left
    out, and so are the ``quick/`` and ``smoke/`` folders of a full-size root: each reader sees
    one size, never quick rows pooled with full ones.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.rglob(pattern)):
        parts = path.relative_to(base).parts
        if any(part.startswith(".") for part in parts) or parts[0] in SIZES:
            continue
        out.append(path)
    return out


def load_results(
    root: str | os.PathLike[str] = DEFAULT_RESULTS_ROOT,
    *,
    suite: str | None = None,
    match_environment: bool = True,
) -> pl.DataFrame:
    """Every results table under ``root`` (or ``root/<suite>``), concatenated, oldest first.

    With ``match_environment`` only rows whose checked environment (cpu_model, python_version)
    equals the most recent table's are kept — timings from different machines or Pythons are
    not comparable — and a warning says what was left out. Parquet files without the results
    metadata (other tables) are skipped with a warning; results tables of a newer or unknown
    schema version raise :class:`ResultsSchemaError`, as in :func:`read_results`.
    """
    import polars as pl

    base = Path(root) if suite is None else Path(root) / suite
    files = table_files(base)
    tables = []
    foreign = []
    for path in files:
        if _kind_and_version(read_metadata(path), path)[0] != RESULTS_KIND:
            foreign.append(str(path))  # some other table (ablation, plain…): not a sweep
            continue
        df = read_results(path)
        if suite is not None:
            df = df.filter(pl.col("suite") == suite)
        latest = df["started_at"].max()
        tables.append((latest is None, latest, path.stat().st_mtime, path, df))
    if foreign:
        warnings.warn(
            f"load_results skipped {len(foreign)} parquet file(s) that are not lifelab results "
            f"tables (no {KIND_KEY!r} = {RESULTS_KIND!r} nor {METADATA_KEY!r} metadata): "
            f"{foreign}",
            stacklevel=2,
        )
    if not tables:
        return pl.DataFrame(schema=polars_schema())
    # Oldest first; a table without timestamps sorts by file time, before timestamped ones.
    tables.sort(key=lambda t: (not t[0], t[1] if t[1] is not None else 0, t[2]))
    frames = [t[4] for t in tables]
    out = pl.concat(frames, how="vertical")
    if not match_environment or out.is_empty():
        return out
    newest = tables[-1][4].sort("started_at", nulls_last=False)
    if newest.is_empty():
        return out
    ref = {c: newest[c][-1] for c in CHECKED_ENVIRONMENT}
    same = pl.lit(True)
    for column, value in ref.items():
        same = same & pl.col(column).eq_missing(pl.lit(value, dtype=pl.String))
    kept = out.filter(same)
    left = out.filter(~same)
    if left.height:
        groups = (
            left.group_by(list(CHECKED_ENVIRONMENT))
            .agg(pl.len().alias("rows"), pl.col("sweep_id").n_unique().alias("sweeps"))
            .sort(list(CHECKED_ENVIRONMENT), nulls_last=True)
        )
        described = "; ".join(
            ", ".join(f"{c}={g[c]!r}" for c in CHECKED_ENVIRONMENT)
            + f" ({g['rows']} rows, {g['sweeps']} sweeps)"
            for g in groups.iter_rows(named=True)
        )
        ref_text = ", ".join(f"{c}={v!r}" for c, v in ref.items())
        warnings.warn(
            f"load_results left out {left.height} of {out.height} rows measured in another "
            f"environment than the most recent table's ({ref_text}): {described}. Pass "
            "match_environment=False to keep them (timings across machines do not compare).",
            stacklevel=2,
        )
    return kept
