"""The segment archive (format 2; DESIGN §1.7, §2 invariants 4, 6, 7): exact, durable, quiet."""

import errno
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelab.exceptions import ArchiveError, ArchiveSchemaError
from lifelab.memory import writer
from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import filter_columns
from lifelab.memory.segment_archive import SegmentArchive

TYPES = ("noise", "decay", "recovery", "shock")


def batch(start, n, seed=0):
    """n rows with ids from start; timestamps rise with jitter (spills come out of order)."""
    rng = np.random.default_rng(seed + start)
    cols = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    cols["id"][:] = np.arange(start, start + n)
    cols["event_type"][:] = rng.integers(0, len(TYPES), n)
    cols["kind"][:] = rng.integers(0, 2, n)
    cols["action"][:] = rng.integers(0, 5, n)
    cols["significance"][:] = np.round(rng.random(n) * 1.5, 2)  # ties on purpose
    cols["weight"][:] = rng.random(n)
    cols["timestamp"][:] = np.floor(np.arange(start, start + n) / 3 + rng.random(n) * 20)
    cols["subjective_timestamp"][:] = cols["timestamp"] * 1.25
    cols["tick"][:] = cols["id"] // 3
    for name in ("feedback_energy", "feedback_stability", "feedback_integrity"):
        cols[name][:] = rng.standard_normal(n)
    return cols


def concat(batches):
    if not batches:
        return {name: np.empty(0, dtype) for name, dtype in COLUMNS.items()}
    return {name: np.concatenate([b[name] for b in batches]) for name in COLUMNS}


def fill(archive, sizes, seed=0):
    batches, start = [], 0
    for n in sizes:
        batches.append(batch(start, n, seed))
        archive.append(batches[-1])
        start += n
    return concat(batches)


def assert_same(got, want):
    assert list(got) == list(COLUMNS)
    for name, dtype in COLUMNS.items():
        assert got[name].dtype == dtype, name
        assert got[name].tobytes() == want[name].tobytes(), name


def test_rows_come_back_bit_exact_in_spill_order_across_segments_and_tail(tmp_path):
    path = tmp_path / "a"
    with SegmentArchive(path, type_names=TYPES, segment_rows=50) as archive:
        want = fill(archive, [7, 30, 1, 45, 12, 3])
        archive.flush()
        assert archive.count() == len(archive) == 98
        assert archive.segments == 1  # 50 sealed, 48 in the open segment's tail
        assert_same(archive.columns(), want)
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "archive.json",
        "seg-000000000000000.llseg",
        "tail-000000000000050.llrows",
    ]
    with SegmentArchive.open_readonly(path) as reader:
        assert_same(reader.columns(), want)
        assert reader.type_names == TYPES
        assert reader.verify() == []


QUERY = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from([0, 1, 2, 3, "shock", "noise"]),
        "min_sig": st.floats(0, 1.5),
        "max_sig": st.floats(0, 1.5),
        "since": st.floats(0, 400),
        "until": st.floats(0, 400),
        "min_weight": st.floats(0, 1),
        "max_weight": st.floats(0, 1),
        "sort": st.sampled_from(["timestamp", "significance", "weight", "id"]),
        "descending": st.booleans(),
        "limit": st.integers(0, 120),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    queries=st.lists(QUERY, min_size=1, max_size=8), sizes=st.lists(st.integers(1, 60), max_size=30)
)
def test_search_is_exactly_the_brute_force_filter(tmp_path_factory, queries, sizes):
    """Invariant 6, with pruning by min/max and early stops: every query, every sort."""
    path = tmp_path_factory.mktemp("s") / "a"
    with SegmentArchive(path, type_names=TYPES, segment_rows=64) as archive:
        want = fill(archive, sizes, seed=len(sizes))
        for query in queries:
            brute = dict(query)
            if isinstance(brute.get("event_type"), str):
                brute["event_type"] = TYPES.index(brute["event_type"])
            assert_same(archive.search(**query), filter_columns(want, **brute))


def test_unknown_type_name_and_bad_queries_are_refused(tmp_path):
    with SegmentArchive(tmp_path / "a", type_names=TYPES) as archive:
        fill(archive, [5])
        with pytest.raises(ValueError, match="unknown event type 'nope'"):
            archive.search(event_type="nope")
        with pytest.raises(ValueError, match="sort must be one of"):
            archive.search(sort="tick")
        with pytest.raises(ValueError, match="limit must be >= 0"):
            archive.search(limit=-1)


@pytest.mark.parametrize("cut", [0, 13, 50, 64, 99, 100, 128, 130])
def test_rollback_cuts_exactly_and_the_archive_goes_on(tmp_path, cut):
    """Resume's cut: in the tail, inside a segment, on a boundary; appends continue after it."""
    path = tmp_path / "a"
    with SegmentArchive(path, type_names=TYPES, segment_rows=32) as archive:
        want = fill(archive, [10] * 13)
        assert archive.rollback(cut, -1) == 130 - cut
        assert len(archive) == archive.count() == cut
        assert archive.high_water == cut - 1
        assert_same(archive.columns(), {k: v[:cut] for k, v in want.items()})
        more = batch(cut, 40, seed=9)
        archive.append(more)
        archive.flush()
        expect = concat([{k: v[:cut] for k, v in want.items()}, more])
    with SegmentArchive.open_readonly(path) as reader:
        assert_same(reader.columns(), expect)


