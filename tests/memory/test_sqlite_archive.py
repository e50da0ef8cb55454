"""The SQLite archive (DESIGN §1.7, §2 invariants 4 and 6): durable, exact, searchable."""

import itertools
import sqlite3
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelab.exceptions import ArchiveError, ArchiveSchemaError, LifelabError
from lifelab.memory import sqlite_archive, writer
from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import SORT_KEYS, filter_columns
from lifelab.memory.sqlite_archive import SCHEMA_VERSION, SQLiteArchive

TYPES = ("noise", "decay", "recovery", "shock")


def batch(ids, seed=0, n_types=4):
    """Columns for entries with these ids, other fields random but reproducible."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    cols = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    cols["id"][:] = ids
    cols["event_type"][:] = rng.integers(0, n_types, n)
    cols["kind"][:] = rng.integers(0, 2, n)
    cols["action"][:] = rng.integers(0, 5, n)
    cols["significance"][:] = rng.random(n) * 1.5
    cols["weight"][:] = rng.random(n)
    cols["timestamp"][:] = np.sort(rng.random(n)) * 1000.0
    cols["subjective_timestamp"][:] = cols["timestamp"] * 1.25
    cols["tick"][:] = np.asarray(ids) // 3
    for name in ("feedback_energy", "feedback_stability", "feedback_integrity"):
        cols[name][:] = rng.standard_normal(n)
    return cols


def concat(batches):
    """All batches as one set of columns."""
    return {name: np.concatenate([b[name] for b in batches]) for name in COLUMNS}


def assert_same(got, want):
    """Same columns, dtypes and bits (so -0.0 and 0.0 differ)."""
    assert list(got) == list(COLUMNS)
    for name, dtype in COLUMNS.items():
        assert got[name].dtype == dtype, name
        assert got[name].tobytes() == want[name].tobytes(), name


def by_id(cols):
    """Columns reordered by id (columns() returns id order, batches are in append order)."""
    order = np.argsort(cols["id"], kind="stable")
    return {name: col[order] for name, col in cols.items()}


class Gate:
    """Holds the writer inside its transaction until opened, so it is busy on demand."""

    def __init__(self, monkeypatch):
        self.entered = threading.Event()
        self.opened = threading.Event()
        original = SQLiteArchive._insert

        def insert(archive, rows):
            self.entered.set()
            assert self.opened.wait(10), "test gate never opened"
            original(archive, rows)

        monkeypatch.setattr(SQLiteArchive, "_insert", insert)


def test_round_trip_keeps_every_column_bit_exact(tmp_path):
    """Extreme values, -0.0 and float32 feedback come back bit-identical with COLUMNS dtypes."""
    cols = batch([0, 1, 2, 3, 4])
    cols["event_type"][:] = [0, 1, -32768, 32767, 3]
    cols["kind"][:] = [0, 1, -128, 127, 0]
    cols["action"][:] = [0, 4, -128, 127, 2]
    cols["significance"][:] = [-0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 3.0]
    cols["weight"][:] = [1.0, -0.0, np.nextafter(1.0, 2.0), 2.0**60, 1e-300]
    cols["tick"][:] = [0, -1, 2**63 - 1, -(2**63), 7]
    cols["feedback_energy"][:] = [-0.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny, 0.1, 1]
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        archive.append(cols)
        assert_same(archive.columns(), cols)
        assert_same(archive.search(sort="id"), cols)
    with SQLiteArchive.open_readonly(tmp_path / "a.sqlite") as archive:
        assert_same(archive.columns(), cols)


def test_entries_table_has_every_column_in_order(tmp_path):
    """The file's entries table holds exactly COLUMNS, id first, and records the schema version."""
    SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES).close()
    conn = sqlite3.connect(tmp_path / "a.sqlite")
    names = [row[1] for row in conn.execute("PRAGMA table_info(entries)")]
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    types = conn.execute("SELECT idx, name FROM event_types ORDER BY idx").fetchall()
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert names == list(COLUMNS)
    assert meta == {"format": "lifelab-archive", "schema_version": str(SCHEMA_VERSION)}
    assert types == list(enumerate(TYPES))
    assert mode == "wal"


def test_len_and_high_water_are_exact_right_after_append(tmp_path, monkeypatch):
    """len counts queued rows at once, while the writer has not committed them yet."""
    gate = Gate(monkeypatch)
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        assert len(archive) == 0
        assert archive.high_water == -1
        archive.append(batch([3, 1, 7]))
        archive.append(batch([]))
        archive.append(batch([2]))
        assert len(archive) == 4
        assert archive.high_water == 7
        assert gate.entered.wait(10)
        assert archive.count() == 0  # nothing committed yet: the writer is held at the gate
        gate.opened.set()
        archive.flush()
        assert archive.count() == 4


