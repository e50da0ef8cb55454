"""The ``lifelab`` command: thin subcommands that parse, call the library and print.

Every command has ``--help``; ``--json`` prints one JSON object as the last line of stdout.
Errors print one line to stderr and exit with status 2 (bad input) or 1 (failure).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lifelab import __version__
from lifelab.exceptions import LifelabError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], dict[str, Any]]


# -- helpers ---------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _progress(total: int, desc: str) -> Any:
    """A tqdm bar on stderr (tqdm hides itself when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="tick", unit_scale=True, disable=None, leave=False)


def _print_table(result: dict[str, Any]) -> None:
    width = max(len(k) for k in result)
    for key, value in result.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        elif isinstance(value, list) and value and isinstance(value[0], float):
            text = " ".join(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" for v in value)
        else:
            text = str(value)
        print(f"{key:<{width}}  {text}")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


# -- run -----------------------------------------------------------------------------------------


def _add_life_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the organism's generator (0)")
    p.add_argument("--run-dir", default=None, help="run directory (default: under data/runs/)")
    p.add_argument(
        "--events-per-tick",
        type=_number,
        default=1.0,
        help="mean events the environment emits per tick (1)",
    )
    p.add_argument(
        "--poisson",
        action="store_true",
        help="draw the number of events per tick from a Poisson law",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=64, help="most events drained per tick (64)"
    )
    p.add_argument(
        "--memory-capacity",
        type=_positive_int,
        default=10_000,
        help="active memory capacity (10000)",
    )
    p.add_argument("--snapshot-every", type=int, default=0, help="ticks between snapshots (0: off)")
    p.add_argument("--dt", type=_number, default=1.0, help="simulated seconds per tick (1.0)")
    p.add_argument("--realtime", action="store_true", help="pace ticks on the wall clock")
    p.add_argument(
        "--interval",
        type=_number,
        default=0.01,
        help="seconds between ticks with --realtime (0.01)",
    )


def _config_from(args: argparse.Namespace) -> Any:
    from lifelab.config import LifeConfig

    return LifeConfig(
        seed=args.seed,
        clock="realtime" if args.realtime else "simulated",
        dt=args.dt,
        tick_interval=args.interval,
        events_per_tick=args.events_per_tick,
        events_mode="poisson" if args.poisson else "fixed",
        batch_size=args.batch_size,
        memory_capacity=args.memory_capacity,
        snapshot_every=args.snapshot_every,
        run_dir=args.run_dir,
    )


def _live(life: Any, ticks: int) -> dict[str, Any]:
    """Run ``ticks`` ticks in chunks under a progress bar; Ctrl-C stops cleanly."""
    chunk = max(1, min(10_000, ticks // 100 or 1))
    if life.config.clock == "realtime":
        chunk = max(1, min(chunk, int(1.0 / life.config.tick_interval) or 1))
    done = 0
    with _progress(ticks, "living") as bar:
        try:
            while done < ticks and life.alive:
                step = min(chunk, ticks - done)
                life.run(step)
                done += step
                bar.update(step)
        except KeyboardInterrupt:
            print("interrupted: stopping cleanly", file=sys.stderr)
    return life.summary()


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.life.loop import Life

    life = Life(_config_from(args))
    return _live(life, args.ticks)


# -- bench -----------------------------------------------------------------------------------------


def cmd_bench_loop(args: argparse.Namespace) -> dict[str, Any]:
    from lifelab.observe.bench import bench_loop
    from lifelab.observe.gcmode import parse_gc_mode

    parse_gc_mode(args.gc)  # refuse a bad mode before any work
    with _progress(args.ticks, "bench loop") as bar:
        return bench_loop(
            ticks=args.ticks,
            events_per_tick=args.events_per_tick,
            batch_size=args.batch_size,
            memory_capacity=args.memory_capacity,
            gc=args.gc,
            seed=args.seed,
            baseline=args.baseline,
            progress=bar.update,
        )


# -- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifelab",
        description="lifelab: run, measure and study a continuously-living agent runtime.",
    )
    parser.add_argument("--version", action="version", version=f"lifelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="live N ticks and print the summary",
        description="Live N ticks (simulated clock unless --realtime).",
    )
    p.add_argument("--ticks", type=_positive_int, default=10_000, help="ticks to live (10000)")
    _add_life_options(p)
    _add_json(p)
    p.set_defaults(handler=cmd_run)

    bench = sub.add_parser(
        "bench",
        help="benchmarks of the loop and the memory",
        description="Benchmarks; timings are medians of the machine you run.",
    )
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    p = bsub.add_parser(
        "loop",
        help="ticks/s, latency, RSS and GC of the tick loop",
        description="Throughput and latency of the loop on the simulated clock.",
    )
    p.add_argument("--ticks", type=_positive_int, default=200_000, help="measured ticks (200000)")
    p.add_argument("--events-per-tick", type=_number, default=1.0, help="events per tick (1)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (64)")
    p.add_argument(
        "--memory-capacity",
        type=_positive_int,
        default=10_000,
        help="active memory capacity (10000)",
    )
    p.add_argument(
        "--gc",
        default="default",
        help="GC mode after warm-up: default|off|freeze|tuned|T0,T1,T2 (default)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (0)")
    p.add_argument(
        "--baseline", action="store_true", help="also time a bare minimal loop and report the ratio"
    )
    _add_json(p)
    p.set_defaults(handler=cmd_bench_loop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        result = handler(args)
    except (LifelabError, ValueError, TypeError) as exc:
        print(f"lifelab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lifelab {args.command}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print_table(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
