"""Decision, action, feedback, learning, adaptation and planning (DESIGN.md §1.4, §1.6).

One decision per event. A batch is appraised against the self-state at the start of the tick and
its impacts are summed and applied once (so a batch of one is exactly the per-event rule). The
rule is stated to the last bit, so that every implementation gives the same floats:

- per kept event, ``m = (|I| · sig) · c`` and the impacts ``base · m``, where the energy base of
  ``recovery`` is first scaled, ``base_e · efficiency`` (so a per-tick scaled table serves the
  numpy path), summed in event order starting from 0.0;
- the energy cost is ``n_dampen · (0.01·(1 − c_d)) + n_absorb · (0.005·(1 − c_a))`` (the second
  term only when ``c_a < 0.8``).

The scalar path (:func:`respond`), the numpy path (:func:`respond_batch`, sums row after row
by ``np.add.reduce`` over axis 0) and the compiled kernel (``life/kernel.py``) implement it;
tests hold all three bit-identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelab.life.events import RECOVERY
from lifelab.store.snapshot import check_int, check_number, invalid_field

__all__ = [
    "ABSORB",
    "ACTION_NAMES",
    "AMPLIFY",
    "AMPLIFY_GAIN",
    "DAMPEN",
    "ECHO_BASE_WAIT",
    "FEEDBACK_EPSILON",
    "IGNORE",
    "FeedbackBook",
    "action_costs",
    "adapt",
    "choose_action",
    "learn",
    "potential_sequences",
    "respond",
    "respond_batch",
]

IGNORE, DAMPEN, ABSORB, AMPLIFY = 0, 1, 2, 3
ECHO_BASE_WAIT = 50  # ticks without a memory echo after which its probability doubles
FEEDBACK_EPSILON = 0.001  # a due action becomes a feedback entry if any vital moved more
ACTION_NAMES = ("ignore", "dampen", "absorb", "amplify")
AMPLIFY_GAIN = 1.5
DAMPEN_COST = 0.01
ABSORB_COST = 0.005
ABSORB_COST_BELOW = 0.8

Kept = list[tuple[int, int, float]]


def choose_action(significance: float, threshold: float, stability: float, intensity: float) -> int:
    """The decision rule: ignore below threshold, else dampen / amplify / absorb by stability."""
    if significance < threshold:
        return IGNORE
    if stability > 0.8:
        return DAMPEN
    if stability < 0.3 and intensity > 0.0:
        return AMPLIFY
    return ABSORB


def respond(
    types: Sequence[int],
    intensities: Sequence[float],
    multipliers: Sequence[float],
    thresholds: Sequence[float],
    base: tuple[Sequence[float], Sequence[float], Sequence[float]],
    ctx: float,
    stability: float,
    coef: dict[str, float],
    efficiency: float,
    kept: Kept,
) -> tuple[float, float, float, float]:
    """Appraise, decide and sum impacts for a small batch (the scalar path).

    Appends ``(type, action, significance)`` of every non-ignored event to ``kept`` and returns
    ``(d_energy, d_stability, d_integrity, energy_cost)``.
    """
    # NOTE: appraisal, decision and impact fused into one loop for speed (the per-call overhead
    # of three stage functions is most of the cost at one event per tick); respond_batch is the
    # staged numpy twin and tests hold the two equal.
    base_e, base_s, base_i = base
    coef_d = coef["dampen"]
    coef_a = coef["absorb"]
    d_e = d_s = d_i = 0.0
    n_dampen = n_absorb = 0
    for t, intensity in zip(types, intensities, strict=False):  # equal by construction
        a = intensity if intensity >= 0.0 else -intensity
        sig = a * multipliers[t] * ctx
        if sig > 1.0:
            sig = 1.0
        elif sig < 0.0:
            sig = 0.0
        if sig < thresholds[t]:
            continue
        if stability > 0.8:
            action = DAMPEN
            c = coef_d
            n_dampen += 1
        elif stability < 0.3 and intensity > 0.0:
            action = AMPLIFY
            c = AMPLIFY_GAIN
        else:
            action = ABSORB
            c = coef_a
            n_absorb += 1
        m = a * sig * c
        d_e += (base_e[t] * efficiency if t == RECOVERY else base_e[t]) * m
        d_s += base_s[t] * m
        d_i += base_i[t] * m
        kept.append((t, action, sig))
    # NOTE: action_costs inlined for speed (a call is ~1.5 % of a one-event tick); same order.
    cost = n_dampen * (DAMPEN_COST * (1.0 - coef_d))
    if coef_a < ABSORB_COST_BELOW:
        cost += n_absorb * (ABSORB_COST * (1.0 - coef_a))
    return d_e, d_s, d_i, cost


def action_costs(n_dampen: int, n_absorb: int, coef_d: float, coef_a: float) -> float:
    """The energy a batch's actions cost (the module docstring's rule, in its exact order)."""
    cost = n_dampen * (DAMPEN_COST * (1.0 - coef_d))
    if coef_a < ABSORB_COST_BELOW:
        cost += n_absorb * (ABSORB_COST * (1.0 - coef_a))
    return cost


def respond_batch(
    types: np.ndarray,
    intensities: np.ndarray,
    multipliers: np.ndarray,
    thresholds: np.ndarray,
    base: np.ndarray,
    ctx: float,
    stability: float,
    coef: dict[str, float],
    efficiency: float,
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """The numpy path of :func:`respond` for long batches.

    Returns ``(delta[E, S, I], energy_cost, kept_types, kept_actions, kept_significance)``.
    """
    absolute = np.abs(intensities)
    sig = absolute * multipliers[types]
    sig *= ctx
    np.clip(sig, 0.0, 1.0, out=sig)
    kept = np.flatnonzero(sig >= thresholds[types])
    k_types = types[kept]
    k_sigs = sig[kept]
    n = len(kept)
    coef_d = coef["dampen"]
    coef_a = coef["absorb"]
    # Every event sees the same start-of-tick stability, so at most two actions occur per batch.
    n_dampen = n_absorb = 0
    if stability > 0.8:
        k_actions = np.full(n, DAMPEN, np.int8)
        gain: np.ndarray | float = coef_d
        n_dampen = n
    else:
        if stability < 0.3:
            positive = intensities[kept] > 0.0
            k_actions = np.where(positive, np.int8(AMPLIFY), np.int8(ABSORB))
            gain = np.where(positive, AMPLIFY_GAIN, coef_a)
            n_absorb = n - int(np.count_nonzero(positive))
        else:
            k_actions = np.full(n, ABSORB, np.int8)
            gain = coef_a
            n_absorb = n
    mult = absolute[kept] * k_sigs
    mult *= gain
    # Impacts per event, then sums in event order: a matrix product would sum in BLAS's order
    # and differ from the scalar path in the last bits. A reduction over axis 0 of a C-ordered
    # array adds whole rows one after another (numpy pairs up terms only along the contiguous
    # axis), which is the scalar path's order; the differential tests hold it so. (It starts
    # from the first row, not 0.0: that differs only in the sign of a zero sum, which adding it
    # to a vital cannot show.)
    if efficiency != 1.0:
        base = base.copy()  # (n_types, 3): cheaper than scaling the per-event rows
        base[RECOVERY, 0] *= efficiency
    delta = np.add.reduce(base[k_types] * mult[:, None], axis=0)
    cost = action_costs(n_dampen, n_absorb, coef_d, coef_a)
    return delta, cost, k_types, k_actions, k_sigs


class FeedbackBook:
    """Pending actions whose outcome becomes a feedback memory when due (3–10 ticks later).

    A record is ``(E0, S0, I0, types, actions, significances)``: the vitals right after the action,
    and either one event (ints and a float) or several (arrays) acted on in the same tick.
    """

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: dict[int, list[tuple[Any, ...]]] = {}

    def add(self, due: int, record: tuple[Any, ...]) -> None:
        bucket = self.pending.get(due)
        if bucket is None:
            self.pending[due] = [record]
        else:
            bucket.append(record)

    def pop_due(self, tick: int) -> list[tuple[Any, ...]] | None:
        return self.pending.pop(tick, None)

    def __len__(self) -> int:
        total = 0
        for records in self.pending.values():
            for r in records:
                total += len(r[3]) if isinstance(r[3], np.ndarray) else 1
        return total

    def to_list(self) -> list[list[Any]]:
        """JSON-ready, one row per pending event, by due tick then insertion order.

        A row is ``[due, E0, S0, I0, type, action, significance]`` however the events were
        grouped when registered, so the canonical form (and the digest) does not depend on
        which path or engine registered them. Floats round-trip exactly through JSON.
        """
        out = []
        for due in sorted(self.pending):
            for e0, s0, i0, types, actions, sigs in self.pending[due]:
                if isinstance(types, np.ndarray):
                    for t, a, sig in zip(
                        types.tolist(), actions.tolist(), sigs.tolist(), strict=True
                    ):
                        out.append([due, e0, s0, i0, t, a, sig])
                else:
                    out.append([due, e0, s0, i0, int(types), int(actions), float(sigs)])
        return out

    @classmethod
    def from_snapshot(cls, rows: Any, *, n_types: int) -> FeedbackBook:
        """The book a snapshot's ``feedback`` piece describes (rows as :meth:`to_list` writes
        them, or grouped: lists of types, actions and significances), every row checked first.

        Raises :class:`~lifelab.exceptions.SnapshotError` naming the first impossible field.
        """
        if not isinstance(rows, list):
            raise invalid_field("feedback", rows)
        for row in rows:
            _check_feedback_row(row, n_types)
        book = cls()
        book.load(rows)
        return book

    def load(self, rows: list[list[Any]]) -> None:
        """Replace the pending records with checked rows (see :meth:`from_snapshot`)."""
        self.pending.clear()
        for due, e0, s0, i0, types, actions, sigs in rows:
            if isinstance(types, list):
                record = (
                    float(e0),
                    float(s0),
                    float(i0),
                    np.asarray(types, np.int64),
                    np.asarray(actions, np.int8),
                    np.asarray(sigs, np.float64),
                )
            else:
                record = (float(e0), float(s0), float(i0), int(types), int(actions), float(sigs))
            self.add(int(due), record)


def _check_feedback_row(row: Any, n_types: int) -> None:
    """``[due, E0, S0, I0, type(s), action(s), significance(s)]`` with known types and actions."""
    if not isinstance(row, list) or len(row) != 7:
        raise invalid_field("feedback[]", row)
    check_int("feedback[].due", row[0])
    for v in row[1:4]:
        check_number("feedback[].vital", v, 0.0, 100.0)
    types, actions, sigs = row[4:7]
    if isinstance(types, list):
        if not (isinstance(actions, list) and isinstance(sigs, list)) or not (
            len(types) == len(actions) == len(sigs)
        ):
            raise invalid_field("feedback[].arrays", row)
    else:
        types, actions, sigs = [types], [actions], [sigs]
    for t, a, sig in zip(types, actions, sigs, strict=True):
        check_int("feedback[].type", t, 0, n_types - 1)
        check_int("feedback[].action", a, 0, len(ACTION_NAMES) - 1)
        check_number("feedback[].significance", sig, 0.0, 1.0)


def learn(state: Any, counts: np.ndarray, sig_sums: np.ndarray, action_counts: np.ndarray) -> None:
    """One learning pass over active *event* entries (DESIGN §1.6).

    Types absent from active memory teach nothing, so their parameters stay as they are.
    """
    total = int(counts.sum())
    if total == 0:
        return
    sens = state.sensitivity
    thr = state.threshold
    for t in np.flatnonzero(counts).tolist():
        share = counts[t] / total
        if share > 0.2:
            sens[t] = min(1.0, sens[t] + 0.01)
        elif share < 0.1:
            sens[t] = max(0.0, sens[t] - 0.01)
        mean = sig_sums[t] / counts[t]
        if mean > 0.5:
            thr[t] = max(0.0, thr[t] - 0.01)
        elif mean < 0.2:
            thr[t] = min(1.0, thr[t] + 0.01)
    coef = state.response_coef
    for name, action in (("dampen", DAMPEN), ("absorb", ABSORB), ("ignore", IGNORE)):
        freq = action_counts[action] / total
        if freq > 0.3:
            coef[name] = min(1.0, coef[name] + 0.01)
        elif freq < 0.1:
            coef[name] = max(0.0, coef[name] - 0.01)


def _toward(current: float, target: float) -> float:
    diff = target - current
    step = min(abs(diff), 0.01)
    return current + step if diff > 0 else current - step


def adapt(state: Any) -> float:
    """Move each behaviour value toward its learned value by at most 0.01; return the total move."""
    moved = 0.0
    for learned, behavior in (
        (state.sensitivity, state.behavior_sensitivity),
        (state.threshold, state.behavior_threshold),
    ):
        for t, target in enumerate(learned):
            new = _toward(behavior[t], target)
            moved += abs(new - behavior[t])
            behavior[t] = new
    bcoef = state.behavior_response_coef
    for name, target in state.response_coef.items():
        new = _toward(bcoef[name], target)
        moved += abs(new - bcoef[name])
        bcoef[name] = new
    state.adaptation_history.append((state.ticks, moved))
    return moved


def potential_sequences(recent: Sequence[int], time_ratio: float) -> Counter[int]:
    """What may come next: types that followed the latest k-type pattern in recent events.

    k is 2, or 3–4 when subjective time runs accelerated (r ≥ 1.1; 4 from r ≥ 1.5).
    """
    k = (4 if time_ratio >= 1.5 else 3) if time_ratio >= 1.1 else 2
    seq = list(recent)
    if len(seq) <= k:
        return Counter()
    pattern = seq[-k:]
    nexts: Counter[int] = Counter()
    for i in range(len(seq) - k):
        if seq[i : i + k] == pattern:
            nexts[seq[i + k]] += 1
    return nexts