def test_reopen_appends_and_may_add_types(tmp_path):
    """A second open of the same file keeps what was there and appends; new types are recorded."""
    path = tmp_path / "a.sqlite"
    first, second = batch([0, 1, 2], seed=1), batch([3, 4], seed=2, n_types=5)
    with SQLiteArchive(path, type_names=TYPES) as archive:
        archive.append(first)
    with SQLiteArchive(path, type_names=(*TYPES, "custom")) as archive:
        assert len(archive) == 3
        assert archive.high_water == 2
        archive.append(second)
        assert len(archive) == 5
        found = archive.search(event_type="custom")
        assert_same(found, filter_columns(concat([first, second]), event_type=4))
    with SQLiteArchive.open_readonly(path) as archive:
        assert archive.type_names == (*TYPES, "custom")
        assert len(archive) == 5
        assert archive.high_water == 4
        assert_same(archive.columns(), concat([first, second]))


def test_reopen_with_types_that_do_not_extend_the_file_is_refused(tmp_path):
    """Type indexes in the file must keep their meaning: renamed or dropped types are refused."""
    path = tmp_path / "a.sqlite"
    SQLiteArchive(path, type_names=TYPES).close()
    with pytest.raises(ArchiveSchemaError, match="must start with them"):
        SQLiteArchive(path, type_names=("noise", "shock"))
    with pytest.raises(ArchiveSchemaError):
        SQLiteArchive(path, type_names=TYPES[:2])


@pytest.mark.parametrize("version", [str(SCHEMA_VERSION + 1), "0", "banana"])
def test_newer_or_unknown_schema_version_is_refused(tmp_path, version):
    """A file from a newer lifelab (or an unknown version) names the file and both versions."""
    path = tmp_path / "a.sqlite"
    SQLiteArchive(path, type_names=TYPES).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    conn.close()
    for opener in (lambda: SQLiteArchive(path, type_names=TYPES), lambda: open_ro(path)):
        with pytest.raises(ArchiveSchemaError) as info:
            opener()
        assert str(path) in str(info.value)
        assert version in str(info.value)
        assert str(SCHEMA_VERSION) in str(info.value)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, LifelabError)


def open_ro(path):
    """Open read-only and close again."""
    SQLiteArchive.open_readonly(path).close()


def test_random_bytes_file_is_refused_and_left_alone(tmp_path):
    """A file that is not SQLite at all raises ArchiveSchemaError and is not modified."""
    path = tmp_path / "a.sqlite"
    garbage = np.random.default_rng(0).bytes(8192)
    path.write_bytes(garbage)
    with pytest.raises(ArchiveSchemaError, match="not a lifelab archive"):
        SQLiteArchive(path, type_names=TYPES)
    with pytest.raises(ArchiveSchemaError):
        SQLiteArchive.open_readonly(path)
    assert path.read_bytes() == garbage


