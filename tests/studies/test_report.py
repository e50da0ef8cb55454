"""Tests of lifelab.studies.report: the performance README and figures from results tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from support.synthetic import make_results

from lifelab import cli
from lifelab.studies import report

SWEEP = "20250101T000000Z-0000abcd"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(root: Path, df: pl.DataFrame, name: str = SWEEP) -> Path:
    suite = df["suite"][0]
    path = root / suite / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path)
    return path


def _links(readme: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme.read_text(encoding="utf-8"))


def _small(**kw) -> pl.DataFrame:
    """One cell, two repeats: only the stage and decile figures apply (fast to render)."""
    return make_results(batch_sizes=(16,), gc_modes=("default",), repeats=2, **kw)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results folder with one sweep: batch × GC mode × capacity, 2 repeats, 2 failures."""
    root = tmp_path_factory.mktemp("lab") / "results"
    df = make_results(capacities=(1000, 100_000), repeats=2)
    failed = df.head(2).with_columns(
        status=pl.lit("failed"),
        events_per_s=pl.lit(None, dtype=pl.Float64),
        error=pl.lit("trial timed out after 60 s\nstderr tail ..."),
    )
    _write(root, pl.concat([df, failed]))
    return root


@pytest.fixture(scope="module")
def built(results) -> Path:
    """The README of one report built from ``results`` without a timestamp."""
    return report.build_report(results, results.parent / "docs", timestamp=False)


def test_build_report_writes_table_and_linked_figures(built):
    """The README has a summary table per cell and links PNGs that exist in out_dir."""
    text = built.read_text(encoding="utf-8")
    assert text.startswith("# lifelab performance")
    assert "## batch_gc" in text and "## How to regenerate" in text and "lifelab report" in text
    assert "| batch_size | gc_mode | memory_capacity | n | events/s |" in text
    assert text.count("| 1 | default | 1000 | 2 |") == 1
    assert f"`batch_gc/{SWEEP}.parquet`" in text and "Test CPU @ 3.0GHz" in text
    links = _links(built)
    kinds = ("throughput", "latency", "memory", "stages", "deciles")
    assert links == [f"batch_gc-{k}.png" for k in kinds]
    for name in links:
        assert (built.parent / name).read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in built.parent.glob("*.png")) == sorted(links)


def test_failed_trials_are_counted_and_left_out(built):
    """Failed trials are counted, their error summarised, and excluded from the table."""
    text = built.read_text(encoding="utf-8")
    assert "24 trials ok, 2 failed" in text
    assert "- trial timed out after 60 s" in text and "stderr tail" not in text
    assert "| 24 / 2 |" in text  # the sources table


def test_build_report_is_deterministic(results, built, tmp_path):
    """A second build of the same results without a timestamp gives identical files."""
    again = report.build_report(results, tmp_path / "again", timestamp=False)
    assert again.read_text() == built.read_text()
    names = sorted(p.name for p in built.parent.iterdir())
    assert names == sorted(p.name for p in again.parent.iterdir())
    for name in names:
        assert (built.parent / name).read_bytes() == (again.parent / name).read_bytes(), name


def test_timestamp_line_only_when_asked(tmp_path):
    """The "generated at" line is written by default and omitted with timestamp=False."""
    assert "Generated at" in report.build_report(tmp_path / "none", tmp_path / "a").read_text()
    without = report.build_report(tmp_path / "none", tmp_path / "b", timestamp=False)
    assert "Generated at" not in without.read_text()


@pytest.mark.parametrize("make_dir", [True, False])
def test_no_results_writes_a_readme_saying_so(tmp_path, make_dir):
    """An empty or missing results folder gives a README that says how to produce results."""
    root = tmp_path / "results"
    if make_dir:
        root.mkdir()
    readme = report.build_report(root, tmp_path / "docs", timestamp=False)
    text = readme.read_text()
    assert "no results yet" in text.lower() and "make run" in text and "lifelab report" in text
    assert not list(readme.parent.glob("*.png"))


def test_environments_are_never_pooled(tmp_path):
    """Rows from two commits of one suite get separate subsections and figures, newest first."""
    root = tmp_path / "results"
    _write(root, _small(sweep_id="20250101T000000Z-00000001"), "20250101T000000Z-00000001")
    new = _small(sweep_id="20250201T000000Z-00000002", seed=1).with_columns(
        git_commit=pl.lit("fedcba9876543210fedcba9876543210fedcba98")
    )
    _write(root, new, "20250201T000000Z-00000002")
    readme = report.build_report(root, tmp_path / "docs", timestamp=False)
    text = readme.read_text()
    headings = re.findall(r"^### (.*)$", text, flags=re.M)
    assert len(headings) == 2 and "fedcba9876" in headings[0]
    assert text.count("| all trials | 2 |") == 2  # one table each: 2 repeats, not 4
    links = _links(readme)
    assert len(links) == len(set(links)) == 4  # stages and deciles, per commit
    assert all((readme.parent / name).is_file() for name in links)


