"""One way to show a table in a notebook: rounded numbers, units in the headers, every row.

:func:`show_table` turns a polars DataFrame into a :class:`Table` that JupyterLab renders as
HTML (``_repr_html_``) and papermill, nbval or a terminal as aligned text (``repr``). Nothing
global changes: no ``pl.Config`` setting is left behind (a ``pl.Config.set_…`` call as a cell's
last line is what printed a stray ``polars.config.Config`` before), and the table is whole up
to ``max_rows`` rows, never cut in the middle with "…".

- Numbers: floats to 3 significant digits (``31584.84`` → ``31,585``, ``0.700081`` → ``0.700``,
  ``2.4e-05`` stays in exponent form); integers with thousands separators, except identifiers
  such as ``line`` or ``repeat``.
- Headers: the unit from the column name's suffix (the results schema keeps units in names):
  ``events_per_s`` → "events/s", ``tick_p99_us`` → "tick p99 (µs)", ``peak_rss_mb`` →
  "peak rss (MB)", ``cpu_total_percent`` → "cpu total (%)".
- Verdicts: in the ``verdict``, ``change`` and ``status`` columns, a significant worsening
  ("slower", "worse", "fail") is bold red, an improvement ("faster", "better", "pass") bold
  green, and "too few trials" / "no data" grey; in text, the significant ones are in capitals.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

__all__ = ["Table", "format_number", "header", "show_table"]

MAX_ROWS = 50
# Integer columns that are identifiers or positions, not quantities: no thousands separator.
_PLAIN_INTEGERS = frozenset({"line", "lineno", "repeat", "order", "seed", "year", "pid"})
_HIGHLIGHT = ("verdict", "change", "status")
# (emphasis, leading words): the first match decides; checked on the lower-cased text.
_EMPHASIS = (
    ("bad", ("slower", "worse", "fail", "regression")),
    ("good", ("faster", "better", "pass")),
    ("muted", ("too few", "no data", "no significant", "none", "no baseline")),
)
_CSS = {
    "bad": "color:#c0392b;font-weight:bold",
    "good": "color:#1e8449;font-weight:bold",
    "muted": "color:#888;font-style:italic",
}
# Unit suffixes of column names, longest first where one ends another.
_UNIT_SUFFIXES = (
    ("_percent", "%"),
    ("_pct", "%"),
    ("_ns", "ns"),
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_kb", "KB"),
    ("_mb", "MB"),
    ("_gb", "GB"),
)
_UNIT_PER = re.compile(r"^(?P<base>.+)_(?P<unit>ns|us|ms|s|kb|mb|gb|b)_per_(?P<per>[a-z0-9_]+)$")
_UNIT_NAMES = {suffix[1:]: unit for suffix, unit in _UNIT_SUFFIXES[2:]} | {"b": "B"}


def header(column: str) -> str:
    """A readable header with the unit, from the column's name (units live in the names).

    ``events_per_s`` → "events/s", ``tick_p99_us`` → "tick p99 (µs)", ``append_us_per_entry`` →
    "append (µs/entry)", ``bytes_per_entry`` → "bytes/entry"; a name without a unit suffix only
    has its underscores turned into spaces.
    """
    if column.endswith("_per_s"):
        return _words(column.removesuffix("_per_s")) + "/s"
    match = _UNIT_PER.match(column)
    if match:
        unit = f"{_UNIT_NAMES[match['unit']]}/{_words(match['per'])}"
        return f"{_words(match['base'])} ({unit})"
    for suffix, unit in _UNIT_SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return f"{_words(column.removesuffix(suffix))} ({unit})"
    return _words(column)


def format_number(value: Any, *, digits: int = 3, thousands: bool = True) -> str:
    """``value`` rounded for reading: floats to ``digits`` significant digits, integers whole.

    Floats of 1000 and more lose their decimals and get thousands separators (``31,585``);
    smaller ones keep ``digits`` significant digits (``182``, ``18.4``, ``0.700``); below 0.001
    they use exponent form. None and NaN are "—", infinities "∞" / "-∞".

    This is for measured quantities. A parameter value that names a cell (a legend entry, a tick
    label) is written exactly as it was set by :func:`lifelab.lab.plots.format_param`
    (``capacity=100000``, ``0.5``), not rounded or grouped.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, int):
        return f"{value:,}" if thousands else str(value)
    x = float(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if abs(round(x)) >= 1000:
        return f"{x:,.0f}" if thousands else f"{x:.0f}"
    if magnitude < -3:
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - magnitude, 0)
    text = f"{x:.{decimals}f}"
    # Rounding can add a digit (9.996 → "10.00"): redo with one decimal fewer.
    if decimals and len(text.lstrip("-").replace(".", "").lstrip("0")) > digits:
        text = f"{x:.{decimals - 1}f}"
    return text


