"""The compiled engine's tick: the whole tick in one numba function (DESIGN.md §4, invariant 9).

This module mirrors the Python engine (``Life._tick`` and the stage modules it calls) stage by
stage, in the same order and with the same floating-point operations in the same order, so both
engines produce the same digest at every tick. It holds no Python objects: the organism's state
is a handful of typed arrays that :mod:`lifelab.life.compiled` packs and unpacks. Only that module
imports this one, lazily, so ``import lifelab`` never imports numba.

Layout of the arrays (slot constants below):
- ``cf``/``ci``: read-only configuration (floats / ints);
- ``sf``/``si``: mutable scalars of the state (floats / ints and counters);
- ``tp``: per-type rows (learned, adapted, tables, multipliers), shape (rows, n_types);
- active memory: the four hot columns and the record array of :class:`ActiveMemory` itself
  (shared, never copied);
- the feedback book, the event queue (a ring), the recent-events ring, the adaptation history,
  the spill outbox and the victim list, as flat arrays with a count in ``si``;
- the random streams: each stream's 4096-value block (the same array the Python
  :class:`BlockStream` holds) and a view of its PCG64 state words, stepped here exactly as
  numpy steps them (numba's own Generator support costs ~14 µs per call to unbox a Generator,
  more than a thousand ticks).

Every speed trick carries a ``NOTE``. Rounding: numba compiles without fastmath, so LLVM neither
reorders nor fuses (FMA) floating-point operations, which is what makes bit-identity possible.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from lifelab.life.behavior import (
    ABSORB,
    ABSORB_COST,
    ABSORB_COST_BELOW,
    ACTION_NAMES,
    AMPLIFY,
    AMPLIFY_GAIN,
    DAMPEN,
    DAMPEN_COST,
    ECHO_BASE_WAIT,
    FEEDBACK_EPSILON,
    IGNORE,
)
from lifelab.life.clock import PACE_COUNT, PACE_INTERVAL, PACE_K, PACE_LAST, PACE_START
from lifelab.life.events import ECHO, RECOVERY
from lifelab.life.rng import BLOCK
from lifelab.life.state import ADAPTATION_HISTORY, CIRCADIAN_PERIOD_S, ENERGY_MAX
from lifelab.memory.active import KIND_EVENT, KIND_FEEDBACK, SECONDS_PER_DAY, ActiveMemory
from lifelab.observe.metrics import (  # where a sampled tick's marks go (one row of marks)
    MARK_FEEDBACK,
    MARK_IO,
    MARK_PERCEIVE,
    MARK_PERIODIC,
    MARK_POLICY,
    MARK_REMEMBER,
    MARK_RESPOND,
    MARK_START,
    MARK_TIME,
)

# Every table and constant comes from the module that defines it for the Python engine.
# NOTE: numba's cache is keyed on this file, not on the modules these constants come from; a
# change to one of them must touch this file (or clear __pycache__) to recompile.

# -- slots --------------------------------------------------------------------------------------
# configuration, floats (dt is an argument: in real time it changes every tick)
C_ECHO_P, C_MIN_WEIGHT, C_DECAY_FACTOR = 0, 1, 2
C_WEAK_E, C_WEAK_S, C_WEAK_I, C_PEN_E, C_PEN_S, C_PEN_I = 3, 4, 5, 6, 7, 8
N_CF = 9
# configuration, ints (sizes the arrays carry, such as the type count, are read off them)
K_BATCH, K_QCAP, K_CAPACITY, K_DECAY_EVERY, K_LEARN_EVERY, K_ADAPT_EVERY = 0, 1, 2, 3, 4, 5
K_FB_LO, K_FB_SPAN, K_MORTALITY, K_POISSON, K_NUM, K_DEN, K_METRICS = 6, 7, 8, 9, 10, 11, 12
N_CI = 13
# state, floats
S_AGE, S_SUBJ, S_ENERGY, S_STAB, S_INTEG, S_SMOOTH, S_ECHO = 0, 1, 2, 3, 4, 5, 6
S_COEF = 7  # dampen, absorb, ignore (the dict's birth order)
S_BCOEF = 10  # the adapted mirror, same order
S_ERR = 13  # the refused delta (energy, stability, integrity) when a tick stops with R_ERROR
N_SF = 16
# state, ints
I_TICKS, I_PROCESSED, I_ECHOES, I_SINCE_ECHO, I_ZERO, I_ALIVE = 0, 1, 2, 3, 4, 5
I_ACT = 6  # four action counters
I_NEXT_ID, I_SPILLED, I_N = 10, 11, 12
I_Q_HEAD, I_Q_COUNT, I_REC_HEAD, I_REC_COUNT, I_HIST_HEAD, I_HIST_COUNT = 13, 14, 15, 16, 17, 18
I_CARRY, I_ECHO_PENDING = 19, 20
I_IDX = 21  # stream positions: types, world uniform, organism uniform, counts
I_REFILLED = 25  # per stream: refills done in the kernel since the flag was cleared
I_OUT_N, I_NV, I_FB_N, I_DROPPED, I_LEARNED = 28, 29, 30, 31, 32
I_IO_DUE, I_SAMPLE_AT, I_GAP, I_NMARKS, I_STOP, I_NEED = 33, 34, 35, 36, 37, 38
I_HIST_CHANGED, I_FB_FREE, I_FB_TOP, I_SAMPLED_TICK = 39, 40, 41, 42
I_NEXT_DECAY, I_NEXT_LEARN, I_NEXT_ADAPT = 43, 44, 45  # the next tick of each periodic pass
N_SI = 46
# per-type rows of tp
T_SENS, T_THR, T_BSENS, T_BTHR, T_WEIGHT, T_BASE_E, T_BASE_S, T_BASE_I = 0, 1, 2, 3, 4, 5, 6, 7
T_LO, T_SPAN, T_CDF, T_MULT = 8, 9, 10, 11
N_TP = 12
# streams
ST_TYPES, ST_WORLD, ST_SELF, ST_COUNTS = 0, 1, 2, 3
# outbox columns: rows of out_i (ints) and out_f (floats), one spilled entry per column index,
# so that handing a column to the archive is one contiguous copy
O_ID, O_TYPE, O_KIND, O_ACTION, O_TICK = 0, 1, 2, 3, 4
O_SIG, O_WEIGHT, O_TS, O_STS, O_FE, O_FS, O_FI = 0, 1, 2, 3, 4, 5, 6
# feedback book: a pool of entries (ints, floats) chained per due tick. fb_b holds, per bucket
# ``due % fb_b.shape[1]``, the first and last entry (-1: none); the buckets outnumber the largest
# delay, so one bucket holds one due tick. Free entries chain through FB_NEXT from si[I_FB_FREE].
FB_DUE, FB_TYPE, FB_ACTION, FB_NEXT = 0, 1, 2, 3
FB_E0, FB_S0, FB_I0, FB_SIG = 0, 1, 2, 3
# why a call returned (si[I_STOP]); R_GROW_* and R_OUTBOX put the room needed in si[I_NEED]
R_DONE, R_IO, R_OUTBOX, R_GROW_MEM, R_GROW_FB, R_GROW_QUEUE = 0, 1, 2, 3, 4, 5
R_COUNTS, R_ERROR, R_DEAD, R_MARKS, R_SCRATCH = 6, 7, 8, 9, 10
R_WAKE = 11  # pace_ticks only: the clock's wake word was set (a push or a stop); no tick ran

TWO_PI = 2.0 * np.pi
HISTORY = ADAPTATION_HISTORY
N_ACTIONS = len(ACTION_NAMES)
_INV_2_53 = 1.0 / 9007199254740992.0
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341
_CLOCK_MONOTONIC = 1
_FUTEX_WAIT_BITSET_PRIVATE = 9 | 128
_FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF


# -- two intrinsics -------------------------------------------------------------------------------


@intrinsic
def _pcg64_next(typingctx, words):
    """One step of numpy's PCG64 (XSL-RR 128/64) on its state words [lo, hi, inc_lo, inc_hi].

    The same arithmetic as numpy's ``pcg64_next64``: step the 128-bit LCG, then output
    rotr64(hi ^ lo, state >> 122). LLVM's i128 does the 128-bit multiply.
    """
    sig = types.uint64(words)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = arr.data
        i64, i128 = ir.IntType(64), ir.IntType(128)

        def word(k):
            return cgutils.gep_inbounds(builder, ptr, k)

        def wide(lo, hi):
            lo128 = builder.zext(builder.load(word(lo)), i128)
            hi128 = builder.zext(builder.load(word(hi)), i128)
            return builder.or_(builder.shl(hi128, ir.Constant(i128, 64)), lo128)

        state = wide(0, 1)
        inc = wide(2, 3)
        state = builder.add(builder.mul(state, ir.Constant(i128, _PCG_MULT)), inc)
        lo = builder.trunc(state, i64)
        hi = builder.trunc(builder.lshr(state, ir.Constant(i128, 64)), i64)
        builder.store(lo, word(0))
        builder.store(hi, word(1))
        x = builder.xor(hi, lo)
        rot = builder.trunc(builder.lshr(state, ir.Constant(i128, 122)), i64)
        right = builder.lshr(x, rot)
        left = builder.shl(x, builder.and_(builder.neg(rot), ir.Constant(i64, 63)))
        return builder.or_(right, left)

    return sig, codegen


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (llvm.readcyclecounter): the kernel's stage clock.

    numba has no clock; this costs ~10 ns. Python converts cycles to ns with a ratio it measures
    against perf_counter_ns around every call (see CompiledEngine).
    """
    sig = types.int64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@intrinsic
