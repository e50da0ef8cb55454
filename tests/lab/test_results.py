"""Results tables on disk: write/read round trip, no overwrite, versions, environment matching."""

import hashlib
import json
import shutil
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from lifelab.exceptions import LifelabError
from lifelab.lab.results import (
    CHECKSUM_KEY,
    KIND_KEY,
    PLAIN,
    VERSION_KEY,
    ResultsExistsError,
    ResultsSchemaError,
    add_checksum,
    load_results,
    read_metadata,
    read_results,
    read_table,
    write_results,
    write_table,
)
from lifelab.lab.schema import (
    ALL_COLUMNS,
    INSTRUCTION_COLUMNS,
    METADATA_KEY,
    RESULTS_SCHEMA_VERSION,
    polars_schema,
)
from lifelab.lab.spec import TrialSpec
from lifelab.lab.sweep import rows_to_frame

GOLDEN = Path(__file__).parent / "fixtures" / "results_v1.parquet"
# A committed table written before write_table, with no metadata at all: read as plain, version 0.
COMMITTED_PLAIN = (
    Path(__file__).parents[2] / "data" / "results" / "memory_scaling" / "memory_scaling.parquet"
)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_FILL = {"String": "x", "Int64": 1, "Float64": 1.0, "Boolean": False, "Datetime": T0}
CURRENT = str(RESULTS_SCHEMA_VERSION)


def make_table(n=3, *, cpu="CPU A", python="3.11.7", started=T0, suite="s", sweep_id="w1"):
    """A synthetic results table of n ok rows (no trials run)."""
    rows = []
    for i in range(n):
        row = {name: _FILL[kind] for name, kind in ALL_COLUMNS}
        row.update(
            suite=suite,
            sweep_id=sweep_id,
            trial_id=f"{sweep_id}-{i}",
            repeat=i,
            order=i,
            ticks_per_s=1_000.0 + i,
            cpu_model=cpu,
            python_version=python,
            started_at=started + timedelta(seconds=i),
            status="ok",
            error="",
        )
        rows.append(row)
    return rows_to_frame(rows)


def test_write_read_round_trip(tmp_path):
    """A table written with its metadata reads back equal, schema and all."""
    df = make_table()
    path = write_results(df, tmp_path / "deep" / "suite" / "t.parquet", suite="s", sweep_id="w1")
    assert path.is_file()
    back = read_results(path)
    assert back.schema == polars_schema()
    assert back.equals(df)
    meta = read_metadata(path)
    assert meta[METADATA_KEY] == CURRENT == "4"
    assert meta["suite"] == "s" and meta["sweep_id"] == "w1"
    assert not list(path.parent.glob(".*tmp"))


def test_write_refuses_to_overwrite(tmp_path):
    """An existing file is never replaced; the error is also a FileExistsError."""
    path = write_results(make_table(), tmp_path / "t.parquet", suite="s", sweep_id="w1")
    before = path.read_bytes()
    with pytest.raises(ResultsExistsError) as info:
        write_results(make_table(1), path, suite="s", sweep_id="w2")
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, LifelabError)
    assert path.read_bytes() == before


def test_write_refuses_wrong_columns(tmp_path):
    """A frame that is not the schema (missing column, wrong dtype) is refused before writing."""
    df = make_table()
    with pytest.raises(ResultsSchemaError, match="missing columns"):
        write_results(df.drop("wall_s"), tmp_path / "a.parquet", suite="s", sweep_id="w")
    with pytest.raises(ResultsSchemaError, match="ticks"):
        write_results(
            df.with_columns(pl.col("ticks").cast(pl.Float64)),
            tmp_path / "b.parquet",
            suite="s",
            sweep_id="w",
        )
    assert not list(tmp_path.iterdir())