@dataclass(frozen=True, eq=False)
class Table:
    """A formatted table: HTML in JupyterLab, aligned text under papermill, nbval or print.

    ``frame`` is the DataFrame that was shown (after ``columns`` were selected), for further work.
    """

    frame: pl.DataFrame
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    emphasis: tuple[tuple[str | None, ...], ...]
    hidden: int = 0
    caption: str | None = None

    def __repr__(self) -> str:
        return self.to_text()

    def to_text(self) -> str:
        """Aligned plain text: numbers right-aligned, significant verdicts in capitals."""
        cells = [
            [c.upper() if e in ("bad", "good") else c for c, e in zip(row, marks, strict=True)]
            for row, marks in zip(self.rows, self.emphasis, strict=True)
        ]
        lines = [list(self.headers), *cells]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.headers))]

        def justify(line: Sequence[str]) -> str:
            parts = zip(line, widths, self.numeric, strict=True)
            return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in parts).rstrip()

        out = [self.caption] if self.caption else []
        out += [justify(self.headers), justify(["-" * w for w in widths])]
        out += [justify(line) for line in cells]
        if self.hidden:
            out.append(self._more())
        if not self.rows:
            out.append("(no rows)")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        def th(text: str, numeric: bool) -> str:
            align = "right" if numeric else "left"
            return f'<th style="text-align:{align};white-space:nowrap">{html.escape(text)}</th>'

        def td(text: str, numeric: bool, mark: str | None) -> str:
            style = (
                "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"
                if numeric
                else "text-align:left;max-width:32em;overflow-wrap:anywhere"
            )
            if mark:
                style += ";" + _CSS[mark]
            return f'<td style="{style}">{html.escape(text)}</td>'

        parts = ['<div style="overflow-x:auto">', '<table style="border-collapse:collapse">']
        if self.caption:
            parts.append(
                f'<caption style="text-align:left;font-weight:bold">'
                f"{html.escape(self.caption)}</caption>"
            )
        heads = "".join(th(h, n) for h, n in zip(self.headers, self.numeric, strict=True))
        parts.append(f"<thead><tr>{heads}</tr></thead><tbody>")
        for row, marks in zip(self.rows, self.emphasis, strict=True):
            cells = zip(row, self.numeric, marks, strict=True)
            parts.append("<tr>" + "".join(td(c, n, m) for c, n, m in cells) + "</tr>")
        parts.append("</tbody></table>")
        if self.hidden:
            parts.append(f"<p><i>{html.escape(self._more())}</i></p>")
        if not self.rows:
            parts.append("<p><i>(no rows)</i></p>")
        parts.append("</div>")
        return "\n".join(parts)

    def _more(self) -> str:
        shown = len(self.rows)
        return f"… {self.hidden} more rows ({shown} of {shown + self.hidden} shown; max_rows=None)"


