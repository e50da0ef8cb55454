"""The bad-input catalogue (docs/reliability.md) as tests: every input refused by name, and why.

Each row of the catalogue is a case here: the input, the error type, and a fragment of the message
that names what is wrong. Beyond the refusal, each test checks that nothing was lost and, where an
organism is running, that it keeps running. Rows marked *bug* in the docs are strict xfails (the
one left today is in test_fuzz.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sqlite3
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from lifelab.config import _RULES, LifeConfig
from lifelab.exceptions import (
    ArchiveError,
    ArchiveSchemaError,
    ConfigError,
    ConfigTypeError,
    EventError,
    EventTypeError,
)
from lifelab.lab.experiment import ExperimentError, load_experiment
from lifelab.lab.results import ResultsSchemaError, read_results
from lifelab.lab.schema import METADATA_KEY, RESULTS_SCHEMA_VERSION
from lifelab.life.events import Event, TypeTable
from lifelab.life.loop import Life
from lifelab.memory.segment_archive import SegmentArchive
from lifelab.memory.sqlite_archive import SQLiteArchive
from lifelab.store.digest import digest_of
from lifelab.store.inspect import inspect_run, search_run
from lifelab.store.persistence import open_archive_readonly
from lifelab.store.rundir import RunDir
from lifelab.store.snapshot import MAGIC, SNAPSHOT_VERSION, decode

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_RESULTS = ROOT / "tests" / "lab" / "fixtures" / "results_v1.parquet"
# A run directory of format 1 (SQLite archive), written by lifelab before issue 13.
GOLDEN_RUN_V1 = ROOT / "tests" / "store" / "fixtures" / "run_v1"
NAN, INF = math.nan, math.inf


def _deep(levels: int) -> dict[str, Any]:
    nest: dict[str, Any] = {}
    for _ in range(levels):
        nest = {"a": nest}
    return nest


# -- events ----------------------------------------------------------------------------------------

SHOCK = {"type": "shock", "intensity": 0.5}
EVENT_CASES = [
    ("nan", {**SHOCK, "intensity": NAN}, EventError, "finite"),
    ("+inf", {**SHOCK, "intensity": INF}, EventError, "finite"),
    ("-inf", {**SHOCK, "intensity": -INF}, EventError, "finite"),
    ("above range", {**SHOCK, "intensity": 1.0000001}, EventError, r"in \[-1, 1\]"),
    ("below range", {**SHOCK, "intensity": -1.5}, EventError, r"in \[-1, 1\]"),
    ("huge int", {**SHOCK, "intensity": 10**400}, EventError, r"in \[-1, 1\]"),
    ("bool intensity", {**SHOCK, "intensity": True}, EventTypeError, "must be a number"),
    ("str intensity", {**SHOCK, "intensity": "0.5"}, EventTypeError, "must be a number"),
    ("None intensity", {**SHOCK, "intensity": None}, EventTypeError, "must be a number"),
    ("unknown type", {**SHOCK, "type": "earthquake"}, EventError, "unknown event type"),
    ("non-str type", {**SHOCK, "type": 3}, EventTypeError, "type must be a str"),
    ("internal echo", {**SHOCK, "type": "memory_echo"}, EventError, "internal"),
    (
        "17 metadata keys",
        {**SHOCK, "metadata": {str(i): i for i in range(17)}},
        EventError,
        "at most 16",
    ),
    ("metadata > 1 KiB", {**SHOCK, "metadata": {"a": "x" * 2000}}, EventError, "bytes"),
    ("non-JSON metadata", {**SHOCK, "metadata": {"a": {1, 2}}}, EventError, "JSON-serialisable"),
    ("NaN in metadata", {**SHOCK, "metadata": {"a": NAN}}, EventError, "without NaN"),
    ("deep metadata", {**SHOCK, "metadata": _deep(5000)}, EventError, "nested too deeply"),
    ("metadata not a mapping", {**SHOCK, "metadata": [1, 2]}, EventTypeError, "mapping"),
    ("NaN timestamp", {**SHOCK, "timestamp": NAN}, EventError, "timestamp"),
    ("huge timestamp", {**SHOCK, "timestamp": 10**400}, EventError, "timestamp"),
    (
        "unknown key",
        {**SHOCK, "colour": "red"},
        EventError,
        r"unknown event field\(s\) \['colour'\]",
    ),
    ("no intensity", {"type": "shock"}, EventError, "needs 'type' and 'intensity'"),
    ("not a mapping", ["shock", 0.5], EventTypeError, "Event or a mapping"),
    ("None", None, EventTypeError, "Event or a mapping"),
]


@pytest.mark.parametrize(
    ("bad", "error", "fragment"), [c[1:] for c in EVENT_CASES], ids=[c[0] for c in EVENT_CASES]
)
def test_bad_event_is_refused_counted_and_the_life_goes_on(bad, error, fragment):
    """A bad push raises a named error, is counted, loses no queued event; ticking goes on."""
    life = Life(LifeConfig(seed=1, events_per_tick=0, echo_probability=0))
    life.push(SHOCK)
    with pytest.raises(error, match=fragment):
        life.push(bad)
    assert (life.events_pushed, life.events_rejected, life.queue_depth) == (1, 1, 1)
    summary = life.run(5)
    assert summary["events_processed"] == 1  # the good event queued before is not lost
    assert summary["ticks"] == 5 and summary["errors"] == 0
    life.push({"type": "recovery", "intensity": 0.2})  # and the door still opens
    assert life.run(1)["events_processed"] == 2


def test_an_internal_event_object_is_refused_at_push():
    """An Event object of the internal type can be built, but not pushed."""
    life = Life(LifeConfig(seed=1))
    with pytest.raises(EventError, match="'memory_echo' is internal"):
        life.push(Event("memory_echo", 0.1))
    assert life.events_rejected == 1


# -- configs ---------------------------------------------------------------------------------------


def _bad_config_values(name: str, rule: Any) -> list[tuple[str, Any, type, str]]:
    """(case id, value, error, message fragment) for one LifeConfig field's rule."""
    out: list[tuple[str, Any, type, str]] = []
    if not rule.optional:
        out.append(("None", None, ConfigTypeError, "must not be None"))
    if rule.kind is float:
        out += [
            ("str", "1.0", ConfigTypeError, "must be a number"),
            ("bool", True, ConfigTypeError, "must be a number"),
            ("nan", NAN, ConfigError, "finite"),
            ("inf", INF, ConfigError, "finite"),
            ("huge int", 10**400, ConfigError, "must be in"),
            ("just below", math.nextafter(rule.lo, -INF), ConfigError, "must be in"),
            ("just above", math.nextafter(rule.hi, INF), ConfigError, "must be in"),
        ]
    elif rule.kind is int:
        out += [
            ("float", 1.5, ConfigTypeError, "must be an integer"),
            ("bool", True, ConfigTypeError, "must be an integer"),
            ("str", "1", ConfigTypeError, "must be an integer"),
            ("lo - 1", rule.lo - 1, ConfigError, "must be in"),
            ("hi + 1", rule.hi + 1, ConfigError, "must be in"),
        ]
    elif rule.kind is bool:
        out += [
            ("int", 1, ConfigTypeError, "true or false"),
            ("str", "true", ConfigTypeError, "true or false"),
        ]
    elif rule.kind is str:
        out.append(("int", 3, ConfigTypeError, "must be a str"))
        if rule.choices:
            out.append(("not a choice", "bogus", ConfigError, "must be one of"))
        else:
            out.append(("empty", "", ConfigError, "must not be empty"))
    else:  # pragma: no cover - a new kind of rule needs cases here
        raise AssertionError(f"no bad values for {name}: kind {rule.kind}")
    return out


