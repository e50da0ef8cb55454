"""The snapshot cost and format comparisons run on a real capture; nothing here judges speed."""

from __future__ import annotations

import numpy as np

from lifelab.studies.io_bench import _formats, _wide_ints_as_str, filled_life, snapshot_formats


def test_every_format_round_trips_the_columns_of_a_real_capture():
    life = filled_life(300)
    try:
        cap = life.capture()
    finally:
        life.close()
    for name, (encode, decode) in _formats().items():
        back = decode(encode(cap))
        columns = back.columns if hasattr(back, "columns") else back.get("columns", back)
        if name == "msgspec msgpack":  # raw column bytes
            columns = {k: np.frombuffer(v, cap.columns[k].dtype) for k, v in columns.items()}
        for key, col in cap.columns.items():
            got = np.asarray(columns[key], dtype=col.dtype)
            np.testing.assert_array_equal(got, col, err_msg=f"{name} {key}")


def test_snapshot_formats_lists_every_candidate():
    table = snapshot_formats(300, repeats=1)
    assert table["format"].to_list() == [
        "lls (lifelab)",
        "json",
        "npz + json header",
        "orjson",
        "msgspec msgpack",
    ]
    assert (table["bytes"] > 0).all() and (table["encode_ms"] > 0).all()


def test_wide_ints_become_strings_and_nothing_else_changes():
    data = {"a": [2**64, -(2**63), True, 1.5], "b": {"c": 2**63}}
    want = {"a": [str(2**64), -(2**63), True, 1.5], "b": {"c": str(2**63)}}
    assert _wide_ints_as_str(data) == want
