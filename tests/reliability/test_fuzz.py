"""Fuzzing the loaders: random bytes and mutated real files never crash them and never hang.

Each loader may refuse a file only with its documented error — the snapshot loader with
SnapshotError (and ``Life.resume`` skips a snapshot whose content an owner refuses with it), the
archive opener with ArchiveError or ArchiveSchemaError, the experiment loader with
ExperimentError, read_results with ResultsSchemaError — and must answer within a time limit
(each call runs in a thread joined with a timeout; read_results runs in a child process, because
polars can abort the interpreter). Example counts are bounded to keep CI quick;
``HYPOTHESIS_PROFILE=thorough`` searches longer. The deterministic reproducers of what fuzzing
found stay here as plain tests; a known bug not fixed yet is a strict xfail.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifelab.config import LifeConfig
from lifelab.exceptions import ArchiveError, ArchiveSchemaError
from lifelab.lab.experiment import ExperimentError, load_experiment
from lifelab.lab.results import ResultsSchemaError, read_results, read_table, write_table
from lifelab.life.loop import Life
from lifelab.memory.active import COLUMNS
from lifelab.memory.segment_archive import SegmentArchive
from lifelab.memory.sqlite_archive import SQLiteArchive
from lifelab.store.digest import digest_of
from lifelab.store.snapshot import (
    MAGIC,
    Capture,
    SnapshotError,
    decode,
    encode,
    list_snapshots,
    read_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_RESULTS = ROOT / "tests" / "lab" / "fixtures" / "results_v1.parquet"
TIMEOUT_S = 30.0  # per call: generous for a slow CI machine, yet a hang fails the test
FUZZ = settings(
    max_examples=max(40, settings.default.max_examples),  # HYPOTHESIS_PROFILE=thorough: 500
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def guarded(fn: Callable[[], Any], allowed: tuple[type[BaseException], ...]) -> Any:
    """Call ``fn`` in a thread; fail on a hang or on any error outside ``allowed``.

    Returns the result, or the allowed exception instance. BaseExceptions (a Rust panic in polars
    is one) are caught in the thread too, so that they fail the test instead of vanishing.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # judged below, in the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive(), f"the call did not return within {TIMEOUT_S} s (a hang)"
    error = box.get("error")
    if error is None:
        return box.get("result")
    if isinstance(error, allowed):
        assert str(error), "an error without a message"
        return error
    raise AssertionError(f"undocumented error {type(error).__name__}: {error}") from error