CONFIG_CASES = [
    pytest.param(name, value, error, fragment, id=f"{name}-{case}")
    for name, rule in _RULES.items()
    for case, value, error, fragment in _bad_config_values(name, rule)
]


def test_every_config_field_has_a_rule_and_cases():
    """The catalogue iterates config._RULES, which covers every LifeConfig field."""
    assert set(_RULES) == set(LifeConfig.__dataclass_fields__)
    assert {p.values[0] for p in CONFIG_CASES} == set(_RULES)


@pytest.mark.parametrize(("name", "value", "error", "fragment"), CONFIG_CASES)
def test_bad_config_value_is_refused_by_field_name(name, value, error, fragment):
    """Each field refuses wrong types and values just outside its bounds, naming the field."""
    with pytest.raises(error, match=fragment) as info:
        LifeConfig(**{name: value})
    assert f"LifeConfig.{name}" in str(info.value)
    assert len(str(info.value)) < 300  # one readable line, even for a 400-digit int


BOUNDED = {name: rule for name, rule in _RULES.items() if rule.lo is not None}


@pytest.mark.parametrize(("name", "rule"), list(BOUNDED.items()), ids=list(BOUNDED))
def test_config_bounds_themselves_are_accepted(name, rule):
    """The catalogue's bounds are the real ones: lo and hi themselves are valid."""
    for value in (rule.lo, rule.hi):
        value = rule.kind(value)
        extra = {}
        if name == "feedback_min_ticks":
            extra["feedback_max_ticks"] = max(value, LifeConfig().feedback_max_ticks)
        if name == "feedback_max_ticks":
            extra["feedback_min_ticks"] = min(value, LifeConfig().feedback_min_ticks)
        assert getattr(LifeConfig(**{name: value}, **extra), name) == value