def _monotonic_ns(typingctx):
    """CLOCK_MONOTONIC in ns (libc's clock_gettime, a vDSO call): the clock of perf_counter."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        ts = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))  # struct timespec
        fnty = ir.FunctionType(i32, [i32, ts.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        builder.call(fn, [ir.Constant(i32, _CLOCK_MONOTONIC), ts])
        sec = builder.load(builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)]))
        nsec = builder.load(builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)]))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


@intrinsic
def _futex_wait(typingctx, word, sec, nsec, number):
    """Sleep while ``word[0] == 0`` until CLOCK_MONOTONIC reaches (sec, nsec), or a wake.

    ``syscall(number, word, FUTEX_WAIT_BITSET_PRIVATE, 0, &timespec, NULL, MATCH_ANY)``: the
    kernel checks the word and sleeps atomically, so a wake between our check and the call is
    not lost. Returns the call's result (-1 on timeout, a signal or a changed word: the caller
    re-reads the clock and the word either way). Every argument is passed as a 64-bit integer.
    """
    sig = types.int64(word, sec, nsec, number)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ts = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))
        builder.store(args[1], builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)]))
        builder.store(args[2], builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)]))
        fnty = ir.FunctionType(i64, [i64], var_arg=True)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
        call_args = [
            args[3],
            builder.ptrtoint(arr.data, i64),
            ir.Constant(i64, _FUTEX_WAIT_BITSET_PRIVATE),
            ir.Constant(i64, 0),
            builder.ptrtoint(ts, i64),
            ir.Constant(i64, 0),
            ir.Constant(i64, _FUTEX_BITSET_MATCH_ANY),
        ]
        return builder.call(fn, call_args)

    return sig, codegen


@njit(cache=True)
def cycles() -> int:
    """The cycle counter, callable from Python (for calibration)."""
    return _cycles()


@njit(cache=True)
def pcg64_random(words, out):
    """Fill ``out`` as numpy's ``Generator.random`` would (for tests of the stream)."""
    for j in range(out.shape[0]):
        out[j] = (_pcg64_next(words) >> np.uint64(11)) * _INV_2_53


# -- random streams -------------------------------------------------------------------------------


@njit(cache=True)
def _refill_uniform(words, before, blk):
    before[:] = words
    for j in range(BLOCK):
        blk[j] = (_pcg64_next(words) >> np.uint64(11)) * _INV_2_53


LUT_SIZE = 1024


def type_lut(cdf: np.ndarray) -> np.ndarray:
    """Where the search for u in [b/1024, (b+1)/1024) may start: searchsorted(cdf, b/1024)."""
    return np.searchsorted(cdf, np.arange(LUT_SIZE) / LUT_SIZE, side="right").astype(np.int64)


@njit(cache=True)
def _refill_types(words, before, blk, cdf, lut):
    # numpy's Generator.choice(n, size, p=p): cdf = cumsum(p)/last, then one random() per
    # value and searchsorted(cdf, u, side="right"), the first i with cdf[i] > u (checked equal
    # to numpy in the tests). NOTE: a lookup table for speed: the search starts where u's top
    # ten bits say (u·1024 is exact, and the answer is monotone in u), then walks forward a
    # step or two: 21 ns → ~4 ns per value. It ends because cdf[-1] = 1.0 > u.
    before[:] = words
    for j in range(BLOCK):
        u = (_pcg64_next(words) >> np.uint64(11)) * _INV_2_53
        i = lut[np.int64(u * LUT_SIZE)]
        while cdf[i] <= u:
            i += 1
        blk[j] = i


