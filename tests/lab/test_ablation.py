"""The A/B table core: medians, intervals, ratios, verdicts, files and the report section."""

from __future__ import annotations

import math

import polars as pl
import pytest

from lifelab.lab.ablation import (
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
from lifelab.lab.report import build_report


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
        assert r["lo"] <= r["median"] <= r["hi"] and r["n"] == 3
    assert rows["loop"]["baseline"] and rows["numpy"]["chosen"]


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


def test_read_refuses_a_parquet_that_is_not_an_ablation(tmp_path):
    path = tmp_path / "other.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(path)
    with pytest.raises(AblationError, match="not a lifelab ablation"):
        read_ablation(path)


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
