"""lifelab perfcheck: instruction counts against a committed baseline (counts faked here; the
valgrind measurement itself is tested in test_instructions.py)."""

from __future__ import annotations

import json

import pytest

from lifelab.lab import perfcheck as pc

ENV = {
    "python": "3.11.7",
    "implementation": "CPython",
    "numba": "0.60",
    "numpy": "2.0",
    "machine": "x86_64",
    "valgrind": "3.19",
}
WORKLOADS = {"a": {"engine": "python"}, "b": {"engine": "compiled"}}


@pytest.fixture(autouse=True)
def _same_environment(monkeypatch):
    monkeypatch.setattr(pc, "environment", lambda: dict(ENV))


def _counter(per_engine):
    return lambda **options: {"instructions_per_tick": per_engine[options["engine"]]}


def _check(tmp_path, counts, **kw):
    return pc.perfcheck(
        baseline=tmp_path / "base.json", workloads=WORKLOADS, count=_counter(counts), **kw
    )


def test_update_writes_the_baseline_then_the_same_counts_pass(tmp_path):
    out = _check(tmp_path, {"python": 80_000.0, "compiled": 900.0}, update=True)
    assert out["updated"] and out["regressions"] == 0
    saved = json.loads((tmp_path / "base.json").read_text())
    assert saved["workloads"] == {"a": 80_000.0, "b": 900.0} and saved["environment"] == ENV
    again = _check(tmp_path, {"python": 80_000.0, "compiled": 900.0})
    assert {r["verdict"] for r in again["workloads"].values()} == {"ok"}


def test_growth_past_the_threshold_is_a_regression_and_shrinking_is_faster(tmp_path):
    _check(tmp_path, {"python": 80_000.0, "compiled": 900.0}, update=True)
    out = _check(tmp_path, {"python": 80_000.0 * 1.05, "compiled": 900.0 * 0.9})
    assert out["regressions"] == 1
    assert out["workloads"]["a"]["verdict"] == "REGRESSION"
    assert out["workloads"]["a"]["ratio"] == pytest.approx(1.05)
    assert out["workloads"]["b"]["verdict"] == "faster"
    within = _check(tmp_path, {"python": 80_000.0 * 1.02, "compiled": 900.0}, threshold=0.03)
    assert within["regressions"] == 0


def test_a_baseline_from_another_environment_or_missing_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--update"):
        _check(tmp_path, {"python": 1.0, "compiled": 1.0})
    _check(tmp_path, {"python": 1.0, "compiled": 1.0}, update=True)
    monkeypatch.setattr(pc, "environment", lambda: {**ENV, "numba": "0.61"})
    with pytest.raises(pc.BaselineMismatch, match=r"numba 0\.60 -> 0\.61"):
        _check(tmp_path, {"python": 1.0, "compiled": 1.0})
    (tmp_path / "base.json").write_text('{"version": 1, "workloads": {"a": -3}}')
    with pytest.raises(ValueError, match="positive"):
        _check(tmp_path, {"python": 1.0, "compiled": 1.0})


def test_the_committed_baseline_covers_every_workload():
    """data/results/perfcheck/baseline.json names each fixed workload with a positive count."""
    from pathlib import Path

    saved = json.loads((Path(__file__).parents[2] / pc.DEFAULT_BASELINE).read_text())
    assert set(saved["workloads"]) == set(pc.WORKLOADS)
    assert all(v > 0 for v in saved["workloads"].values())


def test_cli_exits_1_on_a_regression_and_prints_a_table(tmp_path, monkeypatch, capsys):
    """`lifelab perfcheck`: 0 when every workload is within the threshold, 1 on a regression."""
    from lifelab.cli import main

    counts = {"python": 80_000.0, "compiled": 900.0}
    real = pc.perfcheck

    def fake(**kw):
        return real(workloads=WORKLOADS, count=_counter(counts), **kw)

    monkeypatch.setattr(pc, "perfcheck", fake)
    base = str(tmp_path / "base.json")
    assert main(["perfcheck", "--baseline", base, "--update"]) == 0
    assert "baseline written" in capsys.readouterr().out
    assert main(["perfcheck", "--baseline", base]) == 0
    counts["compiled"] = 1000.0
    assert main(["perfcheck", "--baseline", base, "--json"]) == 1
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["regressions"] == 1 and out["workloads"]["b"]["verdict"] == "REGRESSION"
    assert main(["perfcheck", "--baseline", str(tmp_path / "none.json")]) == 2
