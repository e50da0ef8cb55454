"""Life: the organism and the only module that sequences a tick.

A tick, in order (DESIGN.md §4): advance the clock; perceive a batch (queue, then the world);
move subjective time; appraise, decide and apply; remember and register feedback; collect due
feedback; maybe queue a memory echo; periodic decay, learning and adaptation; the weakness policy;
keep active memory within capacity.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import numpy as np

from lifelab.config import LifeConfig
from lifelab.exceptions import (
    ConfigError,
    EventError,
    LifeStateError,
    SnapshotError,
    StageError,
    fault_counts,
)
from lifelab.life import behavior, meaning, policy
from lifelab.life.behavior import (
    ABSORB,
    ACTION_NAMES,
    AMPLIFY,
    ECHO_BASE_WAIT,
    FEEDBACK_EPSILON,
    FeedbackBook,
)
from lifelab.life.clock import ClockStopped, RealtimeClock, SimulatedClock
from lifelab.life.compiled import CompiledEngine, make_engine
from lifelab.life.environment import Environment
from lifelab.life.events import ECHO, RECOVERY, Event, TypeTable
from lifelab.life.rng import BlockStream, check_position, streams_for_seed
from lifelab.life.state import SelfState, StateView, recovery_efficiency
from lifelab.memory.active import KIND_EVENT, KIND_FEEDBACK, ActiveMemory, check_columns
from lifelab.memory.archive import Archive, MemoryArchive
from lifelab.observe.metrics import (
    MARK_FEEDBACK,
    MARK_IO,
    MARK_PERCEIVE,
    MARK_PERIODIC,
    MARK_POLICY,
    MARK_REMEMBER,
    MARK_RESPOND,
    MARK_TIME,
    Metrics,
)
from lifelab.store.digest import digest_of
from lifelab.store.persistence import NEVER, Persistence
from lifelab.store.rundir import DEFAULT_ROOT, RunDir
from lifelab.store.snapshot import Capture, check_int, check_number, invalid_field, load_newest

__all__ = ["Life"]


def _seeded_life_id(gen: np.random.Generator) -> str:
    """A uuid4-shaped id drawn from the identity stream of the organism's seed."""
    return uuid.UUID(bytes=gen.bytes(16), version=4).hex


