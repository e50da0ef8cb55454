"""The in-memory archive and its search, held equal to a brute-force Python filter."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import SORT_KEYS, MemoryArchive, filter_columns

# Few distinct values so that ties, and values sitting exactly on a bound, are common.
VALUES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
TIMES = st.sampled_from([0.0, 1.0, 2.5, 10.0, 100.0])
row = st.fixed_dictionaries(
    {
        "event_type": st.integers(min_value=0, max_value=3),
        "significance": VALUES,
        "weight": VALUES,
        "timestamp": TIMES,
    }
)
maybe_value = st.none() | VALUES
query = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.none() | st.integers(min_value=0, max_value=4),
        "min_sig": maybe_value,
        "max_sig": maybe_value,
        "since": st.none() | TIMES,
        "until": st.none() | TIMES,
        "min_weight": maybe_value,
        "max_weight": maybe_value,
        "sort": st.sampled_from(SORT_KEYS),
        "descending": st.booleans(),
        "limit": st.none() | st.integers(min_value=0, max_value=12),
    },
)


def _columns(rows, first_id=0):
    """Columns for rows, with every column of the real schema present."""
    n = len(rows)
    cols = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    cols["id"] = np.arange(first_id, first_id + n, dtype=np.int64)
    for name in ("event_type", "significance", "weight", "timestamp"):
        cols[name] = np.array([r[name] for r in rows], dtype=COLUMNS[name])
    cols["tick"] = cols["id"] * 3
    return cols


def _brute_force(rows, q):
    """The reference: plain Python, every bound inclusive, ties by ascending id."""

    def keep(r):
        checks = [
            q.get("event_type") is None or r["event_type"] == q["event_type"],
            q.get("min_sig") is None or r["significance"] >= q["min_sig"],
            q.get("max_sig") is None or r["significance"] <= q["max_sig"],
            q.get("since") is None or r["timestamp"] >= q["since"],
            q.get("until") is None or r["timestamp"] <= q["until"],
            q.get("min_weight") is None or r["weight"] >= q["min_weight"],
            q.get("max_weight") is None or r["weight"] <= q["max_weight"],
        ]
        return all(checks)

    sort = q.get("sort", "timestamp")
    sign = -1 if q.get("descending", False) else 1
    hits = [dict(r, id=i) for i, r in enumerate(rows) if keep(r)]
    hits.sort(key=lambda r: (sign * r[sort], r["id"]))
    return [r["id"] for r in hits[: q.get("limit")]]


@given(rows=st.lists(row, max_size=40), q=query)
def test_filter_columns_equals_brute_force(rows, q):
    """filter_columns returns exactly the brute-force ids, in order, with consistent columns."""
    cols = _columns(rows)
    got = filter_columns(cols, **q)
    assert got["id"].tolist() == _brute_force(rows, q)
    assert set(got) == set(COLUMNS)
    for name, col in got.items():
        assert np.array_equal(col, cols[name][got["id"]]), name


@given(chunks=st.lists(st.lists(row, max_size=15), max_size=5), q=query)
def test_archive_search_equals_brute_force_across_chunks(chunks, q):
    """An archive built from several spills searches like one brute-force table."""
    archive = MemoryArchive()
    rows = []
    for chunk in chunks:
        archive.append(_columns(chunk, first_id=len(rows)))
        rows.extend(chunk)
    assert len(archive) == len(rows)
    assert archive.search(**q)["id"].tolist() == _brute_force(rows, q)
    assert archive.columns()["id"].tolist() == list(range(len(rows)))


def test_sort_ties_break_by_ascending_id_both_ways():
    """Equal keys keep ascending id order whether the sort is ascending or descending."""
    rows = [
        {"event_type": 0, "significance": s, "weight": 1.0, "timestamp": 0.0}
        for s in (0.5, 0.9, 0.5, 0.9)
    ]
    cols = _columns(rows)
    assert filter_columns(cols, sort="significance")["id"].tolist() == [0, 2, 1, 3]
    assert filter_columns(cols, sort="significance", descending=True)["id"].tolist() == [1, 3, 0, 2]
    assert filter_columns(cols, sort="id", descending=True, limit=2)["id"].tolist() == [3, 2]


def test_bounds_are_inclusive():
    """min and max bounds include values equal to them."""
    rows = [{"event_type": 1, "significance": 0.5, "weight": 0.25, "timestamp": 2.5}]
    cols = _columns(rows)
    got = filter_columns(
        cols,
        event_type=1,
        min_sig=0.5,
        max_sig=0.5,
        since=2.5,
        until=2.5,
        min_weight=0.25,
        max_weight=0.25,
    )
    assert got["id"].tolist() == [0]


def test_empty_archive_searches_to_empty_columns():
    """A fresh archive has no entries and every column present."""
    archive = MemoryArchive()
    assert len(archive) == 0
    got = archive.search(min_sig=0.0)
    assert set(got) == set(COLUMNS)
    assert all(len(col) == 0 for col in got.values())


def test_bad_sort_key_is_refused():
    """An unknown sort key raises ValueError listing the allowed keys."""
    with pytest.raises(ValueError, match="sort must be one of"):
        filter_columns(_columns([]), sort="colour")


def test_negative_limit_is_refused():
    """limit must be >= 0."""
    with pytest.raises(ValueError, match="limit"):
        MemoryArchive().search(limit=-1)


def test_a_type_name_finds_what_its_index_finds():
    archive = MemoryArchive(["decay", "shock", "noise"])
    archive.append(
        _columns(
            [
                {"event_type": t, "significance": 0.5, "weight": 0.5, "timestamp": 1.0}
                for t in (0, 1, 1, 2)
            ]
        )
    )
    by_name = archive.search(event_type="shock")
    by_index = archive.search(event_type=1)
    assert by_name["id"].tolist() == by_index["id"].tolist() == [1, 2]


def test_an_unknown_type_name_is_refused_by_name():
    archive = MemoryArchive(["decay", "shock"])
    with pytest.raises(ValueError, match="unknown event type 'praise'"):
        archive.search(event_type="praise")


def test_a_life_without_run_dir_searches_by_type_name():
    """The repro of issue 15: by name the in-memory archive found nothing."""
    from lifelab import Life, LifeConfig

    life = Life(LifeConfig(seed=1, events_per_tick=4, memory_capacity=10))
    life.run(200)
    by_index = life.archive.search(event_type=life.types.index("shock"))
    by_name = life.archive.search(event_type="shock")
    assert len(by_index["id"]) > 0
    assert by_name["id"].tolist() == by_index["id"].tolist()
