"""The compiled engine: packs a Life into the kernel's typed arrays, runs it, unpacks it.

``Life`` keeps its Python objects (SelfState, ActiveMemory, FeedbackBook, the queue, the
BlockStreams) as the canonical form. Between bursts of kernel ticks this class keeps them in
step, in two weights:

- *light* (every burst, a few µs): vitals, time, counters, memory counts, recent events, the
  metric samples; pushed events are moved into the kernel's queue ring;
- *heavy* (:meth:`settle`, when something reads the whole state: digest, snapshot, the end of
  ``run()``): the feedback book, the queue, the echo, learned and adapted values, the random
  streams' positions.

The active-memory columns are never copied: the kernel writes ActiveMemory's own arrays. Spilled
rows collect in an outbox that goes to the archive (in the Python engine's order) whenever Python
runs: before I/O, when full, at the end of a burst.

numba is imported here, lazily (``import lifelab`` stays cheap); :func:`make_engine` falls back to
the Python engine with one warning when numba cannot be imported.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
import threading
import time
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelab.exceptions import StageError
from lifelab.life.clock import ClockStopped, RealtimeClock, futex_syscall
from lifelab.life.rng import BLOCK, BlockStream
from lifelab.observe.metrics import MARK_IO, N_MARKS

if TYPE_CHECKING:
    from lifelab.life.loop import Life

__all__ = ["PACE_REFRESH_S", "CompiledEngine", "idle_pacing", "make_engine", "numba_available"]

# Ticks per kernel call in simulated time: a stop request or a pushed event waits at most one
# chunk (~16 ms at a million ticks/s); a call costs ~5 µs to enter, so this is 0.03 % overhead.
CHUNK = 16_384
_OUTBOX_ROWS = 4_096  # grows when one tick may spill more (R_OUTBOX)
_MARK_ROWS = 512
# Real time with the kernel waiting (CompiledEngine._live_paced): the longest stretch without
# Python. life.state lags at most this much, and a signal handler of the main thread (when
# run() is called there) waits at most this long; pushes and stops do not wait. A return costs
# ~80-100 µs of CPU at 100 Hz (caches cold after the sleep), and comes right after a tick, not
# with a wake-up of its own: at 100 Hz with a run directory the organism/bare-loop CPU ratio
# measured 1.36 with 0.25 s, 1.56 with 0.5 s, 1.42 with 1 s (medians of 3 interleaved 10 s
# runs on a loaded machine: within its noise), so the freshest.
PACE_REFRESH_S = 0.25
_FOLD_EVERY_S = 2.0  # ... and how often those returns fold the metric samples (~100 µs cold)
_warned = False
_NEVER = 2**62  # 'never' as an int64 (Python's NEVER may be larger)


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def make_engine(life: Life) -> CompiledEngine | None:
    """The compiled engine for ``life``, or None (with one warning) when numba is missing."""
    global _warned
    try:
        kernel = importlib.import_module("lifelab.life.kernel")  # imports numba
    except Exception as exc:  # ImportError, or numba failing to initialise
        if not _warned:
            warnings.warn(
                f"engine='compiled' needs numba ({type(exc).__name__}: {exc}); "
                "using the Python engine (pip install numba)",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned = True
        return None
    return CompiledEngine(life, kernel)


def idle_pacing(clock: RealtimeClock, ticks: int) -> None:
    """Wait for the next ``ticks`` deadlines of ``clock`` inside the kernel and do nothing else.

    The bare pacing loop of the compiled engine's real time (``lifelab bench realtime``): the
    same futex waits and lateness samples as :meth:`CompiledEngine._live_paced`, back in Python
    every PACE_REFRESH_S as it is. Ends early if the clock is interrupted.

    Raises:
        RuntimeError: numba is missing, or the kernel cannot wait here (no futex).
    """
    number = futex_syscall()
    if number is None or not numba_available():
        raise RuntimeError("the kernel cannot wait here: it needs numba and Linux futexes")
    kernel = importlib.import_module("lifelab.life.kernel")
    pace_f = np.zeros(3)
    pace_i = np.zeros(2, np.int64)
    clock.lend(pace_f, pace_i)
    try:
        # the first call loads the function from numba's cache: zero ticks, so
        # idle_pacing(clock, 0) warms it up
        kernel.pace_idle(0, 0.0, number, pace_f, pace_i, clock.lateness_ring, clock.wake)
        done = 0
        while done < ticks and not clock.wake[0]:
            done += kernel.pace_idle(
                ticks - done,
                time.perf_counter() + PACE_REFRESH_S,
                number,
                pace_f,
                pace_i,
                clock.lateness_ring,
                clock.wake,
            )
    finally:
        clock.reclaim()


def _pcg_words(gen: np.random.Generator) -> np.ndarray:
    """A uint64[4] view of a PCG64 generator's state in numpy's own memory: state lo, hi, inc lo,
    hi (the kernel steps it in place, so numpy sees every draw the kernel makes)."""
    bg = gen.bit_generator
    if type(bg).__name__ != "PCG64":
        raise TypeError(f"the compiled engine needs PCG64 streams, got {type(bg).__name__}")
    pointer = ctypes.c_void_p.from_address(bg.ctypes.state_address).value
    words = np.ctypeslib.as_array((ctypes.c_uint64 * 4).from_address(pointer))
    state = bg.state["state"]
    if _join(words[0], words[1]) != state["state"] or _join(words[2], words[3]) != state["inc"]:
        raise RuntimeError("unexpected PCG64 state layout in this numpy build")
    return words


def _join(lo: Any, hi: Any) -> int:
    return (int(hi) << 64) | int(lo)


def _split(value: int) -> tuple[int, int]:
    return value & 0xFFFFFFFFFFFFFFFF, value >> 64


class CompiledEngine:
    """Runs a Life's ticks in the numba kernel (``life/kernel.py``)."""

    def __init__(self, life: Life, kernel: ModuleType) -> None:
        k = self.k = kernel
        self.life = life
        cfg = life.config
        self.cf = np.zeros(k.N_CF)
        self.cf[k.C_ECHO_P] = cfg.echo_probability
        self.cf[k.C_MIN_WEIGHT] = life.memory.min_weight
        self.cf[k.C_DECAY_FACTOR] = life.memory.decay_factor
        self.cf[k.C_WEAK_E : k.C_WEAK_I + 1] = life._weak_at
        self.cf[k.C_PEN_E] = cfg.weak_penalty_energy
        self.cf[k.C_PEN_S] = cfg.weak_penalty_stability
        self.cf[k.C_PEN_I] = cfg.weak_penalty_integrity
        env = life.environment
        ci = np.zeros(k.N_CI, np.int64)
        ci[k.K_BATCH] = cfg.batch_size
        ci[k.K_QCAP] = cfg.queue_capacity
        ci[k.K_CAPACITY] = cfg.memory_capacity
        ci[k.K_DECAY_EVERY] = cfg.decay_every
        ci[k.K_LEARN_EVERY] = cfg.learn_every
        ci[k.K_ADAPT_EVERY] = cfg.adapt_every
        ci[k.K_FB_LO] = cfg.feedback_min_ticks
        ci[k.K_FB_SPAN] = cfg.feedback_max_ticks - cfg.feedback_min_ticks + 1
        ci[k.K_MORTALITY] = cfg.mortality_ticks or 0
        ci[k.K_POISSON] = env.counts is not None
        ci[k.K_NUM], ci[k.K_DEN] = env.rate_fraction
        ci[k.K_METRICS] = cfg.metrics_every
        self.ci = ci
        self.sf = np.zeros(k.N_SF)
        self.si = np.zeros(k.N_SI, np.int64)
        rows = life.types.rows
        tp = np.zeros((k.N_TP, len(rows)))
        tp[k.T_WEIGHT] = [r.meaning_weight for r in rows]
        tp[k.T_BASE_E] = [r.energy for r in rows]
        tp[k.T_BASE_S] = [r.stability for r in rows]
        tp[k.T_BASE_I] = [r.integrity for r in rows]
        tp[k.T_LO] = env.lo
        tp[k.T_SPAN] = env.span
        tp[k.T_CDF] = env.cdf
        self.tp = tp
        self.lut = k.type_lut(env.cdf)
        batch_room = min(cfg.batch_size, 4096) + 1
        self.scratch_i = np.zeros((3, batch_room), np.int64)
        self.scratch_f = np.zeros((2, batch_room))
        self.fb_i = np.zeros((1024, 4), np.int64)
        self.fb_f = np.zeros((1024, 4))
        self.fb_b = np.full((2, 1), -1, np.int64)  # sized by load()
        size = min(cfg.queue_capacity, 1024)
        self.q_t = np.zeros(size, np.int64)
        self.q_x = np.zeros(size)
        self.recent = np.zeros(cfg.recent_events_size, np.int64)
        self.hist_t = np.zeros(k.HISTORY, np.int64)
        self.hist_m = np.zeros(k.HISTORY)
        self.out_i = np.zeros((5, _OUTBOX_ROWS), np.int64)
        self.out_f = np.zeros((7, _OUTBOX_ROWS))
        # about ten ticks of spills at capacity: one selection per decay period (default 10)
        self.victims = np.zeros(max(256, 10 * batch_room), np.int64)
        self.marks = np.zeros((_MARK_ROWS, N_MARKS), np.int64)
        self.gaps = np.asarray(life.metrics.gaps, np.int64)
        self.streams: list[BlockStream] = [env.types, env.uniform, life._uniform]
        self.words = tuple(_pcg_words(s.generator) for s in self.streams)
        self.before = np.zeros((3, 4), np.uint64)
        self._lock = threading.Lock()
        # real time with the kernel waiting (_live_paced): the thread that runs it, holding
        # _pacing except while parked for a settle() from another thread (see settle)
        self._pacer: int | None = None
        self._pacing = threading.RLock()
        self._pause_wanted = False
        self._resume = threading.Event()
        # the real-time schedule as the kernel reads it (clock.PACE_* slots)
        self.pace_f = np.zeros(3)
        self.pace_i = np.zeros(2, np.int64)
        self._futex = futex_syscall() if life._clock.realtime else None
        k.cycles()  # the first call loads the kernel module's code (~0.2 s): not in the baseline
        self._ns0 = time.perf_counter_ns()
        self._cycles0 = k.cycles()
        self._fresh = True  # the Python objects hold the current state
        self.load()
        if self._futex is not None:
            # load the pacing kernel now (~0.1 s from numba's cache), not after the first
            # deadline; no tick runs
            clock = life._clock
            k.pace_ticks(
                0,
                0.0,
                self._futex,
                self.pace_f,
                self.pace_i,
                clock.lateness_ring,
                clock.wake,
                *self._args,
            )

    # -- Python objects -> kernel ---------------------------------------------------------------

    def load(self) -> None:
        """Pack the whole state from the Life's Python objects (at creation and after resume)."""
        k, life, si, sf, tp = self.k, self.life, self.si, self.sf, self.tp
        s = life._state
        si[:] = 0
        self._load_light()
        cfg = life.config
        for slot, every in (
            (k.I_NEXT_DECAY, cfg.decay_every),
            (k.I_NEXT_LEARN, cfg.learn_every),
            (k.I_NEXT_ADAPT, cfg.adapt_every),
        ):
            si[slot] = (s.ticks // every + 1) * every  # the next tick with tick % every == 0
        tp[k.T_SENS] = s.sensitivity
        tp[k.T_THR] = s.threshold
        tp[k.T_BSENS] = s.behavior_sensitivity
        tp[k.T_BTHR] = s.behavior_threshold
        k.refresh_params(tp)
        sf[k.S_COEF : k.S_COEF + 3] = [s.response_coef[n] for n in ("dampen", "absorb", "ignore")]
        sf[k.S_BCOEF : k.S_BCOEF + 3] = [
            s.behavior_response_coef[n] for n in ("dampen", "absorb", "ignore")
        ]
        recent = list(s.recent_events)
        self.recent[: len(recent)] = recent
        si[k.I_REC_COUNT] = len(recent)
        history = list(s.adaptation_history)
        for j, (t, moved) in enumerate(history):
            self.hist_t[j] = t
            self.hist_m[j] = moved
        si[k.I_HIST_COUNT] = len(history)
        si[k.I_PROCESSED] = life.events_processed
        si[k.I_ECHOES] = life.echoes
        si[k.I_SINCE_ECHO] = life.ticks_since_echo
        si[k.I_ZERO] = life.zero_vital_ticks
        si[k.I_ALIVE] = 1 if life.alive else 0
        si[k.I_ACT : k.I_ACT + 4] = life.actions
        mem = life.memory
        si[k.I_N] = mem.rows
        si[k.I_NEXT_ID] = mem.next_id
        si[k.I_SPILLED] = mem.spilled
        if life._echo is not None:
            si[k.I_ECHO_PENDING] = 1
            sf[k.S_ECHO] = life._echo
        si[k.I_CARRY] = life.environment.carry
        for j, stream in enumerate(self.streams):
            si[k.I_IDX + j] = stream.index
            state = stream.get_state()["state_before"]["state"]
            self.before[j, 0:2] = _split(state["state"])
            self.before[j, 2:4] = _split(state["inc"])
        counts = life.environment.counts
        si[k.I_IDX + k.ST_COUNTS] = counts.index if counts is not None else BLOCK
        self._load_feedback(life.feedback.to_list(), s.ticks)
        si[k.I_IO_DUE] = min(life._io_due, _NEVER)
        si[k.I_SAMPLE_AT] = min(life._sample_at, _NEVER)
        si[k.I_GAP] = life.metrics.gap_index
        with life._queue_lock:
            # everything queued, even beyond a queue_capacity lowered on resume (the Python
            # engine keeps those too; only new events are refused above capacity)
            self._append_to_ring(list(life._queue))
            life._queue.clear()
        self._fresh = False  # the queue now lives in the ring: settle() brings it back
        self._bind()

    def _load_light(self) -> None:
        k, s = self.k, self.life._state
        self.si[k.I_TICKS] = s.ticks
        # one slice write instead of six item writes (S_AGE … S_SMOOTH are contiguous)
        self.sf[k.S_AGE : k.S_SMOOTH + 1] = (
            s.age,
            s.subjective_time,
            s.energy,
            s.stability,
            s.integrity,
            s.last_event_intensity,
        )

    def _drain_pushes(self) -> bool:
        """Move events pushed since the last burst into the kernel's queue ring (True if any)."""
        life = self.life
        if not life._queue:
            return False
        k, si = self.k, self.si
        with life._queue_lock:
            items = list(life._queue)
            life._queue.clear()
            room = max(0, life.config.queue_capacity - int(si[k.I_Q_COUNT]))
            if len(items) > room:  # pushes raced a burst that filled the ring: drop the rest
                life.events_dropped += len(items) - room
                items = items[:room]
            self._append_to_ring(items)
        return True

    # -- kernel -> Python objects ---------------------------------------------------------------

    def _store_light(self, fold: bool = True, i: list[int] | None = None) -> None:
        # NOTE: one tolist() per array, then plain list reads, for speed: a numpy item read
        # costs ~100 ns and this runs after every burst (every tick in real time). ``i`` is
        # si.tolist() when the caller has just read it.
        k, life = self.k, self.life
        if i is None:
            i = self.si.tolist()
        f = self.sf.tolist()
        s = life._state
        s.ticks = i[k.I_TICKS]
        s.age = f[k.S_AGE]
        s.subjective_time = f[k.S_SUBJ]
        s.energy = f[k.S_ENERGY]
        s.stability = f[k.S_STAB]
        s.integrity = f[k.S_INTEG]
        s.last_event_intensity = f[k.S_SMOOTH]
        life.events_processed = i[k.I_PROCESSED]
        life.echoes = i[k.I_ECHOES]
        life.ticks_since_echo = i[k.I_SINCE_ECHO]
        life.zero_vital_ticks = i[k.I_ZERO]
        life.alive = i[k.I_ALIVE] != 0
        life.actions = i[k.I_ACT : k.I_ACT + 4]
        life.memory.adopt(i[k.I_N], i[k.I_NEXT_ID], i[k.I_SPILLED])
        life._sample_at = i[k.I_SAMPLE_AT]
        life.metrics.gap_index = i[k.I_GAP]
        life._queued_elsewhere = i[k.I_Q_COUNT]
        if i[k.I_DROPPED]:
            with life._queue_lock:
                life.events_dropped += i[k.I_DROPPED]
            self.si[k.I_DROPPED] = 0
        if fold and i[k.I_NMARKS]:
            self._fold_marks()

    def settle(self) -> None:
        """Bring every Python object up to date (digest, snapshot, end of a run).

        From another thread while the kernel paces a run without the GIL (:meth:`_live_paced`):
        the run parks between two ticks while this settles, so they never write the same arrays.
        """
        pacer = self._pacer
        if pacer is None or pacer == threading.get_ident():
            with self._pacing:
                self._settle()
            return
        # ask again until the run parks (or ends): another reader may have taken the last park
        while True:
            self._pause_wanted = True
            self.life._clock.poke()  # the kernel returns to Python, which parks
            if self._pacing.acquire(timeout=0.05):
                break
        try:
            self._pause_wanted = False
            self._settle()
        finally:
            self._pacing.release()
            self._resume.set()

    def _settle(self) -> None:
        if self._fresh:
            return
        k, life, si, sf, tp = self.k, self.life, self.si, self.sf, self.tp
        self._flush_outbox()
        s = life._state
        if si[k.I_LEARNED]:
            s.sensitivity = tp[k.T_SENS].tolist()
            s.threshold = tp[k.T_THR].tolist()
            s.behavior_sensitivity = tp[k.T_BSENS].tolist()
            s.behavior_threshold = tp[k.T_BTHR].tolist()
            for j, name in enumerate(("dampen", "absorb", "ignore")):
                s.response_coef[name] = float(sf[k.S_COEF + j])
                s.behavior_response_coef[name] = float(sf[k.S_BCOEF + j])
            life._refresh_params()
            si[k.I_LEARNED] = 0
        if si[k.I_HIST_CHANGED]:
            head, count = int(si[k.I_HIST_HEAD]), int(si[k.I_HIST_COUNT])
            idx = (head + np.arange(count)) % k.HISTORY
            s.adaptation_history.clear()
            s.adaptation_history.extend(
                zip(self.hist_t[idx].tolist(), self.hist_m[idx].tolist(), strict=True)
            )
            si[k.I_HIST_CHANGED] = 0
        size = len(self.recent)
        head, count = int(si[k.I_REC_HEAD]), int(si[k.I_REC_COUNT])
        s.recent_events.clear()
        s.recent_events.extend(self.recent[(head + np.arange(count)) % size].tolist())
        life._echo = float(sf[k.S_ECHO]) if si[k.I_ECHO_PENDING] else None
        life.environment.carry = int(si[k.I_CARRY])
        for j, stream in enumerate(self.streams):
            if si[k.I_REFILLED + j]:
                state = stream.generator.bit_generator.state
                state["state"] = {
                    "state": _join(self.before[j, 0], self.before[j, 1]),
                    "inc": _join(self.before[j, 2], self.before[j, 3]),
                }
                stream.adopt_block(state, int(si[k.I_IDX + j]))
                si[k.I_REFILLED + j] = 0
            else:
                stream.index = int(si[k.I_IDX + j])
        counts = life.environment.counts
        if counts is not None:
            counts.index = int(si[k.I_IDX + k.ST_COUNTS])
        book = life.feedback
        book.pending.clear()
        for due, e0, s0, i0, t, a, sig in self._feedback_rows():
            book.add(due, (e0, s0, i0, t, a, sig))
        # the queue goes back to the deque (ring first, then what was pushed since)
        with life._queue_lock:
            count = int(si[k.I_Q_COUNT])
            if count:
                idx = (int(si[k.I_Q_HEAD]) + np.arange(count)) % len(self.q_t)
                ring = list(zip(self.q_t[idx].tolist(), self.q_x[idx].tolist(), strict=True))
                life._queue.extendleft(reversed(ring))
            si[k.I_Q_COUNT] = 0
            si[k.I_Q_HEAD] = 0
            life._queued_elsewhere = 0
        self._fresh = True

    # -- running --------------------------------------------------------------------------------

    def live(self, ticks: int | None) -> None:
        """Life._live for this engine: bursts of kernel ticks until done, stopped or dead."""
        life = self.life
        clock = life._clock
        stop = life._stop
        realtime = clock.realtime
        remaining = ticks
        self.settle()
        self.load()
        if realtime and self._can_pace():
            try:
                self._live_paced(ticks)
            finally:
                self.settle()
            return
        try:
            while life.alive and not stop.is_set():
                if remaining is not None and remaining <= 0:
                    return
                if realtime:
                    try:
                        dt = life._wait()
                    except ClockStopped:
                        return
                    n = 1
                else:
                    dt = life.config.dt
                    n = CHUNK if remaining is None else min(remaining, CHUNK)
                done = self.burst(n, dt)
                if remaining is not None:
                    remaining -= done
        finally:
            self.settle()

    def _can_pace(self) -> bool:
        """Whether the kernel can wait for the deadlines itself (:meth:`_live_paced`).

        Not under a profiler: there the clock's wait stays the Python call it is measured as.
        """
        return self._futex is not None and sys.getprofile() is None

    def _live_paced(self, ticks: int | None) -> None:
        """Real time with the waits inside the kernel (``kernel.pace_ticks``).

        Python runs when the kernel stops for I/O or room, when a push or a stop sets the
        clock's wake word, and at least every PACE_REFRESH_S, so that ``life.state`` stays
        fresh and a signal handler of the main thread runs (the kernel holds no GIL). Those
        returns do the least they can: the clock's schedule stays in the kernel's arrays
        (RealtimeClock.lend), vitals written from Python are taken at the start and after a
        stop, and the metric samples are folded at most every _FOLD_EVERY_S.
        """
        k, life, si = self.k, self.life, self.si
        clock = life._clock
        stop = life._stop
        wake = clock.wake
        lateness = clock.lateness_ring
        clock.lend(self.pace_f, self.pace_i)
        remaining = _NEVER if ticks is None else ticks
        fold_at = time.perf_counter() + _FOLD_EVERY_S
        self._pacing.acquire()
        self._pacer = threading.get_ident()
        try:
            while life.alive and remaining > 0:
                wake[0] = 0  # before the checks below: a later push or stop sets it again
                if stop.is_set():
                    return
                if self._pause_wanted:
                    self._park()
                if life._world_next is not None:
                    life._take_world()
                # after a push, back to Python right after the tick that takes it: its effect
                # is in life.state at once, not at the next refresh
                n = 1 if self._drain_pushes() else remaining
                self._fresh = False
                now = time.perf_counter()
                remaining -= k.pace_ticks(
                    n,
                    now + PACE_REFRESH_S,
                    self._futex,
                    self.pace_f,
                    self.pace_i,
                    lateness,
                    wake,
                    *self._args,
                )
                # NOTE: si read once (tolist) for the checks and _store_light, for speed: each
                # numpy item read cost ~10-20 µs here, with the caches cold after the sleep
                i = si.tolist()
                reason = i[k.I_STOP]
                if reason != k.R_DONE and reason != k.R_WAKE:
                    if self._serve(reason):
                        return
                    i = si.tolist()
                if i[k.I_OUT_N] >= self.out_i.shape[1] // 2:
                    self._flush_outbox()
                    i = si.tolist()
                self._store_light(now >= fold_at, i)
                if now >= fold_at:
                    fold_at = now + _FOLD_EVERY_S
        finally:
            self._pacer = None
            self._store_light()
            clock.reclaim()
            self._pacing.release()

    def _park(self) -> None:
        """Let a settle() from another thread in, and wait until it is done."""
        self._resume.clear()
        self._pacing.release()
        self._resume.wait()
        self._pacing.acquire()

    def take_world(self, rate_changed: bool) -> None:
        """Give the kernel the Life's new batch size and rate (Life._take_world, between
        bursts, in the living thread): the kernel reads both at the start of a call."""
        k, ci = self.k, self.ci
        life = self.life
        ci[k.K_BATCH] = life.config.batch_size
        if rate_changed:
            ci[k.K_NUM], ci[k.K_DEN] = life.environment.rate_fraction
            self.si[k.I_CARRY] = life.environment.carry

    def step(self) -> None:
        """One tick (``Life._tick`` for this engine), errors handled as in a run.

        A burst of one: the kernel's state is current (packed at creation, after a resume and
        at every run(); pushes and direct writes to the vitals are taken at every burst), and
        readers of the whole state settle it themselves.
        """
        self.burst(1, self.life._clock.wait())

    def burst(self, n: int, dt: float) -> int:
        """Run up to ``n`` ticks, serving every stop the kernel makes; return the ticks run."""
        k, si = self.k, self.si
        if self.life._world_next is not None:
            self.life._take_world()
        self._load_light()
        done = 0
        while done < n:
            # (again after every stop: a snapshot at an I/O stop settles, which hands the
            # queue back to the deque)
            self._drain_pushes()
            self._fresh = False
            done += k.run_ticks(n - done, dt, *self._args)
            reason = int(si[k.I_STOP])
            if reason == k.R_DONE or self._serve(reason):
                break
        if si[k.I_OUT_N] >= self.out_i.shape[1] // 2:
            self._flush_outbox()
        self._store_light()
        return done

    def _serve(self, reason: int) -> bool:
        """Do what the kernel stopped for; True when the burst should end there."""
        k, life, si = self.k, self.life, self.si
        if reason == k.R_IO:
            self._flush_outbox()
            self._store_light(fold=False)
            tick = int(si[k.I_TICKS])
            t0 = time.perf_counter_ns()
            life._io(tick)
            if si[k.I_SAMPLED_TICK] == tick and si[k.I_NMARKS]:
                # a sampled tick: its io stage is this call (in cycles, like the marks)
                io_cycles = (time.perf_counter_ns() - t0) / self._ns_per_cycle()
                self.marks[si[k.I_NMARKS] - 1, MARK_IO] += int(io_cycles)
            self._fold_marks()
            si[k.I_IO_DUE] = min(life._io_due, _NEVER)
            self._load_light()
        elif reason == k.R_DEAD:
            return True
        elif reason == k.R_ERROR:
            self._failed()
        elif reason == k.R_OUTBOX:
            self._flush_outbox()
            need = int(si[k.I_NEED])
            if need > self.out_i.shape[1]:
                self.out_i = np.zeros((5, need), np.int64)
                self.out_f = np.zeros((7, need))
        elif reason == k.R_GROW_MEM:
            life.memory.adopt(int(si[k.I_N]), int(si[k.I_NEXT_ID]), int(si[k.I_SPILLED]))
            life.memory.reserve(int(si[k.I_NEED]))
        elif reason == k.R_GROW_FB:
            self._reserve_feedback(int(si[k.I_NEED]))
        elif reason == k.R_GROW_QUEUE:
            # q_count + k: the events past queue_capacity are dropped, not stored
            self._grow_queue(min(int(si[k.I_NEED]), life.config.queue_capacity))
        elif reason == k.R_COUNTS:
            counts = life.environment.counts
            assert counts is not None
            counts.index = int(si[k.I_IDX + k.ST_COUNTS])  # the kernel's, not a stale one
            counts.refill_if_empty()
            si[k.I_IDX + k.ST_COUNTS] = counts.index
        elif reason == k.R_SCRATCH:
            need = int(si[k.I_NEED])
            self.scratch_i = np.zeros((3, need), np.int64)
            self.scratch_f = np.zeros((2, need))
        elif reason == k.R_MARKS:
            self._fold_marks()
        else:  # pragma: no cover - a kernel bug
            raise RuntimeError(f"unknown kernel stop reason {reason}")
        if reason != k.R_IO:
            self._bind()  # the stops above may have replaced arrays
        return reason in (k.R_IO, k.R_ERROR) and (not life.alive or life._stop.is_set())

    def _failed(self) -> None:
        """A tick refused a non-finite delta: Life._stage_failed, as the Python engine does."""
        k, si, sf = self.k, self.si, self.sf
        self._flush_outbox()
        self._store_light()
        # the tick stopped before collecting its feedback: drop it, as _stage_failed does
        b = int(si[k.I_TICKS]) % self.fb_b.shape[1]
        f = int(self.fb_b[0, b])
        while f >= 0:
            following = int(self.fb_i[f, k.FB_NEXT])
            self.fb_i[f, k.FB_NEXT] = si[k.I_FB_FREE]
            si[k.I_FB_FREE] = f
            si[k.I_FB_N] -= 1
            f = following
        self.fb_b[:, b] = -1
        d = sf[k.S_ERR : k.S_ERR + 3].tolist()
        self.life._stage_failed(
            StageError(
                f"refused non-finite vital delta (energy {d[0]!r}, stability {d[1]!r}, "
                f"integrity {d[2]!r})"
            )
        )
        # _stage_failed may have spilled (Python's enforce_capacity) and cost integrity
        mem = self.life.memory
        si[k.I_N], si[k.I_NEXT_ID], si[k.I_SPILLED] = mem.rows, mem.next_id, mem.spilled
        si[k.I_NV] = 0
        self._load_light()

    # -- helpers --------------------------------------------------------------------------------

    def _bind(self) -> None:
        """The kernel's arguments after ``max_ticks`` and ``dt``, bound once.

        NOTE: kept in a tuple for speed (35 attribute reads per call cost ~2 µs, a warm
        real-time burst ~10 µs); rebound whenever an array is replaced.
        """
        self._args = (
            self.cf,
            self.ci,
            self.sf,
            self.si,
            self.tp,
            *self.life.memory.storage(),
            self.fb_i,
            self.fb_f,
            self.fb_b,
            self.q_t,
            self.q_x,
            self.recent,
            self.hist_t,
            self.hist_m,
            self.out_i,
            self.out_f,
            self.victims,
            self.scratch_i,
            self.scratch_f,
            self.words,
            self.before,
            self.streams[0].array,
            self.streams[1].array,
            self.streams[2].array,
            self._counts_block(),
            self.marks,
            self.gaps,
            self.lut,
        )

    def _counts_block(self) -> np.ndarray:
        counts = self.life.environment.counts
        return counts.array if counts is not None else self._no_counts

    _no_counts = np.zeros(1, np.int64)

    def _flush_outbox(self) -> None:
        k, si = self.k, self.si
        n = int(si[k.I_OUT_N])
        if n == 0:
            return
        oi, of = self.out_i[:, :n], self.out_f[:, :n]
        # copies: the archive may keep what it is given (the SQLite writer queues it), and the
        # outbox is reused
        self.life.memory.spill(
            {
                "significance": of[k.O_SIG].copy(),
                "weight": of[k.O_WEIGHT].copy(),
                "timestamp": of[k.O_TS].copy(),
                "event_type": oi[k.O_TYPE].astype(np.int16),
                "id": oi[k.O_ID].copy(),
                "subjective_timestamp": of[k.O_STS].copy(),
                "tick": oi[k.O_TICK].copy(),
                "feedback_energy": of[k.O_FE].astype(np.float32),
                "feedback_stability": of[k.O_FS].astype(np.float32),
                "feedback_integrity": of[k.O_FI].astype(np.float32),
                "kind": oi[k.O_KIND].astype(np.int8),
                "action": oi[k.O_ACTION].astype(np.int8),
            }
        )
        si[k.I_OUT_N] = 0

    def _fold_marks(self) -> None:
        k, si = self.k, self.si
        n = int(si[k.I_NMARKS])
        if n == 0:
            return
        marks = self.marks[:n]
        rel = np.rint((marks - marks[:, :1]) * self._ns_per_cycle()).astype(np.int64)
        self.life.metrics.add_samples(rel)
        si[k.I_NMARKS] = 0

    def _load_feedback(self, rows: list[list[Any]], tick: int) -> None:
        """Chain the canonical rows (by due, then insertion) into the kernel's buckets."""
        k, si = self.k, self.si
        latest = max((int(r[0]) for r in rows), default=tick)
        # more buckets than the longest delay, a power of two (the kernel masks, not divides)
        buckets = 1 << max(self.life.config.feedback_max_ticks, latest - tick).bit_length()
        self.fb_b = np.full((2, buckets), -1, np.int64)
        self._reserve_feedback(len(rows) + 1)
        for f, (due, e0, s0, i0, t, a, sig) in enumerate(rows):
            self.fb_i[f] = (due, t, a, -1)
            self.fb_f[f] = (e0, s0, i0, sig)
            b = int(due) % buckets
            if self.fb_b[0, b] < 0:
                self.fb_b[0, b] = f
            else:
                self.fb_i[self.fb_b[1, b], k.FB_NEXT] = f
            self.fb_b[1, b] = f
        si[k.I_FB_N] = len(rows)
        si[k.I_FB_TOP] = len(rows)
        si[k.I_FB_FREE] = -1

    def _feedback_rows(self) -> list[tuple[Any, ...]]:
        """The pending entries as canonical rows: by due tick, then insertion order."""
        k, si = self.k, self.si
        tick = int(si[k.I_TICKS])
        buckets = self.fb_b.shape[1]
        nxt = self.fb_i[:, k.FB_NEXT]
        out = []
        for due in range(tick + 1, tick + buckets + 1):
            f = int(self.fb_b[0, due % buckets])
            while f >= 0:
                d, t, a = (int(x) for x in self.fb_i[f, :3])
                if d != due:
                    raise RuntimeError(f"feedback bucket {due % buckets} holds due {d}, not {due}")
                e0, s0, i0, sig = self.fb_f[f].tolist()
                out.append((d, e0, s0, i0, t, a, sig))
                f = int(nxt[f])
        if len(out) != si[k.I_FB_N]:
            raise RuntimeError(f"feedback book holds {si[k.I_FB_N]} entries, found {len(out)}")
        return out

    def _ns_per_cycle(self) -> float:
        """Over the engine's whole life so far: the cycle counter runs at a constant rate on
        current x86 CPUs, so a long baseline gives an exact ratio."""
        ns = time.perf_counter_ns() - self._ns0
        cycles = self.k.cycles() - self._cycles0
        return ns / cycles if cycles > 0 and ns > 0 else 1.0

    def _reserve_feedback(self, need: int) -> None:
        if need > len(self.fb_i):
            size = max(need, 2 * len(self.fb_i))
            fb_i = np.zeros((size, 4), np.int64)
            fb_f = np.zeros((size, 4))
            fb_i[: len(self.fb_i)] = self.fb_i
            fb_f[: len(self.fb_f)] = self.fb_f
            self.fb_i, self.fb_f = fb_i, fb_f

    def _append_to_ring(self, items: list[tuple[int, float]]) -> None:
        """Queue ``items`` (type, intensity) after the ring's events, growing it if needed.

        The caller holds the queue lock and has applied the capacity rule.
        """
        k, si = self.k, self.si
        count = int(si[k.I_Q_COUNT])
        self._grow_queue(count + len(items))
        size = len(self.q_t)
        tail = (int(si[k.I_Q_HEAD]) + count) % size
        for t, x in items:
            self.q_t[tail] = t
            self.q_x[tail] = x
            tail = tail + 1 if tail + 1 < size else 0
        si[k.I_Q_COUNT] = count + len(items)
        self.life._queued_elsewhere = count + len(items)

    def _grow_queue(self, need: int) -> None:
        """Make the ring hold at least ``need`` events, keeping their order (doubling, but not
        past queue_capacity unless ``need`` itself is larger)."""
        size = len(self.q_t)
        if need <= size:
            return
        new = max(need, min(self.life.config.queue_capacity, 2 * size))
        k, si = self.k, self.si
        count = int(si[k.I_Q_COUNT])
        idx = (int(si[k.I_Q_HEAD]) + np.arange(count)) % size
        q_t = np.zeros(new, np.int64)
        q_x = np.zeros(new)
        q_t[:count] = self.q_t[idx]
        q_x[:count] = self.q_x[idx]
        self.q_t, self.q_x = q_t, q_x
        si[k.I_Q_HEAD] = 0