def test_another_sqlite_database_is_refused_and_left_alone(tmp_path):
    """An SQLite file with some other schema is not taken over."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ArchiveSchemaError, match="not a lifelab archive"):
        SQLiteArchive(path, type_names=TYPES)
    assert path.read_bytes() == before


def test_open_readonly_never_writes(tmp_path):
    """Read-only opening changes no byte, creates no -wal/-shm and refuses appends."""
    path = tmp_path / "a.sqlite"
    with SQLiteArchive(path, type_names=TYPES) as archive:
        archive.append(batch([0, 1, 2]))
    before = path.read_bytes()
    archive = SQLiteArchive.open_readonly(path)
    assert archive.search(event_type=None, limit=2)["id"].tolist() == [0, 1]
    with pytest.raises(ArchiveError):
        archive.append(batch([3]))
    with pytest.raises(ArchiveError):
        archive.rollback_after(0)
    archive.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite"]
    assert path.read_bytes() == before
    with pytest.raises(ArchiveError):
        SQLiteArchive.open_readonly(tmp_path / "missing.sqlite")


def test_open_readonly_sees_a_live_writer(tmp_path):
    """While a writer holds the file open, a read-only reader sees its committed rows."""
    path = tmp_path / "a.sqlite"
    with SQLiteArchive(path, type_names=TYPES) as writer:
        writer.append(batch([0, 1]))
        writer.flush()
        with SQLiteArchive.open_readonly(path) as reader:
            assert len(reader) == 2
            writer.append(batch([2]))
            writer.flush()
            assert reader.search()["id"].tolist() == [0, 1, 2]


VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1.5]),  # ties and signed zeros
    st.floats(-2.0, 2.0, allow_nan=False),
)
ROWS = st.lists(st.tuples(st.integers(0, 3), VALUES, VALUES, VALUES), max_size=40)
BOUND = st.none() | VALUES
QUERY = st.fixed_dictionaries(
    {
        "event_type": st.none() | st.integers(-1, 4) | st.sampled_from(TYPES),
        "min_sig": BOUND,
        "max_sig": BOUND,
        "since": BOUND,
        "until": BOUND,
        "min_weight": BOUND,
        "max_weight": BOUND,
        "sort": st.sampled_from(SORT_KEYS),
        "descending": st.booleans(),
        "limit": st.none() | st.integers(0, 50),
    }
)


@settings(max_examples=40, deadline=None)
@given(rows=ROWS, queries=st.lists(QUERY, min_size=1, max_size=4), data=st.data())
def test_search_equals_filter_columns(rows, queries, data):
    """For any entries and any query, search returns exactly what the brute-force filter does."""
    ids = data.draw(st.permutations(range(len(rows))))  # spills arrive out of id order
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=3)))
    cols = {name: np.zeros(len(rows), dtype) for name, dtype in COLUMNS.items()}
    cols["id"][:] = ids
    for i, (event_type, sig, weight, ts) in enumerate(rows):
        cols["event_type"][i] = event_type
        cols["significance"][i] = sig
        cols["weight"][i] = weight
        cols["timestamp"][i] = ts
    cols["tick"][:] = cols["id"] * 2
    cols["feedback_energy"][:] = cols["significance"]
    bounds = [0, *cuts, len(rows)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SQLiteArchive(Path(tmp) / "a.sqlite", type_names=TYPES) as archive,
    ):
        for lo, hi in itertools.pairwise(bounds):
            archive.append({name: col[lo:hi].copy() for name, col in cols.items()})
        assert len(archive) == len(rows)
        for query in queries:
            want_query = dict(query)
            if isinstance(query["event_type"], str):
                want_query["event_type"] = TYPES.index(query["event_type"])
            assert_same(archive.search(**query), filter_columns(cols, **want_query))


def test_search_refuses_bad_arguments(tmp_path):
    """Unknown sort keys, negative limits and unknown type names raise ValueError."""
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        with pytest.raises(ValueError, match="sort must be one of"):
            archive.search(sort="tick")
        with pytest.raises(ValueError, match="limit must be >= 0"):
            archive.search(limit=-1)
        with pytest.raises(ValueError, match="unknown event type 'nope'"):
            archive.search(event_type="nope")
        with pytest.raises(ValueError, match="equal-length arrays"):
            archive.append({"id": np.arange(3)})
        empty = archive.search(event_type="shock", limit=5)
        assert {name: col.dtype for name, col in empty.items()} == COLUMNS
        assert all(len(col) == 0 for col in empty.values())


def test_rollback_after_removes_exactly_the_newer_rows(tmp_path):
    """rollback_after(k) deletes ids > k (and given active ids), adjusting len and high_water."""
    path = tmp_path / "a.sqlite"
    with SQLiteArchive(path, type_names=TYPES) as archive:
        for ids in ([5, 1, 9], [2, 7], [3, 0]):
            archive.append(batch(ids))
        assert archive.rollback_after(4) == 3
        assert len(archive) == archive.count() == 4
        assert archive.high_water == 3
        assert archive.columns()["id"].tolist() == [0, 1, 2, 3]
        assert archive.rollback_after(10) == 0
        # ids still active at the snapshot may have spilled before the crash: remove them too
        assert archive.rollback_after(2, active_ids=np.array([1, 8])) == 2
        assert archive.columns()["id"].tolist() == [0, 2]
        archive.append(batch([3, 4]))
        assert len(archive) == 4
        assert archive.high_water == 4
    with SQLiteArchive.open_readonly(path) as archive:
        assert archive.columns()["id"].tolist() == [0, 2, 3, 4]


def test_backpressure_blocks_append_but_loses_nothing(tmp_path, monkeypatch):
    """With backlog_max rows uncommitted, append waits for the writer instead of dropping rows."""
    gate = Gate(monkeypatch)
    batches = [batch([i * 2, i * 2 + 1], seed=i) for i in range(6)]
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES, backlog_max=4) as archive:
        archive.append(batches[0])
        assert gate.entered.wait(10)  # the writer holds batch 0 inside its transaction
        archive.append(batches[1])  # 4 rows wait: the backlog is full
        rest_done = threading.Event()

        def append_rest():
            for b in batches[2:]:
                archive.append(b)
            rest_done.set()

        producer = threading.Thread(target=append_rest)
        producer.start()
        assert not rest_done.wait(0.2)  # blocked: cannot finish while the writer is held
        assert len(archive) == 4
        gate.opened.set()
        producer.join(10)
        assert rest_done.is_set()
        assert len(archive) == 12
        assert_same(archive.columns(), by_id(concat(batches)))
        assert archive.errors == 0


def test_writer_error_is_retried_and_rows_land(tmp_path, monkeypatch):
    """A failed transaction is counted, kept in last_error and retried until the rows commit."""
    original = SQLiteArchive._insert
    failures = []

    def fail_once(archive, rows):
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        original(archive, rows)

    monkeypatch.setattr(SQLiteArchive, "_insert", fail_once)
    cols = batch([0, 1, 2, 3])
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        archive.append(cols)
        archive.flush()
        assert archive.errors == 1
        assert "disk I/O error" in str(archive.last_error)
        assert_same(archive.columns(), cols)


def test_persistent_writer_error_raises_but_keeps_rows(tmp_path, monkeypatch):
    """After the retries flush raises ArchiveError; the rows stay queued and land once it heals."""
    monkeypatch.setattr(writer, "RETRY_DELAYS_S", (0.0, 0.0))
    original = SQLiteArchive._insert
    broken = threading.Event()
    broken.set()

    def maybe_fail(archive, rows):
        if broken.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        original(archive, rows)

    monkeypatch.setattr(SQLiteArchive, "_insert", maybe_fail)
    first, second = batch([0, 1], seed=1), batch([2, 3, 4], seed=2)
    archive = SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES)
    archive.append(first)
    with pytest.raises(ArchiveError, match="2 rows could not be committed after 3 attempts"):
        archive.flush()
    archive.append(second)
    with pytest.raises(ArchiveError, match="5 rows"):
        archive.flush()
    assert archive.errors == 6
    assert len(archive) == 5
    assert archive.count() == 0
    broken.clear()
    archive.flush()
    assert_same(archive.columns(), concat([first, second]))
    broken.set()
    archive.append(batch([5]))
    with pytest.raises(ArchiveError, match="1 rows"):
        archive.close()
    assert not archive._thread.is_alive()
    archive.close()  # already closed: no second error


def test_search_while_the_writer_is_busy(tmp_path, monkeypatch):
    """Reads go on while the writer holds a transaction; search waits for queued rows."""
    gate = Gate(monkeypatch)
    first = batch([0, 1, 2], seed=3)
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        archive.append(first)
        assert gate.entered.wait(10)  # the writer is inside BEGIN IMMEDIATE … COMMIT
        assert archive.count() == 0  # the read connection is not blocked by it
        found = {}
        searcher = threading.Thread(target=lambda: found.update(archive.search(sort="id")))
        searcher.start()
        gate.opened.set()
        searcher.join(10)
        assert_same(found, first)


def test_close_is_idempotent_and_stops_the_writer(tmp_path):
    """close() commits what is queued, stops the thread, may be called again; then appends fail."""
    path = tmp_path / "a.sqlite"
    archive = SQLiteArchive(path, type_names=TYPES)
    archive.append(batch([0, 1]))
    archive.close()
    archive.close()
    assert not archive._thread.is_alive()
    with pytest.raises(ArchiveError, match="closed"):
        archive.append(batch([2]))
    with pytest.raises(ArchiveError, match="closed"):
        archive.search()
    with SQLiteArchive.open_readonly(path) as reader:
        assert len(reader) == 2


def test_writer_commits_a_long_backlog_a_few_thousand_rows_at_a_time(tmp_path, monkeypatch):
    """A writer behind a fast producer commits in transactions of about _COMMIT_ROWS rows, and
    the backlog shrinks after each, so a producer waiting on backpressure goes on after one
    small transaction instead of after the whole backlog (one 10 s stall per 4 096 ticks at 64
    events/tick, before)."""
    monkeypatch.setattr(sqlite_archive, "_COMMIT_ROWS", 250)
    gate = Gate(monkeypatch)
    groups = []
    backlogs = []
    real_commit = SQLiteArchive._commit

    def recording_commit(self, rows):
        groups.append(len(rows))
        backlogs.append(self.backlog)
        return real_commit(self, rows)

    monkeypatch.setattr(SQLiteArchive, "_commit", recording_commit)
    batches = [batch(list(range(i * 100, i * 100 + 100)), seed=i) for i in range(20)]
    with SQLiteArchive(tmp_path / "a.sqlite", type_names=TYPES) as archive:
        archive.append(batches[0])
        assert gate.entered.wait(10)  # the writer is inside its first transaction
        for b in batches[1:]:
            archive.append(b)  # 19 batches wait
        gate.opened.set()
        archive.flush(10)
        assert_same(archive.columns(), by_id(concat(batches)))
    assert sum(groups) == 2_000
    assert max(groups) <= 300  # stops at the first batch that reaches 250 rows
    assert backlogs[1:] == sorted(backlogs[1:], reverse=True)  # the backlog only shrinks