def test_read_refuses_newer_and_unknown_versions(tmp_path):
    """A table from a newer lifelab, or without a version, is refused with a clear error."""
    df = make_table()
    newer = tmp_path / "newer.parquet"
    df.write_parquet(newer, metadata={METADATA_KEY: str(RESULTS_SCHEMA_VERSION + 1)})
    with pytest.raises(ResultsSchemaError, match="newer"):
        read_results(newer)
    odd = tmp_path / "odd.parquet"
    df.write_parquet(odd, metadata={METADATA_KEY: "one"})
    with pytest.raises(ResultsSchemaError, match="unknown"):
        read_results(odd)
    bare = tmp_path / "bare.parquet"
    df.write_parquet(bare)
    with pytest.raises(ResultsSchemaError, match="not a lifelab results table"):
        read_results(bare)
    with pytest.raises(ValueError):  # ResultsSchemaError is also a ValueError
        read_results(bare)


def test_read_validates_columns_and_values(tmp_path):
    """A versioned file with a missing column or an impossible value is refused on load."""
    bad = tmp_path / "bad.parquet"
    make_table().drop("cpu_model").write_parquet(bad, metadata={METADATA_KEY: CURRENT})
    with pytest.raises(ResultsSchemaError, match="cpu_model"):
        read_results(bad)
    worse = tmp_path / "worse.parquet"
    make_table().with_columns(pl.lit("maybe").alias("status")).write_parquet(
        worse, metadata={METADATA_KEY: CURRENT}
    )
    with pytest.raises(ResultsSchemaError, match="status"):
        read_results(worse)


def test_load_results_keeps_the_newest_environment(tmp_path):
    """Rows from another CPU or Python than the newest table's are left out, with a warning."""
    root = tmp_path / "results"
    old = make_table(2, cpu="CPU OLD", sweep_id="w0", started=T0 - timedelta(days=3))
    mid = make_table(3, cpu="CPU A", python="3.12.1", sweep_id="w1", started=T0 - timedelta(1))
    new = make_table(4, cpu="CPU A", sweep_id="w2", started=T0)
    also = make_table(5, cpu="CPU A", sweep_id="w3", started=T0 - timedelta(days=2))
    for name, df in (("a", new), ("b", old), ("c", mid), ("d", also)):
        write_results(df, root / "s" / f"{name}.parquet", suite="s", sweep_id=name)
    with pytest.warns(UserWarning, match="left out 5 of 14 rows") as record:
        kept = load_results(root)
    message = str(record[0].message)
    assert "CPU OLD" in message and "3.12.1" in message
    assert kept.height == 9
    assert set(kept["sweep_id"]) == {"w2", "w3"}
    assert kept["sweep_id"].to_list() == ["w3"] * 5 + ["w2"] * 4  # oldest table first
    assert kept.schema == polars_schema()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        everything = load_results(root, match_environment=False)
    assert everything.height == 14


def test_load_results_suite_filter_and_empty_root(tmp_path):
    """suite= reads only that suite's folder; a missing root gives an empty table of the schema."""
    root = tmp_path / "results"
    write_results(make_table(2, suite="a"), root / "a" / "1.parquet", suite="a", sweep_id="1")
    write_results(make_table(3, suite="b"), root / "b" / "2.parquet", suite="b", sweep_id="2")
    assert load_results(root, suite="a").height == 2
    assert load_results(root).height == 5
    empty = load_results(tmp_path / "nowhere")
    assert empty.is_empty() and empty.schema == polars_schema()