class Life:
    """A continuously-living organism.

    Args:
        config: The organism's configuration (defaults to ``LifeConfig()``).

    Use :meth:`run` for a fixed number of ticks, or :meth:`start`/:meth:`stop` to live in a
    background thread (notebooks), feeding it with :meth:`push` from any thread.
    """

    def __init__(
        self,
        config: LifeConfig | None = None,
        *,
        _run: RunDir | None = None,
        _life_id: str | None = None,
    ) -> None:
        cfg = config if config is not None else LifeConfig()
        if not isinstance(cfg, LifeConfig):
            raise TypeError(f"config must be a LifeConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.types = TypeTable()
        n_types = len(self.types)
        gens = streams_for_seed(cfg.seed, 5)
        if cfg.clock == "simulated":
            # Identity derives from the seed so that two runs of one config have one digest.
            life_id = _seeded_life_id(gens[4])
            birth_time = 0.0
            self._clock: SimulatedClock | RealtimeClock = SimulatedClock(cfg.dt)
        else:
            life_id = _life_id or uuid.uuid4().hex
            birth_time = time.time()
            self._clock = RealtimeClock(cfg.tick_interval)
        self._state = SelfState(
            life_id=life_id,
            birth_time=birth_time,
            n_types=n_types,
            recent_size=cfg.recent_events_size,
        )
        # The engines work on the plain state; everyone else gets the validating view
        # (state.py says why).
        self.state = StateView(self._state)
        self.persistence: Persistence | None = None
        self.corrupt_files: list[Path] = []
        self.archive: Archive = MemoryArchive(self.types.names)
        if cfg.run_dir is not None:
            run = _run or RunDir.create(cfg.run_dir, cfg.to_dict(), life_id=life_id)
            self.persistence = Persistence(run, cfg, self.types.names)
            self.archive = self.persistence.archive
        self.memory = ActiveMemory(
            cfg.memory_capacity,
            self.archive.append,
            min_weight=cfg.min_weight,
            decay_factor=cfg.decay_factor,
        )
        self.environment = Environment(self.types, cfg.events_per_tick, cfg.events_mode, gens[:3])
        self._uniform = BlockStream(gens[3], lambda g, k: g.random(k))
        self.feedback = FeedbackBook()
        self._wait = self._clock.wait
        self._queue: deque[tuple[int, float]] = deque()
        self._echo: float | None = None  # intensity of the memory echo queued for next tick
        self._queue_lock = threading.Lock()
        # set_world(): the change waiting for the living thread, and the lock that orders it
        self._world_lock = threading.Lock()
        self._world_next: LifeConfig | None = None
        self._base = (
            [r.energy for r in self.types.rows],
            [r.stability for r in self.types.rows],
            [r.integrity for r in self.types.rows],
        )
        self._base_arr = np.array(self._base).T.copy()  # (n_types, 3)
        self._weights = [r.meaning_weight for r in self.types.rows]
        self._refresh_params()
        # NOTE: policy.is_weak inlined in _tick for speed; this tuple is its thresholds.
        self._weak_at = (cfg.weak_energy, cfg.weak_stability, cfg.weak_integrity)
        # NOTE: per-tick config reads cached for speed (a frozen dataclass field is two
        # attribute loads; these four paid ~1 % of a one-event tick in instructions).
        self._echo_p = cfg.echo_probability
        self._crowded = 0.8 * cfg.memory_capacity  # echoes are likelier above this many entries
        self._fb_lo = cfg.feedback_min_ticks
        self._fb_span = cfg.feedback_max_ticks - cfg.feedback_min_ticks + 1
        # counters
        self.events_pushed = 0
        self.events_rejected = 0
        self.events_dropped = 0
        self.events_processed = 0
        self.echoes = 0
        self.ticks_since_echo = 0
        self.zero_vital_ticks = 0
        self.alive = True
        self.actions = [0, 0, 0, 0]
        self.errors: Counter[str] = Counter()
        self.last_error: str | None = None
        self._kept: list[tuple[int, int, float]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._io_due = NEVER
        self.metrics = Metrics(cfg.metrics_every)
        self._sample_at = cfg.metrics_every or NEVER
        self._log_decisions = cfg.log_decisions and self.persistence is not None
        if self.persistence is not None:
            self.persistence.schedule(0)
            self._io_due = self.persistence.next_due
        # Events the compiled engine holds in its own queue ring (0 for the Python engine).
        self._queued_elsewhere = 0
        self._engine: CompiledEngine | None = None
        if cfg.engine == "compiled" and not cfg.log_decisions:
            self._engine = make_engine(self)
            if self._engine is not None:
                self._tick = self._engine.step  # type: ignore[method-assign]

    @property
    def engine(self) -> str:
        """The engine that runs the ticks: ``"compiled"`` or ``"python"`` (the fallback)."""
        return "python" if self._engine is None else "compiled"

    # -- the tick --------------------------------------------------------------------------------

    def _tick(self) -> None:
        s = self._state
        cfg = self.config
        dt = self._wait()
        tick = s.ticks + 1
        s.ticks = tick
        age = s.age + dt
        s.age = age
        # Every metrics_every-th tick is timed stage by stage (m[MARK_PERCEIVE] = the end of
        # perceive, and so on); the other ticks pay one comparison per stage boundary (measured
        # ≤ 1 % at one event per tick).
        m = self.metrics.begin_tick() if tick >= self._sample_at else None

        types, intensities = self._perceive()
        n = len(types)
        if m is not None:
            m[MARK_PERCEIVE] = perf_counter_ns()

        if n == 0:
            peak = None
        elif n == 1:
            peak = abs(intensities[0])
        elif isinstance(intensities, np.ndarray):
            peak = float(np.abs(intensities).max())
        else:
            peak = max(map(abs, intensities))
        s.last_event_intensity = smoothed = meaning.smooth_intensity(s.last_event_intensity, peak)
        s.subjective_time += dt * meaning.subjective_rate(smoothed, s.stability, s.energy)
        if m is not None:
            m[MARK_TIME] = perf_counter_ns()

        kept = self._respond(types, intensities, n, age) if n else None
        if m is not None:
            m[MARK_RESPOND] = perf_counter_ns()
        if kept:
            self._remember(kept, tick, age)
        if m is not None:
            m[MARK_REMEMBER] = perf_counter_ns()

        if tick in self.feedback.pending:
            self._collect_feedback(tick, age)
        self._maybe_echo()
        if m is not None:
            m[MARK_FEEDBACK] = perf_counter_ns()

        if tick % cfg.decay_every == 0:
            self.memory.decay(age)
        if tick % cfg.learn_every == 0:
            behavior.learn(s, *self.memory.type_stats(len(self.types), len(ACTION_NAMES)))
            self._refresh_params()
        if tick % cfg.adapt_every == 0:
            behavior.adapt(s)
            self._refresh_params()
        if m is not None:
            m[MARK_PERIODIC] = perf_counter_ns()

        weak_e, weak_s, weak_i = self._weak_at
        if s.energy <= weak_e or s.stability <= weak_s or s.integrity <= weak_i:
            s.apply_delta(*policy.weakness_penalty(cfg, dt))
            if cfg.mortality_ticks is not None:
                self._check_mortality()
        mem = self.memory
        if mem.next_id - mem.spilled > cfg.memory_capacity:
            mem.enforce_capacity()
        if m is not None:
            m[MARK_POLICY] = perf_counter_ns()
        if tick >= self._io_due:
            self._io(tick)
        if m is not None:
            m[MARK_IO] = perf_counter_ns()
            self._sample_at = tick + self.metrics.next_gap()
            self.metrics.end_tick(m)

    def _io(self, tick: int) -> None:
        """Hand a snapshot capture or a tick-summary record to the writer threads."""
        store = self.persistence
        assert store is not None
        cfg = self.config
        if cfg.snapshot_every and tick % cfg.snapshot_every == 0:
            store.snapshot_async(self.capture())
        if cfg.log_every and tick % cfg.log_every == 0:
            s = self._state
            store.log(
                "tick",
                tick,
                energy=s.energy,
                stability=s.stability,
                integrity=s.integrity,
                memory_active=len(self.memory),
                archive_size=len(self.archive),
                events_processed=self.events_processed,
                queue_depth=len(self._queue),
            )
        store.schedule(tick)
        self._io_due = store.next_due

    def _perceive(self) -> tuple[Any, Any]:
        """Drain at most ``batch_size`` events: first the queue, then this tick's world events.

        A memory echo rolled last tick comes first and on top of ``batch_size`` (it is internal).
        """
        env = self.environment
        k = env.count()
        queue = self._queue
        batch = self.config.batch_size
        if not queue and k <= batch:
            # NOTE: fast path for speed: no queue traffic when nothing is waiting.
            if k == 1:
                t, intensity = env.draw_one()
                types: Any = (t,)
                intensities: Any = (intensity,)
            elif k == 0:
                types = intensities = ()
            else:
                types, intensities = env.draw(k)
                if k < self.config.vector_min_batch:
                    types = types.tolist()
                    intensities = intensities.tolist()
        else:
            if k:
                drawn_t, drawn_i = env.draw(k)
                self._enqueue(zip(drawn_t.tolist(), drawn_i.tolist(), strict=True))
            take = min(batch, len(queue))
            items = [queue.popleft() for _ in range(take)]
            types = [t for t, _ in items]
            intensities = [i for _, i in items]
            if take >= self.config.vector_min_batch:
                types = np.array(types, np.int64)
                intensities = np.array(intensities)
        echo = self._echo
        if echo is not None:
            self._echo = None
            if isinstance(types, np.ndarray):
                types = np.concatenate(((ECHO,), types))
                intensities = np.concatenate(((echo,), intensities))
            else:
                types = (ECHO, *types)
                intensities = (echo, *intensities)
        return types, intensities

    def _respond(self, types: Any, intensities: Any, n: int, age: float) -> Any:
        """Appraise, decide and apply a batch; return what was not ignored (for _remember).

        Returns a list of (type, action, significance) on the scalar path, a tuple of arrays
        (types, actions, significances) on the numpy path, or None when everything was ignored.
        """
        s = self._state
        ctx = meaning.context(s.integrity, s.stability, s.subjective_time / age)
        self.events_processed += n
        if isinstance(types, np.ndarray):
            delta, cost, k_types, k_actions, k_sigs = behavior.respond_batch(
                types,
                intensities,
                self._mult_arr,
                self._thr_arr,
                self._base_arr,
                ctx,
                s.stability,
                s.response_coef,
                recovery_efficiency(age),
            )
            s.apply_delta(float(delta[0]) - cost, float(delta[1]), float(delta[2]))
            s.recent_events.extend(types[-self.config.recent_events_size :].tolist())
            return (k_types, k_actions, k_sigs) if len(k_types) else None
        kept = self._kept
        efficiency = recovery_efficiency(age) if RECOVERY in types else 1.0
        d_e, d_s, d_i, cost = behavior.respond(
            types,
            intensities,
            self._mult,
            self._thr,
            self._base,
            ctx,
            s.stability,
            s.response_coef,
            efficiency,
            kept,
        )
        try:
            s.apply_delta(d_e - cost, d_s, d_i)
        except StageError:
            kept.clear()  # the tick stops here: nothing of it is remembered
            raise
        s.recent_events.extend(types)
        return kept or None

    def _log_kept(self, tick: int, types: Any, actions: Any, sigs: Any) -> None:
        """One ``decision`` log record per non-ignored event (only with log_decisions)."""
        log = self.persistence.log  # type: ignore[union-attr]
        names = self.types.names
        for t, a, sig in zip(types, actions, sigs, strict=True):
            log("decision", tick, event_type=names[t], action=ACTION_NAMES[a], significance=sig)

    def _remember(self, kept: Any, tick: int, age: float) -> None:
        """Write memory entries for what was acted on and register its pending feedback."""
        if isinstance(kept, tuple):
            self._remember_batch(*kept, tick, age)
            return
        if self._log_decisions:
            self._log_kept(tick, *zip(*kept, strict=True))
        s = self._state
        mem_add = self.memory.add
        book = self.feedback
        subjective = s.subjective_time
        e0, s0, i0 = s.energy, s.stability, s.integrity
        lo = self._fb_lo
        span = self._fb_span
        uniform = self._uniform
        actions = self.actions
        for t, action, sig in kept:
            mem_add(t, KIND_EVENT, action, sig, age, subjective, tick)
            actions[action] += 1
            book.add(tick + lo + int(uniform.next() * span), (e0, s0, i0, t, action, sig))
        kept.clear()

    def _remember_batch(
        self, k_types: np.ndarray, k_actions: np.ndarray, k_sigs: np.ndarray, tick: int, age: float
    ) -> None:
        self.memory.add_batch(
            k_types, KIND_EVENT, k_actions, k_sigs, age, self._state.subjective_time, tick
        )
        self._register_feedback_batch(tick, k_types, k_actions, k_sigs)
        if self._log_decisions:
            self._log_kept(tick, k_types.tolist(), k_actions.tolist(), k_sigs.tolist())
        kept = len(k_types)
        amplified = int(np.count_nonzero(k_actions == AMPLIFY))
        if amplified:
            self.actions[AMPLIFY] += amplified
            self.actions[ABSORB] += kept - amplified
        else:
            self.actions[int(k_actions[0])] += kept

    def _register_feedback_batch(
        self, tick: int, types: np.ndarray, actions: np.ndarray, sigs: np.ndarray
    ) -> None:
        """One pending record per distinct delay, grouped by one stable sort (not a mask each)."""
        s = self._state
        lo = self._fb_lo
        span = self._fb_span
        delays = (self._uniform.take(len(types)) * span).astype(np.int64)
        order = np.argsort(delays, kind="stable")
        bounds = np.searchsorted(delays[order], np.arange(span + 1)).tolist()
        types, actions, sigs = types[order], actions[order], sigs[order]
        vitals = (s.energy, s.stability, s.integrity)
        add = self.feedback.add
        for d in range(span):
            a, b = bounds[d], bounds[d + 1]
            if a < b:
                add(tick + lo + d, (*vitals, types[a:b], actions[a:b], sigs[a:b]))

    def _collect_feedback(self, tick: int, age: float) -> None:
        """Due actions whose outcome moved any vital by more than 0.001 become feedback entries."""
        due = self.feedback.pop_due(tick)
        if not due:
            return
        s = self._state
        mem = self.memory
        energy, stability, integrity = s.energy, s.stability, s.integrity
        # Entries in registration order (one rule for every engine): one at a time until the
        # first record of several events, then the rest in one vectorised write.
        rows: list[tuple[Any, ...]] | None = None
        for e0, s0, i0, types, actions, sigs in due:
            d = (energy - e0, stability - s0, integrity - i0)
            if max(abs(d[0]), abs(d[1]), abs(d[2])) <= FEEDBACK_EPSILON:
                continue
            if isinstance(types, np.ndarray):
                if rows is None:
                    rows = []
                rows.append((types, actions, sigs, d))
            elif rows is None:
                mem.add(types, KIND_FEEDBACK, actions, sigs, age, s.subjective_time, tick, d)
            else:  # a tuple of one makes a single event concatenable
                rows.append(((types,), (actions,), (sigs,), d))
        if rows is None:
            return
        counts = [len(r[0]) for r in rows]
        payload = np.repeat(np.array([r[3] for r in rows]), counts, axis=0)
        mem.add_batch(
            np.concatenate([r[0] for r in rows]),
            KIND_FEEDBACK,
            np.concatenate([r[1] for r in rows]),
            np.concatenate([r[2] for r in rows]),
            age,
            s.subjective_time,
            tick,
            (payload[:, 0], payload[:, 1], payload[:, 2]),
        )

    def _maybe_echo(self) -> None:
        """One roll per tick (fix: the reference rolled twice) for a memory echo next tick."""
        p = self._echo_p
        if self.ticks_since_echo >= ECHO_BASE_WAIT:
            p *= 2.0
        mem = self.memory
        if mem.next_id - mem.spilled > self._crowded:
            p *= 1.5
        uniform = self._uniform
        if uniform.next() < p:
            self.ticks_since_echo = 0
            self.echoes += 1
            self._echo = -0.2 + 0.4 * uniform.next()
        else:
            self.ticks_since_echo += 1

    def _check_mortality(self) -> None:
        s = self._state
        if s.energy == 0.0 and s.stability == 0.0 and s.integrity == 0.0:
            self.zero_vital_ticks += 1
            limit = self.config.mortality_ticks
            if limit is not None and self.zero_vital_ticks >= limit:
                self.alive = False
        else:
            self.zero_vital_ticks = 0

    def _refresh_params(self) -> None:
        """Recompute the cached per-type multipliers and thresholds after learning/adaptation."""
        s = self._state
        self._mult = meaning.type_multipliers(self._weights, s.sensitivity, s.behavior_sensitivity)
        self._thr = list(s.behavior_threshold)
        self._mult_arr = np.array(self._mult)
        self._thr_arr = np.array(self._thr)

    # -- input -----------------------------------------------------------------------------------

    def _enqueue(self, items: Any) -> None:
        queue = self._queue
        cap = self.config.queue_capacity
        with self._queue_lock:
            for item in items:
                if len(queue) < cap:
                    queue.append(item)
                else:
                    self.events_dropped += 1

    def push(self, event: Event | Mapping[str, Any]) -> None:
        """Queue an event from any thread; bad input raises (and is counted), a full queue drops.

        Raises:
            EventError: the event's type, intensity or metadata is refused (a ValueError).
            EventTypeError: the event is not an Event or a mapping (a TypeError).
        """
        try:
            if not isinstance(event, Event):
                event = Event.from_mapping(event)
            t = self.types.index(event.type)
            if self.types.rows[t].internal:
                raise EventError(f"event type {event.type!r} is internal and cannot be pushed")
        except (ValueError, TypeError):
            with self._queue_lock:
                self.events_rejected += 1
            raise
        with self._queue_lock:
            self.events_pushed += 1
            if len(self._queue) + self._queued_elsewhere < self.config.queue_capacity:
                self._queue.append((t, event.intensity))
            else:
                self.events_dropped += 1
        self._clock.poke()  # a compiled engine asleep in its kernel takes it at the next tick

    @property
    def queue_depth(self) -> int:
        return len(self._queue) + self._queued_elsewhere

    # -- the world, changed while living ---------------------------------------------------------

    def set_world(
        self, *, events_per_tick: float | None = None, batch_size: int | None = None
    ) -> LifeConfig:
        """Change the world's rate and the batch size from the next tick on; any thread.

        For a live workbench (the dashboard's sliders). The values are checked now; the thread
        that lives the organism applies them between two ticks, on either engine, and
        ``config`` shows them from then on (the next tick of run() or start() if none is in
        progress). A new rate restarts the fixed mode's fractional carry, on both engines alike,
        so a run that changes its world at the same ticks has the same digest on either. A run
        that never calls this is unchanged.

        A snapshot records the changed configuration, but :meth:`resume` continues with the run
        directory's own: pass the new values there as overrides to keep them.

        Returns:
            The configuration the organism lives with from the next tick.

        Raises:
            ConfigError: a value outside its LifeConfig range, or a new rate for a Poisson
                world (its counts are drawn in blocks at the rate it was born with).
        """
        changes: dict[str, Any] = {}
        if events_per_tick is not None:
            changes["events_per_tick"] = events_per_tick
        if batch_size is not None:
            changes["batch_size"] = batch_size
        with self._world_lock:
            current = self.config
            new = (self._world_next or current).replace(**changes)
            if new.events_per_tick != current.events_per_tick and new.events_mode == "poisson":
                raise ConfigError(
                    "LifeConfig.events_per_tick cannot change while living with "
                    "events_mode='poisson' (counts are drawn in blocks); use 'fixed'"
                )
            self._world_next = new
        if self._engine is None:
            # NOTE: the Python engine takes the change at its next clock reading (the first
            # thing a tick does), so ticks pay nothing for this hook when it is unused.
            self._wait = self._take_world_then_wait
        self._clock.poke()  # a kernel waiting for a deadline returns to Python, which takes it
        return new

    def _take_world_then_wait(self) -> float:
        # reset first, then take: a set_world() racing with this is taken now or next tick.
        # _tick read self.config before this call, but the two fields set_world() changes are
        # read after it (in _perceive and the environment), so the whole tick sees the new world.
        self._wait = self._clock.wait
        self._take_world()
        return self._wait()

    def _take_world(self) -> None:
        """Apply the pending set_world() change (only the living thread calls this)."""
        with self._world_lock:
            new = self._world_next
            if new is None:
                return
            self._world_next = None
            rate_changed = new.events_per_tick != self.config.events_per_tick
            self.config = new
            if rate_changed:
                self.environment.set_rate(new.events_per_tick)
            if self._engine is not None:
                self._engine.take_world(rate_changed)

    # -- living --------------------------------------------------------------------------------

    def run(self, ticks: int) -> dict[str, Any]:
        """Live ``ticks`` ticks in this thread and return :meth:`summary`.

        A stage that raises is counted, costs integrity, and the loop goes on.
        """
        if isinstance(ticks, bool) or not isinstance(ticks, int) or ticks < 0:
            raise ValueError(f"ticks must be a non-negative integer, got {ticks!r}")
        if not self._run_lock.acquire(blocking=False):
            raise LifeStateError("this Life is already running (start() or run() in progress)")
        self._stop.clear()  # a request_stop() made before this run() is not for it
        gc_watch = self.config.metrics_every > 0
        try:
            self.metrics.watch_gc(gc_watch)
            self._clock.begin(self._stop)
            self._live(ticks)
        finally:
            self._clock.end()
            self.metrics.watch_gc(False)
            self._run_lock.release()
        return self.summary()

    def step(self) -> None:
        """Live exactly one tick in this thread (either engine); a failing stage is handled as
        in :meth:`run` (counted, integrity penalty, the organism goes on).

        For benchmarks that time single ticks: ``run(1)`` would put its per-call set-up (run
        lock, GC watch, clock begin/end, the summary) inside every sample, several µs on a tick
        of a few µs. Nothing of that happens here, so a real-time clock does not wait and GC
        pauses are not sampled. Refused while :meth:`run` or :meth:`start` lives.
        """
        if self._run_lock.locked():
            raise LifeStateError("this Life is already running (start() or run() in progress)")
        try:
            self._tick()
        except Exception as exc:
            self._stage_failed(exc)

    def _live(self, ticks: int | None) -> None:
        if self._engine is not None:
            self._engine.live(ticks)
            return
        tick = self._tick
        stop = self._stop
        remaining = ticks
        while self.alive and not stop.is_set():
            if remaining is not None:
                if remaining <= 0:
                    return
                # Run in chunks so a stop request is seen within 512 ticks (a chunk boundary
                # costs one loop iteration; 4 096 made stop() take seconds in slow runs).
                chunk = min(remaining, 512)
                remaining -= chunk
            else:
                chunk = 512  # in real time a stop ends the clock's wait (ClockStopped)
            for _ in range(chunk):
                try:
                    tick()
                except ClockStopped:
                    return
                except Exception as exc:
                    self._stage_failed(exc)
                if not self.alive:
                    return

    def _stage_failed(self, exc: Exception) -> None:
        """Count a failed stage and take the integrity penalty; never re-raise."""
        kind = type(exc).__name__
        self.errors[kind] += 1
        self.last_error = f"{kind}: {exc}"
        s = self._state
        i = s.integrity - self.config.error_integrity_penalty
        s.integrity = 0.0 if i < 0.0 else i
        # Feedback due on this tick is dropped if the failed stage came before its collection:
        # left pending, it would never come due again (a leak, and a canonical state that
        # remembers the failure forever).
        self.feedback.pop_due(s.ticks)
        # The failed stage may have skipped the end of the tick; the capacity bound must hold
        # after every tick all the same (DESIGN §2 invariant 5).
        mem = self.memory
        if mem.next_id - mem.spilled > self.config.memory_capacity:
            mem.enforce_capacity()
        if self.persistence is not None and self.errors[kind] == 1:
            # logged once per kind (counted always), so a failing stage cannot flood the logs
            self.persistence.log("error", s.ticks, error=kind, message=str(exc))
            self.persistence.logs.request_flush("error")

    def start(self) -> None:
        """Live in a background daemon thread until :meth:`stop` (paced in real-time mode)."""
        if not self._run_lock.acquire(blocking=False):
            raise LifeStateError("this Life is already running (start() or run() in progress)")
        self._stop.clear()

        def target() -> None:
            try:
                self.metrics.watch_gc(self.config.metrics_every > 0)
                self._clock.begin(self._stop)
                self._live(None)
            finally:
                self._clock.end()
                self.metrics.watch_gc(False)
                self._run_lock.release()

        self._thread = threading.Thread(target=target, name="lifelab-life", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> dict[str, Any]:
        """Stop a background run started with :meth:`start`, wait for it, return the summary."""
        thread = self._thread
        if thread is None:
            raise LifeStateError("stop() without start()")
        self._stop.set()
        self._clock.interrupt()
        thread.join(timeout)
        if thread.is_alive():
            raise LifeStateError(f"the life thread did not stop within {timeout} s")
        self._thread = None
        self._stop.clear()
        return self.summary()

    def request_stop(self) -> None:
        """Ask the run() or start() in progress to return at the next tick boundary.

        Returns at once; safe from any thread and from a signal handler (the CLI's SIGINT and
        SIGTERM). A real-time wait ends at once, a simulated run() within a chunk: 512
        ticks on the Python engine, 16 384 (one kernel call) on the compiled one.
        """
        self._stop.set()
        self._clock.interrupt()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reading -------------------------------------------------------------------------------

    def plan(self) -> dict[str, int]:
        """Types that may come next, by how often they followed the latest pattern."""
        if self._engine is not None:
            self._engine.settle()
        nexts = behavior.potential_sequences(self._state.recent_events, self._state.time_ratio)
        return {self.types.names[t]: c for t, c in nexts.most_common()}

    def is_weak(self) -> bool:
        return policy.is_weak(self._state, self.config)

    @property
    def entries_written(self) -> int:
        return self.memory.next_id

    def summary(self) -> dict[str, Any]:
        """The run summary of DESIGN.md §5 (real-time runs add lateness, drift and CPU)."""
        s = self._state
        out: dict[str, Any] = {
            "run_dir": self.config.run_dir,
            "ticks": s.ticks,
            "digest": self.digest(),
            "energy": s.energy,
            "integrity": s.integrity,
            "stability": s.stability,
            "memory_active": len(self.memory),
            "archive_size": len(self.archive),
            "entries_written": self.entries_written,
            "events_processed": self.events_processed,
            "events_rejected": self.events_rejected,
            "events_dropped": self.events_dropped,
            "age_s": s.age,
            "subjective_time_s": s.subjective_time,
            "time_perception": s.time_perception,
            "weak": self.is_weak(),
            "alive": self.alive,
            "errors": sum(self.errors.values()),
            "actions": dict(zip(ACTION_NAMES[1:], self.actions[1:], strict=True)),
        }
        out.update(self._clock.stats())
        return out

    def metrics_summary(self) -> dict[str, float]:
        """Every metric of the run by name (units in the names): the tick count; what
        :attr:`metrics` measured (tick and stage timings, RSS, GC); the organism's counters and
        its failed stages by kind (``stage_errors_<kind>``); with a run directory, what its
        writers did and their faults (:meth:`Persistence.stats`)."""
        mem = self.memory
        out: dict[str, float] = {"ticks": self._state.ticks, **self.metrics.summary()}
        out.update(
            events_processed=self.events_processed,
            events_pushed=self.events_pushed,
            events_rejected=self.events_rejected,
            events_dropped=self.events_dropped,
            entries_written=mem.next_id,
            entries_spilled=mem.spilled,
            errors=sum(self.errors.values()),
            queue_depth=self.queue_depth,
            memory_active=len(mem),
            archive_size=len(self.archive),
            memory_bytes=mem.nbytes(),
            **fault_counts("stage_errors", self.errors),
        )
        if self.persistence is not None:
            out.update(self.persistence.stats())
        return out

    def canonical(self) -> dict[str, Any]:
        """Everything the digest covers, JSON-ready (no paths, no wall-clock readings)."""
        if self._engine is not None:
            self._engine.settle()
        state = self._state.to_dict()
        if self._clock.realtime:
            state.pop("birth_time")
        return {
            "state": state,
            "feedback": self.feedback.to_list(),
            "queue": list(self._queue),
            "echo": self._echo,
            "rng": {
                "environment": self.environment.get_state(),
                "uniform": self._uniform.get_state(),
            },
            "counters": {
                "entries_written": self.memory.next_id,
                "spilled": self.memory.spilled,
                "archive_size": len(self.archive),
                "events_processed": self.events_processed,
                "echoes": self.echoes,
                "ticks_since_echo": self.ticks_since_echo,
                "zero_vital_ticks": self.zero_vital_ticks,
                "actions": list(self.actions),
            },
        }

    def digest(self) -> str:
        """Hex digest of the canonical state and the active memory columns."""
        return digest_of(self.canonical(), self.memory.export())

    # -- persistence -----------------------------------------------------------------------------

    def capture(self) -> Capture:
        """Everything needed to resume exactly, as of now (cheap: the tick thread only copies).

        Active memory comes as :class:`~lifelab.memory.active.CapturedColumns`: the tick thread
        copies what changed since the newest capture already assembled, and whoever reads the
        columns first (the snapshot thread, for a snapshot) assembles them, exactly.
        """
        extra: dict[str, Any] = {
            "config": self.config.to_dict(),
            "type_names": list(self.types.names),
            "events_pushed": self.events_pushed,
            "events_rejected": self.events_rejected,
            "events_dropped": self.events_dropped,
            "errors": dict(self.errors),
            "alive": self.alive,
        }
        if self._clock.realtime:
            extra["birth_time"] = self._state.birth_time
        return Capture(self._state.ticks, self.canonical(), self.memory.capture(), extra)

    def _restore(self, capture: Capture) -> None:
        """Load a capture into this freshly built organism (same config and type table).

        All or nothing: each owner checks its piece first (:meth:`_check_capture`), and nothing
        changes before every piece passed, so a capture refused with SnapshotError leaves the
        organism as it was born (:meth:`resume` then tries an older snapshot).
        """
        state, book = self._check_capture(capture)
        c = capture.canonical
        self._state.adopt(state)
        self.feedback = book
        self._queue.clear()
        self._queue.extend((int(t), float(i)) for t, i in c["queue"])
        self._echo = None if c["echo"] is None else float(c["echo"])
        self.environment.set_state(c["rng"]["environment"])
        self._uniform.set_state(c["rng"]["uniform"])
        counters = c["counters"]
        # as_base: the next snapshot copies only what changed since this one (see capture())
        self.memory.load(
            capture.columns, counters["entries_written"], counters["spilled"], as_base=True
        )
        self.events_processed = counters["events_processed"]
        self.echoes = counters["echoes"]
        self.ticks_since_echo = counters["ticks_since_echo"]
        self.zero_vital_ticks = counters["zero_vital_ticks"]
        self.actions = [int(a) for a in counters["actions"]]
        extra = capture.extra
        self.events_pushed = int(extra.get("events_pushed", 0))
        self.events_rejected = int(extra.get("events_rejected", 0))
        self.events_dropped = int(extra.get("events_dropped", 0))
        self.errors = Counter({str(k): int(v) for k, v in extra.get("errors", {}).items()})
        self.alive = bool(extra.get("alive", True))
        self._refresh_params()
        every = self.config.metrics_every
        self._sample_at = self._state.ticks + every if every else NEVER
        if self.persistence is not None:
            self.persistence.schedule(self._state.ticks)
            self._io_due = self.persistence.next_due
        if self._engine is not None:
            self._engine.load()

    def _check_capture(self, capture: Capture) -> tuple[SelfState, FeedbackBook]:
        """Every piece of a capture checked by its owner (SnapshotError names the field); the
        state and feedback book it restores to. Nothing from disk is trusted: neither the
        digest nor the checksum is keyed, so a forger can recompute both."""
        c, extra = capture.canonical, capture.extra
        _check_type_names(extra.get("type_names"), self.types.names)
        n_types = len(self.types)
        data = c.get("state")
        if isinstance(data, dict) and "birth_time" not in data:
            # real time: birth_time is no part of the canonical state (nor of the digest)
            data = {**data, "birth_time": extra.get("birth_time", self._state.birth_time)}
        recent_size = self.config.recent_events_size
        state = SelfState.from_snapshot(data, n_types=n_types, recent_size=recent_size)
        if state.ticks != capture.ticks:
            raise SnapshotError(f"header ticks {capture.ticks} != state ticks {state.ticks}")
        book = FeedbackBook.from_snapshot(c.get("feedback"), n_types=n_types)
        rng = c.get("rng")
        if not isinstance(rng, dict):
            raise invalid_field("rng", rng)
        Environment.check_state(rng.get("environment"))
        check_position(rng.get("uniform"), "rng.uniform")
        _check_queue(c.get("queue"), c.get("echo", "missing"), n_types)
        counters = _check_counters(c.get("counters"))
        check_columns(
            capture.columns,
            n_types=n_types,
            next_id=counters["entries_written"],
            spilled=counters["spilled"],
        )
        _check_extra(extra)
        return state, book

    def snapshot(self) -> Path:
        """Write a snapshot now (synchronously) and return its path; needs a run directory."""
        if self.persistence is None:
            raise LifeStateError("snapshot() needs a run directory (LifeConfig(run_dir=...))")
        if self.running:
            raise LifeStateError("stop() the background run before snapshot()")
        return self.persistence.snapshot_now(self.capture())

    def close(self) -> Path | None:
        """Clean shutdown: final snapshot, logs flushed, archive committed. Idempotent.

        Returns the final snapshot's path (None without a run directory or when already closed).
        """
        if self.running:
            self.stop()
        if self.persistence is None:
            return None
        return self.persistence.close(self.capture())

    def __enter__(self) -> Life:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def run_dir(self) -> Path | None:
        return None if self.persistence is None else self.persistence.path

    @classmethod
    def create_run(cls, config: LifeConfig, root: str | Path = DEFAULT_ROOT) -> Life:
        """A Life in a new run directory ``<root>/<UTC timestamp>-<life_id[:8]>``."""
        if config.clock == "simulated":
            life_id = _seeded_life_id(streams_for_seed(config.seed, 5)[4])
        else:
            life_id = uuid.uuid4().hex
        path = RunDir.default_path(life_id, root)
        return cls(config.replace(run_dir=str(path)), _life_id=life_id)

    @classmethod
    def resume(cls, run_dir: str | Path, **overrides: Any) -> Life:
        """Continue a run from its newest intact snapshot (corrupt ones are skipped, warned).

        ``overrides`` change LifeConfig fields for the rest of the run (not seed or clock).
        Archive rows spilled after that snapshot are rolled back: the replay writes them again.
        """
        run = RunDir.open(run_dir)
        meta = run.read_meta()
        for fixed in ("seed", "clock", "run_dir"):
            if fixed in overrides:
                raise LifeStateError(f"{fixed} cannot change on resume")
        values = {**meta["config"], **overrides, "run_dir": str(run.path)}
        config = LifeConfig.from_mapping(values)
        life = cls(config, _run=run)
        persistence = life.persistence
        assert persistence is not None
        try:
            # the newest snapshot that reads intact and that every owner accepts is restored
            capture, corrupt = load_newest(run.snapshots, life._restore)
        except BaseException:
            # e.g. a snapshot of another type table: stop the writers, raise what went wrong
            with contextlib.suppress(Exception):
                persistence.close(None)
            raise
        life.corrupt_files = corrupt
        archive = persistence.archive
        if capture is None:
            archive.rollback(0, -1)  # nothing is covered: the replay starts from birth
        else:
            counters = capture.canonical["counters"]
            # Roll back what spilled after the snapshot: the rows past its archive_size (the
            # SQLite archive of old runs finds them by id: those written after it, and the
            # snapshot's active ids that reached the archive before the crash).
            last_id = counters["entries_written"] - 1
            archive.rollback(counters["archive_size"], last_id, capture.columns["id"])
            if len(archive) != counters["archive_size"]:
                raise LifeStateError(
                    f"{run.archive} holds {len(archive)} rows where the snapshot covers "
                    f"{counters['archive_size']}: the archive lost committed rows"
                )
        return life


# -- Life's own pieces of a snapshot (the other pieces are checked by their owners) ----------------

_COUNTERS = (
    "entries_written",
    "spilled",
    "archive_size",
    "events_processed",
    "echoes",
    "ticks_since_echo",
    "zero_vital_ticks",
)


def _check_type_names(names: Any, ours: tuple[str, ...]) -> None:
    """A snapshot of another type table is refused with LifeStateError: not corrupt, but of
    another organism (None: a capture that does not say)."""
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise invalid_field("extra.type_names", names)
    if names != list(ours):
        raise LifeStateError(
            f"snapshot event types {names} differ from this organism's {list(ours)}"
        )


def _check_queue(queue: Any, echo: Any, n_types: int) -> None:
    """The input queue ([type, intensity] pairs of known types) and the pending echo."""
    if not isinstance(queue, list):
        raise invalid_field("queue", queue)
    for item in queue:
        if not isinstance(item, list) or len(item) != 2:
            raise invalid_field("queue[]", item)
        check_int("queue[].type", item[0], 0, n_types - 1)
        check_number("queue[].intensity", item[1], -1.0, 1.0)
    if echo is not None:
        check_number("echo", echo, -1.0, 1.0)


def _check_counters(counters: Any) -> dict[str, Any]:
    """Counts ≥ 0, one per action, and every spilled entry archived."""
    if not isinstance(counters, dict):
        raise invalid_field("counters", counters)
    for name in _COUNTERS:
        check_int(f"counters.{name}", counters.get(name))
    actions = counters.get("actions")
    if not isinstance(actions, list) or len(actions) != len(ACTION_NAMES):
        raise invalid_field("counters.actions", actions)
    for v in actions:
        check_int("counters.actions[]", v)
    if counters["archive_size"] != counters["spilled"]:
        raise SnapshotError("archive_size differs from the spilled count")
    return counters


def _check_extra(extra: Mapping[str, Any]) -> None:
    """What a capture carries beside the canonical state: the input and failure counters."""
    for name in ("events_pushed", "events_rejected", "events_dropped"):
        check_int(f"extra.{name}", extra.get(name, 0))
    errors = extra.get("errors", {})
    if not isinstance(errors, dict):
        raise invalid_field("extra.errors", errors)
    for n in errors.values():
        check_int("extra.errors[]", n)
    if not isinstance(extra.get("alive", True), bool):
        raise invalid_field("extra.alive", extra.get("alive"))