def show_table(
    df: pl.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    rename: Mapping[str, str] | None = None,
    digits: int = 3,
    max_rows: int | None = MAX_ROWS,
    max_chars: int | None = 60,
    units: bool = True,
    highlight: Sequence[str] = _HIGHLIGHT,
    caption: str | None = None,
) -> Table:
    """``df`` as a :class:`Table` for a notebook: rounded numbers, units in headers, every row.

    Args:
        df: any polars DataFrame (a results, compare, profile or ablation table…).
        columns: the columns to show, in order (default: all).
        rename: header text for some columns, instead of the one :func:`header` derives
            (names that are not shown are ignored, so one mapping can serve several tables).
        digits: significant digits of floats below 1000.
        max_rows: rows shown before the table says how many more there are (None: all).
        max_chars: longer text is shortened with "…" (paths keep their end; None: never).
        units: derive readable headers with units from the names (False: the names as they are).
        highlight: columns whose verdict words are emphasised (see the module docstring).
        caption: a title above the table.

    Raises:
        TypeError: ``df`` is not a polars DataFrame.
        ValueError: a name in ``columns`` is not a column.
    """
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"show_table expects a polars DataFrame, got {type(df).__name__}")
    rename = dict(rename or {})
    missing = [c for c in columns or () if c not in df.columns]
    if missing:
        raise ValueError(f"show_table: no column(s) {missing}; the table has {df.columns}")
    frame = df.select(columns) if columns is not None else df
    shown = frame if max_rows is None else frame.head(max_rows)
    headers = tuple(rename.get(c, header(c) if units else c) for c in frame.columns)
    numeric = tuple(dtype.is_numeric() for dtype in frame.dtypes)
    formatters = [
        _formatter(frame[name], digits=digits, max_chars=max_chars) for name in frame.columns
    ]
    marked = [name in highlight for name in frame.columns]
    rows, emphasis = [], []
    for raw in shown.iter_rows():
        rows.append(tuple(f(v) for f, v in zip(formatters, raw, strict=True)))
        emphasis.append(
            tuple(_emphasis(v) if m else None for m, v in zip(marked, raw, strict=True))
        )
    return Table(
        frame=frame,
        headers=headers,
        rows=tuple(rows),
        numeric=numeric,
        emphasis=tuple(emphasis),
        hidden=frame.height - shown.height,
        caption=caption,
    )


# -- internals -------------------------------------------------------------------------------------


def _words(name: str) -> str:
    return name.replace("_per_", "/").replace("_", " ").strip()


def _formatter(column: pl.Series, *, digits: int, max_chars: int | None) -> Any:
    """A function value → cell text for one column."""
    dtype = column.dtype
    if dtype.is_float() and _whole(column):  # e.g. events_per_tick 64.0: print it as 64
        dtype = pl.Int64
    if dtype.is_integer():
        thousands = column.name not in _PLAIN_INTEGERS
        return lambda v: format_number(
            None if v is None or not math.isfinite(v) else int(v), thousands=thousands
        )
    if dtype.is_float() or dtype.is_decimal():
        return lambda v: format_number(None if v is None else float(v), digits=digits)
    if dtype == pl.Boolean:
        return lambda v: "—" if v is None else ("✓" if v else "")
    return lambda v: _text(v, max_chars)


def _whole(column: pl.Series) -> bool:
    """Whether every finite value of a float column is a whole number (and there is one)."""
    values = column.drop_nulls()
    values = values.filter(values.is_finite())
    return values.len() > 0 and bool((values == values.round(0)).all())


def _text(value: Any, max_chars: int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        text = f"{value:%Y-%m-%d %H:%M:%S}"
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value).replace("\n", " ").strip()
    if max_chars is None or len(text) <= max_chars:
        return text
    if "/" in text and " " not in text:  # a path: its end says what it is
        return "…" + text[-(max_chars - 1) :]
    return text[: max_chars - 1] + "…"


def _emphasis(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    for mark, words in _EMPHASIS:
        if text.startswith(words):
            return mark
    return None