def test_golden_v1_fixture_still_loads():
    """The committed version-1 table loads, with its rows, statuses and cell hashes intact.

    Version 1 predates engines: its rows load with engine "python", the engine they ran.

    Made once with ``run_sweep({"batch_size": [1, 64], "mortality_ticks": [None, 1]},
    repeats=1, suite="golden", base={"ticks": 100, "warmup_ticks": 10, <the FRAGILE weakness
    settings of test_runner.py without mortality_ticks>})``: two ok and two failed trials.
    """
    df = read_results(GOLDEN)
    meta = read_metadata(GOLDEN)
    assert meta[METADATA_KEY] == "1" and meta["suite"] == "golden"
    assert df.schema == polars_schema()
    assert df.height == 4
    assert df["engine"].to_list() == ["python"] * 4
    assert df["status"].to_list() == ["ok", "failed", "ok", "failed"]
    assert df["sweep_id"].unique().to_list() == [meta["sweep_id"]]
    assert df["order"].to_list() == [0, 1, 2, 3]
    failed = df.filter(pl.col("status") == "failed")
    assert failed["ticks_per_s"].null_count() == 2
    assert all("organism died" in e for e in failed["error"])
    ok = df.filter(pl.col("status") == "ok")
    assert (ok["ticks_per_s"] > 0).all()
    # Cell hashes are part of the record: today's specs must hash to the stored cells.
    for row in df.iter_rows(named=True):
        spec = TrialSpec(
            ticks=row["ticks"],
            warmup_ticks=row["warmup_ticks"],
            seed=row["seed"],
            events_per_tick=row["events_per_tick"],
            batch_size=row["batch_size"],
            memory_capacity=row["memory_capacity"],
            gc_mode=row["gc_mode"],
            engine=row["engine"],
            config=json.loads(row["config_json"]),
        )
        assert spec.cell == row["cell"]


def test_version_1_tables_upgrade_and_version_2_keeps_the_engine(tmp_path):
    """A version-1 table gains engine="python"; a version-2 table keeps each row's engine."""
    df = make_table(2).with_columns(pl.Series("engine", ["compiled", "python"]))
    old = tmp_path / "v1.parquet"
    df.drop("engine").write_parquet(old, metadata={METADATA_KEY: "1"})
    assert read_results(old)["engine"].to_list() == ["python", "python"]
    assert read_results(old).drop("engine").equals(df.drop("engine"))
    path = write_results(df, tmp_path / "v2.parquet", suite="s", sweep_id="w1")
    assert read_results(path)["engine"].to_list() == ["compiled", "python"]
    # Both versions load side by side (one table of today's columns).
    write_results(df, tmp_path / "root" / "s" / "new.parquet", suite="s", sweep_id="w1")
    df.drop("engine").write_parquet(
        tmp_path / "root" / "s" / "old.parquet", metadata={METADATA_KEY: "1"}
    )
    both = load_results(tmp_path / "root")
    assert both.height == 4 and both.schema == polars_schema()
    assert sorted(both["engine"].to_list()) == ["compiled", "python", "python", "python"]


def test_version_3_tables_load_with_null_instruction_counts(tmp_path):
    """A version-3 table (no instruction columns) loads with them null; version 4 keeps them."""
    df = make_table(2).with_columns(
        instructions_per_tick=pl.Series([78_800.0, 78_801.0]),
        instructions_tool=pl.lit("cachegrind 3.19.0"),
    )
    old = tmp_path / "v3.parquet"
    df.drop(name for name, _ in INSTRUCTION_COLUMNS).write_parquet(
        old, metadata={METADATA_KEY: "3"}
    )
    back = read_results(old)
    assert back.schema == polars_schema()
    assert back["instructions_per_tick"].null_count() == 2
    assert back.drop(name for name, _ in INSTRUCTION_COLUMNS).equals(
        df.drop(name for name, _ in INSTRUCTION_COLUMNS)
    )
    path = write_results(df, tmp_path / "v4.parquet", suite="s", sweep_id="w1")
    assert read_results(path)["instructions_per_tick"].to_list() == [78_800.0, 78_801.0]


def test_a_version_1_table_with_an_engine_column_is_refused(tmp_path):
    """An engine column under version-1 metadata is a mislabelled table, not data to overwrite."""
    path = tmp_path / "odd.parquet"
    make_table(1).write_parquet(path, metadata={METADATA_KEY: "1"})
    with pytest.raises(ResultsSchemaError, match="version 1 but has an 'engine' column"):
        read_results(path)