# -- mutations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    """A recipe (small, so that a failing example prints readably) applied to a file's bytes.

    Positions are fractions of the file's length, so one recipe fits files of any size.
    """

    kind: str
    at: tuple[float, ...]
    bits: tuple[int, ...] = ()
    payload: bytes = b""

    def apply(self, original: bytes) -> bytes:
        data = bytearray(original)
        n = len(data)
        pos = [min(n - 1, int(f * n)) for f in self.at]
        if self.kind == "flips":
            for p, bit in zip(pos, self.bits, strict=True):
                data[p] ^= 1 << bit
        elif self.kind == "truncate":
            del data[pos[0] :]
        elif self.kind == "splice":  # cut a run (up to 4 KiB) out
            del data[pos[0] : pos[0] + self.bits[0]]
        elif self.kind == "duplicate":  # repeat a run in place
            run = data[pos[0] : pos[0] + self.bits[0]]
            data[pos[0] : pos[0]] = run
        elif self.kind == "insert":
            data[pos[0] : pos[0]] = self.payload
        else:  # "zero": a page-sized run of zeros, as a torn write leaves
            data[pos[0] : pos[0] + 4096] = bytes(len(data[pos[0] : pos[0] + 4096]))
        return bytes(data)


FRACTIONS = st.floats(0.0, 1.0, exclude_max=True)
MUTATIONS = st.one_of(
    st.lists(st.tuples(FRACTIONS, st.integers(0, 7)), min_size=1, max_size=16).map(
        lambda flips: Mutation("flips", tuple(f for f, _ in flips), tuple(b for _, b in flips))
    ),
    st.builds(Mutation, st.just("truncate"), st.tuples(FRACTIONS)),
    st.builds(
        Mutation, st.sampled_from(["splice", "duplicate"]), st.tuples(FRACTIONS),
        st.tuples(st.integers(1, 4096)),
    ),
    st.builds(
        Mutation, st.just("insert"), st.tuples(FRACTIONS),
        payload=st.binary(min_size=1, max_size=64),
    ),
    st.builds(Mutation, st.just("zero"), st.tuples(FRACTIONS)),
)  # fmt: skip


# -- snapshots -------------------------------------------------------------------------------------


@functools.cache
def snapshot_bytes() -> bytes:
    """A real snapshot: 120 ticks, 100 active entries, pending feedback."""
    life = Life(LifeConfig(seed=4, events_per_tick=3, memory_capacity=100))
    life.run(120)
    return encode(life.capture())


@FUZZ
@given(data=st.binary(max_size=4096))
def test_snapshot_loader_refuses_random_bytes(data):
    """Random bytes (with or without the magic in front) raise SnapshotError, nothing else."""
    for blob in (data, MAGIC + data):
        assert isinstance(guarded(lambda b=blob: decode(b), (SnapshotError,)), SnapshotError)


@FUZZ
@given(data=st.data())
def test_snapshot_loader_refuses_mutated_files(data):
    """A real snapshot, flipped, cut or spliced, is refused by the checksum: SnapshotError."""
    original = snapshot_bytes()
    blob = data.draw(MUTATIONS).apply(original)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "snap-000000000120.lls"
        path.write_bytes(blob)
        outcome = guarded(lambda: read_snapshot(path), (SnapshotError,))
    assert isinstance(outcome, SnapshotError) or blob == original


def _with_header(snapshot: bytes, header: Any, *, raw: bytes | None = None) -> bytes:
    """Snapshot bytes whose header is ``header`` (or ``raw``), with a valid checksum."""
    (n,) = struct.unpack_from("<I", snapshot, len(MAGIC))
    start = len(MAGIC) + 4
    head = raw if raw is not None else json.dumps(header).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + snapshot[start + n : -32]
    return body + hashlib.blake2b(body, digest_size=32).digest()


def _header(snapshot: bytes) -> dict[str, Any]:
    (n,) = struct.unpack_from("<I", snapshot, len(MAGIC))
    start = len(MAGIC) + 4
    return json.loads(snapshot[start : start + n])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
HEADER_PATHS = [
    ("schema_version",),
    ("ticks",),
    ("digest",),
    ("n_entries",),
    ("columns",),
    ("columns", 0),
    ("columns", 0, "offset"),
    ("columns", 0, "nbytes"),
    ("columns", 0, "dtype"),
    ("canonical",),
    ("canonical", "state"),
    ("canonical", "state", "energy"),
    ("canonical", "state", "ticks"),
    ("canonical", "state", "age"),
    ("canonical", "counters"),
    ("extra",),
]


@FUZZ
@given(data=st.data())
def test_snapshot_loader_refuses_forged_headers(data):
    """A header edited field by field, checksum fixed, decodes or raises SnapshotError only."""
    original = snapshot_bytes()
    header = _header(original)
    for path in data.draw(st.lists(st.sampled_from(HEADER_PATHS), min_size=1, max_size=3)):
        node: Any = header
        for key in path[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):  # an earlier edit replaced the parent
                node = None
                break
        if isinstance(node, dict) or (isinstance(node, list) and node and path[-1] == 0):
            node[path[-1]] = data.draw(JSON_VALUES)
    forged = _with_header(original, header)
    outcome = guarded(lambda: decode(forged), (SnapshotError,))
    assert isinstance(outcome, SnapshotError | Capture)


# -- snapshots that read intact but hold impossible content: refused by the owner of the piece ----
#
# Neither the digest nor the checksum is keyed, so these forgeries recompute both: the file layer
# finds nothing wrong, and each piece's owner (SelfState, the feedback book, the random streams,
# active memory, Life's counters) must refuse what it cannot restore, with SnapshotError, which
# Life.resume turns into "skip this snapshot, use the previous one". Through the public path.

CONTENT_PATHS = [
    ("canonical", "state"),
    ("canonical", "state", "energy"),
    ("canonical", "state", "sensitivity"),
    ("canonical", "state", "sensitivity", 0),
    ("canonical", "state", "response_coef"),
    ("canonical", "state", "recent_events"),
    ("canonical", "state", "recent_events", 0),
    ("canonical", "state", "adaptation_history"),
    ("canonical", "state", "life_id"),
    ("canonical", "feedback"),
    ("canonical", "feedback", 0),
    ("canonical", "feedback", 0, 0),
    ("canonical", "feedback", 0, 4),
    ("canonical", "feedback", 0, 5),
    ("canonical", "feedback", 0, 6),
    ("canonical", "queue"),
    ("canonical", "echo"),
    ("canonical", "rng"),
    ("canonical", "rng", "uniform"),
    ("canonical", "rng", "uniform", "index"),
    ("canonical", "rng", "uniform", "state_before"),
    ("canonical", "rng", "uniform", "state_before", "state"),
    ("canonical", "rng", "uniform", "state_before", "state", "inc"),
    ("canonical", "rng", "environment"),
    ("canonical", "rng", "environment", "carry"),
    ("canonical", "rng", "environment", "types"),
    ("canonical", "rng", "environment", "counts"),
    ("canonical", "counters"),
    ("canonical", "counters", "entries_written"),
    ("canonical", "counters", "actions"),
    ("extra", "errors"),
    ("extra", "alive"),
    ("extra", "events_pushed"),
]


@pytest.fixture(scope="module")
def run_template(tmp_path_factory) -> Path:
    """A finished run directory: snapshots at ticks 60 and 120 (the newest has pending
    feedback and 100 active entries), archived rows."""
    run = tmp_path_factory.mktemp("fuzz") / "run"
    life = Life(
        LifeConfig(seed=4, events_per_tick=3, memory_capacity=100, log_every=0, run_dir=str(run))
    )
    life.run(60)
    life.snapshot()
    life.run(60)
    life.close()
    return run


def _edit(node: Any, path: tuple[Any, ...], value: Any) -> None:
    """Set ``path`` inside ``node`` to ``value`` if every step on the way exists."""
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):  # an earlier edit replaced the parent
            return
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and node[last:]):
        node[last] = value


def _resume_with_newest(template: Path, blob: bytes) -> dict[str, Any] | None:
    """Resume a copy of the run whose newest snapshot is ``blob``: the canonical state restored
    from it, or None if resume skipped it (and restored the previous one)."""
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        shutil.copytree(template, run)
        newest = list_snapshots(run / "snapshots")[-1]
        newest.write_bytes(blob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the skipped snapshot's warning
            life = Life.resume(run)
        try:
            if life.corrupt_files == [newest]:
                assert life.state.ticks == 60
                return None
            assert life.corrupt_files == []
            return life.canonical()
        finally:
            life.close()


@FUZZ
@given(data=st.data())
def test_resume_refuses_forged_content_with_the_digest_recomputed(data, run_template):
    """Pieces of the canonical state replaced with random JSON, digest and checksum recomputed:
    resume restores exactly what the file holds if every owner accepts it, else skips it; never
    another error (a KeyError, TypeError or numpy error from a piece nobody checked)."""
    original = list_snapshots(run_template / "snapshots")[-1].read_bytes()
    cap = decode(original)
    header = _header(original)
    for path in data.draw(st.lists(st.sampled_from(CONTENT_PATHS), min_size=1, max_size=3)):
        _edit(header, path, data.draw(JSON_VALUES))
    header["digest"] = digest_of(header["canonical"], cap.columns)
    forged = _with_header(original, header)
    restored = guarded(lambda: _resume_with_newest(run_template, forged), ())
    assert restored is None or restored == header["canonical"]


def _impossible(name: str, column: np.ndarray, n_types: int, next_id: int) -> bool:
    """Whether no store can hold ``column`` (the oracle of the test below)."""
    values = column.tolist()
    finite = name not in ("significance", "weight", "timestamp", "subjective_timestamp") or bool(
        np.isfinite(column).all()
    )
    return (
        not finite
        or (name == "weight" and min(values) < 0)
        or (name == "significance" and max(values) > 1)
        or (name == "id" and (min(values) < 0 or max(values) >= next_id))
        or (name == "id" and len(set(values)) != len(values))
        or (name == "event_type" and not 0 <= min(values) <= max(values) < n_types)
        or (name == "kind" and not set(values) <= {0, 1})
        or (name == "action" and not set(values) <= {0, 1, 2, 3})
    )


@FUZZ
@given(
    name=st.sampled_from(sorted(COLUMNS)),
    flips=st.lists(st.tuples(FRACTIONS, st.integers(0, 7)), min_size=1, max_size=8),
)
def test_resume_refuses_forged_memory_columns(name, flips, run_template):
    """Bits of one active-memory column flipped, digest and checksum recomputed: active memory
    refuses exactly what no store can hold (NaN, negative weights, repeated or unknown ids,
    unknown types, kinds or actions) and resume skips it; the rest restores; never an error."""
    cap = decode(list_snapshots(run_template / "snapshots")[-1].read_bytes())
    raw = bytearray(cap.columns[name].tobytes())
    for f, bit in flips:
        raw[min(len(raw) - 1, int(f * len(raw)))] ^= 1 << bit
    column = np.frombuffer(bytes(raw), dtype=COLUMNS[name])
    forged = encode(Capture(cap.ticks, cap.canonical, {**cap.columns, name: column}, cap.extra))
    restored = guarded(lambda: _resume_with_newest(run_template, forged), ())
    n_types = len(cap.canonical["state"]["sensitivity"])
    next_id = cap.canonical["counters"]["entries_written"]
    assert (restored is None) == _impossible(name, column, n_types, next_id)


def test_header_with_an_unhashable_column_name_is_refused():
    """A forged column table whose name is a list raises SnapshotError."""
    header = _header(snapshot_bytes())
    header["columns"][0]["name"] = ["id"]
    forged = _with_header(snapshot_bytes(), header)
    assert isinstance(guarded(lambda: decode(forged), (SnapshotError,)), SnapshotError)


def test_deeply_nested_header_is_refused():
    """A header of 100 000 nested arrays (checksum fixed) raises SnapshotError."""
    raw = b"[" * 100_000 + b"]" * 100_000
    forged = _with_header(snapshot_bytes(), None, raw=raw)
    assert isinstance(guarded(lambda: decode(forged), (SnapshotError,)), SnapshotError)


# -- the archive opener ----------------------------------------------------------------------------


def _archived_columns() -> tuple[dict, tuple[str, ...]]:
    life = Life(LifeConfig(seed=4, events_per_tick=4, memory_capacity=20))
    life.run(150)
    assert len(life.archive) > 100
    return life.archive.columns(), life.types.names


@functools.cache
def archive_bytes() -> bytes:
    """A real SQLite archive file (runs of format 1), cleanly closed, with a few hundred rows."""
    cols, names = _archived_columns()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive.sqlite"
        with SQLiteArchive(path, type_names=names) as archive:
            archive.append(cols)
        return path.read_bytes()


@functools.cache
def segment_files() -> dict[str, bytes]:
    """A real segment archive: two sealed segments and a tail of two chunks, cleanly closed."""
    cols, names = _archived_columns()
    n = len(cols["id"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive"
        with SegmentArchive(path, type_names=names, segment_rows=n // 3) as archive:
            archive.append({k: v[: n - 10] for k, v in cols.items()})
            archive.flush()
            archive.append({k: v[n - 10 :] for k, v in cols.items()})
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


ARCHIVE_ERRORS = (ArchiveError, ArchiveSchemaError)


def _open_and_count(path: Path) -> int:
    archive = SQLiteArchive.open_readonly(path)
    try:
        return archive.count()
    finally:
        archive.close()


@FUZZ
@given(data=st.binary(max_size=8192))
def test_archive_opener_refuses_random_bytes(data):
    """Random bytes (bare, or behind an SQLite header) are refused with an archive error."""
    with tempfile.TemporaryDirectory() as folder:
        for i, blob in enumerate((data, b"SQLite format 3\x00" + data)):
            path = Path(folder) / f"a{i}.sqlite"
            path.write_bytes(blob)
            outcome = guarded(lambda p=path: _open_and_count(p), ARCHIVE_ERRORS)
            assert isinstance(outcome, ARCHIVE_ERRORS)
            assert path.read_bytes() == blob  # read-only: the file is left alone


@FUZZ
@given(data=st.data())
def test_archive_opener_survives_mutated_files(data):
    """A real archive, flipped, cut or spliced, opens and counts, or raises an archive error."""
    blob = data.draw(MUTATIONS).apply(archive_bytes())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive.sqlite"
        path.write_bytes(blob)
        outcome = guarded(lambda: _open_and_count(path), ARCHIVE_ERRORS)
        assert isinstance(outcome, int | ArchiveError | ArchiveSchemaError)
        assert path.read_bytes() == blob


@FUZZ
@given(data=st.data())
def test_segment_archive_survives_mutated_files(data):
    """One file of a segment archive flipped, cut or spliced: the archive opens, counts and
    searches (the search checks the CRC-32), or raises an archive error; nothing is written."""
    files = segment_files()
    victim = data.draw(st.sampled_from(sorted(files)))
    blob = data.draw(MUTATIONS).apply(files[victim])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "archive"
        path.mkdir()
        for name, content in files.items():
            (path / name).write_bytes(blob if name == victim else content)

        def open_count_search() -> int:
            archive = SegmentArchive.open_readonly(path)
            try:
                archive.search(limit=5)
                return archive.count()
            finally:
                archive.close()

        outcome = guarded(open_count_search, ARCHIVE_ERRORS)
        assert isinstance(outcome, int | ArchiveError | ArchiveSchemaError)
        assert (path / victim).read_bytes() == blob


def test_archive_with_a_non_utf8_schema_name_is_refused(tmp_path):
    """One byte of an index name in sqlite_master set to 0xE5: refused with an archive error."""
    data = bytearray(archive_bytes())
    data[data.index(b"indexentries_sig") + 5] = 0xE5
    path = tmp_path / "archive.sqlite"
    path.write_bytes(bytes(data))
    guarded(lambda: _open_and_count(path), ARCHIVE_ERRORS)


# -- the experiment loader -------------------------------------------------------------------------

EXPERIMENT_FILES = sorted((ROOT / "experiments").glob("*.toml"))


@FUZZ
@given(data=st.binary(max_size=2048))
def test_experiment_loader_refuses_random_bytes(data):
    """Random bytes are refused with ExperimentError (they are never a valid experiment)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.toml"
        path.write_bytes(data)
        outcome = guarded(lambda: load_experiment(path, root=ROOT), (ExperimentError,))
        assert isinstance(outcome, ExperimentError)


