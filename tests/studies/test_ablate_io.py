"""I/O ablations: their tables, and synchronous variants that do the same work as lifelab's."""

import json
import math
import threading

import numpy as np
import pytest

from lifelab.exceptions import ConfigError
from lifelab.life.events import TypeTable
from lifelab.memory.sqlite_archive import SQLiteArchive
from lifelab.store.logs import read_logs
from lifelab.store.snapshot import list_snapshots, load_newest, read_snapshot
from lifelab.studies import ablate_io
from lifelab.studies.ablate_io import (
    QUESTIONS,
    _filled_capture,
    _formats,
    _InlineArchive,
    _io_life,
    _log_records,
    _spill_batches,
    archive_writes,
    log_format,
    persistence_io,
    run_all,
)
from lifelab.studies.ablation import ABLATION_COLUMNS, read_ablation, write_ablation

REPEATS = 2
TINY = {
    "archive_writes": {"sizes": (60,), "repeats": REPEATS, "tick_us": 0.0},
    "persistence_io": {
        "sizes": (300,),
        "ticks": 120,
        "snapshot_every": 40,
        "log_every": 5,
        "repeats": REPEATS,
    },
    "log_format": {"sizes": (150,), "repeats": REPEATS},
}
RUNNERS = {
    "archive_writes": archive_writes,
    "persistence_io": persistence_io,
    "log_format": log_format,
}
EXPECTED = {
    "archive_writes": (
        ablate_io.ARCHIVE_INLINE,
        ablate_io.ARCHIVE_ASYNC,
        {ablate_io.ARCHIVE_INLINE, ablate_io.ARCHIVE_ASYNC},
        {"append_p50_us", "append_p99_us", "rows_per_s"},
    ),
    "persistence_io": (
        ablate_io.IO_SYNC,
        ablate_io.IO_ASYNC,
        {ablate_io.IO_SYNC, ablate_io.IO_ASYNC},
        {"tick_p50_us", "tick_p99_us", "tick_max_us", "tick_mean_us", "io_mean_us"},
    ),
    "log_format": (
        ablate_io.LOG_JSON,
        ablate_io.LOG_MSGSPEC,
        {ablate_io.LOG_JSON, ablate_io.LOG_ORJSON, ablate_io.LOG_MSGSPEC},
        {"encode_ns_per_record", "decode_ns_per_record", "flush_ns_per_record", "bytes_per_record"},
    ),
}