def test_load_results_skips_other_parquet_and_hidden_files(tmp_path):
    """A parquet without results metadata is skipped with a warning; dot-files are ignored."""
    root = tmp_path / "results"
    write_results(make_table(2), root / "s" / "1.parquet", suite="s", sweep_id="1")
    pl.DataFrame({"file": ["x.py"]}).write_parquet(root / "s" / "profile.parquet")
    (root / "s" / ".hidden").mkdir()
    pl.DataFrame({"a": [1]}).write_parquet(root / "s" / ".hidden" / "junk.parquet")
    with pytest.warns(UserWarning, match="profile.parquet") as record:
        df = load_results(root)
    assert df.height == 2
    assert not any("junk" in str(w.message) for w in record)
    newer = root / "s" / "2.parquet"
    make_table(1).write_parquet(newer, metadata={METADATA_KEY: "9"})
    with pytest.raises(ResultsSchemaError, match="newer"):
        load_results(root)


# -- every table: write_table / read_table ---------------------------------------------------------


def test_write_table_records_kind_version_and_metadata(tmp_path):
    """The kind and version go into the parquet metadata beside the writer's own keys."""
    df = pl.DataFrame({"entries": [1_000, 10_000], "decay_ms": [0.1, 1.0]})
    path = write_table(
        df, tmp_path / "deep" / "t.parquet", kind="memory_scaling", version=3, metadata={"a": "b"}
    )
    meta = read_metadata(path)
    assert (meta[KIND_KEY], meta[VERSION_KEY], meta["a"]) == ("memory_scaling", "3", "b")
    table = read_table(path)
    assert table.data.equals(df)
    assert (table.kind, table.version, table.metadata) == ("memory_scaling", 3, {"a": "b"})
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temporary file left


def test_write_table_never_overwrites_unless_asked_and_then_only_its_own_kind(tmp_path):
    """An existing path is refused; replace=True replaces the same kind or a plain table only."""
    path = tmp_path / "t.parquet"
    write_table(pl.DataFrame({"x": [1]}), path, kind="k", version=1)
    with pytest.raises(ResultsExistsError, match="never overwritten"):
        write_table(pl.DataFrame({"x": [2]}), path, kind="k", version=1)
    assert read_table(path).data["x"].to_list() == [1]
    write_table(pl.DataFrame({"x": [2]}), path, kind="k", version=2, replace=True)
    assert (read_table(path).version, read_table(path).data["x"][0]) == (2, 2)
    with pytest.raises(ResultsExistsError, match="holds a 'k' table"):
        write_table(pl.DataFrame({"x": [3]}), path, kind="other", version=1, replace=True)
    sweep = tmp_path / "sweep.parquet"
    write_results(make_table(1), sweep, suite="s", sweep_id="w1")
    with pytest.raises(ResultsExistsError, match="holds a 'results' table"):
        write_table(pl.DataFrame({"x": [3]}), sweep, kind="k", version=1, replace=True)
    plain = tmp_path / "plain.parquet"
    pl.DataFrame({"x": [0]}).write_parquet(plain)
    write_table(pl.DataFrame({"x": [4]}), plain, kind="k", version=1, replace=True)
    assert read_table(plain).kind == "k"


def test_an_old_table_without_metadata_reads_as_plain_version_0():
    """The committed data/results tables written before write_table stay readable."""
    assert KIND_KEY not in read_metadata(COMMITTED_PLAIN)
    table = read_table(COMMITTED_PLAIN, kind="memory_scaling", max_version=1)
    assert (table.kind, table.version, table.metadata) == (PLAIN, 0, {})
    assert table.data.equals(pl.read_parquet(COMMITTED_PLAIN))
    assert {"entries", "decay_ms"} <= set(table.data.columns)
    with pytest.raises(ResultsSchemaError, match="not a lifelab results table"):
        read_results(COMMITTED_PLAIN)


def test_results_tables_are_kind_results_with_the_legacy_key_kept(tmp_path):
    """A sweep's table has the common keys and still lifelab_results_schema; v1 files read too."""
    path = write_results(make_table(2), tmp_path / "r.parquet", suite="s", sweep_id="w1")
    meta = read_metadata(path)
    assert (meta[KIND_KEY], meta[VERSION_KEY], meta[METADATA_KEY]) == ("results", CURRENT, CURRENT)
    table = read_table(path)
    assert (table.kind, table.version, table.metadata["sweep_id"]) == (
        "results",
        RESULTS_SCHEMA_VERSION,
        "w1",
    )
    assert (read_table(GOLDEN).kind, read_table(GOLDEN).version) == ("results", 1)


