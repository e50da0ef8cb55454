"""The soak benchmark at toy size: it runs both phases, samples, and reports one JSON object.

The full soak (10 minutes at 100 Hz, 10 million simulated ticks) is not run in CI; see
docs/reliability.md for the command. Nothing here judges timings or the RSS target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.studies.soak import analyse, container_sizes, disk_usage, main, rss_bytes


def test_toy_soak_reports_both_phases(capsys, tmp_path):
    """A 1-second real-time phase and 3 000 simulated ticks give a complete report."""
    root = tmp_path / "soak"
    status = main(
        [
            "--realtime-seconds", "1", "--interval", "0.01", "--sim-ticks", "3000",
            "--samples", "5", "--log-every", "2", "--log-max-bytes", "4096",
            "--log-max-files", "2", "--snapshot-every", "500", "--root", str(root),
        ]
    )  # fmt: skip
    assert status == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not root.exists()  # removed without --keep
    assert isinstance(report["ok"], bool)
    for phase in ("realtime", "simulated"):
        p = report[phase]
        assert len(p["series"]["ticks"]) == 5
        assert p["series"]["ticks"] == sorted(p["series"]["ticks"])
        assert p["rss_growth_pct"] is None or isinstance(p["rss_growth_pct"], float)
        assert isinstance(p["growing_containers"], dict)
        assert p["disk"]["bounded"], p["disk"]
        assert p["summary"]["errors"] == 0
    assert report["simulated"]["summary"]["ticks"] == 3000
    assert report["realtime"]["summary"]["ticks"] > 10
    assert "lateness_p99_ms" in report["realtime"]["summary"]
    # Sampled sizes depend on when the writer threads ran; after close() everything is on disk.
    disk = report["simulated"]["disk"]
    assert disk["snapshots_files_max"] <= 4  # keep (3) + one being replaced
    assert disk["logs_files_max"] <= 2
    final = report["simulated"]["disk_after_close"]
    assert final["logs_files"] == 2  # 1 500 log lines in 4 KiB files: rotated, two kept
    assert final["logs_bytes"] <= 2 * 4096 + 65536
    assert 1 <= final["snapshots_files"] <= 3


def test_soak_refuses_bad_arguments(capsys):
    """A bad LifeConfig value or too few samples: exit 2 and one error line, nothing run."""
    assert main(["--realtime-seconds", "0", "--sim-ticks", "10", "--snapshot-keep", "0"]) == 2
    assert "snapshot_keep" in capsys.readouterr().err
    assert main(["--realtime-seconds", "0", "--sim-ticks", "10", "--samples", "2"]) == 2
    assert "samples" in capsys.readouterr().err


def test_container_walk_reaches_the_organism_containers(tmp_path):
    """State, memory, feedback, the event queue, metrics and persistence are all sized."""
    life = Life(LifeConfig(seed=1, events_per_tick=3, run_dir=str(tmp_path / "run")))
    try:
        life.run(50)
        sizes = container_sizes(life)
    finally:
        life.close()
    for path in (
        "life._state.recent_events",  # the engines' state (life.state is its validating view)
        "life.feedback.pending",
        "life._queue",
        "life.errors",
        "life.metrics._pending",
        "life.persistence.archive._inbox",
    ):
        assert path in sizes, sorted(sizes)
    assert sizes["life._state.recent_events"] == 32
    assert any(p.startswith("life.memory.") for p in sizes)
    assert any(p.startswith("life.persistence.logs.") for p in sizes)
    usage = disk_usage(tmp_path / "run")
    assert usage["archive_bytes"] > 0 and usage["snapshots_files"] >= 1


def _samples(sizes: list[dict[str, int]], rss: list[int]) -> list[dict]:
    return [
        {"elapsed_s": float(i), "ticks": 100 * i, "rss_bytes": r, "containers": c, "disk": {}}
        for i, (c, r) in enumerate(zip(sizes, rss, strict=True))
    ]


def test_analyse_flags_growth_after_warmup_only():
    """A container that keeps growing is flagged; one that filled during warm-up is not."""
    n = 10
    sizes = [
        {"leak": 100 * i, "filled": min(50 * i, 100), "ring": 32, "jitter": 40 + (i % 3)}
        for i in range(n)
    ]
    rss = [(100 + i) * 2**20 for i in range(n)]  # MB 100..109; steady: 102..109
    report = analyse(_samples(sizes, rss), warmup=0.2)
    assert set(report["growing_containers"]) == {"leak"}
    assert report["samples_after_warmup"] == 8
    # peak of the last third (108, 109) over the peak of the first third (102, 103)
    assert report["rss_growth_pct"] == pytest.approx(100 * (109 - 103) / 103)
    assert report["largest_containers"]["leak"] == 900


def test_analyse_refuses_nonsense():
    with pytest.raises(ValueError, match="no samples"):
        analyse([])
    with pytest.raises(ValueError, match="warmup"):
        analyse(_samples([{}] * 3, [1, 1, 1]), warmup=1.0)


def test_rss_is_read_from_proc_on_linux():
    """On Linux the RSS comes from /proc/self/statm (elsewhere it is None, not a guess)."""
    rss = rss_bytes()
    if Path("/proc/self/statm").exists():
        assert rss is not None and rss > 1 << 20
    else:  # pragma: no cover
        assert rss is None


def test_backlogs_within_their_design_bound_are_not_counted_as_growth():
    """A writer backlog that grew within its bound is reported apart; past it, it stays growth."""
    from lifelab.studies.soak import _within_bounds

    life = Life(LifeConfig(queue_capacity=100))
    growing = {
        "life._queue": {"first_half_max": 0, "second_half_max": 80},
        "life.feedback.pending": {"first_half_max": 0, "second_half_max": 500},
    }
    bounded = _within_bounds(life, growing)
    assert bounded == {"life._queue": {"first_half_max": 0, "second_half_max": 80, "bound": 100}}
    assert set(growing) == {"life.feedback.pending"}
    over = {"life._queue": {"first_half_max": 0, "second_half_max": 101}}
    assert _within_bounds(life, over) == {} and set(over) == {"life._queue"}
