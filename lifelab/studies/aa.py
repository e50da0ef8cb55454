"""Is the comparison gate honest, and can it see a few percent? An A/A run, and a planted change.

An A/A experiment measures the same code twice and compares the two with the gate every change
goes through (:func:`lifelab.lab.stats.compare`, ``lifelab compare``). The only honest verdict is
"no significant change"; a gate that calls a change here calls changes that are not there.

:func:`run_pair` runs two sweeps of one grid as arm A and arm B, trial by trial in ABBA order (A B,
then B A, …), so a slow minute of the machine falls on both arms alike, with each trial's measured
ticks also counted under valgrind (``instructions=True``). Each arm is a results table of its own,
``<pair>-A.parquet`` and ``<pair>-B.parquet``, the two tables ``lifelab compare`` takes. With
``b_changes`` arm B differs on purpose (a planted change, e.g. 3 % more events per tick, which is
+1.3 % instructions per tick on the Python engine and +1.9 % on the compiled one: much of a tick's
cost does not grow with its events): the same gate must then call it on the instruction count,
where the wall clock cannot resolve it.

:func:`verdicts` compares the two arms on both measures: ``instructions_per_tick`` (instruction
count) and ``ticks_per_s`` (wall clock), each row naming its measure.

What to expect (DESIGN §3, measured here): instruction counts repeat within 0.002 % (Python
engine) and 0.4 % (compiled), so their A/A ratio is 1.000 and any change of 1 % or more is
called. The wall clock swings ±15–30 % between runs here; its A/A verdict is "no significant
change" but, by construction of a 95 % interval, about 1 A/A comparison in 40 calls a change on
identical code (simulated with lognormal noise of 5–20 % and 5–15 trials a side: 1–3 %).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ARMS",
    "METRICS",
    "SUITE",
    "Pair",
    "find_pairs",
    "load_pair",
    "plot_pair",
    "run_pair",
    "sentences",
    "verdicts",
]

SUITE = "aa"
ARMS = ("A", "B")
# The two measures of speed every verdict here is given on.
METRICS = ("instructions_per_tick", "ticks_per_s")


@dataclass(frozen=True, slots=True)
class Pair:
    """The two arms of one A/A (or planted A/B) run.

    Attributes:
        pair: The run's id (``<UTC timestamp>-<8 hex>``), the prefix of both file names.
        a: Arm A's results table.
        b: Arm B's results table.
        paths: The two parquet files (A, B).
    """

    pair: str
    a: pl.DataFrame
    b: pl.DataFrame
    paths: tuple[Path, Path]


def run_pair(
    out_dir: str | Path,
    grid: Mapping[str, Any],
    *,
    base: Mapping[str, Any] | None = None,
    repeats: int = 5,
    b_changes: Mapping[str, Any] | None = None,
    instructions: bool = True,
    suite: str = SUITE,
    progress: bool = True,
    cancel: threading.Event | None = None,
) -> Pair:
    """Run arm A and arm B of ``grid`` interleaved (ABBA) and write one results table per arm.

    Args:
        out_dir: Folder of the two tables (created); e.g. ``data/results/aa``.
        grid: Parameter grid of both arms (:func:`lifelab.lab.spec.expand`).
        base: Values of the parameters the grid leaves out.
        repeats: Trials per cell and arm (a verdict needs 5 a side).
        b_changes: TrialSpec fields arm B changes (``{"events_per_tick": 1.03}``); None is an
            A/A run, the same trials in both arms.
        instructions: Count every trial's measured ticks under valgrind too.
        suite: The tables' suite column (``aa``; e.g. ``aa_planted`` for a planted change).
        progress: A ``tqdm.auto`` bar of the trials.
        cancel: Set it to stop after the running trial; nothing is written then.

    Returns:
        The two tables and their paths.

    Raises:
        lifelab.lab.instructions.ValgrindMissing: ``instructions`` without valgrind.
        lifelab.lab.sweep.SweepCancelled: ``cancel`` was set.
    """
    from tqdm.auto import tqdm

    from lifelab.lab.results import write_results
    from lifelab.lab.runner import TrialCancelled
    from lifelab.lab.spec import expand
    from lifelab.lab.sweep import (
        SweepCancelled,
        label_rows,
        new_sweep_id,
        rows_to_frame,
        run_trial_row,
    )

    if instructions:
        from lifelab.lab.instructions import valgrind_path

        valgrind_path()
    specs_a = expand(grid, repeats=repeats, base={**(base or {}), "instructions": instructions})
    specs_b = [dataclasses.replace(s, **(b_changes or {})) for s in specs_a]
    out = Path(out_dir)
    pair = new_sweep_id()
    paths = (out / f"{pair}-A.parquet", out / f"{pair}-B.parquet")
    rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    total = 2 * len(specs_a)
    desc = "A/A" if b_changes is None else "A/B"
    # disable=None: hidden when stderr is not a terminal, a widget in Jupyter (as sweeps do).
    bar = tqdm(total=total, desc=desc, unit="trial", disable=None if progress else True)
    try:
        for i, pair_specs in enumerate(zip(specs_a, specs_b, strict=True)):
            for arm in (0, 1) if i % 2 == 0 else (1, 0):  # ABBA: drift lands on both arms
                try:
                    rows[arm].append(run_trial_row(pair_specs[arm], cancel=cancel))
                except TrialCancelled:
                    raise SweepCancelled(len(rows[0]) + len(rows[1]), total) from None
                bar.update(1)
    finally:
        bar.close()
    tables = []
    for arm, specs, arm_rows, path in zip(ARMS, (specs_a, specs_b), rows, paths, strict=True):
        sweep_id = f"{pair}-{arm}"
        label_rows(specs, arm_rows, suite=suite, sweep_id=sweep_id)
        df = rows_to_frame(arm_rows)
        write_results(df, path, suite=suite, sweep_id=sweep_id)
        tables.append(df)
    return Pair(pair, tables[0], tables[1], paths)


def find_pairs(root: str | Path) -> list[str]:
    """The ids of the pairs whose two tables are both in ``root``, oldest first."""
    folder = Path(root)
    a = {p.name.removesuffix("-A.parquet") for p in folder.glob("*-A.parquet")}
    b = {p.name.removesuffix("-B.parquet") for p in folder.glob("*-B.parquet")}
    return sorted(a & b)  # ids start with their UTC timestamp


def load_pair(root: str | Path, pair: str | None = None) -> Pair | None:
    """Read the two tables of ``pair`` (default: the newest) in ``root``; None when there is none.

    Raises:
        lifelab.lab.results.ResultsSchemaError: a table is damaged or not a results table.
    """
    from lifelab.lab.results import read_results

    pairs = find_pairs(root)
    if pair is None:
        if not pairs:
            return None
        pair = pairs[-1]
    elif pair not in pairs:
        return None
    paths = (Path(root) / f"{pair}-A.parquet", Path(root) / f"{pair}-B.parquet")
    return Pair(pair, read_results(paths[0]), read_results(paths[1]), paths)


def verdicts(pair: Pair, *, by: tuple[str, ...] | None = None, **options: Any) -> pl.DataFrame:
    """:func:`lifelab.lab.stats.compare` of arm B against arm A on :data:`METRICS`.

    ``by`` names the cells (default: every parameter column; give the unchanged ones for a
    planted change, whose arms differ in the changed parameter); ``options`` go to compare.
    A metric neither arm measured (no instruction counts) has no rows.
    """
    from lifelab.lab.stats import compare

    return compare(pair.a, pair.b, METRICS, by=list(by) if by else None, **options)


def sentences(table: pl.DataFrame) -> list[str]:
    """One line per row of :func:`verdicts`: the metric, its measure, the ratio with its
    interval and the verdict, e.g. ``instructions_per_tick (instruction count), engine python:
    B/A 1.0000 [0.9999, 1.0001]: no significant change``."""
    keys = table.columns[: table.columns.index("metric")]
    varying = [k for k in keys if table[k].n_unique() > 1 and k not in ("cell", "config_json")]
    lines = []
    for row in table.iter_rows(named=True):
        cell = ", ".join(f"{k} {row[k]}" for k in varying)
        lines.append(
            f"{row['metric']} ({row['measure']}){', ' + cell if cell else ''}: B/A "
            f"{row['ratio']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]: {row['verdict']}"
            + ("" if row["decides"] else " (not deciding: instruction counts decide)")
        )
    return lines


def plot_pair(pair: Pair) -> Any:
    """Each trial's value relative to the median of both arms, one panel per metric of
    :data:`METRICS` the arms measured: A and B side by side, in the order they ran."""
    import matplotlib.pyplot as plt
    import polars as pl

    both = pl.concat(
        [pair.a.with_columns(arm=pl.lit("A")), pair.b.with_columns(arm=pl.lit("B"))],
        how="vertical_relaxed",
    ).filter(pl.col("status") == "ok")
    metrics = [m for m in METRICS if both[m].drop_nulls().len() > 0]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        median = both[metric].median()
        for arm, marker in zip(ARMS, ("o", "s"), strict=True):
            part = both.filter(pl.col("arm") == arm)
            relative = (part[metric] / median - 1.0) * 100.0
            ax.plot(part["order"], relative, marker, label=f"arm {arm}", alpha=0.8)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(metric)
        ax.set_xlabel("trial (in the order each arm ran)")
        ax.set_ylabel("% from the median of both arms")
        ax.legend(fontsize="small")
    fig.tight_layout()
    plt.close(fig)
    return fig
