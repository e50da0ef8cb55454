"""The A/B table core: medians, intervals, ratios, verdicts, files and the report section."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import polars as pl
import pytest

from lifelab.lab.results import ResultsExistsError, read_table, write_table
from lifelab.lab.stats import median_ci
from lifelab.studies.ablation import (
    ABLATION_COLUMNS,
    AblationError,
    Sample,
    ablation_table,
    interleave,
    load_ablations,
    plot_ablation,
    read_ablation,
    verdict,
    write_ablation,
)
from lifelab.studies.report import build_report

# A version-1 ablation table as committed (interval in lo / hi, version under lifelab_ablation).
COMMITTED_V1 = Path(__file__).parents[2] / "data" / "results" / "ablations" / "decay.parquet"


def _samples(slow=(10.0, 11.0, 12.0), fast=(1.0, 1.1, 0.9), size=1_000):
    return [Sample("loop", "decay_ms", v, size, "ms") for v in slow] + [
        Sample("numpy", "decay_ms", v, size, "ms") for v in fast
    ]


def test_table_has_the_schema_medians_intervals_and_ratios():
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    assert [(n, str(t)) for n, t in table.schema.items()] == list(ABLATION_COLUMNS)
    rows = {r["variant"]: r for r in table.iter_rows(named=True)}
    assert rows["loop"]["median"] == 11.0 and rows["loop"]["ratio"] == 1.0
    assert rows["numpy"]["median"] == 1.0
    assert rows["numpy"]["ratio"] == pytest.approx(1.0 / 11.0)
    for r in rows.values():
        assert r["ci_low"] <= r["median"] <= r["ci_high"] and r["n"] == 3
    assert rows["loop"]["baseline"] and rows["numpy"]["chosen"]


def test_intervals_are_the_stats_bootstrap_one_stream_per_variant_size_and_metric():
    """Each row's interval is stats.median_ci of its samples, so adding a variant moves none."""
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy", seed=3)
    row = table.filter(pl.col("variant") == "loop").row(0, named=True)
    stream = ("decay", "loop", 1_000, "decay_ms")
    want = median_ci([10.0, 11.0, 12.0], seed=3, stream=stream)
    assert (row["median"], row["ci_low"], row["ci_high"]) == want
    more = [*_samples(), *(Sample("other", "decay_ms", v, 1_000, "ms") for v in (5.0, 6.0))]
    bigger = ablation_table("decay", more, baseline="loop", chosen="numpy", seed=3)
    assert bigger.filter(pl.col("variant") != "other").equals(table)


def test_verdict_says_how_much_better_and_flags_overlap():
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    assert verdict(table) == ["decay_ms at 1,000: numpy 1 ms vs loop 11 ms: 11× better."]
    close = ablation_table(
        "decay", _samples(fast=(10.0, 12.0, 11.5)), baseline="loop", chosen="numpy"
    )
    assert verdict(close)[0].endswith("(intervals overlap: no clear difference).")


def test_when_the_baseline_ships_every_other_variant_is_compared():
    table = ablation_table("memo", _samples(), baseline="numpy", chosen="numpy")
    assert verdict(table) == ["decay_ms at 1,000: loop 11 ms vs numpy 1 ms: 11× worse."]


def test_refuses_unknown_roles_empty_and_non_finite_samples():
    with pytest.raises(AblationError, match="baseline"):
        ablation_table("decay", _samples(), baseline="nope", chosen="numpy")
    with pytest.raises(AblationError, match="no samples"):
        ablation_table("decay", [], baseline="loop", chosen="numpy")
    with pytest.raises(AblationError, match="nan"):
        ablation_table("x", [Sample("a", "m", math.nan)], baseline="a", chosen="a")


def test_interleave_rotates_the_order_and_warms_up():
    calls = []
    variants = {name: (lambda name=name: calls.append(name) or len(calls)) for name in "ab"}
    out = interleave(variants, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3}
    with pytest.raises(AblationError):
        interleave(variants, repeats=0)


