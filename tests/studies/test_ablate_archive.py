"""Archive-format study: candidates answer like filter_columns, survive kill -9, table and report.

Tiny streams (a few thousand rows, segments of a few hundred); nothing here judges a timing or
which candidate is faster (DESIGN §3).
"""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lifelab.memory.active import COLUMNS
from lifelab.memory.archive import filter_columns
from lifelab.studies import ablate_archive as aa
from lifelab.studies import report
from lifelab.studies.ablation import (
    ABLATION_COLUMNS,
    DEFAULT_ROOT,
    AblationError,
    Sample,
    ablation_table,
    read_ablation,
    write_ablation,
)

ROWS = 3_000
SEGMENT_ROWS = 256
TRANSACTION_ROWS = 500
FACTORIES, SKIPPED = aa.candidates(SEGMENT_ROWS, transaction_rows=TRANSACTION_ROWS)
OWN = [name for name in FACTORIES if name != aa.LIFELAB]  # LIFELAB has its own crash tests
TINY = {
    "sizes": (2_000,),
    "repeats": 1,
    "searches": 20,
    "segment_rows": 256,
    "transaction_rows": 500,
    "warmup_rows": 0,
}


@pytest.fixture(scope="module")
def stream():
    return aa.spill_stream(ROWS, seed=3)


def _queries(stream, seed):
    """The check queries and random ones of both shapes, plus other sorts and limits."""
    rng = np.random.default_rng(seed)
    qs = aa.check_queries(stream, seed)
    qs += aa.time_queries(stream, 25, rng) + aa.time_queries(stream, 15, rng, exact=True)
    qs += aa.significance_queries(stream, 10, rng)
    for t in rng.integers(0, len(stream.type_names), 6).tolist():
        a, b = np.sort(rng.uniform(0.0, 4_000.0, 2)).tolist()
        qs.append(aa.Query(t, a, b, 10, sort="significance", descending=True))
        qs.append(aa.Query(t, a, None, 30, sort="timestamp", descending=True))
        qs.append(aa.Query(t, None, b, 0))
    return qs


def _load(name, directory, stream):
    candidate = FACTORIES[name]()
    candidate.open(directory, stream.type_names)
    for batch in stream.batches:
        candidate.append(batch)
    candidate.flush()
    return candidate


def test_spill_stream_is_shaped_like_spilled_rows(stream):
    """COLUMNS dtypes, batches that tile the rows in order, unique ids, out-of-order spills."""
    cols = stream.columns
    assert {n: c.dtype for n, c in cols.items()} == dict(COLUMNS)
    assert stream.rows == ROWS and len(np.unique(cols["id"])) == ROWS
    joined = {n: np.concatenate([b[n] for b in stream.batches]) for n in COLUMNS}
    assert all(np.array_equal(joined[n], cols[n]) for n in COLUMNS)
    sizes = [len(b["id"]) for b in stream.batches]
    assert min(sizes) >= 1 and max(sizes) <= 65_536
    backwards = np.mean(np.diff(cols["timestamp"]) < 0)
    assert 0.2 < backwards < 0.6  # jittered, as spills are
    assert len(np.unique(cols["event_type"])) >= 15
    assert np.all((cols["significance"] >= 0) & (cols["significance"] <= 1))
    again = aa.spill_stream(ROWS, seed=3)
    assert all(np.array_equal(again.columns[n], cols[n]) for n in COLUMNS)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_every_candidate_answers_like_filter_columns(name, stream, tmp_path):
    """Random queries of both shapes (and other sorts, limits, bounds), also after reopening."""
    queries = _queries(stream, seed=11)
    expected = [filter_columns(stream.columns, **q.kwargs()) for q in queries]
    candidate = _load(name, tmp_path / "archive", stream)
    try:
        aa.check_candidate(name, candidate, queries, expected)
    finally:
        candidate.close()
    reopened = FACTORIES[name]()
    reopened.open(tmp_path / "archive", stream.type_names)
    try:
        aa.check_candidate(name, reopened, queries, expected)
    finally:
        reopened.close()