TOML_FRAGMENTS = st.sampled_from(
    [
        "\n[parameters]\n",
        "\n[full]\n",
        '\nOUT_DIR = "../../etc"\n',
        "\nout_path = ['/tmp']\n",
        "\nX = nan\n",
        "\nX = 1979-05-27\n",
        "\nX = { a = 1 }\n",
        '\nnotebook = "../x.ipynb"\n',
        '\nnotebook = "notebooks/\\u0000.ipynb"\n',
        "\nX = " + "[" * 3000,
        "\nX = 0x" + "f" * 100 + "\n",
        '"""',
        "\x00",
        "=",
    ]
)


@FUZZ
@given(data=st.data())
def test_experiment_loader_survives_mutated_files(data):
    """A shipped experiment file, mutated (bytes or TOML fragments), loads or is refused."""
    original = data.draw(st.sampled_from(EXPERIMENT_FILES)).read_bytes()
    if data.draw(st.booleans()):
        blob = data.draw(MUTATIONS).apply(original)
    else:
        pos = data.draw(st.integers(0, len(original)))
        blob = original[:pos] + data.draw(TOML_FRAGMENTS).encode() + original[pos:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.toml"
        path.write_bytes(blob)
        guarded(lambda: load_experiment(path, root=ROOT), (ExperimentError,))


# -- read_results ----------------------------------------------------------------------------------
#
# polars aborts the whole interpreter (SIGABRT) on some corrupt parquet files: a Rust panic in its
# parquet reader's worker threads cannot be caught. Tables written by write_table carry a checksum
# that is checked before polars sees them; the golden table predates checksums, so its mutations
# reach polars. Fuzzing those in the test process could kill the test run, so a child process
# reads the files, and the corpus is seeded (the same files every run): a new abort is then a
# reproducible failure, not a flaky one. Checksummed files are fuzzed in process, with polars'
# readers replaced by a failure: they must be refused before polars is called.

_RESULTS_WORKER = """
import json, sys
from lifelab.lab.results import ResultsSchemaError, read_results
progress, paths = sys.argv[1], sys.argv[2:]
outcomes, bad = {}, []
for path in paths:
    with open(progress, "w") as f:
        f.write(path)
    try:
        read_results(path)
        kind = "loaded"
    except ResultsSchemaError:
        kind = "ResultsSchemaError"
    except BaseException as exc:
        kind = type(exc).__name__
        bad.append([path, kind, str(exc)[:300]])
    outcomes[kind] = outcomes.get(kind, 0) + 1
print(json.dumps({"outcomes": outcomes, "bad": bad}))
"""


def _read_results_in_a_child(paths: list[Path], folder: Path) -> dict[str, Any]:
    progress = folder / "progress.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _RESULTS_WORKER, str(progress), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        culprit = progress.read_text() if progress.exists() else "?"
        raise AssertionError(
            f"the reader process died with status {proc.returncode} on {culprit} "
            f"(a polars abort?): {proc.stderr[-500:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _seeded_corpus(folder: Path, seed: int, count: int) -> list[Path]:
    """``count`` files: random bytes (bare and framed as parquet) and mutations of the golden
    results table (flips, truncations, splices, duplicated runs, insertions, zeroed pages)."""
    import random

    rng = random.Random(seed)
    original = GOLDEN_RESULTS.read_bytes()
    paths = []
    for i in range(count):
        if i % 4 == 0:
            blob = rng.randbytes(rng.randrange(4096))
            blob = b"PAR1" + blob + b"PAR1" if i % 8 else blob
        else:
            kind = rng.choice(["flips", "truncate", "splice", "duplicate", "insert", "zero"])
            flips = rng.randint(1, 16) if kind == "flips" else 1
            mutation = Mutation(
                kind,
                tuple(rng.random() for _ in range(flips)),
                tuple(rng.randrange(8) if kind == "flips" else rng.randint(1, 4096)
                      for _ in range(flips)),
                rng.randbytes(rng.randint(1, 64)),
            )  # fmt: skip
            blob = mutation.apply(original)
        path = folder / f"r{i:04d}.parquet"
        path.write_bytes(blob)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_read_results_refuses_random_and_mutated_files(tmp_path):
    """A seeded corpus of 600 files (a quarter random bytes): each loads (parquet pages carry no
    checksum) or raises ResultsSchemaError — never ComputeError, a Rust panic or a crash."""
    paths = _seeded_corpus(tmp_path, seed=8, count=600)
    report = _read_results_in_a_child(paths, tmp_path)
    assert report["bad"] == []
    assert report["outcomes"]["ResultsSchemaError"] > 300


def _checksummed_in_place(original: bytes) -> bytes:
    """``original`` (a table written without a checksum) with a ``lifelab_sha256`` entry added to
    its footer and filled in: every data page keeps its bytes and offsets, so a flip that made
    polars abort on the original hits the same byte of the same page here."""
    footer_len = struct.unpack("<I", original[-8:-4])[0]
    body, footer = original[: -8 - footer_len], original[-8 - footer_len : -8]
    # key_value_metadata's list header (field 5: 0x19, then size << 4 | struct) before its
    # first entry, ARROW:schema; the new entry goes first in the list, one more in its size.
    header = footer.index(b"\x18\x0cARROW:schema") - 1
    size = footer[header] >> 4
    assert footer[header - 1] == 0x19 and footer[header] & 0x0F == 0x0C and size < 14
    entry = b"\x18\x0elifelab_sha256\x18\x40" + b"0" * 64 + b"\x00"
    footer = footer[:header] + bytes([(size + 1) << 4 | 0x0C]) + entry + footer[header + 1 :]
    blob = body + footer + struct.pack("<I", len(footer)) + b"PAR1"
    at = blob.rindex(b"0" * 64)
    return blob[:at] + hashlib.sha256(blob).hexdigest().encode() + blob[at + 64 :]


def test_read_results_survives_a_file_that_aborts_polars(tmp_path):
    """One flipped bit at byte 9168 of the golden table makes polars 2.1.0's parquet reader
    panic in a worker thread and abort the interpreter (SIGABRT). With a checksum in the file
    the flip is refused before polars decodes a page: the reader process ends normally, with
    ResultsSchemaError (a checksum mismatch)."""
    checksummed = _checksummed_in_place(GOLDEN_RESULTS.read_bytes())
    intact = tmp_path / "intact.parquet"
    intact.write_bytes(checksummed)
    table = read_table(intact)
    assert table.verified and table.data.equals(pl.read_parquet(GOLDEN_RESULTS))
    data = bytearray(checksummed)
    data[9168] ^= 0x01
    path = tmp_path / "r.parquet"
    path.write_bytes(bytes(data))
    report = _read_results_in_a_child([path], tmp_path)
    assert report["outcomes"] == {"ResultsSchemaError": 1}
    with pytest.raises(ResultsSchemaError, match="checksum mismatch"):
        read_results(path)


@pytest.fixture(scope="module")
def checksummed_table(tmp_path_factory) -> bytes:
    """The golden results table rewritten by write_table: a file with a checksum."""
    path = tmp_path_factory.mktemp("checksummed") / "t.parquet"
    write_table(pl.read_parquet(GOLDEN_RESULTS), path, kind="results", version=1)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_read_table_refuses_any_flip_in_a_checksummed_file(checksummed_table, data):
    """Bit flips anywhere in a checksummed table (a header, a page, the footer, the checksum
    entry itself, the footer length, the magic) are refused with ResultsSchemaError before
    polars is called: polars never sees a damaged checksummed file."""
    blob = bytearray(checksummed_table)
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    if bytes(blob) == checksummed_table:
        return  # two flips of the same bit cancel out
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.parquet"
        path.write_bytes(bytes(blob))
        with _no_polars_reads(), pytest.raises(ResultsSchemaError) as info:
            read_table(path)
    assert str(path) in str(info.value)


@FUZZ
@given(data=st.data())
def test_read_table_refuses_a_truncated_checksummed_file(checksummed_table, data):
    """A checksummed table cut short anywhere is refused before polars is called."""
    cut = data.draw(st.integers(0, len(checksummed_table) - 1))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.parquet"
        path.write_bytes(checksummed_table[:cut])
        with _no_polars_reads(), pytest.raises(ResultsSchemaError, match=r"not a parquet|checksum"):
            read_table(path)


@contextlib.contextmanager
def _no_polars_reads():
    """Fail the test if anything asks polars to read a parquet file or its metadata (the call is
    recorded: the reader turns polars' errors into ResultsSchemaError, which would hide it)."""
    calls = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("a damaged checksummed file reached polars")

    with pytest.MonkeyPatch.context() as mp:
        for name in ("read_parquet", "read_parquet_metadata", "scan_parquet"):
            mp.setattr(pl, name, refuse)
        yield
    assert not calls, "a damaged checksummed file reached polars"
