"""Trial specs and the expansion of a sweep grid into an ordered list of trials.

A sweep is data first (the mesa model): :func:`expand` turns a grid of parameters into a list of
:class:`TrialSpec` values — a Cartesian product, repeats interleaved — and nothing runs until the
list is handed to :mod:`lifelab.lab.sweep`. A spec is a frozen value: it crosses the process
boundary as JSON (:meth:`TrialSpec.to_json`) and names its cell with a stable hash
(:attr:`TrialSpec.cell`), the same in every repeat and every process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lifelab.config import LifeConfig
from lifelab.observe.gcmode import parse_gc_mode

__all__ = ["SPEC_VERSION", "TrialSpec", "expand"]

# Version of the JSON a manager hands to a worker (to_json / from_json).
# History: 1 — first version (lifelab 0.1).
#          2 — the ``engine`` field; a version-1 spec (none) reads as engine="python", the only
#              engine there was.
#          3 — the ``instructions`` field; a version-1 or -2 spec (none) reads as False.
SPEC_VERSION = 3

# Fields that describe the measurement; timeout_s only bounds it and is not part of the cell.
_CELL_FIELDS = (
    "ticks",
    "warmup_ticks",
    "seed",
    "events_per_tick",
    "batch_size",
    "memory_capacity",
    "gc_mode",
    "engine",
    "config",
)
# TrialSpec fields that are also LifeConfig fields: they never go into .config.
_LIFE_FIELDS = ("seed", "events_per_tick", "batch_size", "memory_capacity", "engine")
_MAX_TICKS = 10**10
_MAX_TIMEOUT_S = 7 * 86_400.0

ConfigItems = tuple[tuple[str, Any], ...]


def _auto_warmup(ticks: int) -> int:
    """bench loop's default warm-up: a tenth of the run, within [1 000, 20 000] ticks."""
    return min(20_000, max(1_000, ticks // 10))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialSpec:
    """One benchmark trial: what to build, how long to measure, which GC mode to apply.

    Attributes:
        ticks: Measured ticks (a multiple of 10: the run is timed in ten equal deciles).
        warmup_ticks: Unmeasured ticks before the GC mode is applied; None picks bench loop's
            default (a tenth of ``ticks`` within [1 000, 20 000]) at construction.
        seed: Seed of the organism (the same in every repeat of a cell).
        events_per_tick: Mean events the environment emits per tick.
        batch_size: Most events drained per tick.
        memory_capacity: Active memory capacity.
        gc_mode: ``default``, ``off``, ``freeze``, ``tuned`` or ``T0,T1,T2``.
        engine: ``"compiled"`` (LifeConfig's default) or ``"python"``. The worker refuses to
            measure another engine than this one (numba missing: the trial fails).
        config: Every other LifeConfig override as sorted ``(key, value)`` pairs (a mapping is
            accepted and normalised).
        timeout_s: Seconds the worker process may take before it is killed.
        instructions: Also count the measured ticks' instructions under valgrind (two more
            processes after the timed one: :func:`lifelab.lab.instructions.count_trial`), filling
            the instruction columns of the row. Like ``timeout_s`` it says how to measure, not
            what, so it is not part of the cell: a counted and an uncounted trial of the same
            workload compare. Refused with a run directory (``snapshot_every``/``log_every``),
            whose writer threads would make the count vary with thread scheduling.
    """

    ticks: int = 100_000
    warmup_ticks: int | None = None
    seed: int = 0
    events_per_tick: float = 1.0
    batch_size: int = 64
    memory_capacity: int = 10_000
    gc_mode: str = "default"
    engine: str = "compiled"  # LifeConfig's default (tests/lab/test_spec.py checks they agree)
    config: ConfigItems = ()
    timeout_s: float = 600.0
    instructions: bool = False

    def __post_init__(self) -> None:
        ticks = _int_in("ticks", self.ticks, 10, _MAX_TICKS)
        if ticks % 10:
            raise ValueError(
                f"TrialSpec.ticks must be a multiple of 10 (ten measured deciles), got {ticks}"
            )
        warmup = self.warmup_ticks
        warmup = (
            _auto_warmup(ticks) if warmup is None else _int_in("warmup_ticks", warmup, 0, 10**9)
        )
        object.__setattr__(self, "warmup_ticks", warmup)
        if not isinstance(self.gc_mode, str):
            raise TypeError(
                f"TrialSpec.gc_mode must be a string (default|off|freeze|tuned|T0,T1,T2), "
                f"got {type(self.gc_mode).__name__} {self.gc_mode!r}"
            )
        try:
            mode = parse_gc_mode(self.gc_mode.strip())
        except ValueError as exc:
            raise ValueError(f"TrialSpec.gc_mode: {exc}") from None
        object.__setattr__(
            self, "gc_mode", mode if isinstance(mode, str) else ",".join(map(str, mode))
        )
        timeout = self.timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= _MAX_TIMEOUT_S
        ):
            raise ValueError(
                f"TrialSpec.timeout_s must be a number in (0, {_MAX_TIMEOUT_S:g}], got {timeout!r}"
            )
        object.__setattr__(self, "timeout_s", float(timeout))
        # LifeConfig validates the organism's fields (names, types, ranges) and widens ints to
        # floats; the spec keeps the validated values so that 1 and 1.0 make one cell.
        items = _config_items(self.config)
        cfg = LifeConfig(**{name: getattr(self, name) for name in _LIFE_FIELDS}, **dict(items))
        for name in _LIFE_FIELDS:
            object.__setattr__(self, name, getattr(cfg, name))
        object.__setattr__(self, "config", tuple((k, getattr(cfg, k)) for k, _ in items))
        if not isinstance(self.instructions, bool):
            raise TypeError(
                f"TrialSpec.instructions must be True or False, got {self.instructions!r}"
            )
        overrides = dict(self.config)  # what the worker reads: no override means no run dir
        if self.instructions and (overrides.get("snapshot_every") or overrides.get("log_every")):
            raise ValueError(
                "TrialSpec.instructions counts the loop without a run directory: drop "
                "snapshot_every and log_every, or run this cell without instructions"
            )

    # -- views -----------------------------------------------------------------------------------

    def life_config(self, **changes: Any) -> LifeConfig:
        """The organism's LifeConfig (``changes`` override, e.g. a temporary ``run_dir``)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _LIFE_FIELDS}
        values.update(self.config)
        values.update(changes)
        return LifeConfig(**values)

    @property
    def config_json(self) -> str:
        """The LifeConfig overrides as sorted, compact JSON (``"{}"`` when none)."""
        return json.dumps(dict(self.config), sort_keys=True, separators=(",", ":"))

    def params(self) -> dict[str, Any]:
        """The parameter columns of a results row (schema.PARAM_COLUMNS)."""
        return {
            "ticks": self.ticks,
            "warmup_ticks": self.warmup_ticks,
            "seed": self.seed,
            "events_per_tick": self.events_per_tick,
            "batch_size": self.batch_size,
            "memory_capacity": self.memory_capacity,
            "gc_mode": self.gc_mode,
            "engine": self.engine,
            "config_json": self.config_json,
        }

    @property
    def cell(self) -> str:
        """Stable short hash (12 hex) of the measured parameters; ignores ``timeout_s``.

        blake2b of sorted compact JSON: identical across repeats, processes and machines (no
        reliance on Python's randomised ``hash``). ``engine="python"`` is left out of the hash:
        cells hashed before engines existed were Python-engine trials, and their stored hashes
        must stay those of today's specs.
        """
        params = self.params()
        if params["engine"] == "python":
            del params["engine"]
        text = json.dumps(params, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``config`` as a mapping), with the spec version."""
        out: dict[str, Any] = {"version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            out[f.name] = getattr(self, f.name)
        out["config"] = dict(self.config)
        return out

    def to_json(self) -> str:
        """One line of sorted JSON, what a worker reads on stdin."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        """Inverse of :meth:`to_dict`; reads versions 1 to 3, refuses others and unknown keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a trial spec must be a JSON object, got {type(data).__name__}")
        values = dict(data)
        version = values.pop("version", SPEC_VERSION)
        if version not in (1, 2, SPEC_VERSION):
            raise ValueError(
                f"trial spec version must be 1 to {SPEC_VERSION}, got {version!r} (another "
                "lifelab wrote it: run the sweep and its workers with the same lifelab)"
            )
        # Each version lacks the fields added after it (an old spec carrying one is mislabelled).
        for field, added in (("engine", 2), ("instructions", 3)):
            if version < added and field in values:
                raise ValueError(
                    f"a version-{version} trial spec has no {field!r} field (version {added} has)"
                )
        if version == 1:
            values["engine"] = "python"  # version 1 predates engines: it meant the Python one
        unknown = sorted(set(values) - _SPEC_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown trial spec field(s) {unknown}; known: {sorted(_SPEC_FIELDS)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> TrialSpec:
        """Parse :meth:`to_json` output (ValueError naming the problem when it is not one)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"trial spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)


_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialSpec))
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(LifeConfig)) - {
    *_LIFE_FIELDS,
    "run_dir",
}


def _int_in(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"TrialSpec.{name} must be an integer, got {type(value).__name__} {value!r}"
        )
    if not lo <= value <= hi:
        raise ValueError(f"TrialSpec.{name} must be in [{lo}, {hi}], got {value}")
    return value


def _config_items(config: Any) -> ConfigItems:
    """Normalise ``config`` (mapping or pairs) to sorted pairs of LifeConfig overrides."""
    if isinstance(config, Mapping):
        pairs = list(config.items())
    else:
        try:
            pairs = [(k, v) for k, v in config]
        except (TypeError, ValueError):
            raise TypeError(
                f"TrialSpec.config must be a mapping or (key, value) pairs, got {config!r}"
            ) from None
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"TrialSpec.config has duplicate keys: {sorted(keys)}")
    for key, value in pairs:
        if key in _LIFE_FIELDS:
            raise ValueError(
                f"TrialSpec.config must not set {key!r}: it is a TrialSpec field of its own"
            )
        if key == "run_dir":
            raise ValueError(
                "TrialSpec.config must not set 'run_dir': a trial gets a temporary run directory "
                "when snapshot_every or log_every asks for persistence (a fixed directory would "
                "hold a run already on the second repeat)"
            )
        if key not in _CONFIG_FIELDS:
            raise ValueError(
                f"TrialSpec.config: unknown LifeConfig field {key!r}; "
                f"known: {sorted(_CONFIG_FIELDS)}"
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"TrialSpec.config[{key!r}] must be a JSON scalar (str, number, bool, None), "
                f"got {type(value).__name__} {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TrialSpec.config[{key!r}] must be finite, got {value!r}")
    return tuple(sorted(pairs))


# -- grids -----------------------------------------------------------------------------------------


def expand(
    grid: Mapping[str, Any],
    *,
    repeats: int = 1,
    base: TrialSpec | Mapping[str, Any] | None = None,
) -> list[TrialSpec]:
    """Expand a parameter grid into the ordered list of trials of a sweep.

    Args:
        grid: Parameter name -> value or list of values. Names are TrialSpec fields or LifeConfig
            fields (the latter go into ``config``). A scalar or a string is one value; a list,
            tuple or range is an axis (an empty one is refused, as are duplicate values). Linked
            parameters vary together on one axis: ``{"batch_size+events_per_tick": [(1, 1),
            (64, 64)]}`` makes two cells, not four.
        repeats: How many times each cell runs.
        base: Values for every parameter the grid does not name (a TrialSpec, or a mapping of
            the same names, LifeConfig fields allowed flat or under ``"config"``). A TrialSpec
            base carries its resolved ``warmup_ticks``; with a mapping base that leaves it out,
            the warm-up follows each trial's ``ticks``.

    Returns:
        The Cartesian product (grid keys in the given order, the last varying fastest) repeated
        ``repeats`` times, repeat-major: every cell of repeat 0, then every cell of repeat 1, …
        so that the repeats of a cell are spread over the run (A B A B, not A A B B) and slow
        drift of the machine lands on every cell alike.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of parameter -> values, got {type(grid).__name__}")
    fixed = _base_values(base)
    axes: list[tuple[str, list[Any]]] = []
    for key, value in grid.items():
        if isinstance(key, str) and "+" in key:
            names = key.split("+")
            for name in names:
                _check_key(name, "grid")
            points = _axis(key, value)
            for point in points:
                if not isinstance(point, list | tuple) or len(point) != len(names):
                    raise ValueError(
                        f"grid key {key!r} links {len(names)} parameters: each value must be a "
                        f"tuple of {len(names)}, got {point!r}"
                    )
            axes.append((key, points))
            continue
        _check_key(key, "grid")
        axes.append((key, _axis(key, value)))
    cells: list[TrialSpec] = []
    seen: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(values for _, values in axes)):
        values = dict(fixed)
        config = dict(values.pop("config", {}))
        for (key, _), value in zip(axes, combo, strict=True):
            pairs = zip(key.split("+"), value, strict=True) if "+" in key else ((key, value),)
            for name, item in pairs:
                if name in _SPEC_FIELDS:
                    values[name] = item
                else:
                    config[name] = item
        spec = TrialSpec(**values, config=_config_items(config))
        point = dict(zip((k for k, _ in axes), combo, strict=True))
        if spec.cell in seen:
            raise ValueError(
                f"the grid makes the same cell twice ({seen[spec.cell]} and {point}); "
                "remove the duplicate values"
            )
        seen[spec.cell] = point
        cells.append(spec)
    return [spec for _ in range(repeats) for spec in cells]


def _check_key(key: Any, where: str) -> None:
    if key == "config" or key not in _SPEC_FIELDS | _CONFIG_FIELDS:
        known = sorted((_SPEC_FIELDS - {"config"}) | _CONFIG_FIELDS)
        raise ValueError(f"unknown {where} key {key!r}; known: {known}")


def _axis(key: str, value: Any) -> list[Any]:
    """The values of one grid axis: a scalar or string is one value, a sequence is many."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    if isinstance(value, Mapping | set | frozenset):
        raise ValueError(
            f"grid[{key!r}] must be a value or a list of values, got a {type(value).__name__} "
            "(mappings and sets have no order to sweep in)"
        )
    values = list(value)
    if not values:
        raise ValueError(f"grid[{key!r}] is an empty list: give at least one value")
    return values


def _base_values(base: TrialSpec | Mapping[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments of TrialSpec from a base spec or mapping (flat config keys allowed)."""
    if base is None:
        return {}
    if isinstance(base, TrialSpec):
        out = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        out["config"] = dict(base.config)
        return out
    if not isinstance(base, Mapping):
        raise TypeError(f"base must be a TrialSpec, a mapping or None, got {type(base).__name__}")
    out = {}
    config = dict(_config_items(base.get("config", ())))
    for key, value in base.items():
        if key == "config":
            continue
        _check_key(key, "base")
        if key in _SPEC_FIELDS:
            out[key] = value
        else:
            config[key] = value
    out["config"] = config
    return out