def test_read_table_refuses_another_kind_a_newer_version_and_bad_versions(tmp_path):
    """kind and max_version guard a reader; a version that is no integer is refused."""
    path = write_table(pl.DataFrame({"x": [1]}), tmp_path / "t.parquet", kind="k", version=2)
    with pytest.raises(ResultsSchemaError, match="is a 'k' table, not a 'j' table"):
        read_table(path, kind="j")
    with pytest.raises(ResultsSchemaError, match="newer than this lifelab reads"):
        read_table(path, kind="k", max_version=1)
    odd = tmp_path / "odd.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(odd, metadata={KIND_KEY: "k", VERSION_KEY: "two"})
    with pytest.raises(ResultsSchemaError, match="unknown k schema version 'two'"):
        read_table(odd)
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "missing.parquet")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"kind": "", "version": 1}, "kind must be"),
        ({"kind": PLAIN, "version": 1}, "kind must be"),
        ({"kind": "k", "version": 0}, "version must be"),
        ({"kind": "k", "version": 1, "metadata": {KIND_KEY: "x"}}, "reserved"),
        ({"kind": "k", "version": 1, "metadata": {"n": 1}}, "must be strings"),
    ],
)
def test_write_table_refuses_bad_kinds_versions_and_metadata(tmp_path, kw, match):
    """A table is always written with a real kind, a version >= 1 and string metadata."""
    with pytest.raises(ResultsSchemaError, match=match):
        write_table(pl.DataFrame({"x": [1]}), tmp_path / "t.parquet", **kw)
    assert not (tmp_path / "t.parquet").exists()


def test_each_size_reads_only_its_own_tables(tmp_path):
    """A full-size root leaves out quick/ and smoke/ (and hidden files); a quick root is quick."""
    from lifelab.lab.results import results_size, suite_dir, table_files

    for rel in (
        "batch_gc/a.parquet",
        "quick/batch_gc/b.parquet",
        "smoke/io/c.parquet",
        "io/.tmp-d.parquet",
        "io/e.parquet",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in table_files(tmp_path)] == [
        "batch_gc/a.parquet",
        "io/e.parquet",
    ]
    assert [p.name for p in table_files(tmp_path / "quick")] == ["b.parquet"]
    assert results_size(tmp_path) == "full"
    assert results_size(tmp_path / "quick") == "quick"
    assert results_size(tmp_path / "smoke") == "smoke"
    assert table_files(tmp_path / "missing") == []
    # the writers' side of the same rule
    assert suite_dir(tmp_path, "io") == tmp_path / "io"
    assert suite_dir(tmp_path, "io", "quick") == tmp_path / "quick" / "io"
    assert table_files(suite_dir(tmp_path, "batch_gc", "quick")) == [
        tmp_path / "quick" / "batch_gc" / "b.parquet"
    ]
    with pytest.raises(ValueError, match="size"):
        suite_dir(tmp_path, "io", "huge")


# -- checksums -------------------------------------------------------------------------------------

COMMITTED_ROOT = Path(__file__).parents[2] / "data" / "results"


def test_write_table_stores_a_checksum_that_read_table_checks(tmp_path):
    """A written table carries the SHA-256 of its bytes (with the digest zeroed) and reads back
    verified, with its rows and keys; the checksum key stays out of Table.metadata."""
    df = pl.DataFrame({"x": [1, 2], "s": ["a", CHECKSUM_KEY]})  # the key as a value: harmless
    path = write_table(df, tmp_path / "t.parquet", kind="k", version=1, metadata={"q": "why"})
    digest = read_metadata(path)[CHECKSUM_KEY]
    blob = path.read_bytes()
    zeroed = blob.replace(digest.encode(), b"0" * 64)
    assert hashlib.sha256(zeroed).hexdigest() == digest
    table = read_table(path)
    assert table.verified and table.data.equals(df)
    assert (table.kind, table.version, table.metadata) == ("k", 1, {"q": "why"})
    copy = tmp_path / "elsewhere" / "copy.parquet"  # self-contained: no sidecar to carry along
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert read_table(copy).verified


