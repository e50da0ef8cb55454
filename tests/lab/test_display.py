"""Tests of lifelab.lab.display: rounded numbers, unit headers, whole tables, verdict emphasis."""

from __future__ import annotations

import polars as pl
import pytest

from lifelab.lab.display import Table, format_number, header, show_table


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("events_per_s", "events/s"),
        ("ingest_rows_per_s", "ingest rows/s"),
        ("tick_p99_us", "tick p99 (µs)"),
        ("gc_pause_ms", "gc pause (ms)"),
        ("append_ns", "append (ns)"),
        ("wall_s", "wall (s)"),
        ("peak_rss_mb", "peak rss (MB)"),
        ("cpu_total_percent", "cpu total (%)"),
        ("load_pct", "load (%)"),
        ("append_us_per_entry", "append (µs/entry)"),
        ("bytes_per_entry", "bytes/entry"),
        ("gc_mode", "gc mode"),
        ("status", "status"),
    ],
)
def test_header_puts_the_unit_of_the_name_suffix(column, expected):
    """Headers carry the unit that the column name's suffix names."""
    assert header(column) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (31584.841484, "31,585"),
        (182.34, "182"),
        (18.44, "18.4"),
        (0.700081, "0.700"),
        (0.0241, "0.0241"),
        (2.41e-05, "2.41e-05"),
        (9.996, "10.0"),
        (999.7, "1,000"),
        (-0.57, "-0.570"),
        (0.0, "0"),
        (12_345, "12,345"),
        (None, "—"),
        (float("nan"), "—"),
        (float("inf"), "∞"),
    ],
)
def test_format_number_rounds_to_three_significant_digits(value, expected):
    """Floats keep 3 significant digits (whole above 1000), integers get separators."""
    assert format_number(value) == expected


def test_show_table_formats_cells_and_headers():
    """Floats are rounded, whole floats print as integers, ids keep no separator."""
    df = pl.DataFrame(
        {
            "line": [1234],
            "events_per_tick": [64.0],
            "events_per_s": [31584.841484],
            "ratio": [0.700081],
            "chosen": [True],
        }
    )
    table = show_table(df)
    assert isinstance(table, Table)
    assert table.headers == ("line", "events/tick", "events/s", "ratio", "chosen")
    assert table.rows == (("1234", "64", "31,585", "0.700", "✓"),)
    text = repr(table)
    assert "31584.84" not in text and "31,585" in text and "events/s" in text


def test_show_table_shows_every_row_up_to_max_rows():
    """50 rows are all shown (no "…"); beyond max_rows the table says how many are left out."""
    df = pl.DataFrame({"i": list(range(50)), "x": [float(i) / 7 for i in range(50)]})
    text = repr(show_table(df))
    assert len(text.splitlines()) == 52 and "…" not in text
    html = show_table(df)._repr_html_()
    assert html.count("<tr>") == 51 and "…" not in html
    big = pl.concat([df, df])
    table = show_table(big)
    assert len(table.rows) == 50 and table.hidden == 50
    assert "50 more rows" in repr(table) and "50 more rows" in table._repr_html_()
    assert len(show_table(big, max_rows=None).rows) == 100


def test_show_table_selects_and_renames_columns():
    """columns picks and orders; rename overrides a header; unknown names are refused."""
    df = pl.DataFrame({"a_ms": [1.0], "b": ["x"], "c": [2]})
    table = show_table(df, ["c", "a_ms"], rename={"c": "count"})
    assert table.headers == ("count", "a (ms)")
    assert table.frame.columns == ["c", "a_ms"]
    with pytest.raises(ValueError, match="nope"):
        show_table(df, ["nope"])
    with pytest.raises(TypeError, match="polars DataFrame"):
        show_table({"a": [1]})


def test_long_text_is_shortened_and_paths_keep_their_end():
    """Text past max_chars is cut with "…"; a path keeps its file name."""
    path = "/very/long/site-packages/lifelab/" + "x" * 80 + "/life/loop.py"
    df = pl.DataFrame({"file": [path], "function": ["f" * 100]})
    (row,) = show_table(df, max_chars=30).rows
    assert row[0].startswith("…") and row[0].endswith("life/loop.py") and len(row[0]) == 30
    assert row[1].endswith("…") and len(row[1]) == 30
    assert show_table(df, max_chars=None).rows[0][0] == path


def test_verdicts_stand_out():
    """Significant verdicts are bold and coloured in HTML and in capitals in text."""
    df = pl.DataFrame(
        {
            "metric": ["ticks_per_s", "tick_p99_us", "events_per_s", "wall_s"],
            "verdict": ["slower", "faster", "too few trials (n = 2 < 5)", "no significant change"],
        }
    )
    table = show_table(df)
    assert [marks[1] for marks in table.emphasis] == ["bad", "good", "muted", "muted"]
    text = repr(table)
    assert "SLOWER" in text and "FASTER" in text and "too few trials (n = 2 < 5)" in text
    html = table._repr_html_()
    assert html.count("font-weight:bold") == 2 and "#c0392b" in html and "#1e8449" in html
    # Only the highlight columns: the same words elsewhere are plain.
    plain = show_table(df.rename({"verdict": "note"}))
    assert all(mark is None for marks in plain.emphasis for mark in marks)


def test_html_is_escaped_and_scrolls_when_wide():
    """Cell text is HTML-escaped, and the table sits in a horizontally scrolling box."""
    html = show_table(pl.DataFrame({"source": ["a < b & c"]}), caption="t <1>")._repr_html_()
    assert "a &lt; b &amp; c" in html and "t &lt;1&gt;" in html
    assert "overflow-x:auto" in html


def test_show_table_changes_no_global_polars_setting():
    """Showing a table leaves polars' display configuration as it was."""
    before = pl.Config.state()
    repr(show_table(pl.DataFrame({"x": [1.5] * 80})))
    assert pl.Config.state() == before


def test_empty_table_says_so():
    """A table without rows renders its headers and says there are no rows."""
    table = show_table(pl.DataFrame(schema={"ratio": pl.Float64}))
    assert "(no rows)" in repr(table) and "(no rows)" in table._repr_html_()
