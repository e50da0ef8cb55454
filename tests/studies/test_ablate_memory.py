"""Memory ablations: table shape, round trips, and that the variants compute the same thing.

Tiny sizes and two or three repeats; nothing here judges a timing or which variant is faster
(DESIGN §3).
"""

import functools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifelab.life.behavior import respond
from lifelab.memory.active import COLUMNS, KIND_EVENT, ActiveMemory
from lifelab.studies import ablate_memory as am
from lifelab.studies.ablation import (
    ABLATION_COLUMNS,
    AblationError,
    read_ablation,
    write_ablation,
)

# name -> (function, tiny arguments, variants, baseline, chosen, metrics, sizes)
CASES = {
    "decay": (
        am.decay_ablation,
        {"sizes": (300, 2_000), "repeats": 3},
        {am.DECAY_PER_ENTRY, am.DECAY_BATCHED},
        am.DECAY_PER_ENTRY,
        am.DECAY_BATCHED,
        {"decay_ms"},
    ),
    "entry_storage": (
        am.entry_storage_ablation,
        {"sizes": (500, 2_000), "repeats": 2},
        {am.STORAGE_OBJECTS, am.STORAGE_COLUMNAR},
        am.STORAGE_OBJECTS,
        am.STORAGE_COLUMNAR,
        {"bytes_per_entry", "append_us_per_entry", "decay_ms", "spill_ms"},
    ),
    "archive_index": (
        am.archive_index_ablation,
        {"sizes": (1_000,), "repeats": 2, "searches": 10},
        {am.ARCHIVE_SCAN, am.ARCHIVE_INDEXED, am.ARCHIVE_NUMPY},
        am.ARCHIVE_SCAN,
        am.ARCHIVE_INDEXED,
        {"search_p50_ms", "search_p99_ms"},
    ),
    "memoisation": (
        am.memoisation_ablation,
        {"sizes": (1_000, 3_000), "repeats": 3},
        {am.MEMO_PLAIN, am.MEMO_EXACT, am.MEMO_TABLE},
        am.MEMO_PLAIN,
        am.MEMO_PLAIN,
        {"ns_per_call"},
    ),
}