def test_a_damaged_checksummed_table_is_refused_by_every_reader(tmp_path):
    """One flipped bit in a page: read_table, read_metadata, read_results and load_results all
    refuse the file with ResultsSchemaError naming it."""
    path = write_results(make_table(), tmp_path / "s" / "t.parquet", suite="s", sweep_id="w1")
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 4] ^= 0x10
    path.write_bytes(bytes(blob))
    readers = [read_table, read_metadata, read_results, lambda p: load_results(p.parent.parent)]
    for reader in readers:
        with pytest.raises(ResultsSchemaError, match="checksum mismatch") as info:
            reader(path)
        assert str(path) in str(info.value)


def test_write_table_refuses_the_checksum_key_in_metadata(tmp_path):
    """The checksum key is the format's own, like the kind and version keys."""
    with pytest.raises(ResultsSchemaError, match="reserved"):
        write_table(
            pl.DataFrame({"x": [1]}), tmp_path / "t.parquet", kind="k", version=1,
            metadata={CHECKSUM_KEY: "0" * 64},
        )  # fmt: skip


def test_a_table_without_a_checksum_reads_as_before_unverified(tmp_path):
    """Tables written before checksums (or by a bare write_parquet) are read, unverified and
    without a warning; a forged placeholder of zeros is a mismatch, not a missing checksum."""
    path = tmp_path / "old.parquet"
    make_table(2).drop(["engine"]).write_parquet(path, metadata={METADATA_KEY: "1", "suite": "s"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_table(path)
        assert read_results(path).height == 2
    assert not table.verified and CHECKSUM_KEY not in read_metadata(path)
    assert (table.kind, table.version, table.metadata["suite"]) == ("results", 1, "s")
    forged = tmp_path / "forged.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(forged, metadata={CHECKSUM_KEY: "0" * 64})
    with pytest.raises(ResultsSchemaError, match="checksum mismatch"):
        read_table(forged)


def test_add_checksum_keeps_rows_and_every_metadata_key(tmp_path):
    """A plain table and a legacy-key table gain a checksum and nothing else; a second call
    leaves the file alone; a damaged file is refused, not rewritten."""
    plain = tmp_path / "plain.parquet"
    pl.DataFrame({"entries": [1, 2], "decay_ms": [0.5, None]}).write_parquet(plain)
    legacy = tmp_path / "legacy.parquet"
    shutil.copy(GOLDEN, legacy)
    for path in (plain, legacy):
        before, meta = pl.read_parquet(path), read_metadata(path)
        add_checksum(path)
        after = read_table(path)
        assert after.verified and after.data.equals(before) and after.data.schema == before.schema
        assert read_metadata(path) == {**meta, CHECKSUM_KEY: read_metadata(path)[CHECKSUM_KEY]}
        blob = path.read_bytes()
        add_checksum(path)
        assert path.read_bytes() == blob
    assert read_table(plain).kind == PLAIN and KIND_KEY not in read_metadata(legacy)
    assert read_results(legacy).equals(read_results(GOLDEN))
    damaged = bytearray(plain.read_bytes())
    damaged[10] ^= 0x01
    plain.write_bytes(bytes(damaged))
    with pytest.raises(ResultsSchemaError, match="checksum mismatch"):
        add_checksum(plain)
    assert plain.read_bytes() == bytes(damaged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy.parquet", "plain.parquet"]


def test_every_committed_table_carries_a_valid_checksum():
    """The committed record under data/results was migrated: each table is verified on read."""
    paths = sorted(COMMITTED_ROOT.rglob("*.parquet"))
    assert paths
    unverified = [str(p) for p in paths if not read_table(p).verified]
    assert unverified == []
