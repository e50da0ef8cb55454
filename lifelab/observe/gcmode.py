"""Garbage-collector settings for benchmarks and trials: parsed once, applied explicitly.

Nothing here runs at import: callers apply a mode right before the measured part of a run.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

__all__ = ["GC_MODES", "GcWatch", "apply_gc_mode", "parse_gc_mode"]

GC_MODES = ("default", "off", "freeze", "tuned")
TUNED_THRESHOLDS = (50_000, 20, 20)


def parse_gc_mode(text: str) -> str | tuple[int, int, int]:
    """``default|off|freeze|tuned`` or ``T0,T1,T2`` (three non-negative integers)."""
    if text in GC_MODES:
        return text
    parts = text.split(",")
    if len(parts) == 3:
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) == 3 and all(v >= 0 for v in values):
            return values  # type: ignore[return-value]
    raise ValueError(
        f"gc mode must be one of {list(GC_MODES)} or three integers T0,T1,T2, got {text!r}"
    )


def apply_gc_mode(mode: str | tuple[int, int, int]) -> None:
    """Apply a GC mode to this process (call after warm-up, before measuring)."""
    if mode == "default":
        return
    if mode == "off":
        gc.disable()
    elif mode == "freeze":
        gc.collect()
        gc.freeze()  # everything alive after warm-up moves to a generation GC never scans
    elif mode == "tuned":
        gc.set_threshold(*TUNED_THRESHOLDS)
    elif isinstance(mode, tuple):
        gc.set_threshold(*mode)
    else:
        raise ValueError(f"unknown gc mode {mode!r}")


@dataclass
class GcWatch:
    """Counts collections per generation and their pause time through ``gc.callbacks``."""

    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    pause_ns: int = 0
    _start: int = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.pause_ns += time.perf_counter_ns() - self._start
            self.collections[info["generation"]] += 1

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    @property
    def installed(self) -> bool:
        return self._callback in gc.callbacks

    def __enter__(self) -> GcWatch:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    @property
    def pause_ms(self) -> float:
        return self.pause_ns / 1e6