# NOTE: inlined by hand for speed. A call from one njit function to another that passes arrays
# increments and decrements each array's reference count (atomic operations, ~10 ns per array),
# and numba's inline="always" did not remove them: a draw through a helper measured 50 ns, the
# same lines written in place 3 ns. So every draw site reads, in place,
#     i = si[I_IDX + s]; if i == BLOCK: i = _refill_*(...); si[I_IDX + s] = i + 1; v = blk[i]
# and only the rare refill (once per 4096 values) is a call. The same holds for the per-row
# memory writes below.


@njit(cache=True)
def _refill_u(si, stream, words, before, blk):
    _refill_uniform(words, before, blk)
    si[I_REFILLED + stream] += 1
    return 0


@njit(cache=True)
def _refill_t(si, words, before, blk, cdf, lut):
    _refill_types(words, before, blk, cdf, lut)
    si[I_REFILLED + ST_TYPES] += 1
    return 0


# -- state ----------------------------------------------------------------------------------------


@njit(cache=True)
def _apply_delta(sf, d_e, d_s, d_i):
    """SelfState.apply_delta: clamped; a non-finite delta is refused whole (returns False)."""
    if not np.isfinite(d_e + d_s + d_i):
        sf[S_ERR] = d_e
        sf[S_ERR + 1] = d_s
        sf[S_ERR + 2] = d_i
        return False
    e = sf[S_ENERGY] + d_e
    sf[S_ENERGY] = 0.0 if e < 0.0 else ENERGY_MAX if e > ENERGY_MAX else e
    s = sf[S_STAB] + d_s
    sf[S_STAB] = 0.0 if s < 0.0 else 1.0 if s > 1.0 else s
    i = sf[S_INTEG] + d_i
    sf[S_INTEG] = 0.0 if i < 0.0 else 1.0 if i > 1.0 else i
    return True


@njit(cache=True)
def _recovery_efficiency(age):
    v = 0.4 + 0.6 * np.cos(TWO_PI * ((age % CIRCADIAN_PERIOD_S) / CIRCADIAN_PERIOD_S))
    return 0.4 if v < 0.4 else 1.0 if v > 1.0 else v


@njit(cache=True)
def _context(integrity, stability, r):
    c = 1.0
    if integrity < 0.3:
        c *= 1.5
    if stability < 0.5:
        c *= 1.2
    if r > 1.1:
        c *= min(1.3, 1.0 + 0.5 * (r - 1.0))
    elif r < 0.9:
        c *= max(0.8, 1.0 - 0.3 * (1.0 - r))
    return c


@njit(cache=True)
def refresh_params(tp):
    """meaning.type_multipliers into tp[T_MULT] (after learning or adaptation)."""
    for t in range(tp.shape[1]):
        m_l = 0.5 + 0.5 * tp[T_SENS, t]
        m_a = 0.5 + 0.5 * tp[T_BSENS, t]
        tp[T_MULT, t] = tp[T_WEIGHT, t] * min(1.5, (m_l + m_a) / 2.0)


# -- memory ---------------------------------------------------------------------------------------