@pytest.fixture(scope="module")
def tables():
    return {name: case[0](**case[1]) for name, case in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_table_has_the_schema_every_variant_and_metric(tables, name):
    """Ablation columns and dtypes; every variant has every metric at every size."""
    _, kwargs, variants, baseline, chosen, metrics = CASES[name]
    table = tables[name]
    assert [(n, str(t)) for n, t in table.schema.items()] == list(ABLATION_COLUMNS)
    assert set(table["ablation"]) == {name}
    assert set(table["variant"]) == variants
    assert set(table["metric"]) == metrics
    assert set(table["size"]) == set(kwargs["sizes"])
    cells = {(r["variant"], r["size"], r["metric"]) for r in table.iter_rows(named=True)}
    assert len(cells) == table.height == len(variants) * len(kwargs["sizes"]) * len(metrics)
    assert set(table.filter(pl.col("baseline"))["variant"]) == {baseline}
    assert set(table.filter(pl.col("chosen"))["variant"]) == {chosen}
    assert table["lower_is_better"].all()
    assert (table["unit"] != "").all()


@pytest.mark.parametrize("name", list(CASES))
def test_values_are_positive_finite_and_baseline_ratios_exactly_one(tables, name):
    """Medians and intervals are positive and finite; the baseline's ratio is 1; n is repeats."""
    _, kwargs, _, _, _, _ = CASES[name]
    table = tables[name]
    for row in table.iter_rows(named=True):
        for key in ("median", "ci_low", "ci_high", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
        assert row["ci_low"] <= row["median"] <= row["ci_high"]
        if row["baseline"]:
            assert row["ratio"] == 1.0
        want_n = 1 if row["metric"] == "bytes_per_entry" else kwargs["repeats"]
        assert row["n"] == want_n


@pytest.mark.parametrize("name", list(CASES))
def test_tables_round_trip_through_write_and_read(tables, name, tmp_path):
    """write_ablation / read_ablation keep the table and the question."""
    path = write_ablation(tables[name], question=am.QUESTIONS[name], root=tmp_path)
    assert path == tmp_path / f"{name}.parquet"
    table, meta = read_ablation(path)
    assert table.equals(tables[name])
    assert meta["question"] == am.QUESTIONS[name]


def test_run_all_writes_one_table_per_question(tmp_path, monkeypatch):
    """run_all writes the four tables (tiny arguments swapped in) and returns their paths."""
    for name, case in CASES.items():
        monkeypatch.setitem(am._ABLATIONS, name, functools.partial(case[0], **case[1]))
    paths = am.run_all(tmp_path, scale="quick", progress=False)
    assert paths == [tmp_path / f"{name}.parquet" for name in am.QUESTIONS]
    assert list(am.QUESTIONS) == list(am._ABLATIONS) == list(am._FULL) == list(am._SMOKE)
    for name, path in zip(am.QUESTIONS, paths, strict=True):
        table, meta = read_ablation(path)
        assert set(table["ablation"]) == {name}
        assert meta["question"] == am.QUESTIONS[name]


# -- the variants agree ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 1_000, 40_000])  # 40 000 crosses the blocked decay path
def test_batched_and_per_entry_decay_give_the_same_weights_bit_for_bit(n):
    """ActiveMemory.decay and the per-entry loop agree exactly, and nothing spills."""
    batched, per_entry = am._DecayBench(n, seed=3).check()
    assert len(batched) == n
    assert np.array_equal(batched, per_entry)
    assert (batched < 1.0).all() and (batched >= 0.1).all()


@given(
    sigs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50),
    later_s=st.floats(0.0, 1e6),
    min_weight=st.floats(0.0, 1.0),
)
def test_per_entry_decay_matches_active_memory_for_any_entries(sigs, later_s, min_weight):
    """For any significances, age and floor: the same weights and the same entries leave."""
    n = len(sigs)
    mem = ActiveMemory(n, lambda cols: None, min_weight=min_weight)
    stamps = np.linspace(0.0, 100.0, n)
    for sig, t in zip(sigs, stamps.tolist(), strict=True):
        mem.add(0, KIND_EVENT, 2, sig, t, t, 0)
    weights = [1.0] * n
    now = 100.0 + later_s
    gone = am._decay_list(weights, sigs, stamps.tolist(), now, mem.decay_factor, min_weight)
    spilled = mem.decay(now)
    assert spilled == len(gone)
    kept = mem.columns()
    order = np.argsort(kept["id"])
    want = np.delete(np.asarray(weights), gone)
    assert np.array_equal(kept["weight"][order], want)


@pytest.mark.parametrize("n", [10, 2_000])
def test_object_and_columnar_stores_hold_the_same_entries_after_a_spill(n):
    """After decay and a 10 % capacity spill both keep and spill the same entries, every column."""
    bench = am._StorageBench(n, seed=1)
    out = bench.check()
    col, obj = out["columnar"], out["objects"]
    cut = max(1, n // 10)
    assert len(col["gone"]["id"]) == len(obj["gone"]["id"]) == cut
    assert len(col["kept"]["id"]) == len(obj["kept"]["id"]) == n - cut
    for part in ("kept", "gone"):
        for name in COLUMNS:
            assert np.array_equal(col[part][name], obj[part][name]), (part, name)
    every = np.sort(np.concatenate([col["kept"]["id"], col["gone"]["id"]]))
    assert np.array_equal(every, np.arange(n))
    # the lowest weights left (ties: the oldest)
    assert col["gone"]["weight"].max() <= col["kept"]["weight"].min()


@given(
    weights=st.lists(st.sampled_from([0.25, 0.5, 0.75, 1.0]), min_size=1, max_size=40),
    data=st.data(),
)
def test_object_capacity_spill_picks_what_enforce_capacity_picks_with_ties(weights, data):
    """Lowest weight first, ties oldest first: the same ids leave both stores, in any case."""
    n = len(weights)
    k = data.draw(st.integers(1, n))
    mem = ActiveMemory(n - k if n > k else 1, lambda cols: None)
    for i in range(n):
        mem.add(0, KIND_EVENT, 2, 0.5, float(i), float(i), i)
    columns = mem.export()
    columns["weight"] = np.asarray(weights)
    gone_columnar: list = []
    mem.spill = lambda cols: gone_columnar.extend(cols["id"].tolist())
    mem.capacity = n - k
    mem.load(columns, next_id=n, spilled=0)
    mem.enforce_capacity()

    sink = am._RowSink()
    store = am._ObjectMemory(sink, min_weight=0.1, decay_factor=0.99)
    for i in range(n):
        store.add(0, KIND_EVENT, 2, 0.5, float(i), float(i), i)
    for e, w in zip(store.entries, weights, strict=True):
        e.weight = w
    assert store.spill_lowest(k) == k
    assert sorted(row[0] for row in sink.last) == sorted(gone_columnar)
    assert [e.id for e in store.entries] == sorted(set(range(n)) - set(gone_columnar))


def test_object_entries_carry_exactly_the_archive_columns():
    """The object variant has one slot per COLUMNS field and hands rows over in COLUMNS order."""
    assert set(am._Entry.__slots__) == set(COLUMNS)
    e = am._Entry()
    for i, name in enumerate(COLUMNS):
        setattr(e, name, i)
    assert am._ROW_OF(e) == tuple(range(len(COLUMNS)))


def test_indexed_scan_and_numpy_searches_return_the_same_ids(tmp_path):
    """The three archive variants find the same rows in the same order; the plans differ."""
    bench = am._ArchiveBench(3_000, seed=2, directory=tmp_path, searches=5)
    try:
        found = bench.check()
        plans = bench.plans()
    finally:
        bench.close()
    assert set(found) == {am.ARCHIVE_SCAN, am.ARCHIVE_INDEXED, am.ARCHIVE_NUMPY}
    scan = found[am.ARCHIVE_SCAN]
    assert sum(len(ids) for ids in scan) > 0
    for ids in found.values():
        assert len(ids) == len(scan)
        for got, want in zip(ids, scan, strict=True):
            assert np.array_equal(got, want)
    assert "entries_type_time" in plans[am.ARCHIVE_INDEXED]
    assert "SCAN entries" in plans[am.ARCHIVE_SCAN]


@pytest.fixture(scope="module")
def organism():
    return am._Organism(seed=0)


def test_memoised_and_plain_rules_return_identical_results(organism):
    """lru_cache on exact args and on the per-type multiplier decide exactly like the plain rule."""
    bench = am._MemoBench(organism, 5_000, seed=4)
    out = bench.check()
    plain = out[am.MEMO_PLAIN]
    assert 0 < len(plain) < 5_000  # some events are ignored, some kept
    assert out[am.MEMO_EXACT] == plain
    assert out[am.MEMO_TABLE] == plain
    # the per-type cache answers from memory after the first event of each type
    assert bench.cached_multiplier.cache_info().hits > 0


def test_plain_rule_is_the_rule_that_respond_fuses(organism):
    """Event by event, behavior.respond keeps exactly what the staged plain rule keeps."""
    bench = am._MemoBench(organism, 2_000, seed=5)
    o = organism
    fused: list = []
    for t, intensity, ctx, stability in bench.stream:
        respond(
            [t],
            [intensity],
            o.multipliers,
            o.thresholds,
            o.base,
            ctx,
            stability,
            o.coef,
            1.0,
            fused,
        )
    assert fused == bench.run(am.MEMO_PLAIN)


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (am.decay_ablation, {"sizes": ()}),
        (am.decay_ablation, {"sizes": (0,)}),
        (am.entry_storage_ablation, {"sizes": (5,)}),
        (am.archive_index_ablation, {"sizes": (100,), "searches": 0}),
        (am.memoisation_ablation, {"sizes": (1.5,)}),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_ablation(fn, kwargs):
    """Sizes and searches are checked before anything runs."""
    with pytest.raises(AblationError, match=r"decay|entry_storage|archive_index|memoisation"):
        fn(**kwargs)
    assert issubclass(AblationError, ValueError)