def test_write_read_load_round_trip(tmp_path):
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    path = write_ablation(table, question="Is numpy faster?", root=tmp_path)
    back, meta = read_ablation(path)
    assert back.equals(table)
    assert meta["question"] == "Is numpy faster?"
    assert {"cpu_model", "python_version", "git_commit"} <= set(meta["environment"])
    assert [t.equals(table) for t, _ in load_ablations(tmp_path)] == [True]
    assert load_ablations(tmp_path / "missing") == []


def test_written_tables_carry_the_common_kind_and_version(tmp_path):
    """write_ablation goes through results.write_table: kind "ablation", version 2."""
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    stored = read_table(write_ablation(table, question="q", root=tmp_path))
    assert (stored.kind, stored.version) == ("ablation", 2)
    assert stored.metadata["question"] == "q"


def test_a_version_1_table_reads_with_the_interval_renamed():
    """The committed tables (lo / hi, the old metadata key) load as ci_low / ci_high."""
    assert {"lo", "hi"} <= set(pl.read_parquet_schema(COMMITTED_V1))
    assert (read_table(COMMITTED_V1).kind, read_table(COMMITTED_V1).version) == ("ablation", 1)
    table, meta = read_ablation(COMMITTED_V1)
    assert [(n, str(t)) for n, t in table.schema.items()] == list(ABLATION_COLUMNS)
    raw = pl.read_parquet(COMMITTED_V1)
    assert table["ci_low"].equals(raw["lo"].alias("ci_low"))
    assert meta["question"]
    assert verdict(table)  # the rest of the module reads it like a new one


def test_rewriting_replaces_an_ablation_but_never_another_kind(tmp_path):
    """The newest measurement replaces the last; replace=False and other kinds are refused."""
    shutil.copy(COMMITTED_V1, tmp_path / "decay.parquet")
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    write_ablation(table, question="again", root=tmp_path)  # replaces the version-1 table
    assert read_ablation(tmp_path / "decay.parquet")[1]["question"] == "again"
    with pytest.raises(ResultsExistsError, match="never overwritten"):
        write_ablation(table, question="again", root=tmp_path, replace=False)
    write_table(pl.DataFrame({"a": [1]}), tmp_path / "other.parquet", kind="other", version=1)
    with pytest.raises(ResultsExistsError, match="holds a 'other' table"):
        write_ablation(table, question="q", root=tmp_path, name="other")


def test_read_refuses_a_parquet_that_is_not_an_ablation(tmp_path):
    path = tmp_path / "other.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    with pytest.raises(AblationError, match="not a lifelab ablation"):
        read_ablation(path)
    write_table(pl.DataFrame({"a": [1]}), tmp_path / "kind.parquet", kind="other", version=1)
    with pytest.raises(AblationError, match="'other' table"):
        read_ablation(tmp_path / "kind.parquet")
    table = ablation_table("decay", _samples(), baseline="loop", chosen="numpy")
    write_table(table, tmp_path / "new.parquet", kind="ablation", version=3)
    with pytest.raises(AblationError, match="newer than this lifelab reads"):
        read_ablation(tmp_path / "new.parquet")


def test_plot_has_one_panel_per_metric():
    samples = [
        *_samples(),
        Sample("loop", "bytes", 200, 1_000, "B"),
        Sample("numpy", "bytes", 64, 1_000, "B"),
    ]
    fig = plot_ablation(ablation_table("decay", samples, baseline="loop", chosen="numpy"))
    assert len(fig.axes) == 2


def test_report_gets_one_section_per_ablation(tmp_path):
    results = tmp_path / "results"
    write_ablation(
        ablation_table("decay", _samples(), baseline="loop", chosen="numpy"),
        question="Is numpy faster?",
        root=results / "ablations",
    )
    readme = build_report(results, tmp_path / "out", timestamp=False)
    text = readme.read_text()
    assert "### decay" in text and "Is numpy faster?" in text
    assert "numpy 1 ms vs loop 11 ms: 11× better." in text
    assert "Skipped" not in text  # ablation tables are not reported as unreadable results
    assert (readme.parent / "ablation-decay.png").exists()
    assert "![decay](ablation-decay.png)" in text
