"""``lifelab report``: rebuild the performance documentation from the results tables.

Reads every results parquet under ``data/results/`` and writes ``docs/performance/README.md``
with one section per suite (a table of per-cell medians with 95 % bootstrap confidence
intervals, and the figures of :mod:`lifelab.lab.plots` as PNGs beside it). Trials that ran on a
loaded machine (:func:`lifelab.lab.load.is_loaded`) are counted and marked, not left out;
tables without load readings say nothing about load. Within a suite, rows from different
machines, Pythons or commits are never pooled (DESIGN §3, pyperf's checked metadata): each such
group gets its own subsection, newest first.

The same tables always give byte-identical files (everything is sorted, bootstraps are seeded);
the only wall-clock reading is the optional "generated at" line.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # polars and matplotlib load only when a report is built (cli imports us)
    import polars as pl

__all__ = ["ablation_conclusions", "build_report", "report_summary"]

DEFAULT_RESULTS = "data/results"
DEFAULT_OUT = "docs/performance"
DPI = 110

# Metrics of the summary table: (column, header with unit). A column shows only when the
# suite's table has values in it (instructions_per_tick: trials run with instruction counting).
KEY_METRICS = (
    ("events_per_s", "events/s"),
    ("ticks_per_s", "ticks/s"),
    ("instructions_per_tick", "instructions/tick"),
    ("tick_p50_us", "tick p50 (µs)"),
    ("tick_p99_us", "tick p99 (µs)"),
    ("peak_rss_mb", "peak RSS (MB)"),
    ("last_decile_ratio", "last/first decile"),
)
# Rows that differ in any of these are never pooled: lifelab.lab.env.CHECKED_ENVIRONMENT
# (cpu_model, python_version) plus the interpreter and the code that ran.
ENV_GROUP = ("cpu_model", "python_version", "implementation", "git_commit", "git_dirty")
_REQUIRED = ("suite", "sweep_id", "status")  # a parquet without them is not a results table
_SOURCE = "source_table"  # column _read_all adds: the file a row came from, relative to the root


@dataclass(frozen=True, slots=True)
class _Built:
    readme: Path
    figures: list[Path]
    tables: int


def build_report(
    results_root: str | Path = DEFAULT_RESULTS,
    out_dir: str | Path = DEFAULT_OUT,
    *,
    timestamp: bool = True,
) -> Path:
    """Write ``out_dir/README.md`` and its PNG figures from the tables under ``results_root``.

    With no results it writes a README that says so and how to produce them. ``timestamp=False``
    drops the "generated at" line, so identical results give identical files. Returns the
    README's path.

    Raises:
        ValueError: a parquet file under ``results_root`` cannot be read.
    """
    return _build(Path(results_root), Path(out_dir), timestamp=timestamp).readme


def report_summary(
    results_root: str | Path = DEFAULT_RESULTS,
    out_dir: str | Path = DEFAULT_OUT,
    *,
    timestamp: bool = True,
) -> dict[str, Any]:
    """:func:`build_report`, returning what ``lifelab report --json`` prints: out_dir, readme,
    figures (paths) and tables (results files read)."""
    built = _build(Path(results_root), Path(out_dir), timestamp=timestamp)
    return {
        "out_dir": str(built.readme.parent),
        "readme": str(built.readme),
        "figures": [str(p) for p in built.figures],
        "tables": built.tables,
    }


# -- reading ---------------------------------------------------------------------------------------


def _read_all(root: Path) -> tuple[pl.DataFrame, list[str]]:
    """Every results table under ``root`` as one frame, and the parquet files skipped.

    Each row gets a ``source_table`` column (its file, relative to ``root``). Files and folders
    starting with "." (a writer's temporary files) are ignored; ablation tables (their own
    section) are left out; other tables without the id and status columns (e.g. profile tables)
    are skipped and named. Tables are read with :func:`lifelab.lab.results.read_table`, so
    every version and kind is accepted, unversioned ones included. Unlike
    :func:`lifelab.lab.results.load_results` this keeps rows from every machine (each gets its
    own subsection) and also reads results tables written without metadata.
    """
    import polars as pl

    from lifelab.lab.results import read_table, table_files
    from lifelab.studies.ablation import KIND as ABLATION_KIND

    paths = table_files(root)  # this root's size only: quick/ and smoke/ are reports of their own
    frames, skipped = [], []
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            table = read_table(path)
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot read results table {path}: {exc}") from exc
        if table.kind == ABLATION_KIND:  # those have their own section
            continue
        frame = table.data
        if not all(c in frame.columns for c in _REQUIRED):
            skipped.append(name)
            continue
        frames.append(frame.with_columns(pl.lit(name).alias(_SOURCE)))
    if not frames:
        return pl.DataFrame(), skipped
    df = pl.concat(frames, how="diagonal_relaxed")
    order = [c for c in ("suite", "sweep_id", "order", "trial_id", _SOURCE) if c in df.columns]
    return df.sort(order, nulls_last=True, maintain_order=True), skipped


# -- building --------------------------------------------------------------------------------------


def _build(root: Path, out_dir: Path, *, timestamp: bool) -> _Built:
    import polars as pl

    df, skipped = _read_all(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    readme = out_dir / "README.md"
    lines = ["# lifelab performance", ""]
    lines.append(
        f"Built by `lifelab report` from the results tables under `{root.as_posix()}/`; "
        "do not edit by hand."
    )
    lines.append(_size_line(root))
    if timestamp:
        lines.append(f"Generated at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.")
    lines.append("")
    from lifelab.studies.targets import PLAIN_TABLES

    plain = [name for name in skipped if Path(name).stem in PLAIN_TABLES]
    skipped = [name for name in skipped if name not in plain]
    if plain:
        listed = ", ".join(f"`{s}`" for s in plain)
        lines += [f"Plain tables (read by the targets and the notebooks): {listed}.", ""]
    if skipped:
        lines += [f"Skipped (not results tables): {', '.join(f'`{s}`' for s in skipped)}.", ""]

    if df.height == 0:
        lines += [
            f"There are no results yet: no results table under `{root.as_posix()}/`.",
            "",
            "Produce some with `make results` (full size, tables under `data/results/<suite>/`),",
            "`make run` (quick size, under `data/results/quick/`) or `lifelab sweep`, then",
            "rebuild this page with `lifelab report`.",
            "",
        ]
        figures_only: list[Path] = []
        lines += _ablations(root, out_dir, figures_only)
        _write_text(readme, lines)
        _remove_stale_figures(out_dir, figures_only)
        return _Built(readme, figures_only, 0)

    df = df.with_columns(pl.col("suite").fill_null("unnamed"))
    figures: list[Path] = []
    lines += _targets(root)
    lines += _aa_check(root)
    lines += _sources(df)
    for (suite,), rows in _partition(df, ["suite"]):
        lines += _suite_section(str(suite), rows, out_dir, figures)
    lines += _ablations(root, out_dir, figures)
    lines += [
        "## How to regenerate",
        "",
        "`make results` runs every experiment at full size (tables under "
        "`data/results/<suite>/`) and rebuilds this page; `make run` does the same at quick "
        "size into `data/results/quick/` and `data/runs/report/`. "
        "`lifelab report [--results DIR] [--out DIR]` rebuilds a page from any folder.",
        "",
    ]
    _write_text(readme, lines)
    _remove_stale_figures(out_dir, figures)
    tables = df[_SOURCE].n_unique() if _SOURCE in df.columns else df["sweep_id"].n_unique()
    return _Built(readme, figures, tables)


def _size_line(root: Path) -> str:
    """Which size every figure of this report comes from (lifelab.lab.results.SIZES)."""
    from lifelab.lab.results import results_size

    size = results_size(root)
    if size == "full":
        return (
            "Size: **full** (`make results`, `lifelab experiment run --full`); quick runs "
            "(`make run`) write to `quick/` beside these tables and are left out."
        )
    how = "`make run`" if size == "quick" else "`lifelab experiment run --smoke`"
    return (
        f"Size: **{size}** ({how}): fewer ticks and repeats than the full-size record in "
        "`data/results/<suite>/`, so wider intervals; quote the full-size figures."
    )


def _remove_stale_figures(out_dir: Path, figures: list[Path]) -> None:
    """Delete the PNGs in ``out_dir`` this build did not write: a former build's, now unlinked.

    The folder is generated (its README says so); only PNG files are touched.
    """
    keep = {p.name for p in figures}
    for path in out_dir.glob("*.png"):
        if path.name not in keep:
            path.unlink()


def _ablations(root: Path, out_dir: Path, figures: list[Path]) -> list[str]:
    """One paragraph per A/B table under ``root/ablations``: question, table, verdict, figure."""
    from lifelab.studies import ablate_archive
    from lifelab.studies.ablation import load_ablations, plot_ablation, verdict

    tables = load_ablations(root / "ablations")
    if not tables:
        return []
    lines = [
        "## Ablations: each technique of the reference plan against the design it replaced",
        "",
        "Variants ran interleaved in one process; each cell is the median of the samples with its "
        "95 % bootstrap interval, and `ratio` is the median over the baseline's (the replaced "
        "design, marked *baseline*; the variant lifelab ships is marked *chosen*).",
        "",
        "In short (computed from the tables below):",
        "",
        *(f"- {line}" for line in ablation_conclusions(tables)),
        "",
    ]
    for table, meta in tables:
        name = str(table["ablation"][0])
        if name == ablate_archive.ABLATION:  # a dozen candidates: a compact table of its own
            lines += ablate_archive.report_section(table, meta)
            continue
        env = meta["environment"]
        lines += [f"### {name}", "", meta["question"], ""]
        lines.append(_md_row(["variant", "size", "metric", "median (95 % CI)", "ratio"]))
        lines.append(_md_row(["---"] * 5))
        for row in table.sort(["metric", "size", "variant"]).iter_rows(named=True):
            tag = " *(baseline)*" if row["baseline"] else ""
            tag += " *(chosen)*" if row["chosen"] else ""
            lines.append(
                _md_row(
                    [
                        row["variant"] + tag,
                        f"{row['size']:,}",
                        f"{row['metric']} ({row['unit']})",
                        _estimate(row["median"], row["ci_low"], row["ci_high"]),
                        "—" if row["ratio"] is None else f"{row['ratio']:.3g}",
                    ]
                )
            )
        lines.append("")
        said = verdict(table)
        lines += [f"- {line}" for line in said]
        lines.append("")
        commit = str(env.get("git_commit") or "unknown")[:10]
        lines += [
            f"Measured on {env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} CPUs), "
            f"Python {env.get('python_version', '?')}, commit `{commit}`"
            f"{' (dirty)' if env.get('git_dirty') else ''}.",
            "",
        ]
        fig = plot_ablation(table)
        path = out_dir / f"ablation-{_slug(name)}.png"
        fig.savefig(path, dpi=DPI)
        figures.append(path)
        lines += [f"![{name}]({path.name})", ""]
    return lines


def ablation_conclusions(tables: Iterable[Any]) -> list[str]:
    """What the ablation tables say, in sentences computed from them (never typed in by hand).

    ``tables`` are ablation tables, or the (table, metadata) pairs of
    :func:`lifelab.studies.ablation.load_ablations`. The first lines name the largest gain of a
    chosen design and every metric where a chosen design is clearly worse than what it replaced;
    then one line per ablation: the chosen variant against the baseline (or, when the baseline
    is what ships, against each alternative), metric by metric, as "N× faster at size S" or a
    range over the sizes. A difference counts only where the two 95 % intervals do not overlap
    and it is at least 5 %.
    """
    findings = []
    for item in tables:
        table = item[0] if isinstance(item, tuple) else item
        findings.append((str(table["ablation"][0]), _ablation_findings(table)))
    clear = [
        (name, pair, metric, size, factor)
        for name, pairs in findings
        for pair, metrics in pairs
        for metric, points in metrics
        for size, factor, overlap in points
        if not overlap
    ]
    lines = []
    if clear:
        name, (chosen, other), metric, size, factor = max(clear, key=lambda c: c[4])
        lines.append(
            f"Largest gain: {name}, {metric}: {chosen} is {_times(factor, metric)} than "
            f"{other}{_at(size)}."
        )
        losses: dict[tuple[str, str, str], list[float]] = {}
        for name, (_, other), metric, _, factor in clear:
            if factor < 1:
                losses.setdefault((name, other, metric), []).append(factor)
        if losses:
            items = [
                f"{name} {metric} ({_span(factors, metric)} than {other})"
                for (name, other, metric), factors in losses.items()
            ]
            lines.append(f"Where a chosen design is clearly worse: {'; '.join(items)}.")
        else:
            lines.append("No chosen design is clearly worse than what it replaced on any metric.")
    for name, pairs in findings:
        for (chosen, other), metrics in pairs:
            parts = [_metric_phrase(metric, points) for metric, points in metrics]
            lines.append(f"{name}: {chosen} vs {other}: {'; '.join(parts)}.")
    return lines


_TIME_UNITS = ("ns", "µs", "us", "ms", "s")
_MIN_EFFECT = 0.05  # a smaller difference is no difference worth a sentence (as stats.compare)


def _ablation_findings(table: pl.DataFrame) -> list[tuple[tuple[str, str], list[Any]]]:
    """Per (chosen, other) pair, per metric: (size, how many times better chosen is, overlap)."""
    chosen = str(table.filter(table["chosen"])["variant"][0])
    baseline = str(table.filter(table["baseline"])["variant"][0])
    others = [baseline] if chosen != baseline else []
    if not others:
        others = sorted(v for v in set(table["variant"].to_list()) if v != chosen)
    rows = {(r["variant"], r["metric"], r["size"]): r for r in table.iter_rows(named=True)}
    out = []
    for other in others:
        metrics = []
        for metric in sorted(set(table["metric"].to_list())):
            points = []
            for size in sorted(set(table.filter(table["metric"] == metric)["size"].to_list())):
                c, o = rows.get((chosen, metric, size)), rows.get((other, metric, size))
                if c is None or o is None or not c["median"] or not o["median"]:
                    continue
                lower = c["lower_is_better"]
                factor = o["median"] / c["median"] if lower else c["median"] / o["median"]
                overlap = not (c["ci_high"] < o["ci_low"] or o["ci_high"] < c["ci_low"])
                points.append((size, factor, overlap or abs(factor - 1) < _MIN_EFFECT))
            if points:
                metrics.append((metric, points))
        out.append(((chosen, other), metrics))
    return out


def _words_for(metric: str) -> tuple[str, str]:
    """The (better, worse) words a metric reads best with."""
    if "bytes" in metric:
        return "smaller", "larger"
    if metric.endswith("_per_s") or metric.rsplit("_", 1)[-1] in _TIME_UNITS:
        return "faster", "slower"
    if any(f"_{u}_per_" in metric for u in _TIME_UNITS) or "_per_call" in metric:
        return "faster", "slower"
    return "better", "worse"


def _times(factor: float, metric: str) -> str:
    """2.0 → "2× faster", 0.5 → "2× slower" (words by metric)."""
    good, bad = _words_for(metric)
    return f"{factor:.3g}× {good}" if factor >= 1 else f"{1 / factor:.3g}× {bad}"


def _span(factors: list[float], metric: str) -> str:
    """A range of factors on one side of 1, e.g. "2.9×–3.9× slower"."""
    good, bad = _words_for(metric)
    shown = sorted(f if f >= 1 else 1 / f for f in factors)
    word = good if factors[0] >= 1 else bad
    if len(shown) == 1 or f"{shown[0]:.3g}" == f"{shown[-1]:.3g}":
        return f"{shown[0]:.3g}× {word}"
    return f"{shown[0]:.3g}×–{shown[-1]:.3g}× {word}"


def _at(size: int) -> str:
    return f" at {size:,}" if size else ""


def _metric_phrase(metric: str, points: list[tuple[int, float, bool]]) -> str:
    """One metric over the sizes: "decay_ms 10.1× faster at 1,000 to 55.5× at 1,000,000"."""
    if all(overlap for _, _, overlap in points):
        return f"{metric} no clear difference"
    if not any(overlap for _, _, overlap in points):
        ups = [p for p in points if p[1] >= 1]
        if len(ups) in (0, len(points)):  # one direction at every size
            if len(points) == 1:
                size, factor, _ = points[0]
                return f"{metric} {_times(factor, metric)}{_at(size)}"
            first, last = points[0], points[-1]
            if _times(first[1], metric) == _times(last[1], metric):
                return f"{metric} {_times(first[1], metric)} at every size"
            return (
                f"{metric} {_times(first[1], metric)}{_at(first[0])} to "
                f"{_times(last[1], metric).split(' ')[0]}{_at(last[0])}"
            )
    each = [
        ("no clear difference" if overlap else _times(factor, metric)) + _at(size)
        for size, factor, overlap in points
    ]
    return f"{metric} {', '.join(each)}"


def _targets(root: Path) -> list[str]:
    """The project's targets, each checked against the tables (lifelab.studies.targets)."""
    from lifelab.studies.targets import check_targets, load_tables

    table = check_targets(load_tables(root))
    lines = [
        "## Targets",
        "",
        "Each target is checked against the tables below (medians; `no data` until the "
        "experiment that measures it has run on this machine).",
        "",
        _md_row(["target", "measured", "target", "verdict", "measured by"]),
        _md_row(["---"] * 5),
    ]
    for r in table.iter_rows(named=True):
        value = r["measured"]
        shown = "—" if value is None else _number(value)
        goal = f"{r['direction']} {_number(r['threshold'])} {r['unit']}"
        lines.append(_md_row([r["target"], shown, goal, f"**{r['verdict']}**", r["measured_by"]]))
    return [*lines, ""]