def test_config_cross_field_and_mapping_errors():
    """feedback_max < feedback_min, unknown keys and a non-mapping are refused by name."""
    with pytest.raises(ConfigError, match="feedback_max_ticks must be >= feedback_min_ticks"):
        LifeConfig(feedback_min_ticks=5, feedback_max_ticks=4)
    with pytest.raises(ConfigError, match=r"unknown LifeConfig field\(s\) \['colour'\]"):
        LifeConfig.from_mapping({"seed": 1, "colour": "red"})
    with pytest.raises(ConfigTypeError, match="must be a mapping"):
        LifeConfig.from_mapping([("seed", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # keyword-only
        LifeConfig(1)  # type: ignore[misc]


# -- CLI arguments ---------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifelab.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Non-zero exit; stderr holds one 'error:' line (after argparse's usage), no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0], proc.stderr
    others = [line for line in lines if line not in errors]
    assert all(line.startswith(("usage:", " ")) for line in others), proc.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished run directory (two snapshots, archived rows) and the reference digests."""
    path = tmp_path_factory.mktemp("template") / "run"
    cfg = LifeConfig(seed=11, events_per_tick=3, memory_capacity=64, log_every=0, run_dir=str(path))
    life = Life(cfg)
    life.run(40)
    life.snapshot()
    d40 = life.digest()
    life.run(40)
    d80 = life.digest()
    life.close()
    assert len(life.archive) > 0
    return path, cfg, d40, d80


CLI_CASES = [
    ("ticks zero", ["run", "--ticks", "0"], "--ticks"),
    ("ticks not int", ["run", "--ticks", "many"], "expected an integer"),
    ("negative seed", ["run", "--ticks", "1", "--seed", "-1", "--run-dir", "{tmp}/r"], "seed"),
    ("nan rate", ["run", "--ticks", "1", "--events-per-tick", "nan"], "finite"),
    (
        "rate too high",
        ["run", "--ticks", "1", "--events-per-tick", "1e9", "--run-dir", "{tmp}/r"],
        "LifeConfig.events_per_tick",
    ),
    ("batch zero", ["run", "--ticks", "1", "--batch-size", "0"], "--batch-size"),
    ("dt zero", ["run", "--ticks", "1", "--dt", "0", "--run-dir", "{tmp}/r"], "LifeConfig.dt"),
    (
        "interval zero",
        ["run", "--ticks", "1", "--realtime", "--interval", "0", "--run-dir", "{tmp}/r"],
        "LifeConfig.tick_interval",
    ),
    (
        "negative snapshot",
        ["run", "--ticks", "1", "--snapshot-every", "-5", "--run-dir", "{tmp}/r"],
        "LifeConfig.snapshot_every",
    ),
    ("existing run", ["run", "--ticks", "1", "--run-dir", "{run}"], "already holds a run"),
    ("resume nothing", ["resume", "{tmp}/nothing", "--ticks", "1"], "no run directory"),
    ("resume non-run", ["resume", "{tmp}", "--ticks", "1"], "not a lifelab run"),
    ("resume bad override", ["resume", "{run}", "--ticks", "1", "--dt", "-1"], "LifeConfig.dt"),
    ("inspect non-run", ["inspect", "{tmp}"], "not a lifelab run"),
    ("search unknown type", ["search", "{run}", "--type", "earthquake"], "unknown event type"),
    ("search negative limit", ["search", "{run}", "--limit", "-1"], "limit"),
    ("search bad sort", ["search", "{run}", "--sort", "colour"], "invalid choice"),
    ("bench bad gc", ["bench", "loop", "--ticks", "10", "--gc", "bogus"], "gc mode"),
    ("bench unknown set", ["bench", "loop", "--ticks", "10", "--set", "colour=1"], "colour"),
    ("bad engine", ["run", "--ticks", "1", "--engine", "jit"], "--engine: invalid choice: 'jit'"),
    (
        "bench engines disagree",
        ["bench", "loop", "--ticks", "10", "--engine", "python", "--set", "engine=compiled"],
        "disagree",
    ),
    ("unknown command", ["fly"], "invalid choice"),
    ("experiment missing", ["experiment", "run", "{tmp}/missing.toml"], "cannot read"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_bad_cli_arguments_exit_non_zero_with_one_error_line(args, fragment, small_run, tmp_path):
    """Bad arguments: non-zero exit, one error line naming the problem, no traceback, no run."""
    run_copy = tmp_path / "run"
    shutil.copytree(small_run[0], run_copy)
    before = _tree(tmp_path)
    argv = [a.format(tmp=tmp_path, run=run_copy) for a in args]
    _assert_one_line_error(_cli(*argv, cwd=tmp_path), fragment)
    assert _tree(tmp_path) == before  # nothing written, nothing changed


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- snapshots -------------------------------------------------------------------------------------

NEWEST = "snap-000000000080.lls"


def _forge(data: bytes, edit, *, fix_digest: bool) -> bytes:
    """Edit a snapshot's JSON header and fix the checksum (and the digest, if asked)."""
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(data[start : start + n])
    edit(header)
    if fix_digest:
        header["digest"] = digest_of(header["canonical"], decode(data).columns)
    head = json.dumps(header, sort_keys=True).encode()  # allow_nan: a forger writes NaN
    body = MAGIC + struct.pack("<I", len(head)) + head + data[start + n : -32]
    return body + hashlib.blake2b(body, digest_size=32).digest()


def _state(key: str, value: Any):
    return lambda h: h["canonical"]["state"].__setitem__(key, value)


def _version(value: Any):
    return lambda h: h.update(schema_version=value)


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 3] ^= 0x04
    return bytes(out)


def _column(name: str, value: float):
    """Forge a column value (payload bytes edited, digest and checksum fixed)."""

    def mutate(data: bytes) -> bytes:
        cap = decode(data)
        (n,) = struct.unpack_from("<I", data, len(MAGIC))
        start = len(MAGIC) + 4
        header = json.loads(data[start : start + n])
        spec = next(c for c in header["columns"] if c["name"] == name)
        column = cap.columns[name].copy()
        column[0] = value
        payload = bytearray(data[start + n : -32])
        raw = column.tobytes()
        payload[spec["offset"] : spec["offset"] + len(raw)] = raw
        header["digest"] = digest_of(cap.canonical, {**cap.columns, name: column})
        head = json.dumps(header, sort_keys=True).encode()
        body = MAGIC + struct.pack("<I", len(head)) + head + bytes(payload)
        return body + hashlib.blake2b(body, digest_size=32).digest()

    return mutate


SNAPSHOT_CASES = [
    ("truncated", lambda d: d[: len(d) // 2], "checksum mismatch"),
    ("truncated to magic", lambda d: d[:10], "not a lifelab snapshot"),
    ("empty", lambda d: b"", "not a lifelab snapshot"),
    ("bit-flipped", _flip, "checksum mismatch"),
    ("not a snapshot", lambda d: b"PK\x03\x04" + d[4:], "bad magic"),
    (
        "future version",
        lambda d: _forge(d, _version(SNAPSHOT_VERSION + 1), fix_digest=False),
        "newer than",
    ),
    (
        "wrong version",
        lambda d: _forge(d, lambda h: h.update(schema_version="1"), fix_digest=False),
        "version '1' is not supported",
    ),
    (
        "no version",
        lambda d: _forge(d, lambda h: h.pop("schema_version"), fix_digest=False),
        "version None",
    ),
    (
        "hand-edited energy",
        lambda d: _forge(d, _state("energy", 12.5), fix_digest=False),
        "digest mismatch",
    ),
    (
        "hand-edited digest",
        lambda d: _forge(d, lambda h: h.update(digest="0" * 32), fix_digest=False),
        "digest mismatch",
    ),
    ("stability 1.5", lambda d: _forge(d, _state("stability", 1.5), fix_digest=True), "stability"),
    ("energy -1", lambda d: _forge(d, _state("energy", -1.0), fix_digest=True), "energy"),
    ("energy NaN", lambda d: _forge(d, _state("energy", NAN), fix_digest=True), "energy"),
    ("energy true", lambda d: _forge(d, _state("energy", True), fix_digest=True), "energy"),
    ("integrity str", lambda d: _forge(d, _state("integrity", "1"), fix_digest=True), "integrity"),
    ("ticks -1", lambda d: _forge(d, _state("ticks", -1), fix_digest=True), "ticks"),
    ("age -1", lambda d: _forge(d, _state("age", -1.0), fix_digest=True), "age"),
    ("negative weight", _column("weight", -0.5), "out of range"),
    ("significance 2", _column("significance", 2.0), "out of range"),
    ("NaN timestamp column", _column("timestamp", NAN), "NaN or inf"),
    ("event type 99 column", _column("event_type", 99), "event types out of range"),
    ("kind 7 column", _column("kind", 7), "kinds or actions out of range"),
]


@pytest.mark.parametrize(
    ("mutate", "fragment"), [c[1:] for c in SNAPSHOT_CASES], ids=[c[0] for c in SNAPSHOT_CASES]
)
def test_bad_newest_snapshot_is_refused_and_the_previous_one_used(
    mutate, fragment, small_run, tmp_path
):
    """The file layer or the owner of the bad piece names the fault; resume skips the file, uses
    the previous snapshot, and the replay from there reproduces the original trajectory exactly."""
    template, _, d40, d80 = small_run
    run = tmp_path / "run"
    shutil.copytree(template, run)
    newest = run / "snapshots" / NEWEST
    newest.write_bytes(mutate(newest.read_bytes()))
    life = _resume_skipping(run, newest, fragment)
    try:
        assert life.corrupt_files == [newest]
        assert life.state.ticks == 40 and life.digest() == d40
        life.run(40)
        assert life.digest() == d80
        assert life.entries_written == len(life.memory) + len(life.archive)
    finally:
        life.close()


def _resume_skipping(run: Path, newest: Path, fragment: str) -> Life:
    """Life.resume(run), which must skip ``newest`` with one warning naming it and the fault."""
    with pytest.warns(RuntimeWarning, match="skipping corrupt snapshot") as caught:
        life = Life.resume(run)
    skipped = [str(w.message) for w in caught if "skipping corrupt snapshot" in str(w.message)]
    assert len(skipped) == 1 and str(newest) in skipped[0], skipped
    assert fragment in skipped[0], skipped
    assert life.corrupt_files == [newest]
    return life


def _rng(h: dict) -> dict:
    return h["canonical"]["rng"]


# Fields beyond the vitals, forged with the digest and the checksum recomputed: neither is keyed,
# so only the validation by each piece's owner stands between such a file and the organism.
FORGED_CASES = [
    ("sensitivity NaN", lambda h: h["canonical"]["state"]["sensitivity"].__setitem__(0, NAN),
     "state.sensitivity[] = nan is invalid"),
    ("sensitivity 5", lambda h: h["canonical"]["state"]["sensitivity"].__setitem__(0, 5.0),
     "state.sensitivity[] = 5.0"),
    ("threshold str", lambda h: h["canonical"]["state"]["threshold"].__setitem__(0, "x"),
     "state.threshold[] = 'x'"),
    ("last intensity NaN", _state("last_event_intensity", NAN), "state.last_event_intensity"),
    ("queued type 999", lambda h: h["canonical"]["queue"].append([999, 0.5]),
     "queue[].type = 999 is invalid"),
    ("queued intensity 7", lambda h: h["canonical"]["queue"].append([0, 7.0]),
     "queue[].intensity = 7.0"),
    ("echo NaN", lambda h: h["canonical"].__setitem__("echo", NAN), "echo = nan"),
    ("feedback row short", lambda h: h["canonical"]["feedback"].append([1, 2]),
     "feedback[] = [1, 2]"),
    ("feedback action 9", lambda h: h["canonical"]["feedback"].append([81, 50, 1, 1, 0, 9, 0.5]),
     "feedback[].action = 9"),
    ("feedback types and actions differ",
     lambda h: h["canonical"]["feedback"].append([81, 50, 1, 1, [0, 1], [2], [0.5, 0.5]]),
     "feedback[].arrays"),
    ("no feedback", lambda h: h["canonical"].pop("feedback"), "feedback = None"),
    ("rng state junk", lambda h: _rng(h).__setitem__("uniform", {"x": 1}), "rng.uniform = "),
    ("rng of another generator",
     lambda h: _rng(h)["environment"]["types"]["state_before"].update(bit_generator="MT19937"),
     "rng.environment.types.state_before = "),
    ("rng index past the block", lambda h: _rng(h)["uniform"].update(index=5000),
     "rng.uniform.index = 5000"),
    ("rng carry -1", lambda h: _rng(h)["environment"].update(carry=-1),
     "rng.environment.carry = -1"),
    ("recent type 10**6", _state("recent_events", [10**6]), "state.recent_events[] = 1000000"),
    ("learned list too short", lambda h: h["canonical"]["state"]["threshold"].pop(),
     "state.threshold = "),
    ("header ticks != state ticks", lambda h: h.update(ticks=7),
     "header ticks 7 != state ticks 80"),
    ("entries_written -5", lambda h: h["canonical"]["counters"].update(entries_written=-5),
     "counters.entries_written = -5 is invalid"),
    ("archive_size != spilled", lambda h: h["canonical"]["counters"].update(archive_size=10**6),
     "archive_size differs"),
    ("errors not counts", lambda h: h["extra"].update(errors={"RuntimeError": "many"}),
     "extra.errors[] = 'many'"),
    ("alive junk", lambda h: h["extra"].update(alive="yes"), "extra.alive = 'yes'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "fragment"), [c[1:] for c in FORGED_CASES], ids=[c[0] for c in FORGED_CASES]
)
def test_forged_snapshot_with_a_bad_field_is_refused(edit, fragment, small_run, tmp_path):
    """A snapshot whose digest and checksum were recomputed after a bad edit reads as an intact
    file, but the owner of the bad field refuses it: resume skips it, naming the field, and
    restores the previous snapshot."""
    template, _, d40, _ = small_run
    run = tmp_path / "run"
    shutil.copytree(template, run)
    newest = run / "snapshots" / NEWEST
    forged = _forge(newest.read_bytes(), edit, fix_digest=True)
    assert decode(forged).ticks in (7, 80)  # the file layer finds nothing wrong
    newest.write_bytes(forged)
    life = _resume_skipping(run, newest, fragment)
    try:
        assert life.state.ticks == 40 and life.digest() == d40
    finally:
        life.close()


def test_forged_counters_never_delete_archive_rows(small_run, tmp_path):
    """A snapshot with impossible counters is skipped like a corrupt one; no row is lost."""
    template, _, _, d80 = small_run
    run = tmp_path / "run"
    shutil.copytree(template, run)
    newest = run / "snapshots" / NEWEST
    edit = lambda h: h["canonical"]["counters"].update(entries_written=-5)  # noqa: E731
    newest.write_bytes(_forge(newest.read_bytes(), edit, fix_digest=True))
    rows = _count_rows(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        life = Life.resume(run)
    try:
        life.run(80 - life.state.ticks)
        assert life.digest() == d80
    finally:
        life.close()
    assert _count_rows(run) == rows


def _count_rows(run: Path) -> int:
    archive = open_archive_readonly(RunDir.open(run))
    try:
        return archive.count()
    finally:
        archive.close()


# -- archive files of another schema ---------------------------------------------------------------


def _real_archive(path: Path) -> Path:
    SQLiteArchive(path, type_names=TypeTable().names).close()
    return path


def _sql(*statements: str):
    def build(path: Path) -> Path:
        _real_archive(path)
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()
        return path

    return build


def _other_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    return path


def _bytes(content: bytes):
    def build(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return build


ARCHIVE_CASES = [
    ("another database", _other_db, ArchiveSchemaError, "not a lifelab archive"),
    (
        "another format",
        _sql("UPDATE meta SET value = 'other-app' WHERE key = 'format'"),
        ArchiveSchemaError,
        "meta format is 'other-app'",
    ),
    (
        "future schema version",
        _sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'"),
        ArchiveSchemaError,
        "newer than this lifelab reads",
    ),
    (
        "unknown schema version",
        _sql("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'"),
        ArchiveSchemaError,
        "unknown archive schema version 'abc'",
    ),
    (
        "column missing",
        _sql("ALTER TABLE entries DROP COLUMN feedback_integrity"),
        ArchiveSchemaError,
        "expects entries columns",
    ),
    (
        "type indexes with a gap",
        _sql("DELETE FROM event_types WHERE idx = 3"),
        ArchiveSchemaError,
        "event_types indexes",
    ),
    ("random bytes", _bytes(bytes(range(256)) * 64), ArchiveSchemaError, "not a lifelab archive"),
    ("text file", _bytes(b"hello, world\n" * 100), ArchiveSchemaError, "not a lifelab archive"),
    ("empty database", _bytes(b""), ArchiveSchemaError, "empty SQLite file"),
]


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [c[1:] for c in ARCHIVE_CASES],
    ids=[c[0] for c in ARCHIVE_CASES],
)
def test_archive_of_another_schema_is_refused_and_left_alone(build, error, fragment, tmp_path):
    """open_readonly names what the file is; the file is not changed."""
    path = build(tmp_path / "archive.sqlite")
    before = path.read_bytes()
    with pytest.raises(error, match=fragment):
        SQLiteArchive.open_readonly(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.sqlite"]


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [c[1:] for c in ARCHIVE_CASES if c[0] != "empty database"],
    ids=[c[0] for c in ARCHIVE_CASES if c[0] != "empty database"],
)
def test_resume_refuses_a_foreign_archive_and_leaves_it_alone(
    build, error, fragment, small_run, tmp_path
):
    """A format 1 run whose archive.sqlite was swapped for another file does not resume over it."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN_V1, run)
    (run / "archive.sqlite").unlink()
    path = build(run / "archive.sqlite")
    before = path.read_bytes()
    with pytest.raises((ArchiveError, ArchiveSchemaError), match=fragment):
        Life.resume(run)
    assert path.read_bytes() == before


def _corrupt_index_page(run: Path) -> None:
    """Overwrite the header of the significance index's root page (SQLite reads it for COUNT)."""
    path = run / "archive.sqlite"
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (root,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'entries_sig'"
    ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    offset = page_size * (root - 1)
    data[offset : offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def test_archive_with_a_corrupt_page_is_refused_with_an_archive_error(tmp_path):
    """A malformed archive file raises ArchiveError (an OSError), like a truncated one does."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN_V1, run)
    _corrupt_index_page(run)
    with pytest.raises(ArchiveError, match="malformed"):
        SQLiteArchive.open_readonly(run / "archive.sqlite")


@pytest.mark.parametrize("command", ["inspect", "search"])
def test_cli_on_a_corrupt_archive_gives_one_error_line(command, tmp_path):
    """inspect lists the archive as corrupt; search fails with one line and no traceback."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN_V1, run)
    _corrupt_index_page(run)
    proc = _cli(command, str(run), "--json", cwd=tmp_path)
    if command == "inspect":
        assert proc.returncode == 0, proc.stderr
        assert (
            str(run / "archive.sqlite") in json.loads(proc.stdout.splitlines()[-1])["corrupt_files"]
        )
    else:
        _assert_one_line_error(proc, "archive")


# -- segment archives (run format 2) that are damaged or not lifelab's -----------------------------


def _segment_archive(path: Path) -> Path:
    """A real segment archive: two sealed segments of 100 rows and a tail of 2 chunks."""
    life = Life(LifeConfig(seed=4, events_per_tick=4, memory_capacity=20))
    life.run(150)
    cols = life.archive.columns()
    with SegmentArchive(path, type_names=life.types.names, segment_rows=100) as archive:
        archive.append({k: v[:230] for k, v in cols.items()})
        archive.flush()
        archive.append({k: v[230:250] for k, v in cols.items()})
    return path


def _edit(name: str, change):
    def build(path: Path) -> Path:
        _segment_archive(path)
        target = path / name if name != "*seg1" else sorted(path.glob("seg-*"))[1]
        change(target)
        return path

    return build


def _flip(offset: int):
    def change(target: Path) -> None:
        data = bytearray(target.read_bytes())
        data[offset] ^= 0x40
        target.write_bytes(bytes(data))

    return change


def _meta(**fields):
    def change(target: Path) -> None:
        meta = json.loads(target.read_text())
        meta.update(fields)
        target.write_text(json.dumps(meta))

    return change


_TAIL = "tail-000000000000200.llrows"
SEGMENT_CASES = [
    ("no meta file", _edit("archive.json", Path.unlink), ArchiveSchemaError, "no archive.json"),
    ("meta not json", _edit("archive.json", lambda p: p.write_text("{")), ArchiveSchemaError,
     "not a lifelab archive file"),
    ("another format", _edit("archive.json", _meta(format="other")), ArchiveSchemaError,
     "format is not"),
    ("future version", _edit("archive.json", _meta(version=3)), ArchiveSchemaError,
     "archive format version 3"),
    ("types not names", _edit("archive.json", _meta(event_types=[1, 2])), ArchiveSchemaError,
     "event_types"),
    ("segment missing", _edit("*seg1", Path.unlink), ArchiveError, "rows are missing"),
    ("segment magic", _edit("*seg1", _flip(0)), ArchiveError, "bad magic"),
    ("segment header", _edit("*seg1", _flip(14)), ArchiveError, "header is damaged"),
    ("segment truncated", _edit("*seg1", lambda p: p.write_bytes(p.read_bytes()[:-64])),
     ArchiveError, "truncated"),
    ("segment data flipped", _edit("*seg1", _flip(-20)), ArchiveError, "CRC-32"),
    ("tail magic", _edit(_TAIL, _flip(0)), ArchiveError, "not a lifelab archive tail"),
    ("tail first chunk flipped", _edit(_TAIL, _flip(40)), ArchiveError, "CRC-32"),
    ("tail of another row", _edit(_TAIL, lambda p: p.rename(p.with_name(
        "tail-000000000000300.llrows"))), ArchiveError, "do not follow the last segment"),
]  # fmt: skip


def _snapshot_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [c[1:] for c in SEGMENT_CASES],
    ids=[c[0] for c in SEGMENT_CASES],
)
def test_damaged_segment_archive_is_refused_and_left_alone(build, error, fragment, tmp_path):
    """Opening (and searching, which checks every CRC-32) names the damage; nothing is written."""
    path = build(tmp_path / "archive")
    before = _snapshot_of(path)

    def open_and_search() -> None:
        archive = SegmentArchive.open_readonly(path)
        try:
            archive.search()
        finally:
            archive.close()

    with pytest.raises(error, match=fragment):
        open_and_search()
    assert _snapshot_of(path) == before


def test_a_flipped_segment_is_listed_by_inspect_and_search_fails_in_one_line(small_run, tmp_path):
    """lifelab inspect lists a segment whose CRC-32 fails; lifelab search fails with one line."""
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    shutil.rmtree(run / "archive")
    _edit("*seg1", _flip(-20))(run / "archive")
    proc = _cli("inspect", str(run), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    corrupt = json.loads(proc.stdout.splitlines()[-1])["corrupt_files"]
    assert corrupt == [str(sorted((run / "archive").glob("seg-*"))[1])]
    _assert_one_line_error(_cli("search", str(run), "--limit", "1000", cwd=tmp_path), "CRC-32")


# -- a run directory of the previous format (golden) --------------------------------------------


def test_golden_format_1_run_is_read_resumed_and_extended(tmp_path):
    """A run written before issue 13 (one archive.sqlite) inspects, searches, and resumes with
    the digest an uninterrupted run reaches; its archive stays SQLite."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN_V1, run)
    info = inspect_run(run)
    assert (info["ticks"], info["archive_size"], info["corrupt_files"]) == (300, 1349, [])
    found = search_run(run, event_type="shock", limit=3)
    assert found["count"] == 3 and {r["event_type"] for r in found["rows"]} == {"shock"}
    life = Life.resume(run)
    try:
        assert type(life.archive).__name__ == "SQLiteArchive"
        assert life.digest() == "238aca39db57c088377ce004232ae32e"
        life.run(100)
        assert life.digest() == "1f2b8457db64d7cf5c48d90326c966be"
        assert life.entries_written == len(life.memory) + len(life.archive)
    finally:
        life.close()
    assert not (run / "archive").exists()


def test_a_run_of_an_unknown_format_is_refused_naming_the_version(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN_V1, run)
    meta = json.loads((run / "run.json").read_text())
    meta["format_version"] = 9
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(OSError, match="run format version 9 is not supported"):
        Life.resume(run)


# -- results parquet of another schema -------------------------------------------------------------


def _golden() -> pl.DataFrame:
    return pl.read_parquet(GOLDEN_RESULTS)


def _table(transform=lambda df: df, metadata: dict[str, str] | None = None):
    def build(path: Path) -> Path:
        meta = {METADATA_KEY: "1"} if metadata is None else metadata
        transform(_golden()).write_parquet(path, metadata=meta)
        return path

    return build


def _file(content: bytes):
    def build(path: Path) -> Path:
        path.write_bytes(content)
        return path

    return build


RESULTS_CASES = [
    ("no version metadata", _table(metadata={}), "not a lifelab results table"),
    (
        "future version",
        _table(metadata={METADATA_KEY: str(RESULTS_SCHEMA_VERSION + 1)}),
        "newer than this lifelab",
    ),
    ("version text", _table(metadata={METADATA_KEY: "one"}), "unknown results schema version"),
    ("version 0", _table(metadata={METADATA_KEY: "0"}), "unknown results schema version 0"),
    ("missing column", _table(lambda df: df.drop("wall_s")), r"missing columns \['wall_s'\]"),
    ("extra column", _table(lambda df: df.with_columns(x=pl.lit(1))), "unexpected columns"),
    (
        "wrong dtype",
        _table(lambda df: df.with_columns(pl.col("ticks").cast(pl.Float64))),
        "wrong dtypes",
    ),
    (
        "bad status",
        _table(lambda df: df.with_columns(status=pl.lit("maybe"))),
        "status must be one of",
    ),
    (
        "zero rate on ok row",
        _table(lambda df: df.with_columns(status=pl.lit("ok"), ticks_per_s=pl.lit(0.0))),
        "ticks_per_s > 0",
    ),
    ("not parquet", _file(b"name,value\na,1\n"), "is not a parquet file"),
    ("empty file", _file(b""), "is not a parquet file"),
    ("truncated", lambda p: _file(GOLDEN_RESULTS.read_bytes()[:5000])(p), "not a parquet file"),
]


@pytest.mark.parametrize(
    ("build", "fragment"), [c[1:] for c in RESULTS_CASES], ids=[c[0] for c in RESULTS_CASES]
)
def test_results_of_another_schema_are_refused(build, fragment, tmp_path):
    """read_results names the mismatch (ResultsSchemaError, a ValueError); the file stays."""
    path = build(tmp_path / "t.parquet")
    before = path.read_bytes()
    with pytest.raises(ResultsSchemaError, match=fragment):
        read_results(path)
    assert path.read_bytes() == before


# -- experiment TOML -------------------------------------------------------------------------------

GOOD_TOML = """
name = "tour"
notebook = "notebooks/01_tour.ipynb"
suite = "tour"
[parameters]
TICKS = 300
"""


@pytest.fixture
def project(tmp_path):
    """A throwaway project root: pyproject.toml, notebooks/ with the tour, experiments/, data/."""
    for folder in ("notebooks", "experiments", "data"):
        (tmp_path / folder).mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    shutil.copy(ROOT / "notebooks" / "01_tour.ipynb", tmp_path / "notebooks")
    return tmp_path


EXPERIMENT_CASES = [
    ("unknown key", "colour = 1\n" + GOOD_TOML, r"unknown key\(s\) \['colour'\]"),
    ("name not a string", GOOD_TOML.replace('name = "tour"', "name = 3"), "'name' must be"),
    ("name with slash", GOOD_TOML.replace('name = "tour"', 'name = "a/b"'), "name 'a/b'"),
    ("suite traversal", GOOD_TOML.replace('suite = "tour"', 'suite = "../x"'), "suite '../x'"),
    (
        "description not a string",
        GOOD_TOML.replace('suite = "tour"', 'suite = "tour"\ndescription = 5'),
        "'description' must be a string",
    ),
    (
        "notebook outside notebooks/",
        GOOD_TOML.replace("notebooks/01_tour.ipynb", "../outside.ipynb"),
        "outside",
    ),
    (
        "notebook missing",
        GOOD_TOML.replace("01_tour", "99_missing"),
        "is not an existing .ipynb",
    ),
    (
        "parameters not a table",
        GOOD_TOML.replace("[parameters]\nTICKS = 300", "parameters = [1]"),
        r"\[parameters\] must be a table",
    ),
    ("output dir traversal", GOOD_TOML + 'OUT_DIR = "../../etc"\n', "outside"),
    ("output path absolute", GOOD_TOML + 'OUT_PATH = "/tmp/x.parquet"\n', "outside"),
    ("lower-case path name", GOOD_TOML + 'out_dir = "../../etc"\n', "outside"),
    ("list of paths", GOOD_TOML + 'EXTRA_DIRS = ["data/a", "../b"]\n', "outside"),
    ("path list traversal", GOOD_TOML + 'OUT_DIR = ["../../etc"]\n', "outside"),
    ("reserved name", GOOD_TOML + 'RUN_DIR = "data/x"\n', "set by lifelab"),
    ("NUL in a path", GOOD_TOML + 'OUT_DIR = "data/\\u0000x"\n', "not a usable path"),
    ("notebook name too long", GOOD_TOML.replace("01_tour", "a" * 5000), "not an existing"),
    ("nested table", GOOD_TOML + "NESTED = { a = 1 }\n", "values must be"),
    ("list of lists", GOOD_TOML + "X = [[1], [2]]\n", "values must be"),
    ("datetime", GOOD_TOML + "X = 1979-05-27T07:32:00Z\n", "values must be"),
    ("nan", GOOD_TOML + "X = nan\n", "must be finite"),
    ("huge int", GOOD_TOML + "X = 0x" + "f" * 40 + "\n", "64 bits"),
    ("name not an identifier", GOOD_TOML + '"A B" = 1\n', "identifiers"),
    ("[full] checked too", GOOD_TOML + '[full]\nOUT_DIR = "/etc"\n', r"\[full\] OUT_DIR"),
    ("invalid TOML", "name = [", "not valid TOML"),
    ("deep nesting", "x = " + "[" * 20000, "nested too deeply"),
    ("5000-digit int", GOOD_TOML + "X = " + "9" * 5000 + "\n", "not valid TOML"),
    ("oversized", GOOD_TOML + "#" * 70_000 + "\n", "at most 64 KiB"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), [c[1:] for c in EXPERIMENT_CASES], ids=[c[0] for c in EXPERIMENT_CASES]
)
def test_bad_experiment_file_is_refused_with_a_reason(text, fragment, project):
    """Unknown keys, wrong types and paths outside notebooks/ or data/ are refused by name."""
    path = project / "experiments" / "x.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError, match=fragment):
        load_experiment(path, root=project)


def test_experiment_file_not_utf8_is_refused(project):
    """Bytes that are not UTF-8 are refused as invalid TOML."""
    path = project / "experiments" / "x.toml"
    path.write_bytes(GOOD_TOML.encode() + b"X = '\xff\xfe'\n")
    with pytest.raises(ExperimentError, match="not valid TOML"):
        load_experiment(path, root=project)


def test_notebook_symlink_escaping_the_project_is_refused(project, tmp_path_factory):
    """A symlink under notebooks/ that points outside is resolved and refused."""
    outside = tmp_path_factory.mktemp("elsewhere") / "evil.ipynb"
    shutil.copy(project / "notebooks" / "01_tour.ipynb", outside)
    (project / "notebooks" / "evil.ipynb").symlink_to(outside)
    path = project / "experiments" / "x.toml"
    path.write_text(GOOD_TOML.replace("01_tour", "evil"))
    with pytest.raises(ExperimentError, match="outside"):
        load_experiment(path, root=project)


def test_the_good_experiment_file_loads(project):
    """The base of every bad case above is itself valid (so each case tests one fault)."""
    path = project / "experiments" / "x.toml"
    path.write_text(GOOD_TOML + 'OUT_DIR = "data/out"\nEXTRA_DIRS = ["data/a"]\n')
    exp = load_experiment(path, root=project)
    assert exp.parameters["TICKS"] == 300