def test_a_wrong_answer_raises(stream, tmp_path):
    """check_candidate refuses a candidate that loses one row (never a figure for it)."""
    queries = [aa.Query(t, limit=None) for t in range(len(stream.type_names))]
    expected = [filter_columns(stream.columns, **q.kwargs()) for q in queries]
    lossy = aa.RawSegments(SEGMENT_ROWS)
    lossy.open(tmp_path, stream.type_names)
    for batch in stream.batches:
        lossy.append({n: c[1:] for n, c in batch.items()} if len(batch["id"]) > 1 else batch)
    lossy.flush()
    with pytest.raises(AblationError, match="differs from filter_columns"):
        aa.check_candidate("lossy", lossy, queries, expected)
    lossy.close()


_KILLED = """
import os, signal, sys
from pathlib import Path
from lifelab.studies import ablate_archive as aa
name, directory = sys.argv[1], Path(sys.argv[2])
stream = aa.spill_stream({rows}, seed=3)
factories, _ = aa.candidates({segment_rows}, transaction_rows={transaction_rows})
candidate = factories[name]()
candidate.open(directory, stream.type_names)
for batch in stream.batches:
    candidate.append(batch)
candidate.flush()
print("flushed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("name", OWN)
def test_flushed_rows_survive_kill_9(name, stream, tmp_path):
    """Append, flush, SIGKILL without close: reopening finds every row, each type complete."""
    script = _KILLED.format(rows=ROWS, segment_rows=SEGMENT_ROWS, transaction_rows=TRANSACTION_ROWS)
    proc = subprocess.run(
        [sys.executable, "-c", script, name, str(tmp_path / "archive")],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert proc.stdout.strip() == "flushed"
    queries = [aa.Query(t, limit=None) for t in range(len(stream.type_names))]
    expected = [filter_columns(stream.columns, **q.kwargs()) for q in queries]
    candidate = FACTORIES[name]()
    candidate.open(tmp_path / "archive", stream.type_names)
    try:
        aa.check_candidate(name, candidate, queries, expected)
    finally:
        candidate.close()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The study once at a tiny size, every candidate that runs here."""
    return aa.archive_formats(**TINY, workdir=tmp_path_factory.mktemp("work"))


def test_table_has_every_candidate_and_metric(measured):
    """Ablation schema; one row per candidate and metric; summary: one row per candidate."""
    table, skipped = measured
    assert [(n, str(t)) for n, t in table.schema.items()] == list(ABLATION_COLUMNS)
    assert set(table["ablation"]) == {aa.ABLATION}
    assert set(table["variant"]) == set(FACTORIES)
    assert set(skipped) == set(SKIPPED) and not set(skipped) & set(FACTORIES)
    assert set(table["metric"]) == set(aa.METRICS)
    assert table.height == len(FACTORIES) * len(aa.METRICS)
    assert set(table.filter(pl.col("baseline"))["variant"]) == {aa.BASELINE}
    chosen = aa.LIFELAB if aa.LIFELAB in FACTORIES else aa.BASELINE
    assert set(table.filter(pl.col("chosen"))["variant"]) == {chosen}
    for row in table.iter_rows(named=True):
        assert row["unit"] == aa.METRICS[row["metric"]][0]
        assert row["lower_is_better"] == aa.METRICS[row["metric"]][1]
        assert row["median"] > 0 and row["n"] == 1
    wide = aa.summary(table)
    assert wide.height == len(FACTORIES) and wide["variant"].n_unique() == len(FACTORIES)
    assert {*aa.METRICS, "meets_targets"} <= set(wide.columns)


def test_report_renders_a_compact_archive_section(measured, tmp_path):
    """lifelab report: an "Archive formats" section with each candidate once and the reading."""
    table, _ = measured
    results = tmp_path / "results"
    write_ablation(table, question=aa.QUESTION, root=results / "ablations")
    text = report.build_report(results, tmp_path / "docs", timestamp=False).read_text()
    assert "### Archive formats" in text and "### archive_formats" not in text
    section = text.split("### Archive formats", 1)[1]
    for name in FACTORIES:
        assert section.count(f"| {name}") == 1, name
    assert aa.reading(table) in section
    assert "ablation-archive_formats.png" not in text