def test_non_results_and_hidden_parquet_files(tmp_path):
    """Parquet files without the results columns are skipped and named; hidden ones ignored."""
    root = tmp_path / "results"
    _write(root, _small())
    pl.DataFrame({"file": ["a.py"], "time_s": [1.0]}).write_parquet(root / "profile.parquet")
    make_results().write_parquet(root / "batch_gc" / ".tmp-writing.parquet")
    text = report.build_report(root, tmp_path / "docs", timestamp=False).read_text()
    assert "Skipped (not results tables): `profile.parquet`" in text
    assert ".tmp-writing" not in text and "| 2 / 0 |" in text


def test_unreadable_parquet_raises_value_error(tmp_path):
    """A corrupt results file raises ValueError naming it."""
    bad = tmp_path / "results" / "suite" / "bad.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"bad\.parquet"):
        report.build_report(tmp_path / "results", tmp_path / "docs")


def test_report_command_arguments_and_result(tmp_path, capsys):
    """``lifelab report`` parses its options; report_summary returns the --json summary."""
    import matplotlib.pyplot as plt

    root, out = tmp_path / "results", tmp_path / "docs"
    _write(root, _small())
    before = plt.get_fignums()
    assert cli.main(["report", "--results", str(root), "--out", str(out), "--json"]) == 0
    assert plt.get_fignums() == before  # no figure left open in pyplot's registry
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"out_dir", "readme", "figures", "tables"}
    assert result["out_dir"] == str(out) and result["readme"] == str(out / "README.md")
    assert result["tables"] == 1
    assert [Path(p).name for p in result["figures"]] == _links(out / "README.md")
    assert report.report_summary(root, out, timestamp=False) == result
    defaults = cli.build_parser().parse_args(["report"])
    assert (defaults.results, defaults.out) == ("data/results", "docs/performance")
    assert not defaults.no_timestamp and not defaults.json


def test_plain_tables_are_named_apart_and_stale_figures_go(tmp_path):
    """Tables the targets read are listed as plain tables; a figure no build links is removed."""
    root = tmp_path / "results"
    _write(root, _small())
    (root / "targets").mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"import_ms": [9.0]}).write_parquet(root / "targets" / "import_time.parquet")
    out = tmp_path / "docs"
    out.mkdir()
    (out / "old-suite-throughput.png").write_bytes(b"\x89PNG")
    (out / "notes.txt").write_text("kept")
    text = report.build_report(root, out, timestamp=False).read_text()
    want = "Plain tables (read by the targets and the notebooks): `targets/import_time.parquet`"
    assert want in text
    assert "Skipped" not in text
    assert not (out / "old-suite-throughput.png").exists()
    assert (out / "notes.txt").exists()
    for name in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (out / name).exists(), name


def _ablation(chosen_ms: float, *, sizes=(1000, 10_000), bytes_same: bool = True) -> pl.DataFrame:
    """An A/B table: "new" (chosen) against "old" (baseline), tight samples, two metrics."""
    from lifelab.studies.ablation import Sample, ablation_table

    samples = []
    for size in sizes:
        for i in range(7):
            jitter = 1 + 0.001 * i
            samples += [
                Sample("old", "decay_ms", 10.0 * jitter, size=size, unit="ms"),
                Sample("new", "decay_ms", chosen_ms * jitter, size=size, unit="ms"),
                Sample("old", "bytes_per_entry", 64.0 * jitter, size=size, unit="B"),
                Sample(
                    "new",
                    "bytes_per_entry",
                    (64.0 if bytes_same else 16.0) * jitter,
                    size=size,
                    unit="B",
                ),
            ]
    return ablation_table("decay", samples, baseline="old", chosen="new")


def test_ablation_conclusions_are_computed_from_the_tables():
    """The sentences carry the tables' factors and sizes, and follow the data when it changes."""
    lines = report.ablation_conclusions([_ablation(2.0)])
    assert lines[0] == "Largest gain: decay, decay_ms: new is 5× faster than old at 1,000."
    assert lines[1].startswith("No chosen design is clearly worse")
    assert lines[2] == (
        "decay: new vs old: bytes_per_entry no clear difference; decay_ms 5× faster at every size."
    )
    worse = report.ablation_conclusions([(_ablation(40.0, bytes_same=False), {})])
    assert "Where a chosen design is clearly worse: decay decay_ms (4× slower than old)" in worse[1]
    assert "bytes_per_entry 4× smaller at every size" in worse[2]
    assert "decay_ms 4× slower at every size" in worse[2]


def test_report_ablation_section_has_the_conclusions(tmp_path):
    """The report's ablation section opens with the computed conclusions."""
    from lifelab.studies.ablation import write_ablation

    root = tmp_path / "results"
    write_ablation(_ablation(2.0), question="Is new faster?", root=root / "ablations")
    text = report.build_report(root, tmp_path / "docs", timestamp=False).read_text()
    assert "In short (computed from the tables below):" in text
    assert "- Largest gain: decay, decay_ms: new is 5× faster than old at 1,000." in text


