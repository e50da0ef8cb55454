"""The soak benchmark at toy size: it runs both phases, samples, and reports one JSON object.

The full soak (10 minutes at 100 Hz, 10 million simulated ticks) is not run in CI; see
docs/reliability.md for the command. The toy runs go through ``lifelab soak`` (the command line
owns the options and the exit codes). Nothing here judges timings or the RSS target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelab.cli import main as cli_main
from lifelab.config import LifeConfig
from lifelab.life.loop import Life
from lifelab.studies.soak import analyse, backlogs, container_sizes, disk_usage, rss_bytes


def main(argv: list[str]) -> int:
    """``lifelab soak ARGV``."""
    return cli_main(["soak", *argv])


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
        assert isinstance(p["bounded_backlogs"], dict)
        assert set(p["backlogs"]) == {
            "life.queue_depth",
            "life.persistence.archive.backlog",
            "life.persistence.logs.buffered",
        }
        assert all(b["within_bound"] for b in p["backlogs"].values()), p["backlogs"]
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
    """State, memory, feedback, metrics and persistence are all sized, private parts included."""
    life = Life(LifeConfig(seed=1, events_per_tick=3, run_dir=str(tmp_path / "run")))
    try:
        life.run(50)
        sizes = container_sizes(life)
        gauges = backlogs(life)
    finally:
        life.close()
    assert "life.feedback.pending" in sizes and "life.errors" in sizes, sorted(sizes)
    # The engines' state holds the last 32 events (the walk reaches it through whichever
    # attribute of the Life holds it).
    assert any(p.endswith(".recent_events") and n == 32 for p, n in sizes.items()), sorted(sizes)
    owners = (
        "life.memory.",
        "life.metrics.",
        "life.persistence.archive.",
        "life.persistence.logs.",
    )
    for owner in owners:
        assert any(p.startswith(owner) for p in sizes), (owner, sorted(sizes))
    assert gauges["life.queue_depth"] == {"items": 0, "bound": life.config.queue_capacity}
    assert (
        gauges["life.persistence.archive.backlog"]["bound"] == life.persistence.archive.backlog_max
    )
    assert gauges["life.persistence.logs.buffered"]["bound"] == life.persistence.logs.buffer_max
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


def _with_queue(samples: list[dict], depth: list[int], bound: int) -> list[dict]:
    for sample, items in zip(samples, depth, strict=True):
        sample["backlogs"] = {"life.queue_depth": {"items": items, "bound": bound}}
    return samples


def test_growth_that_a_backlog_gauge_explains_is_reported_apart():
    """A container of the queue's owner that grew no further than the queue depth is a backlog."""
    n = 10
    waiting = [0, 0, 0, 0, 0, 0, 0, 40, 80, 60]
    sizes = [{"life.waiting": w, "life.feedback.pending": 60 * i} for i, w in enumerate(waiting)]
    samples = _with_queue(_samples(sizes, [1] * n), waiting, bound=100)
    report = analyse(samples, warmup=0.2)
    assert set(report["growing_containers"]) == {"life.feedback.pending"}  # another owner
    assert report["bounded_backlogs"] == {
        "life.waiting": {
            "first_half_max": 0,
            "second_half_max": 80,
            "gauge": "life.queue_depth",
            "gauge_max": 80,
            "bound": 100,
        }
    }
    assert report["backlogs"]["life.queue_depth"] == {
        "first_half_max": 0,
        "second_half_max": 80,
        "bound": 100,
        "within_bound": True,
    }


def test_growth_past_the_gauge_or_its_bound_stays_growth():
    """A container larger than its owner's gauge, or a gauge past its bound, explains nothing."""
    n = 10
    waiting = [0] * 7 + [40, 80, 60]
    leak = [{"life.waiting": 100 * i} for i in range(n)]
    report = analyse(_with_queue(_samples(leak, [1] * n), waiting, bound=100), warmup=0.2)
    assert set(report["growing_containers"]) == {"life.waiting"} and not report["bounded_backlogs"]
    over = [{"life.waiting": w} for w in waiting]
    report = analyse(_with_queue(_samples(over, [1] * n), waiting, bound=50), warmup=0.2)
    assert set(report["growing_containers"]) == {"life.waiting"}
    assert report["backlogs"]["life.queue_depth"]["within_bound"] is False