def _table(values):
    """An ablation table from {variant: (rows/s, p99 ms)}; other metrics fixed."""
    samples = []
    for variant, (rate, p99) in values.items():
        metrics = dict.fromkeys(aa.METRICS, 1.0) | {
            "ingest_rows_per_s": rate,
            "search_p99_ms": p99,
            "worst_wait_ms": rate / 1e6,
        }
        for metric, value in metrics.items():
            unit, lower = aa.METRICS[metric]
            samples.append(Sample(variant, metric, value, aa.TARGET_ROWS, unit, lower))
    return ablation_table(aa.ABLATION, samples, baseline=aa.BASELINE, chosen=aa.BASELINE)


def test_reading_is_computed_from_the_numbers():
    """The paragraph names who meets both targets, the fastest and the baseline's figures."""
    table = _table({aa.BASELINE: (50_000.0, 3.0), "a": (2_000_000.0, 1.0), "b": (1_500_000.0, 9.0)})
    text = aa.reading(table)
    assert "1 of 3 candidates meet both targets" in text and ": a." in text
    assert "Fastest ingest: a, 2,000,000 rows/s (40×" in text
    assert "ingests 50,000 rows/s, searches in p99 3 ms" in text
    assert "stops at" not in text  # measured at the target size
    none = aa.reading(_table({aa.BASELINE: (50_000.0, 3.0), "b": (1_500_000.0, 9.0)}))
    assert "none of the 2 candidates meets both targets" in none


def test_quick_and_smoke_never_write_the_committed_table(tmp_path, monkeypatch):
    """Only "full" defaults to data/results/ablations; a quick run goes to a temp folder."""
    assert aa.default_root("full") == Path(DEFAULT_ROOT)
    for scale in ("quick", "smoke"):
        assert Path(DEFAULT_ROOT) not in (aa.default_root(scale), *aa.default_root(scale).parents)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setitem(aa._SCALES, "quick", TINY)
    keep = {aa.BASELINE, aa.RAW}
    everything = aa.candidates

    def some(*args, **kwargs):
        factories, skipped = everything(*args, **kwargs)
        return {k: v for k, v in factories.items() if k in keep}, skipped

    monkeypatch.setattr(aa, "candidates", some)
    path = aa.run_all(scale="quick", progress=False)
    assert path == tmp_path / "tmp" / "lifelab-ablations-quick" / "archive_formats.parquet"
    assert not (tmp_path / DEFAULT_ROOT).exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["archive_formats.parquet"]
    table, meta = read_ablation(path)
    assert set(table["variant"]) == keep
    assert meta["question"].startswith(aa.QUESTION)
    for name in SKIPPED:
        assert name in meta["question"]


@pytest.mark.parametrize(
    "kwargs",
    [{"sizes": ()}, {"sizes": (0,)}, {"sizes": "100"}, {"searches": 0}, {"repeats": 0}],
)
def test_bad_arguments_raise(kwargs, tmp_path):
    """Sizes, searches and repeats are validated before anything runs."""
    args = TINY | {"variants": [aa.BASELINE]} | kwargs
    with pytest.raises(AblationError):
        aa.archive_formats(**args, workdir=tmp_path)


def test_unknown_scale_and_variant_raise(tmp_path):
    with pytest.raises(AblationError, match="scale"):
        aa.run_all(tmp_path, scale="huge", progress=False)
    with pytest.raises(AblationError, match="unknown variants"):
        aa.archive_formats(**TINY, variants=["nope"], workdir=tmp_path)


def test_module_entry_point_refuses_bad_arguments_with_its_usage(capsys, monkeypatch):
    """``python -m lifelab.studies.ablate_archive``: a bad scale or extra argument is status 2."""
    ran = []
    monkeypatch.setattr(aa, "run_all", lambda *a, **kw: ran.append((a, kw)) or "table.parquet")
    assert aa.main(["huge"]) == 2
    assert "usage: python -m lifelab.studies.ablate_archive" in capsys.readouterr().err
    assert aa.main(["quick", "a", "b"]) == 2
    assert "too many arguments" in capsys.readouterr().err
    assert aa.main(["--help"]) == 0 and "[smoke|quick|full]" in capsys.readouterr().out
    assert not ran
    assert aa.main(["smoke", "here"]) == 0
    assert ran == [(("here",), {"scale": "smoke"})]
    assert capsys.readouterr().out.strip() == "table.parquet"