@njit(cache=True)
def _spill_rows(si, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, gone_idx):
    """ActiveMemory._spill_rows: out in ascending row order, holes filled from the end."""
    k = gone_idx.shape[0]
    if k == 0:
        return
    n = si[I_N]
    m = n - k
    o = si[I_OUT_N]
    for j in range(k):  # the outbox rows (inlined by hand, see the NOTE on draws)
        row = gone_idx[j]
        r = rec[row]
        out_i[O_ID, o] = r.id
        out_i[O_TYPE, o] = m_type[row]
        out_i[O_KIND, o] = r.kind
        out_i[O_ACTION, o] = r.action
        out_i[O_TICK, o] = r.tick
        out_f[O_SIG, o] = m_sig[row]
        out_f[O_WEIGHT, o] = m_w[row]
        out_f[O_TS, o] = m_ts[row]
        out_f[O_STS, o] = r.subjective_timestamp
        out_f[O_FE, o] = r.feedback_energy
        out_f[O_FS, o] = r.feedback_stability
        out_f[O_FI, o] = r.feedback_integrity
        o += 1
    si[I_OUT_N] = o
    cut = 0
    while cut < k and gone_idx[cut] < m:
        cut += 1
    # movers: rows in [m, n) not spilled, ascending, paired with the holes in order
    g = cut
    h = 0
    for src in range(m, n):
        if g < k and gone_idx[g] == src:
            g += 1
            continue
        dst = gone_idx[h]
        h += 1
        m_sig[dst] = m_sig[src]
        m_w[dst] = m_w[src]
        m_ts[dst] = m_ts[src]
        m_type[dst] = m_type[src]
        rec[dst] = rec[src]
    # The victim list follows its rows (ActiveMemory._follow_moves). NOTE: per victim, not per
    # move, for speed: a victim at row v >= m moved to the hole paired with it, whose index is
    # (v - m) minus the spilled rows in [m, v) (a binary search), so O(victims · log k) instead
    # of O(moves · victims).
    for j in range(si[I_NV]):
        v = victims[j]
        if v >= m:
            lo = cut
            hi = k
            while lo < hi:
                mid = (lo + hi) // 2
                if gone_idx[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            victims[j] = gone_idx[(v - m) - (lo - cut)]
    si[I_N] = m
    si[I_SPILLED] += k


@njit(cache=True)
def _decay(si, cf, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, now):
    """ActiveMemory.decay: the same factor, in the same operation order, then the spill."""
    si[I_NV] = 0  # weights change: the victim list is stale
    n = si[I_N]
    scale = 0.5 * cf[C_DECAY_FACTOR] * SECONDS_PER_DAY
    horizon = now + SECONDS_PER_DAY
    floor = cf[C_MIN_WEIGHT]
    k = 0
    # NOTE: branch-free count for speed: LLVM vectorises this loop (4 divisions per
    # instruction with AVX2) only without a branch in it.
    for i in range(n):
        f = m_sig[i] + 1.0
        f *= scale
        f /= horizon - m_ts[i]
        w = m_w[i] * f
        m_w[i] = w
        k += w < floor
    if k == 0:
        return
    gone = np.empty(k, np.int64)
    j = 0
    for i in range(n):
        if m_w[i] < floor:
            gone[j] = i
            j += 1
    _spill_rows(si, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, gone)


@njit(cache=True)
def _by_weight_then_id(w, ids):
    """The order that sorts rows by (weight, id) (ids are unique, so it is one order).

    NOTE: one quicksort on the weight, then an insertion sort on the id inside each run of equal
    weights, for speed: numba's stable mergesort took 46 µs for 1 040 values, its quicksort 28.
    """
    order = np.argsort(w)
    n = order.shape[0]
    a = 0
    while a < n:
        b = a + 1
        while b < n and w[order[b]] == w[order[a]]:
            b += 1
        for i in range(a + 1, b):  # the run [a, b) of equal weights, by id
            x = order[i]
            j = i - 1
            while j >= a and ids[order[j]] > ids[x]:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = x
        a = b
    return order


@njit(cache=True)
def _select_victims(si, m_w, rec, victims, need):
    """The c = min(n, max(need, len(victims))) lowest (weight, id) rows.

    NOTE: amortised, as ActiveMemory._select_victims (and exact for the same reason): one O(n)
    selection serves the ticks until the next decay pass, so the list is sized for about ten
    ticks of spills (CompiledEngine sets its length). NOTE: a radix selection for speed: the bit
    patterns of non-negative doubles sort like their values, so two histogram passes (the
    exponent, then the next 11 bits within the exponent that holds the c-th row) find the
    threshold key; rows below it are in, rows at it are sorted exactly by (weight, id). Measured
    at 7 000 rows: a bounded heap took 81 µs for c = 256 and 325 µs for c = 1 040 (its cost
    follows c), numba's np.partition 82 µs for the threshold alone; this ~3 passes of a few ns
    per row whatever c is.
    Returns (the c rows ascending by (weight, id), how many of them may be listed).
    """
    n = si[I_N]
    c = min(n, max(need, victims.shape[0]))
    bits = m_w[:n].view(np.int64)
    high = np.zeros(2048, np.int64)
    for i in range(n):
        b = bits[i]
        if b < 0:  # -0.0 (weights are >= 0): the same key as 0.0
            b = 0
        high[b >> 52] += 1
    below = 0
    e = 0
    while below + high[e] < c:
        below += high[e]
        e += 1
    low = np.zeros(2048, np.int64)
    for i in range(n):
        b = bits[i]
        if b < 0:
            b = 0
        if (b >> 52) == e:
            low[(b >> 41) & 2047] += 1
    m = 0
    while below + low[m] < c:
        below += low[m]
        m += 1
    threshold = (e << 11) | m
    rows = np.empty(c, np.int64)
    ties = np.empty(low[m], np.int64)
    n_in = 0
    n_ties = 0
    for i in range(n):
        b = bits[i]
        if b < 0:
            b = 0
        key = b >> 41
        if key < threshold:
            rows[n_in] = i
            n_in += 1
        elif key == threshold:
            ties[n_ties] = i
            n_ties += 1
    # the rows at the threshold key: exactly by (weight, id), the smallest c - n_in of them
    tie_w = np.empty(n_ties)
    tie_id = np.empty(n_ties, np.int64)
    for j in range(n_ties):
        tie_w[j] = m_w[ties[j]]
        tie_id[j] = rec[ties[j]].id
    order = _by_weight_then_id(tie_w, tie_id)
    for j in range(c - n_in):
        rows[n_in + j] = ties[order[j]]
    # ascending by (weight, id): a stable sort on id, then a stable sort on weight
    ids = np.empty(c, np.int64)
    ws = np.empty(c)
    for j in range(c):
        ids[j] = rec[rows[j]].id
        ws[j] = m_w[rows[j]]
    ascending = rows[_by_weight_then_id(ws, ids)]
    # keep weights <= 1.0 only (births are 1.0, decay only lowers): see ActiveMemory
    kept = c
    while kept > 0 and m_w[ascending[kept - 1]] > 1.0:
        kept -= 1
    if kept <= victims.shape[0]:
        for j in range(kept):
            victims[j] = ascending[kept - 1 - j]
    return ascending, kept


@njit(cache=True)
def _enforce_capacity(si, ci, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims):
    """ActiveMemory.enforce_capacity: spill the lowest (weight, id) entries over capacity."""
    excess = si[I_NEXT_ID] - si[I_SPILLED] - ci[K_CAPACITY]
    if excess <= 0:
        return
    nv = si[I_NV]
    if nv < excess:
        ascending, kept = _select_victims(si, m_w, rec, victims, excess)
        if kept > victims.shape[0] or kept < excess:
            # more than the list holds (a huge excess) or too few: spill directly, no list
            si[I_NV] = 0
            take = np.sort(ascending[:excess])
            _spill_rows(si, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, take)
            return
        nv = kept
    take = np.sort(victims[nv - excess : nv].copy())
    si[I_NV] = nv - excess
    _spill_rows(si, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, take)


# -- learning and adaptation ----------------------------------------------------------------------


@njit(cache=True)
def _learn(si, sf, tp, m_sig, m_type, rec):
    """behavior.learn over ActiveMemory.type_stats (sums in row order, as np.bincount)."""
    n_types = tp.shape[1]
    counts = np.zeros(n_types, np.int64)
    sig_sums = np.zeros(n_types)
    actions = np.zeros(N_ACTIONS, np.int64)
    for i in range(si[I_N]):
        r = rec[i]
        if r.kind == KIND_EVENT:
            t = m_type[i]
            counts[t] += 1
            sig_sums[t] += m_sig[i]
            actions[r.action] += 1
    total = 0
    for t in range(n_types):
        total += counts[t]
    if total == 0:
        return
    for t in range(n_types):
        if counts[t] == 0:
            continue
        share = counts[t] / total
        if share > 0.2:
            tp[T_SENS, t] = min(1.0, tp[T_SENS, t] + 0.01)
        elif share < 0.1:
            tp[T_SENS, t] = max(0.0, tp[T_SENS, t] - 0.01)
        mean = sig_sums[t] / counts[t]
        if mean > 0.5:
            tp[T_THR, t] = max(0.0, tp[T_THR, t] - 0.01)
        elif mean < 0.2:
            tp[T_THR, t] = min(1.0, tp[T_THR, t] + 0.01)
    for slot, action in ((0, DAMPEN), (1, ABSORB), (2, IGNORE)):
        freq = actions[action] / total
        if freq > 0.3:
            sf[S_COEF + slot] = min(1.0, sf[S_COEF + slot] + 0.01)
        elif freq < 0.1:
            sf[S_COEF + slot] = max(0.0, sf[S_COEF + slot] - 0.01)


@njit(cache=True)
def _toward(current, target):
    diff = target - current
    step = min(abs(diff), 0.01)
    return current + step if diff > 0 else current - step


@njit(cache=True)
def _adapt(si, sf, tp, hist_t, hist_m):
    """behavior.adapt: each behaviour value moves toward its learned value by at most 0.01."""
    moved = 0.0
    for learned, behavior in ((T_SENS, T_BSENS), (T_THR, T_BTHR)):
        for t in range(tp.shape[1]):
            new = _toward(tp[behavior, t], tp[learned, t])
            moved += abs(new - tp[behavior, t])
            tp[behavior, t] = new
    for slot in range(3):
        new = _toward(sf[S_BCOEF + slot], sf[S_COEF + slot])
        moved += abs(new - sf[S_BCOEF + slot])
        sf[S_BCOEF + slot] = new
    h = (si[I_HIST_HEAD] + si[I_HIST_COUNT]) % HISTORY
    hist_t[h] = si[I_TICKS]
    hist_m[h] = moved
    if si[I_HIST_COUNT] < HISTORY:
        si[I_HIST_COUNT] += 1
    else:
        si[I_HIST_HEAD] = (si[I_HIST_HEAD] + 1) % HISTORY
    si[I_HIST_CHANGED] = 1


# -- the tick -------------------------------------------------------------------------------------


@njit(cache=True)
def run_ticks(
    max_ticks,
    dt,
    cf,
    ci,
    sf,
    si,
    tp,
    m_sig,
    m_w,
    m_ts,
    m_type,
    rec,
    fb_i,
    fb_f,
    fb_b,
    q_t,
    q_x,
    recent,
    hist_t,
    hist_m,
    out_i,
    out_f,
    victims,
    scratch_i,
    scratch_f,
    words,
    before,
    blk_types,
    blk_world,
    blk_self,
    blk_counts,
    marks,
    gaps,
    lut,
):
    """Advance the organism up to ``max_ticks`` ticks; return how many ran (why: si[I_STOP]).

    Stops early, always at a tick boundary, when Python has to act: I/O is due (after the
    tick), the organism died, a stage refused a delta (the tick is cut where the Python engine
    raises), or before a tick that could overflow an array Python owns (memory, feedback book,
    queue, outbox, metric marks) or needs a new block of Poisson counts.
    """
    w_types, w_world, w_self = words[ST_TYPES], words[ST_WORLD], words[ST_SELF]
    b_types, b_world, b_self = before[ST_TYPES], before[ST_WORLD], before[ST_SELF]
    cdf = tp[T_CDF]
    batch = ci[K_BATCH]
    lo_fb = ci[K_FB_LO]
    span_fb = ci[K_FB_SPAN]
    bucket_mask = fb_b.shape[1] - 1  # a power of two: a mask, not a division
    bt = scratch_i[0]  # this tick's batch: types and intensities
    bx = scratch_f[0]
    kt = scratch_i[1]  # what was not ignored: types, actions, significances
    ka = scratch_i[2]
    ks = scratch_f[1]
    done = 0
    si[I_STOP] = R_DONE
    while done < max_ticks:
        # -- room for the worst case of this tick (before anything changes) --
        if si[I_ALIVE] == 0:
            si[I_STOP] = R_DEAD
            break
        poisson = ci[K_POISSON] != 0
        carry = 0
        if poisson:
            if si[I_IDX + ST_COUNTS] == BLOCK:
                si[I_STOP] = R_COUNTS
                break
            k = blk_counts[si[I_IDX + ST_COUNTS]]
        else:
            # Environment.count's divmod; NOTE: no division in the common case, for speed
            # (an integer division is ~25 cycles, a tenth of a one-event tick)
            c = si[I_CARRY] + ci[K_NUM]
            den = ci[K_DEN]
            if c < den:
                k = 0
                carry = c
            elif c < 2 * den:
                k = 1
                carry = c - den
            else:
                k = c // den
                carry = c - k * den
        q_count = si[I_Q_COUNT]
        queued = q_count > 0 or k > batch
        if queued and q_count + k > q_t.shape[0] and q_t.shape[0] < ci[K_QCAP]:
            si[I_STOP] = R_GROW_QUEUE
            si[I_NEED] = q_count + k
            break
        take_max = min(batch, q_count + k) + 1  # + the echo
        if take_max > bt.shape[0]:
            si[I_STOP] = R_SCRATCH
            si[I_NEED] = take_max
            break
        adds = take_max + si[I_FB_N]
        if si[I_N] + adds > m_sig.shape[0]:
            si[I_STOP] = R_GROW_MEM
            si[I_NEED] = si[I_N] + adds
            break
        if si[I_FB_N] + take_max > fb_i.shape[0]:
            si[I_STOP] = R_GROW_FB
            si[I_NEED] = si[I_FB_N] + take_max
            break
        tick = si[I_TICKS] + 1
        decays = tick == si[I_NEXT_DECAY]
        spill_max = adds + (si[I_N] if decays else 0)
        if si[I_OUT_N] + spill_max > out_i.shape[1]:
            si[I_STOP] = R_OUTBOX
            si[I_NEED] = spill_max
            break
        sampled = ci[K_METRICS] > 0 and tick >= si[I_SAMPLE_AT]
        if sampled and si[I_NMARKS] == marks.shape[0]:
            si[I_STOP] = R_MARKS
            break
        if sampled:
            mk = marks[si[I_NMARKS]]
            mk[MARK_START] = _cycles()

        # -- time --
        si[I_TICKS] = tick
        age = sf[S_AGE] + dt
        sf[S_AGE] = age

        # -- perceive: the echo first, then the queue, then the world (Life._perceive) --
        if poisson:
            si[I_IDX + ST_COUNTS] += 1
        else:
            si[I_CARRY] = carry
        n = 0
        if si[I_ECHO_PENDING] != 0:
            si[I_ECHO_PENDING] = 0
            bt[0] = ECHO
            bx[0] = sf[S_ECHO]
            n = 1
        if not queued:
            for j in range(k):
                i_r = si[I_IDX + ST_TYPES]
                if i_r == BLOCK:
                    i_r = _refill_t(si, w_types, b_types, blk_types, cdf, lut)
                si[I_IDX + ST_TYPES] = i_r + 1
                t = blk_types[i_r]
                i_r = si[I_IDX + ST_WORLD]
                if i_r == BLOCK:
                    i_r = _refill_u(si, ST_WORLD, w_world, b_world, blk_world)
                si[I_IDX + ST_WORLD] = i_r + 1
                bt[n + j] = t
                bx[n + j] = tp[T_LO, t] + tp[T_SPAN, t] * blk_world[i_r]
            n += k
        else:
            size = q_t.shape[0]
            # env.draw(k), then Life._enqueue: what does not fit is dropped and counted. The type
            # and intensity streams are separate generators, so drawing them interleaved here
            # yields the same values as drawing all types, then all intensities.
            tail = (si[I_Q_HEAD] + q_count) % size
            for _ in range(k):
                i_r = si[I_IDX + ST_TYPES]
                if i_r == BLOCK:
                    i_r = _refill_t(si, w_types, b_types, blk_types, cdf, lut)
                si[I_IDX + ST_TYPES] = i_r + 1
                t = blk_types[i_r]
                i_r = si[I_IDX + ST_WORLD]
                if i_r == BLOCK:
                    i_r = _refill_u(si, ST_WORLD, w_world, b_world, blk_world)
                si[I_IDX + ST_WORLD] = i_r + 1
                u = blk_world[i_r]
                if si[I_Q_COUNT] < ci[K_QCAP]:
                    q_t[tail] = t
                    q_x[tail] = tp[T_LO, t] + tp[T_SPAN, t] * u
                    tail = tail + 1 if tail + 1 < size else 0
                    si[I_Q_COUNT] += 1
                else:
                    si[I_DROPPED] += 1
            take = min(batch, si[I_Q_COUNT])
            head = si[I_Q_HEAD]
            for j in range(take):
                bt[n + j] = q_t[head]
                bx[n + j] = q_x[head]
                head = head + 1 if head + 1 < size else 0
            si[I_Q_HEAD] = head
            si[I_Q_COUNT] -= take
            n += take
        if sampled:
            mk[MARK_PERCEIVE] = _cycles()

        # -- subjective time (meaning.smooth_intensity, meaning.subjective_rate) --
        if n == 0:
            smoothed = 0.7 * sf[S_SMOOTH]
        else:
            peak = 0.0
            for j in range(n):
                a = abs(bx[j])
                if a > peak:
                    peak = a
            smoothed = 0.3 * peak + 0.7 * sf[S_SMOOTH]
        sf[S_SMOOTH] = smoothed
        rate = 1.0 + smoothed + 0.5 * (sf[S_STAB] - 1.0) + 0.5 * (sf[S_ENERGY] / 100.0)
        rate = 0.1 if rate < 0.1 else 3.0 if rate > 3.0 else rate
        sf[S_SUBJ] += dt * rate
        if sampled:
            mk[MARK_TIME] = _cycles()

        # -- respond: appraise, decide, apply (behavior.respond) --
        kept = 0
        if n:
            stability = sf[S_STAB]
            ctx = _context(sf[S_INTEG], stability, sf[S_SUBJ] / age)
            si[I_PROCESSED] += n
            coef_d = sf[S_COEF]
            coef_a = sf[S_COEF + 1]
            efficiency = -1.0  # computed when a recovery event needs it (a cos and an fmod)
            d_e = 0.0
            d_s = 0.0
            d_i = 0.0
            n_dampen = 0
            n_absorb = 0
            for j in range(n):
                t = bt[j]
                intensity = bx[j]
                a = intensity if intensity >= 0.0 else -intensity
                sig = a * tp[T_MULT, t] * ctx
                if sig > 1.0:
                    sig = 1.0
                elif sig < 0.0:
                    sig = 0.0
                if sig < tp[T_BTHR, t]:
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
                base_e = tp[T_BASE_E, t]
                if t == RECOVERY:
                    if efficiency < 0.0:
                        efficiency = _recovery_efficiency(age)
                    base_e *= efficiency
                d_e += base_e * m
                d_s += tp[T_BASE_S, t] * m
                d_i += tp[T_BASE_I, t] * m
                kt[kept] = t
                ka[kept] = action
                ks[kept] = sig
                kept += 1
            cost = n_dampen * (DAMPEN_COST * (1.0 - coef_d))
            if coef_a < ABSORB_COST_BELOW:
                cost += n_absorb * (ABSORB_COST * (1.0 - coef_a))
            if not _apply_delta(sf, d_e - cost, d_s, d_i):
                si[I_STOP] = R_ERROR
                done += 1
                break
            # the ring of recent types (a deque with maxlen); NOTE: no modulo per event, for
            # speed (an integer division per event cost ~8 ns)
            size_r = recent.shape[0]
            head = si[I_REC_HEAD]
            count = si[I_REC_COUNT]
            h = head + count
            if h >= size_r:
                h -= size_r
            for j in range(n):
                recent[h] = bt[j]
                h = h + 1 if h + 1 < size_r else 0
                if count < size_r:
                    count += 1
                else:
                    head = head + 1 if head + 1 < size_r else 0
            si[I_REC_HEAD] = head
            si[I_REC_COUNT] = count
        if sampled:
            mk[MARK_RESPOND] = _cycles()

        # -- remember and register feedback --
        if kept:
            subjective = sf[S_SUBJ]
            e0 = sf[S_ENERGY]
            s0 = sf[S_STAB]
            i0 = sf[S_INTEG]
            for j in range(kept):
                t = kt[j]
                action = ka[j]
                # ActiveMemory.add (inlined by hand, see the NOTE on draws)
                row = si[I_N]
                r = rec[row]
                r.id = si[I_NEXT_ID]
                m_type[row] = t
                r.kind = KIND_EVENT
                r.action = action
                m_sig[row] = ks[j]
                m_w[row] = 1.0
                m_ts[row] = age
                r.subjective_timestamp = subjective
                r.tick = tick
                r.feedback_energy = 0.0
                r.feedback_stability = 0.0
                r.feedback_integrity = 0.0
                si[I_N] = row + 1
                si[I_NEXT_ID] += 1
                si[I_ACT + action] += 1
                i_r = si[I_IDX + ST_SELF]
                if i_r == BLOCK:
                    i_r = _refill_u(si, ST_SELF, w_self, b_self, blk_self)
                si[I_IDX + ST_SELF] = i_r + 1
                u = blk_self[i_r]
                due = tick + lo_fb + np.int64(u * span_fb)
                f = si[I_FB_FREE]
                if f >= 0:
                    si[I_FB_FREE] = fb_i[f, FB_NEXT]
                else:
                    f = si[I_FB_TOP]
                    si[I_FB_TOP] = f + 1
                fb_i[f, FB_DUE] = due
                fb_i[f, FB_TYPE] = t
                fb_i[f, FB_ACTION] = action
                fb_i[f, FB_NEXT] = -1
                fb_f[f, FB_E0] = e0
                fb_f[f, FB_S0] = s0
                fb_f[f, FB_I0] = i0
                fb_f[f, FB_SIG] = ks[j]
                b = due & bucket_mask
                if fb_b[0, b] < 0:
                    fb_b[0, b] = f
                else:
                    fb_i[fb_b[1, b], FB_NEXT] = f
                fb_b[1, b] = f
                si[I_FB_N] += 1
        if sampled:
            mk[MARK_REMEMBER] = _cycles()

        # -- collect due feedback (Life._collect_feedback), then maybe an echo --
        b = tick & bucket_mask
        f = fb_b[0, b]
        if f >= 0:
            energy = sf[S_ENERGY]
            stab = sf[S_STAB]
            integ = sf[S_INTEG]
            while f >= 0:
                de = energy - fb_f[f, FB_E0]
                ds = stab - fb_f[f, FB_S0]
                di = integ - fb_f[f, FB_I0]
                if max(abs(de), abs(ds), abs(di)) > FEEDBACK_EPSILON:
                    # ActiveMemory.add (inlined by hand, see the NOTE on draws)
                    row = si[I_N]
                    r = rec[row]
                    r.id = si[I_NEXT_ID]
                    m_type[row] = fb_i[f, FB_TYPE]
                    r.kind = KIND_FEEDBACK
                    r.action = fb_i[f, FB_ACTION]
                    m_sig[row] = fb_f[f, FB_SIG]
                    m_w[row] = 1.0
                    m_ts[row] = age
                    r.subjective_timestamp = sf[S_SUBJ]
                    r.tick = tick
                    r.feedback_energy = np.float32(de)
                    r.feedback_stability = np.float32(ds)
                    r.feedback_integrity = np.float32(di)
                    si[I_N] = row + 1
                    si[I_NEXT_ID] += 1
                following = fb_i[f, FB_NEXT]
                fb_i[f, FB_NEXT] = si[I_FB_FREE]
                si[I_FB_FREE] = f
                si[I_FB_N] -= 1
                f = following
            fb_b[0, b] = -1
            fb_b[1, b] = -1
        p = cf[C_ECHO_P]
        if si[I_SINCE_ECHO] >= ECHO_BASE_WAIT:
            p *= 2.0
        if si[I_NEXT_ID] - si[I_SPILLED] > 0.8 * ci[K_CAPACITY]:
            p *= 1.5
        i_r = si[I_IDX + ST_SELF]
        if i_r == BLOCK:
            i_r = _refill_u(si, ST_SELF, w_self, b_self, blk_self)
        si[I_IDX + ST_SELF] = i_r + 1
        if blk_self[i_r] < p:
            si[I_SINCE_ECHO] = 0
            si[I_ECHOES] += 1
            i_r = si[I_IDX + ST_SELF]
            if i_r == BLOCK:
                i_r = _refill_u(si, ST_SELF, w_self, b_self, blk_self)
            si[I_IDX + ST_SELF] = i_r + 1
            sf[S_ECHO] = -0.2 + 0.4 * blk_self[i_r]
            si[I_ECHO_PENDING] = 1
        else:
            si[I_SINCE_ECHO] += 1
        if sampled:
            mk[MARK_FEEDBACK] = _cycles()

        # -- periodic: decay, learning, adaptation --
        # tick % every == 0, kept as the next due tick (no division per tick, see count above)
        if decays:
            si[I_NEXT_DECAY] = tick + ci[K_DECAY_EVERY]
            _decay(si, cf, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims, age)
        if tick == si[I_NEXT_LEARN]:
            si[I_NEXT_LEARN] = tick + ci[K_LEARN_EVERY]
            _learn(si, sf, tp, m_sig, m_type, rec)
            refresh_params(tp)
            si[I_LEARNED] = 1
        if tick == si[I_NEXT_ADAPT]:
            si[I_NEXT_ADAPT] = tick + ci[K_ADAPT_EVERY]
            _adapt(si, sf, tp, hist_t, hist_m)
            refresh_params(tp)
            si[I_LEARNED] = 1
        if sampled:
            mk[MARK_PERIODIC] = _cycles()

        # -- policy: weakness, mortality, the capacity bound --
        if (
            sf[S_ENERGY] <= cf[C_WEAK_E]
            or sf[S_STAB] <= cf[C_WEAK_S]
            or sf[S_INTEG] <= cf[C_WEAK_I]
        ):
            _apply_delta(sf, -cf[C_PEN_E] * dt, -cf[C_PEN_S] * dt, -cf[C_PEN_I] * dt)
            if ci[K_MORTALITY] > 0:
                if sf[S_ENERGY] == 0.0 and sf[S_STAB] == 0.0 and sf[S_INTEG] == 0.0:
                    si[I_ZERO] += 1
                    if si[I_ZERO] >= ci[K_MORTALITY]:
                        si[I_ALIVE] = 0
                else:
                    si[I_ZERO] = 0
        if si[I_NEXT_ID] - si[I_SPILLED] > ci[K_CAPACITY]:
            _enforce_capacity(si, ci, out_i, out_f, m_sig, m_w, m_ts, m_type, rec, victims)
        if sampled:
            mk[MARK_POLICY] = _cycles()
            # the io stage runs in Python after the kernel returns, which adds its time
            mk[MARK_IO] = mk[MARK_POLICY]
            si[I_NMARKS] += 1
            si[I_SAMPLED_TICK] = tick
            g = si[I_GAP]
            si[I_SAMPLE_AT] = tick + gaps[g]
            si[I_GAP] = (g + 1) & (gaps.shape[0] - 1)
        done += 1
        if tick >= si[I_IO_DUE]:
            si[I_STOP] = R_IO
            break
        if si[I_ALIVE] == 0:
            si[I_STOP] = R_DEAD
            break
    return done


# -- real time: the wait inside the kernel --------------------------------------------------------
# NOTE: waiting here, for speed and quiet: at 100 Hz a Python tick of the compiled engine (the
# clock's Event.wait, then one kernel call with 35 arguments to unbox, then the light state
# copied both ways, all with cold caches after 10 ms asleep) cost ~100 µs of CPU, twice the
# bare pacing loop. In the kernel a tick is one futex sleep plus the tick itself (~13 000
# cycles cold, ~3 600 warm); Python runs only for I/O, pushes, a stop, and a refresh every
# PACE_REFRESH_S (compiled.py). Measured: 2.4 % of a core -> 0.48 % at 100 Hz, 1.48x the bare
# loop of pace_idle (lifelab/lab/bench_realtime.py says how).


@njit(cache=True)
def _now():
    """time.perf_counter() as CPython computes it on Linux: CLOCK_MONOTONIC ns / 1e9."""
    return _monotonic_ns() / 1e9


@njit(cache=True)
def _sleep_until(end, wake, number):
    """Sleep until ``end`` (perf_counter seconds) unless ``wake[0]`` is set; return the time."""
    now = _now()
    while now < end and wake[0] == 0:
        sec = np.int64(np.floor(end))
        nsec = np.int64(np.ceil((end - sec) * 1e9))  # never wake before ``end``
        if nsec > 999_999_999:
            sec += 1
            nsec -= 1_000_000_000
        _futex_wait(wake, sec, nsec, number)
        now = _now()
    return now


@njit(cache=True, nogil=True)
def pace_idle(max_ticks, until, number, pace_f, pace_i, lateness, wake):
    """The bare pacing loop of ``pace_ticks``: the same waits and lateness samples, no tick.

    ``lifelab bench realtime`` measures it as the compiled engine's baseline.
    """
    done = 0
    keep = lateness.shape[0]
    while done < max_ticks and wake[0] == 0:
        k = pace_i[PACE_K] + 1
        deadline = pace_f[PACE_START] + k * pace_f[PACE_INTERVAL]
        now = _sleep_until(min(deadline, until), wake, number)
        if now < deadline or wake[0] != 0:
            break
        count = pace_i[PACE_COUNT]
        lateness[count % keep] = now - deadline
        pace_i[PACE_K] = k
        pace_i[PACE_COUNT] = count + 1
        pace_f[PACE_LAST] = now
        done += 1
        if deadline + pace_f[PACE_INTERVAL] > until:
            break  # the refresh, right after this tick rather than with a wake-up of its own
    return done


@njit(cache=True, nogil=True)
def pace_ticks(
    max_ticks,
    until,
    number,
    pace_f,
    pace_i,
    lateness,
    wake,
    cf,
    ci,
    sf,
    si,
    tp,
    m_sig,
    m_w,
    m_ts,
    m_type,
    rec,
    fb_i,
    fb_f,
    fb_b,
    q_t,
    q_x,
    recent,
    hist_t,
    hist_m,
    out_i,
    out_f,
    victims,
    scratch_i,
    scratch_f,
    words,
    before,
    blk_types,
    blk_world,
    blk_self,
    blk_counts,
    marks,
    gaps,
    lut,
):
    """Live in real time: wait for each deadline of the clock's schedule, then run the tick.

    The schedule is RealtimeClock's own (``pace_f``/``pace_i``, the ``PACE_*`` slots; the
    lateness ring is the clock's): tick k is due at ``start + k·interval``, ``dt`` is the time
    since the previous tick, exactly as RealtimeClock.wait computes them. Runs without the GIL.
    Returns the ticks run, at most ``max_ticks``; ``si[I_STOP]`` says why it returned:

    - R_DONE: ``max_ticks`` ran, or the refresh: after the last tick due before ``until``, or
      at ``until`` when no tick is due before it (fewer ran);
    - R_WAKE: the clock's wake word was set (pushed events, or a stop): no tick is pending;
    - any stop of ``run_ticks``: after a tick (I/O due, error, death), or before one (room
      needed): then that tick has not run and its deadline is not consumed, so the next call
      runs it at once, with ``dt`` up to that moment.
    """
    done = 0
    si[I_STOP] = R_DONE
    keep = lateness.shape[0]
    while done < max_ticks:
        if wake[0] != 0:
            si[I_STOP] = R_WAKE
            break
        k = pace_i[PACE_K] + 1
        deadline = pace_f[PACE_START] + k * pace_f[PACE_INTERVAL]
        now = _sleep_until(min(deadline, until), wake, number)
        if wake[0] != 0:
            si[I_STOP] = R_WAKE
            break
        if now < deadline:
            break  # ``until`` came first: a refresh
        count = pace_i[PACE_COUNT]
        lateness[count % keep] = now - deadline
        ran = run_ticks(
            1,
            now - pace_f[PACE_LAST],
            cf,
            ci,
            sf,
            si,
            tp,
            m_sig,
            m_w,
            m_ts,
            m_type,
            rec,
            fb_i,
            fb_f,
            fb_b,
            q_t,
            q_x,
            recent,
            hist_t,
            hist_m,
            out_i,
            out_f,
            victims,
            scratch_i,
            scratch_f,
            words,
            before,
            blk_types,
            blk_world,
            blk_self,
            blk_counts,
            marks,
            gaps,
            lut,
        )
        if ran == 0:
            break  # stopped before the tick: the sample above is overwritten next time
        pace_i[PACE_K] = k
        pace_i[PACE_COUNT] = count + 1
        pace_f[PACE_LAST] = now
        done += 1
        # NOTE: the refresh right after the last tick before ``until``, for quiet: waking at
        # ``until`` itself cost one more wake-up per refresh
        if si[I_STOP] != R_DONE or deadline + pace_f[PACE_INTERVAL] > until:
            break
    return done


def decay_pass(memory: ActiveMemory, now: float) -> tuple[int, float]:
    """One kernel decay pass over ``memory``'s live rows, as the compiled engine runs it.

    For benchmarks (``lifelab bench memory``): returns (rows spilled, seconds). Spilled rows are
    counted and dropped, not archived; the memory adopts the new row counts.
    """
    import time

    sig, weight, ts, etype, rec = memory.storage()
    n = memory.rows
    si = np.zeros(N_SI, np.int64)
    si[I_N] = n
    si[I_NEXT_ID] = memory.next_id
    si[I_SPILLED] = memory.spilled
    cf = np.zeros(N_CF)
    cf[C_DECAY_FACTOR] = memory.decay_factor
    cf[C_MIN_WEIGHT] = memory.min_weight
    out_i = np.zeros((5, max(n, 1)), np.int64)  # room for every row: the kernel does not check
    out_f = np.zeros((7, max(n, 1)))
    victims = np.zeros(1, np.int64)
    t0 = time.perf_counter()
    _decay(si, cf, out_i, out_f, sig, weight, ts, etype, rec, victims, now)
    seconds = time.perf_counter() - t0
    memory.adopt(int(si[I_N]), int(si[I_NEXT_ID]), int(si[I_SPILLED]))
    return int(si[I_OUT_N]), seconds