def test_tables_of_every_version_build_one_report(tmp_path):
    """A version-1 ablation table (lo / hi), an unversioned plain table and write_table's
    tables all read through results.read_table into one report."""
    import shutil

    from lifelab.lab.results import write_table

    committed = Path(__file__).parents[2] / "data" / "results" / "ablations" / "decay.parquet"
    root = tmp_path / "results"
    _write(root, _small())
    (root / "ablations").mkdir()
    shutil.copy(committed, root / "ablations" / "decay.parquet")
    write_table(
        pl.DataFrame({"import_ms": [9.0]}),
        root / "targets" / "import_time.parquet",
        kind="import_time",
        version=1,
    )
    (root / "memory_scaling").mkdir()
    pl.DataFrame({"entries": [1]}).write_parquet(root / "memory_scaling" / "memory_scaling.parquet")
    text = report.build_report(root, tmp_path / "docs", timestamp=False).read_text()
    assert "Skipped" not in text
    assert "`memory_scaling/memory_scaling.parquet`" in text
    assert "`targets/import_time.parquet`" in text
    assert "### decay" in text
    row = pl.read_parquet(committed).sort(["metric", "size", "variant"]).row(0, named=True)
    assert report._estimate(row["median"], row["lo"], row["hi"]) in text


def test_a_report_is_of_one_size_and_says_which(tmp_path):
    """A full-size report leaves out quick/ (make run's tables) and says "full"; a report of
    quick/ holds only the quick tables and says "quick"."""
    root = tmp_path / "results"
    _write(root, _small(suite="full_suite"))
    _write(root / "quick", _small(suite="quick_suite"))
    full = report.build_report(root, tmp_path / "full", timestamp=False).read_text()
    assert "Size: **full**" in full
    assert "## full_suite" in full and "quick_suite" not in full
    quick = report.build_report(root / "quick", tmp_path / "quick", timestamp=False).read_text()
    assert "Size: **quick**" in quick
    assert "## quick_suite" in quick and "full_suite" not in quick


def test_loaded_trials_are_flagged_and_marked(tmp_path):
    """A suite says how many trials ran on a loaded machine and marks them in its table."""
    df = make_results(batch_sizes=(16, 64), gc_modes=("default",), repeats=3)
    loaded = (pl.col("batch_size") == 64) & (pl.col("repeat") == 0)
    df = df.with_columns(
        load_avg_1m=pl.when(loaded).then(3.5).otherwise(pl.col("load_avg_1m")),
        cpu_steal_pct=pl.when(pl.col("order") == 0).then(12.0).otherwise(pl.col("cpu_steal_pct")),
    )
    root = tmp_path / "results"
    _write(root, df)
    text = report.build_report(root, tmp_path / "docs", timestamp=False).read_text()
    assert "2 of 6 trials ran on a loaded machine (load > cores or steal > 5 %)" in text
    assert "| 16 | 3 (1 loaded) |" in text and "| 64 | 3 (1 loaded) |" in text


def test_quiet_or_unmeasured_tables_say_nothing_about_load(tmp_path):
    """No loaded trial says "0 of n"; a table without load columns says nothing about load."""
    from lifelab.lab.schema import LOAD_COLUMNS

    quiet, old = tmp_path / "quiet", tmp_path / "old"
    _write(quiet / "results", _small())
    _write(old / "results", _small().drop(name for name, _ in LOAD_COLUMNS))
    text = report.build_report(quiet / "results", quiet / "docs", timestamp=False).read_text()
    assert "0 of 2 trials ran on a loaded machine" in text and "loaded)" not in text
    text = report.build_report(old / "results", old / "docs", timestamp=False).read_text()
    assert "loaded" not in text


def test_instruction_counts_get_a_column_only_where_measured(tmp_path):
    """Counts show as instructions/tick after ticks/s; a table without them (null counts, or
    written before the columns existed) gives byte for byte the README it gave before."""
    from lifelab.lab.schema import INSTRUCTION_COLUMNS

    names = [name for name, _ in INSTRUCTION_COLUMNS]
    # Trials run without counting have null counts (the synthetic builder fills in zeros).
    unmeasured = _small().with_columns(pl.lit(None, dtype=pl.Float64).alias(n) for n in names[:2])
    counted = _small().with_columns(
        instructions_per_tick=pl.Series([79_000.0, 79_010.0]),
        instructions_tool=pl.lit("cachegrind 3.19.0"),
    )
    texts = {}
    for label, df in (
        ("old", _small().drop(names)),
        ("null", unmeasured),
        ("counted", counted),
    ):
        root = tmp_path / label / "results"
        _write(root, df)
        readme = report.build_report(root, tmp_path / label / "docs", timestamp=False)
        texts[label] = readme.read_text(encoding="utf-8").replace(str(root), "ROOT")
    assert texts["null"] == texts["old"]
    assert "instructions/tick" not in texts["old"]
    assert "| n | events/s | ticks/s | instructions/tick | tick p50 (µs) |" in texts["counted"]
    assert "| 79,005 (79,000–79,010) |" in texts["counted"]