def test_crash_leftovers_are_repaired_on_open(tmp_path):
    """A temp file, a tail a segment already holds, and a torn last chunk: cleaned up on open."""
    path = tmp_path / "a"
    with SegmentArchive(path, type_names=TYPES, segment_rows=20) as archive:
        want = fill(archive, [15])
        archive.flush()  # tail-0 holds 15 rows
        tail0 = (path / "tail-000000000000000.llrows").read_bytes()
        want = concat([want, batch(15, 10)])
        archive.append(batch(15, 10))
        archive.flush()  # sealed seg-0 (20 rows), tail-20 holds 5
    (path / "tail-000000000000000.llrows").write_bytes(tail0)  # killed before its deletion
    (path / "seg-000000000000020.llseg.tmp").write_bytes(b"half a segment")
    with open(path / "tail-000000000000020.llrows", "ab") as f:
        f.write(b"\x07\x00\x00\x00torn")  # killed in the middle of a flush
    with SegmentArchive(path, type_names=TYPES, segment_rows=20) as archive:
        assert_same(archive.columns(), want)
    assert sorted(p.name for p in path.iterdir()) == [
        "archive.json",
        "seg-000000000000000.llseg",
        "tail-000000000000020.llrows",
    ]


def test_readonly_never_writes_and_ignores_a_torn_chunk(tmp_path):
    path = tmp_path / "a"
    with SegmentArchive(path, type_names=TYPES) as archive:
        want = fill(archive, [9])
    with open(path / "tail-000000000000000.llrows", "ab") as f:
        f.write(b"\x01\x00")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with SegmentArchive.open_readonly(path) as reader:
        assert_same(reader.columns(), want)
        with pytest.raises(ArchiveError, match="read-only"):
            reader.append(batch(9, 1))
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_type_names_extend_and_must_keep_their_prefix(tmp_path):
    path = tmp_path / "a"
    SegmentArchive(path, type_names=TYPES).close()
    SegmentArchive(path, type_names=(*TYPES, "joy")).close()
    with SegmentArchive.open_readonly(path) as reader:
        assert reader.type_names == (*TYPES, "joy")
    with pytest.raises(ArchiveSchemaError, match="must start with them"):
        SegmentArchive(path, type_names=("decay", "noise"))


def test_write_faults_keep_every_row_and_heal(tmp_path, monkeypatch):
    """ENOSPC on every write: flush raises and counts, rows stay; healed, every row lands once."""
    monkeypatch.setattr(writer, "RETRY_DELAYS_S", (0.0,))
    monkeypatch.setattr(writer, "BACKOFF_S", (0.001, 0.01))
    broken = threading.Event()
    original = SegmentArchive._pwrite

    def pwrite(archive, fd, data, offset):
        if broken.is_set():
            os.pwrite(fd, bytes(memoryview(data).cast("B")[:3]), offset)  # a partial write
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(archive, fd, data, offset)

    monkeypatch.setattr(SegmentArchive, "_pwrite", pwrite)
    path = tmp_path / "a"
    archive = SegmentArchive(path, type_names=TYPES, segment_rows=16)
    want = fill(archive, [5])
    archive.flush()
    broken.set()
    want = concat([want, fill_from(archive, 5, [6, 9])])
    with pytest.raises(ArchiveError, match="rows could not be committed") as info:
        archive.flush()
    assert os.strerror(errno.ENOSPC) in str(info.value.__cause__)
    assert archive.errors >= 2 and archive.errors_by_kind["ENOSPC"] == archive.errors
    assert archive.count() == 5 and len(archive) == 20 and archive.backlog == 15
    broken.clear()
    archive.flush()
    assert archive.count() == 20 and archive.backlog == 0
    archive.close()
    with SegmentArchive.open_readonly(path) as reader:
        assert_same(reader.columns(), want)


def fill_from(archive, start, sizes):
    batches = []
    for n in sizes:
        batches.append(batch(start, n))
        archive.append(batches[-1])
        start += n
    return concat(batches)


def test_the_writer_is_quiet(tmp_path):
    """A thousand one-row spills (ten seconds of a 100 Hz organism) wake the writer a few times,
    not a thousand: it wakes by time (coalesce_s) and amount, never per append."""
    with SegmentArchive(tmp_path / "a", type_names=TYPES, coalesce_s=60.0) as archive:
        fill(archive, [1] * 1000)
        assert archive.wakeups <= 1  # the 1024-batch threshold was not reached
        archive.flush()
        assert archive.wakeups <= 2
        assert archive.count() == 1000