def _aa_check(root: Path) -> list[str]:
    """The newest A/A run and planted change (lifelab.studies.aa), each verdict with its measure;
    nothing when no A/A run is recorded under ``root/aa``."""
    from lifelab.studies import aa

    pair = aa.load_pair(root / aa.SUITE)
    if pair is None:
        return []
    lines = [
        "## A/A check",
        "",
        f"The same code measured twice, the trials of the two arms interleaved (run `{pair.pair}`, "
        "`lifelab experiment run experiments/aa_check.toml`), through the gate every change "
        "goes through (`lifelab compare`). The honest verdict is *no significant change*; "
        "where both arms have instruction counts they decide, the wall clock is shown beside.",
        "",
    ]
    lines += [f"- {line}" for line in aa.sentences(aa.verdicts(pair))]
    planted = aa.load_pair(root / aa.SUITE / "planted")
    if planted is not None:
        change = planted.b["events_per_tick"].median() / planted.a["events_per_tick"].median()
        lines += [
            "",
            f"A planted change (run `{planted.pair}`): arm B lives {change - 1:.1%} more events "
            "per tick (less extra work per tick than that: much of a tick's cost does not grow "
            "with its events); the gate should call it on the instruction count.",
            "",
        ]
        lines += [
            f"- {line}" for line in aa.sentences(aa.verdicts(planted, by=("engine", "batch_size")))
        ]
    return [*lines, ""]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _sources(df: pl.DataFrame) -> list[str]:
    """The provenance table: one row per (results file, sweep)."""

    keys = [c for c in (_SOURCE, "suite", "sweep_id") if c in df.columns]
    lines = [
        "## Sources",
        "",
        "| table | suite | sweep | started (UTC) | trials ok / failed | commit | CPU | Python |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, rows in _partition(df, keys):
        named = dict(zip(keys, key, strict=True))
        ok = rows.filter(_is_ok()).height
        cells = [
            f"`{named[_SOURCE]}`" if _SOURCE in named else "—",
            str(named["suite"]),
            f"`{named['sweep_id']}`",
            _started(rows),
            f"{ok} / {rows.height - ok}",
            _commit(rows),
            _first(rows, "cpu_model"),
            f"{_first(rows, 'implementation')} {_first(rows, 'python_version')}".strip(),
        ]
        lines.append(_md_row(cells))
    return [*lines, ""]


def _suite_section(suite: str, df: pl.DataFrame, out_dir: Path, figures: list[Path]) -> list[str]:
    env = [c for c in ENV_GROUP if c in df.columns]
    groups = _partition(df, env)
    # Newest first: sweep ids start with their UTC timestamp.
    groups.sort(key=lambda item: str(item[1]["sweep_id"].max() or ""), reverse=True)
    lines = [f"## {suite}", ""]
    for key, rows in groups:
        stem = _slug(suite)
        if len(groups) > 1:
            stem += "-" + hashlib.blake2b(repr(key).encode(), digest_size=4).hexdigest()
            lines += [
                f"### {_commit(rows)} · {_first(rows, 'cpu_model')} · "
                f"{_first(rows, 'implementation')} {_first(rows, 'python_version')}",
                "",
            ]
        lines += _group_body(suite, rows, out_dir, stem, figures)
    return lines


def _group_body(
    suite: str, df: pl.DataFrame, out_dir: Path, stem: str, figures: list[Path]
) -> list[str]:

    from lifelab.lab import plots

    ok, failed = df.filter(_is_ok()), df.filter(~_is_ok())
    sweeps = ", ".join(f"`{s}`" for s in sorted(df["sweep_id"].drop_nulls().unique().to_list()))
    lines = [f"Sweeps {sweeps}: {ok.height} trials ok, {failed.height} failed."]
    if failed.height:
        column = failed["error"].to_list() if "error" in failed.columns else [None]
        errors = sorted({_first_line(e) for e in column})
        lines += ["", "Failed trials (left out below):", ""]
        lines += [f"- {e}" for e in errors[:5]]
        if len(errors) > 5:
            lines.append(f"- … and {len(errors) - 5} other errors")
    if ok.height == 0:
        return [*lines, ""]
    lines += _load_lines(ok)

    varying = [c for c in plots.SWEEP_PARAMS[1:] if c in ok.columns and ok[c].n_unique() > 1]
    fixed = [
        f"{c} {plots.format_param(ok[c][0])}"
        for c in plots.SWEEP_PARAMS[1:]
        if c in ok.columns and c not in varying and c != "config_json"
    ]
    cells = plots.partition(ok, varying)
    repeats = sorted({part.height for _, part in cells})
    spread = str(repeats[0]) if len(repeats) == 1 else f"{repeats[0]}–{repeats[-1]}"
    fixed_text = f"Fixed: {', '.join(fixed)}. " if fixed else ""
    lines += [
        "",
        f"{fixed_text}{len(cells)} cells × {spread} repeats (n: ok trials); each number is the "
        "median over the repeats with its 95 % bootstrap confidence interval, skipping values a "
        "trial did not record.",
        "",
    ]
    lines += _summary_table(ok, varying, cells)
    for kind, title, make in _figures_for(ok, varying):
        path = out_dir / f"{stem}-{kind}.png"
        fig = make(ok)
        fig.savefig(path, dpi=DPI)
        figures.append(path)
        lines += [f"![{suite}: {title}]({path.name})", ""]
    return lines


def _load_lines(ok: pl.DataFrame) -> list[str]:
    """How many ok trials ran on a loaded machine; nothing when none has load readings."""
    from lifelab.lab.load import LOADED, LOADED_RULE, with_loaded

    flags = with_loaded(ok)[LOADED].drop_nulls()
    if flags.len() == 0:
        return []
    loaded = int(flags.sum())
    line = f"{loaded} of {ok.height} trials ran on a loaded machine ({LOADED_RULE})"
    if flags.len() < ok.height:
        line += f"; {ok.height - flags.len()} have no load readings"
    if loaded:
        line += "; they are kept below and counted in the n column"
    return ["", line + "."]


def _summary_table(ok: pl.DataFrame, varying: list[str], cells: list[Any]) -> list[str]:
    from lifelab.lab import plots
    from lifelab.lab.load import LOADED, with_loaded
    from lifelab.lab.stats import median_ci

    metrics = [(c, h) for c, h in KEY_METRICS if c in ok.columns and ok[c].drop_nulls().len() > 0]
    head = [*(varying or ["cell"]), "n", *(h for _, h in metrics)]
    lines = [_md_row(head), _md_row(["---"] * len(head))]
    for values, part in cells:
        row = [plots.format_param(v) for v in values] or ["all trials"]
        loaded = int(with_loaded(part)[LOADED].sum())  # nulls (no readings) count as 0
        row.append(f"{part.height} ({loaded} loaded)" if loaded else str(part.height))
        for column, _ in metrics:
            row.append(_estimate(*median_ci(part[column].to_numpy())))
        lines.append(_md_row(row))
    return [*lines, ""]


def _figures_for(ok: pl.DataFrame, varying: list[str]) -> list[tuple[str, str, Any]]:
    """(file kind, caption, ok rows → Figure) for each figure the data can support."""
    from lifelab.lab import plots

    def has(*columns: str) -> bool:
        return all(c in ok.columns and ok[c].drop_nulls().len() > 0 for c in columns)

    gc_by = "gc_mode" if "gc_mode" in ok.columns else None
    out: list[tuple[str, str, Any]] = []
    if "batch_size" in varying and has("events_per_s"):
        out.append(
            (
                "throughput",
                "throughput vs batch size",
                lambda d: plots.throughput_vs_batch(d, by=gc_by),
            )
        )
    x = next(
        (c for c in ("batch_size", "memory_capacity", "events_per_tick") if c in varying), None
    )
    if x is not None and has("tick_p50_us", "tick_p99_us"):
        out.append(
            (
                "latency",
                f"tick latency vs {x}",
                lambda d: plots.latency_percentiles(d, by=gc_by, x=x),
            )
        )
    if "memory_capacity" in varying and has("peak_rss_mb"):
        out.append(("memory", "memory vs capacity", lambda d: plots.memory_growth(d)))
    stages = [c for c in ok.columns if c.startswith("stage_") and c.endswith("_share")]
    if stages and any(has(c) for c in stages):
        out.append(("stages", "stage shares per cell", lambda d: plots.stage_shares(d)))
    if has(*plots.DECILE_COLUMNS):
        out.append(("deciles", "tick rate by decile", lambda d: plots.rate_by_decile(d)))
    return out


# -- small helpers ---------------------------------------------------------------------------------


def _partition(df: pl.DataFrame, keys: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """:func:`lifelab.lab.plots.partition`, importing plots (and matplotlib) only when called."""
    from lifelab.lab import plots

    return plots.partition(df, keys)


def _is_ok() -> pl.Expr:
    """Status is "ok"; a null status counts as not ok (rather than vanishing from both sides)."""
    import polars as pl

    return pl.col("status").eq_missing("ok")


def _first(rows: pl.DataFrame, column: str) -> str:
    if column not in rows.columns:
        return ""
    values = rows[column].drop_nulls()
    return str(values[0]) if values.len() else ""


def _commit(rows: pl.DataFrame) -> str:
    commit = _first(rows, "git_commit")[:10] or "unknown commit"
    dirty = "git_dirty" in rows.columns and bool(rows["git_dirty"].drop_nulls().any())
    return f"`{commit}`{' (dirty)' if dirty else ''}"


def _started(rows: pl.DataFrame) -> str:
    if "started_at" not in rows.columns or rows["started_at"].drop_nulls().len() == 0:
        return "—"
    return f"{rows['started_at'].min():%Y-%m-%d %H:%M}"


def _first_line(error: Any) -> str:
    """The first line of an error (the runner's summary; the stderr tail follows it), shortened."""
    text = str(error or "").strip()
    return text.splitlines()[0][:160] if text else "no error recorded"


def _estimate(median: float, lo: float, hi: float) -> str:
    """Median and interval as "m (low–high)", with the decimals that give the median 3 digits."""
    if not math.isfinite(median):
        return "—"
    digits = 0 if median == 0 else 2 - math.floor(math.log10(abs(median)))
    d = min(max(digits, 0), 6)
    return f"{median:,.{d}f} ({lo:,.{d}f}–{hi:,.{d}f})"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "suite"


def _write_text(path: Path, lines: list[str]) -> None:
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.write_text(text, encoding="utf-8")
