"""Persistence costs: snapshot capture/encode/write by size, and snapshot formats compared.

The tick thread only pays ``capture`` (copying the columns); encoding, writing and fsync happen
in the snapshot thread, but they still cost CPU on a 2-core machine, so both are measured. The
format comparison encodes the same capture as lifelab's ``.lls`` (JSON header + raw column
bytes + checksum), as plain JSON (columns as lists), and as numpy ``.npz`` with a JSON header —
plus orjson and msgpack (msgspec). Pickle is never a candidate (unsafe to load).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl

__all__ = ["filled_life", "snapshot_costs", "snapshot_formats"]


def filled_life(entries: int, seed: int = 0, **config: Any) -> Any:
    """A Life whose active memory holds ``entries`` entries (written in batches, no decay).

    ``config`` sets other LifeConfig fields (``engine``, ``decay_every``, ``metrics_every``…);
    the capacity (``entries``) and ``min_weight`` (0: nothing decays out) are fixed.
    """
    from lifelab.config import LifeConfig
    from lifelab.life.loop import Life
    from lifelab.memory.active import KIND_EVENT

    life = Life(LifeConfig(seed=seed, memory_capacity=max(entries, 1), min_weight=0.0, **config))
    life.run(100)
    rng = np.random.default_rng(seed)
    mem = life.memory
    left = entries - len(mem)
    while left > 0:
        k = min(left, 65_536)
        mem.add_batch(
            rng.integers(0, 22, k),
            KIND_EVENT,
            np.full(k, 2, np.int8),
            rng.random(k),
            float(life.state.age),
            float(life.state.subjective_time),
            life.state.ticks,
        )
        left -= k
    return life


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        out = fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6, out


def snapshot_costs(sizes: Sequence[int], *, repeats: int = 5, seed: int = 0) -> pl.DataFrame:
    """capture_ms (tick thread), encode_ms, write_ms (atomic, fsync) and bytes per active size."""
    import polars as pl

    from lifelab.store.snapshot import encode, write_snapshot

    rows = []
    with tempfile.TemporaryDirectory(prefix="lifelab-snap-") as tmp:
        for n in sizes:
            life = filled_life(int(n), seed)
            capture_ms, cap = _median_ms(life.capture, repeats)
            encode_ms, data = _median_ms(lambda cap=cap: encode(cap), repeats)
            write_ms, path = _median_ms(lambda cap=cap: write_snapshot(Path(tmp), cap), repeats)
            rows.append(
                {
                    "entries": int(n),
                    "capture_ms": capture_ms,
                    "encode_ms": encode_ms,
                    "write_ms": write_ms,
                    "bytes": len(data),
                    "bytes_per_entry": len(data) / max(int(n), 1),
                }
            )
            Path(path).unlink(missing_ok=True)
    return pl.DataFrame(rows)


def _formats() -> dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]]:
    from lifelab.store.snapshot import decode, encode

    def json_encode(cap: Any) -> bytes:
        cols = {k: v.tolist() for k, v in cap.columns.items()}
        return json.dumps({"canonical": cap.canonical, "columns": cols}).encode()

    def json_decode(data: bytes) -> Any:
        obj = json.loads(data)
        return {k: np.asarray(v) for k, v in obj["columns"].items()}

    def npz_encode(cap: Any) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf, header=np.frombuffer(json.dumps(cap.canonical).encode(), np.uint8), **cap.columns
        )
        return buf.getvalue()

    def npz_decode(data: bytes) -> Any:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    out = {
        "lls (lifelab)": (encode, decode),
        "json": (json_encode, json_decode),
        "npz + json header": (npz_encode, npz_decode),
    }
    # orjson and msgspec are dependencies (the log writer uses msgspec). Neither encodes ints
    # past 64 bits, and the canonical state holds the generators' 128-bit states: those go as
    # decimal strings (what a real snapshot in these formats would have to do).
    import msgspec
    import orjson

    def orjson_encode(cap: Any) -> bytes:
        return orjson.dumps(
            {"canonical": _wide_ints_as_str(cap.canonical), "columns": cap.columns},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def msgspec_encode(cap: Any) -> bytes:
        cols = {k: v.tobytes() for k, v in cap.columns.items()}
        return msgspec.msgpack.encode(
            {"canonical": _wide_ints_as_str(cap.canonical), "columns": cols}
        )

    out["orjson"] = (orjson_encode, orjson.loads)
    out["msgspec msgpack"] = (msgspec_encode, msgspec.msgpack.decode)
    return out


def _wide_ints_as_str(obj: Any) -> Any:
    """A copy with ints outside the signed 64-bit range written as decimal strings."""
    if isinstance(obj, int) and not isinstance(obj, bool) and not -(2**63) <= obj < 2**63:
        return str(obj)
    if isinstance(obj, dict):
        return {k: _wide_ints_as_str(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_wide_ints_as_str(v) for v in obj]
    return obj


def snapshot_formats(entries: int = 100_000, *, repeats: int = 5, seed: int = 0) -> pl.DataFrame:
    """Encode and decode the same capture in each format; size, encode_ms, decode_ms, write_ms."""
    import polars as pl

    life = filled_life(entries, seed)
    cap = life.capture()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lifelab-fmt-") as tmp:
        for name, (enc, dec) in _formats().items():
            encode_ms, data = _median_ms(lambda enc=enc: enc(cap), repeats)
            decode_ms, _ = _median_ms(lambda dec=dec, data=data: dec(data), repeats)
            path = Path(tmp) / "snap.bin"

            def write(data: bytes = data, path: Path = path) -> None:
                with open(path, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())

            write_ms, _ = _median_ms(write, repeats)
            rows.append(
                {
                    "format": name,
                    "entries": entries,
                    "bytes": len(data),
                    "encode_ms": encode_ms,
                    "decode_ms": decode_ms,
                    "write_ms": write_ms,
                }
            )
    return pl.DataFrame(rows)
