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

Checksums. polars aborts the interpreter (a panic in its reader threads, which no ``except``
catches) on some corrupt parquet files, and parquet pages carry no checksum of their own. So
:func:`write_table` stores the SHA-256 of the whole file in the file itself, under the key-value
metadata key ``lifelab_sha256`` (64 lowercase hex digits): the table is written with 64 ``0``
characters there, the file is hashed, and the digest overwrites the zeros in place (same length,
so the thrift footer stays valid). Every reader checks it in pure Python, with one read of the
file and one hash, before polars sees a byte (polars then decodes the bytes that were checked,
not a second read): a damaged file is refused with :class:`ResultsSchemaError` ("checksum
mismatch"), never an abort. Copies stay verifiable without a sidecar file. A table without the
key (written before checksums, or by a bare ``write_parquet``) is read as before, unverified
(:attr:`Table.verified` is false); :func:`add_checksum` rewrites one with a checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifelab.exceptions import LifelabError
from lifelab.lab.env import CHECKED_ENVIRONMENT
from lifelab.lab.schema import (
    INSTRUCTION_COLUMNS,
    LOAD_COLUMNS,
    METADATA_KEY,
    RESULTS_SCHEMA_VERSION,
    polars_schema,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CHECKSUM_KEY",
    "DEFAULT_RESULTS_ROOT",
    "KIND_KEY",
    "PLAIN",
    "RESULTS_KIND",
    "VERSION_KEY",
    "ResultsExistsError",
    "ResultsSchemaError",
    "Table",
    "add_checksum",
    "load_results",
    "null_columns",
    "read_metadata",
    "read_results",
    "read_table",
    "results_size",
    "suite_dir",
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

CHECKSUM_KEY = "lifelab_sha256"  # the SHA-256 of the file with this value zeroed, in hex
_DIGEST_LEN = 64
_PLACEHOLDER = b"0" * _DIGEST_LEN
_MAGIC = b"PAR1"
# The checksum's KeyValue entry as parquet's thrift compact protocol writes it: field 1 (key,
# binary: 0x18), its length (a one-byte varint: < 128), the key, field 2 (value, binary: 0x18),
# its length, then the 64 digits and the struct's stop byte. key_value_metadata follows the row
# groups (whose statistics may hold any string) in the footer and only created_by and column
# orders follow it, so the entry is the last match in the file.
_ENTRY = bytes([0x18, len(CHECKSUM_KEY)]) + CHECKSUM_KEY.encode() + bytes([0x18, _DIGEST_LEN])


class ResultsSchemaError(LifelabError, ValueError):
    """A file is not a lifelab table of the kind asked for, has an unknown version, or has the
    wrong columns."""


class ResultsExistsError(LifelabError, FileExistsError):
    """A table already exists at the path a writer would use (tables are never overwritten)."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table read from disk: its rows as stored, its kind and version, and the writer's keys.

    ``metadata`` holds the parquet key-value metadata less the format's own keys (kind, version,
    checksum) and parquet's (``ARROW:*``): e.g. ``suite`` and ``sweep_id``, or ``question``.
    ``verified`` says the file carried a checksum and it matched; a table without one (written
    before checksums) is read unverified.
    """

    data: pl.DataFrame
    kind: str
    version: int
    metadata: dict[str, str]
    verified: bool = False


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
    or renamed into place) and carries its checksum (see the module docstring). ``metadata``
    adds string key-values (e.g. ``question``).

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
    reserved = [
        k for k in extra if k in (KIND_KEY, VERSION_KEY, CHECKSUM_KEY) or k.startswith("ARROW:")
    ]
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
    metadata = {KIND_KEY: kind, VERSION_KEY: str(version), **extra}
    return _write_checksummed(df, path, metadata, replace=replace)


def _write_checksummed(
    df: pl.DataFrame, path: Path, metadata: Mapping[str, str], *, replace: bool
) -> Path:
    """Write ``df`` with ``metadata`` and its checksum beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # The checksum goes last, so that it follows every key a caller chose (see _ENTRY).
        df.write_parquet(tmp, metadata={**metadata, CHECKSUM_KEY: _PLACEHOLDER.decode()})
        with open(tmp, "r+b") as f:
            blob = f.read()
            at = blob.rfind(_ENTRY) + len(_ENTRY)
            if at < len(_ENTRY) or blob[at : at + _DIGEST_LEN] != _PLACEHOLDER:
                raise RuntimeError(  # a polars that frames metadata differently: fail loudly
                    f"{tmp}: the parquet writer did not store {CHECKSUM_KEY!r} as expected"
                )
            f.seek(at)
            f.write(hashlib.sha256(blob).hexdigest().encode())  # the hash of the zeroed file
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def add_checksum(path: str | os.PathLike[str]) -> Path:
    """Rewrite a table without a checksum so that it carries one; return the path.

    The rows and every metadata key and value (kind and version included, or their absence for
    a plain table) are kept; the rewritten file is read back and compared before it replaces
    the old one. A table that already has a valid checksum is left alone.

    Raises:
        ResultsSchemaError: The file is damaged (a checksum that does not match, or not parquet).
    """
    import polars as pl

    path = Path(path)
    blob, meta, verified = _open(path)
    if verified:
        return path
    data = _decode(blob, path)
    keep = {k: v for k, v in meta.items() if not k.startswith("ARROW:")}
    tmp = path.with_name(f".{path.name}.checksummed")
    try:
        _write_checksummed(data, tmp, keep, replace=True)
        back_blob, back_meta, back_verified = _open(tmp)
        back = pl.read_parquet(io.BytesIO(back_blob))
        back_keep = {k: v for k, v in back_meta.items() if k != CHECKSUM_KEY}
        if not (back_verified and back.equals(data) and back.schema == data.schema):
            raise ResultsSchemaError(f"{path}: the rewritten table does not read back the same")
        if {k: v for k, v in back_keep.items() if not k.startswith("ARROW:")} != keep:
            raise ResultsSchemaError(f"{path}: the rewritten table lost metadata")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _open(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, str], bool]:
    """A table file's bytes, checked, and its key-value metadata; and whether it had a checksum.

    The one read of the file: everything after decodes these bytes, so polars never sees bytes
    that were not checked.
    """
    import polars as pl
    from polars.exceptions import PanicException

    blob = Path(path).read_bytes()  # FileNotFoundError passes through
    verified = _verify(blob, path)
    try:
        meta = dict(pl.read_parquet_metadata(io.BytesIO(blob)))
    # polars raises ComputeError & co. for a file that is not parquet, and a Rust panic (a
    # BaseException) for some corrupt ones: either way the file is not a table we can read.
    except (Exception, PanicException) as exc:
        raise ResultsSchemaError(f"{path} is not a parquet file: {exc}") from exc
    return blob, meta, verified


def _verify(blob: bytes, path: object) -> bool:
    """Check the checksum of a table file's bytes (no polars); false if it carries none."""
    if len(blob) < 12 or blob[:4] != _MAGIC or blob[-4:] != _MAGIC:
        raise ResultsSchemaError(f"{path} is not a parquet file (no PAR1 magic at both ends)")
    footer = int.from_bytes(blob[-8:-4], "little")
    if footer > len(blob) - 12:
        raise ResultsSchemaError(
            f"{path} is not a parquet file (footer length {footer} > file size {len(blob)})"
        )
    at = blob.rfind(_ENTRY)
    if at < 0:
        if _damaged_entry(blob):
            raise ResultsSchemaError(
                f"{path}: checksum mismatch (its {CHECKSUM_KEY!r} entry is damaged): the file "
                "is corrupt; restore it (git) or measure again"
            )
        return False
    at += len(_ENTRY)
    stored = blob[at : at + _DIGEST_LEN]
    digest = hashlib.sha256()
    view = memoryview(blob)
    digest.update(view[:at])
    digest.update(_PLACEHOLDER)
    digest.update(view[at + _DIGEST_LEN :])
    if digest.hexdigest().encode() != stored:
        raise ResultsSchemaError(
            f"{path}: checksum mismatch ({CHECKSUM_KEY} {stored[:16]!r}…, the file hashes to "
            f"{digest.hexdigest()[:16]}…): the file is corrupt; restore it (git) or measure again"
        )
    return True


def _damaged_entry(blob: bytes) -> bool:
    """Whether a file holds the checksum entry with a bit or two flipped in its framing or key.

    Without this check such a file would pass for one written before checksums and reach
    polars unchecked. Half of the entry survives a flip or two within the other half; the
    64 hex digits after it tell a damaged entry from a chance match of a half.
    """
    half = len(_ENTRY) // 2
    for part, offset in ((_ENTRY[:half], 0), (_ENTRY[half:], half)):
        start = blob.rfind(part) - offset
        if start < 0:
            continue
        window = blob[start : start + len(_ENTRY)]
        value = blob[start + len(_ENTRY) : start + len(_ENTRY) + _DIGEST_LEN]
        flipped = sum((a ^ b).bit_count() for a, b in zip(window, _ENTRY, strict=False))
        if flipped <= 2 and len(value) == _DIGEST_LEN and _is_hex(value):
            return True
    return False


def _is_hex(value: bytes) -> bool:
    return all(c in b"0123456789abcdef" for c in value)


def _decode(blob: bytes, path: object) -> pl.DataFrame:
    """The rows of a checked table file's bytes."""
    import polars as pl
    from polars.exceptions import PanicException

    try:
        return pl.read_parquet(io.BytesIO(blob))
    except (Exception, PanicException) as exc:  # corrupt pages pass the metadata check
        raise ResultsSchemaError(f"{path}: cannot read the table (corrupt file?): {exc}") from exc


def read_table(
    path: str | os.PathLike[str], *, kind: str | None = None, max_version: int | None = None
) -> Table:
    """Read a table written by :func:`write_table`, or an older one (see the module docstring).

    The rows come back as stored: upgrading an older version is the kind's own reader's work
    (e.g. :func:`read_results`). With ``kind``, a table of another kind is refused (an unversioned
    one is accepted, as version 0); with ``max_version``, so is a newer version. The checksum is
    checked before anything is decoded; a table without one is read unverified, with no warning
    (``verified`` is false).

    Raises:
        FileNotFoundError: No file at ``path``.
        ResultsSchemaError: Not a parquet file, a checksum mismatch, corrupt, another kind, or
            too new a version.
    """
    return _table(*_open(path), path, kind=kind, max_version=max_version)


def _table(
    blob: bytes,
    meta: dict[str, str],
    verified: bool,
    path: object,
    *,
    kind: str | None = None,
    max_version: int | None = None,
) -> Table:
    found, version = _kind_and_version(meta, path)
    if kind is not None and found not in (kind, PLAIN):
        raise ResultsSchemaError(f"{path} is a {found!r} table, not a {kind!r} table")
    if max_version is not None and version > max_version:
        raise ResultsSchemaError(
            f"{path} is a {found!r} table of version {version}, newer than this lifelab reads "
            f"(up to {max_version}): upgrade lifelab to read it"
        )
    data = _decode(blob, path)
    own = {KIND_KEY, VERSION_KEY, CHECKSUM_KEY}
    extra = {k: v for k, v in meta.items() if k not in own and not k.startswith("ARROW:")}
    return Table(data, found, version, extra, verified)


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
    """The parquet key-value metadata of a table file, all of it (kind, version, checksum and
    the writer's keys), after checking the checksum.

    Raises:
        ResultsSchemaError: Not a parquet file, or a checksum mismatch.
    """
    return _open(path)[1]


def read_results(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read one results table, checking its schema version, columns and dtypes.

    Raises:
        ResultsSchemaError: Not a results table, a newer or unknown schema version, or wrong
            columns.
    """
    return _results(read_table(path), path)


def _results(table: Table, path: str | os.PathLike[str]) -> pl.DataFrame:
    """A results table's rows, upgraded to the current version and validated."""
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
    return _load_v2(df.with_columns(pl.lit("python", pl.String).alias("engine")), path)


def _load_v2(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Versions 1 and 2 had no load columns: the load was not measured, so they are null."""
    return _load_v3(null_columns(df, LOAD_COLUMNS), path)


def _load_v3(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Versions 1 to 3 had no instruction columns: no trial was counted, so they are null."""
    return null_columns(df, INSTRUCTION_COLUMNS)


def _load_v4(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    return df


def null_columns(df: pl.DataFrame, columns: tuple[tuple[str, str], ...]) -> pl.DataFrame:
    """``df`` with each of ``columns`` (name, polars dtype name) it lacks added as nulls of its
    dtype: how a reader upgrades a table written before those columns existed."""
    import polars as pl

    absent = [(name, dtype) for name, dtype in columns if name not in df.columns]
    return df.with_columns(pl.lit(None, getattr(pl, dtype)).alias(name) for name, dtype in absent)


# One loader per schema version ever written; a new version adds a loader that upgrades.
_LOADERS: dict[int, Callable[[pl.DataFrame, Path], Any]] = {
    1: _load_v1,
    2: _load_v2,
    3: _load_v3,
    4: _load_v4,
}


def suite_dir(root: str | os.PathLike[str], suite: str, size: str = "full") -> Path:
    """Where a suite's tables of ``size`` go: ``root/<suite>`` at full size, else
    ``root/<size>/<suite>`` (the folders :func:`table_files` keeps apart)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    return Path(root, suite) if size == "full" else Path(root, size, suite)


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
        blob, meta, verified = _open(path)  # one read and one checksum per file
        if _kind_and_version(meta, path)[0] != RESULTS_KIND:
            foreign.append(str(path))  # some other table (ablation, plain…): not a sweep
            continue
        df = _results(_table(blob, meta, verified, path), path)
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