def lifelab_threads():
    return {t for t in threading.enumerate() if t.name.startswith("lifelab-")}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Each ablation once at tiny sizes, with its scratch files under a tmp dir."""
    before = lifelab_threads()
    out = {}
    for name, runner in RUNNERS.items():
        work = tmp_path_factory.mktemp(name)
        out[name] = (runner(**TINY[name], workdir=work), work)
    return out, lifelab_threads() - before


@pytest.mark.parametrize("name", list(RUNNERS))
def test_table_has_every_variant_and_metric(tables, name):
    """Schema, variants, metrics, one size, n = repeats, baseline ratios 1, values positive."""
    table, _ = tables[0][name]
    baseline, chosen, variants, metrics = EXPECTED[name]
    assert list(table.schema) == [col for col, _ in ABLATION_COLUMNS]
    assert [str(dtype) for dtype in table.schema.values()] == [d for _, d in ABLATION_COLUMNS]
    assert set(table["ablation"]) == {name}
    assert set(table["variant"]) == variants
    assert set(table["size"]) == {TINY[name]["sizes"][0]}
    pairs = list(zip(table["variant"], table["metric"], strict=True))
    assert sorted(pairs) == sorted((v, m) for v in variants for m in metrics)
    assert set(table["n"]) == {REPEATS}
    assert set(table.filter(table["baseline"])["variant"]) == {baseline}
    assert set(table.filter(table["chosen"])["variant"]) == {chosen}
    assert table.filter(table["baseline"])["ratio"].to_list() == [1.0] * len(metrics)
    for col in ("median", "ci_low", "ci_high", "ratio"):
        assert all(math.isfinite(v) and v > 0 for v in table[col].to_list()), col
    assert (table["ci_low"] <= table["median"]).all()
    assert (table["median"] <= table["ci_high"]).all()


@pytest.mark.parametrize("name", list(RUNNERS))
def test_table_round_trips_through_parquet(tables, tmp_path, name):
    """write_ablation then read_ablation gives the table and its question back."""
    table, _ = tables[0][name]
    path = write_ablation(table, question=QUESTIONS[name], root=tmp_path)
    assert path == tmp_path / f"{name}.parquet"
    back, meta = read_ablation(path)
    assert back.equals(table)
    assert meta["question"] == QUESTIONS[name]


def test_ablations_leave_no_threads_or_scratch_files(tables):
    """Every archive, writer and Life is closed; per-sample files are removed."""
    out, new_threads = tables
    assert not {t for t in new_threads if t.is_alive()}
    assert not list(out["archive_writes"][1].iterdir())
    assert not list(out["persistence_io"][1].iterdir())
    assert {p.name for p in out["log_format"][1].iterdir()} <= {"log-run", "flush.jsonl"}


def test_inline_archive_commits_in_append_the_rows_async_commits(tmp_path):
    """Same batches -> identical rows; inline rows are committed before append returns."""
    names = TypeTable().names
    batches = _spill_batches(40, seed=3, n_types=len(names))
    assert {len(b["id"]) for b in batches} <= set(range(1, 21))
    got = {}
    for cls in (_InlineArchive, SQLiteArchive):
        with cls(tmp_path / f"{cls.__name__}.sqlite", type_names=names) as archive:
            rows = 0
            for batch in batches:
                archive.append(batch)
                rows += len(batch["id"])
                if cls is _InlineArchive:
                    assert archive.count() == rows
                    assert archive.backlog == 0
            archive.flush()
            assert archive.count() == len(archive) == rows
            got[cls] = archive.columns()
    inline, lifelab = got[_InlineArchive], got[SQLiteArchive]
    assert inline.keys() == lifelab.keys()
    for key in inline:
        assert inline[key].dtype == lifelab[key].dtype
        np.testing.assert_array_equal(inline[key], lifelab[key])


def test_sync_io_life_lives_like_the_async_one(tmp_path):
    """Same digest, loadable snapshots with equal digests, equal logs; the sync log is inline."""
    capture = _filled_capture(300, seed=1)
    lives = {}
    for sync in (True, False):
        path = tmp_path / ("sync" if sync else "async")
        with _io_life(capture, path, sync=sync, snapshot_every=40, log_every=5) as life:
            life.run(20)
            if sync:  # on disk when the tick returns: written in the tick, not by a thread
                assert (path / "snapshots" / "snap-000000000120.lls").exists()
                last = read_logs(path / "logs")[-1]
                assert (last["kind"], last["tick"]) == ("tick", 120)
            life.run(130)
            digest = life.digest()
            persistence = life.persistence
        lives[sync] = (path, digest, persistence)
    (sync_path, sync_digest, sync_store), (async_path, async_digest, async_store) = (
        lives[True],
        lives[False],
    )
    assert sync_digest == async_digest
    assert sync_store.snapshots.written >= 3
    assert sync_store.logs.stats()["records_written"] == 0  # every record went inline
    assert async_store.logs.stats()["records_written"] > 0
    snaps = list_snapshots(sync_path / "snapshots")
    assert snaps
    for snap in snaps:
        read_snapshot(snap)  # raises on a corrupt or inconsistent file
    newest = {}
    for path in (sync_path, async_path):
        capture_back, corrupt = load_newest(path / "snapshots")
        assert capture_back is not None
        assert corrupt == []
        newest[path] = capture_back
    assert newest[sync_path].ticks == newest[async_path].ticks == capture.ticks + 150
    assert newest[sync_path].digest == newest[async_path].digest == sync_digest
    sync_logs = read_logs(sync_path / "logs")
    assert sync_logs == read_logs(async_path / "logs")
    assert [r["kind"] for r in sync_logs].count("tick") == 150 // 5
    assert sync_logs[-1]["kind"] == "shutdown"


def test_every_log_format_round_trips_real_records(tmp_path):
    """Each format decodes (own decoder and json) to the record; msgspec is the log's own bytes."""
    records = _log_records(tmp_path / "run", 120, seed=2)
    assert {r["kind"] for r in records} >= {"tick", "decision"}
    formats = _formats()
    assert set(formats) == EXPECTED["log_format"][2]
    for name, (encode, decode) in formats.items():
        for rec in records:
            line = encode(rec)
            assert line.endswith(b"\n") and line.count(b"\n") == 1, name
            assert decode(line) == rec, name
            assert json.loads(line) == rec, name
    lines = (tmp_path / "run" / "logs" / "life.jsonl").read_bytes().splitlines(keepends=True)
    encode = formats[ablate_io.LOG_MSGSPEC][0]
    assert [encode(rec) for rec in records] == lines[1 : len(records) + 1]  # after the header


def test_run_all_writes_one_table_per_question(tmp_path, monkeypatch):
    """run_all writes the three tables with their questions and removes its scratch files."""
    monkeypatch.setitem(ablate_io._SETTINGS, "quick", TINY)
    root = tmp_path / "ablations"
    paths = run_all(root, scale="quick", progress=False)
    assert paths == [root / f"{name}.parquet" for name in QUESTIONS]
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in paths)
    for name, path in zip(QUESTIONS, paths, strict=True):
        table, meta = read_ablation(path)
        assert set(table["ablation"]) == {name}
        assert meta["question"] == QUESTIONS[name]


@pytest.mark.parametrize(
    ("runner", "kwargs"),
    [
        (archive_writes, {"sizes": ()}),
        (archive_writes, {"sizes": (0,)}),
        (archive_writes, {"sizes": (10,), "tick_us": -1.0}),
        (persistence_io, {"sizes": (50,), "ticks": 10}),
        (persistence_io, {"sizes": (300,), "ticks": 0}),
        (log_format, {"sizes": "100"}),
    ],
)
def test_bad_arguments_raise_config_error(runner, kwargs, tmp_path):
    """Sizes, ticks and tick work are validated, with a ValueError naming the field."""
    with pytest.raises(ConfigError) as info:
        runner(**kwargs, repeats=1, workdir=tmp_path)
    assert isinstance(info.value, ValueError)
    assert any(word in str(info.value) for word in ("sizes", "ticks", "tick_us", "entries"))
