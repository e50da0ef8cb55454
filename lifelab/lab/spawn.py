"""The one way lifelab runs a worker process: own process group, timeout, cancel, stderr tail.

Trials (:mod:`lifelab.lab.runner`), profiles (:mod:`lifelab.lab.profile`), the real-time and
start-up benches (:mod:`lifelab.lab.bench_realtime`) and the scaling study all start their
fresh interpreters through :func:`run_worker`, pyperf style: the manager starts the worker, waits
with a timeout, checks the exit status and reads the result back (stdout here; a worker may also
write a result file the caller reads).

The worker leads a process group of its own (POSIX), so whatever it starts — Scalene re-executes
itself in a child to preload its allocator — belongs to that group; a timeout or a cancel kills
the whole group with SIGKILL and reaps the worker. No SIGTERM grace: a stopped worker's output
is thrown away, so it has nothing to flush, and it must be gone at once. stdout is kept whole;
stderr only its last :data:`STDERR_KEEP_BYTES`, of which the errors show the last
:data:`STDERR_TAIL_CHARS` characters.

Errors, all :class:`WorkerError` (a ``LifelabError`` and a ``RuntimeError``):
:class:`WorkerStartError` (the program could not be started), :class:`WorkerTimeout` (killed at
its timeout), :class:`WorkerFailed` (a non-zero exit status or a signal, with the stderr tail),
:class:`WorkerCancelled` (its ``cancel`` event was set) and a plain :class:`WorkerError` for a
worker that printed no JSON result (:meth:`Completed.json_line`). Callers map them onto their
own errors (``TrialFailed``, ``ProfileError``…).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from lifelab.exceptions import LifelabError

__all__ = [
    "CANCEL_POLL_S",
    "SOURCE_ROOT",
    "STDERR_KEEP_BYTES",
    "STDERR_TAIL_CHARS",
    "Completed",
    "WorkerCancelled",
    "WorkerError",
    "WorkerFailed",
    "WorkerStartError",
    "WorkerTimeout",
    "run_worker",
    "spec_argument",
    "worker_env",
]

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the lifelab package
CANCEL_POLL_S = 0.1  # how often a cancellable worker's manager looks at the cancel event
STDERR_TAIL_CHARS = 2_000  # the stderr shown in errors
STDERR_KEEP_BYTES = 16_384  # the stderr kept while the worker runs (UTF-8: >= 4 bytes a char)

_POSIX = os.name == "posix"


class WorkerError(LifelabError, RuntimeError):
    """A worker process could not be run to a usable result.

    Attributes:
        reason: What went wrong, in one sentence (the message without the stderr tail).
        argv: The command that was run.
        exit_code: The worker's exit status (negative: killed by that signal; None: never ran
            or not known).
        stderr_tail: The last :data:`STDERR_TAIL_CHARS` characters of its stderr, or
            ``"(no stderr)"``; empty where the worker never ran or was cancelled.
    """

    def __init__(
        self,
        reason: str,
        *,
        argv: Sequence[str] = (),
        exit_code: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(f"{reason}. stderr tail:\n{stderr_tail}" if stderr_tail else reason)
        self.reason = reason
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class WorkerStartError(WorkerError):
    """The worker's program could not be started (missing interpreter, bad ``cwd``…)."""


class WorkerTimeout(WorkerError):
    """The worker outlived its timeout; it and its process group were killed.

    Attributes:
        timeout_s: The timeout it was given.
    """

    def __init__(self, reason: str, *, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self.timeout_s = timeout_s


class WorkerFailed(WorkerError):
    """The worker exited with a non-zero status or was killed by a signal."""


class WorkerCancelled(WorkerError):
    """The worker's ``cancel`` event was set: it was not started, or it was killed."""


@dataclass(frozen=True, slots=True)
class Completed:
    """A worker that exited with status 0.

    Attributes:
        argv: The command that was run.
        stdout: Everything it printed on stdout (decoded as UTF-8).
        stderr_tail: The tail of its stderr (warnings, progress), or ``"(no stderr)"``.
        what: The worker's name in messages (``"the trial worker"``).
    """

    argv: tuple[str, ...]
    stdout: str
    stderr_tail: str
    what: str = "the worker"

    def json_line(self) -> Any:
        """The JSON value on the last line of stdout (the pyperf convention for a result).

        Raises:
            WorkerError: stdout is empty or its last line is not JSON.
        """
        lines = self.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, ValueError):
            last = lines[-1][:200] if lines else "(no output)"
            raise WorkerError(
                f"{self.what} printed no JSON result (last stdout line: {last!r})",
                argv=self.argv,
                exit_code=0,
                stderr_tail=self.stderr_tail,
            ) from None


def spec_argument(argv: Sequence[str] | None, usage: str) -> str | None:
    """The worker side of :func:`run_worker`'s calls: the one argument, the spec as JSON text.

    ``argv`` is the worker's arguments (None: ``sys.argv[1:]``). Anything else, or ``-h``,
    prints ``usage`` on stderr and returns None; the worker then exits 2.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(usage, file=sys.stderr)
        return None
    return args[0]


def worker_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every worker: this process's, ``extra`` on top, and this lifelab's
    source folder first on ``PYTHONPATH`` so the worker imports the same lifelab as its manager.
    """
    env = dict(os.environ)
    if extra:
        env.update(extra)
    paths = [str(SOURCE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def run_worker(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    cancel: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    what: str = "the worker",
) -> Completed:
    """Run ``argv`` in a fresh process group and wait for it; return what it printed.

    Args:
        argv: The command, e.g. ``[sys.executable, "-m", "lifelab.lab._worker", spec_json]``.
            Its stdin is empty (``/dev/null``): pass the input in ``argv`` or a file.
        timeout: Seconds the worker may run before it and its group are killed.
        cancel: When set before the start, nothing is started; when set while the worker runs,
            the group is killed within about :data:`CANCEL_POLL_S` seconds.
        env: Variables set on top of :func:`worker_env`.
        cwd: The worker's working folder (default: this process's).
        what: The worker's name in error messages (``"the cprofile worker"``).

    Returns:
        The completed worker's stdout and stderr tail (exit status 0).

    Raises:
        ValueError: ``timeout`` is not a positive number.
        WorkerStartError: the program could not be started.
        WorkerTimeout: the worker did not finish within ``timeout`` seconds.
        WorkerFailed: the worker exited with a non-zero status or was killed by a signal.
        WorkerCancelled: ``cancel`` was set.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    args = [os.fspath(a) for a in argv]
    if cancel is not None and cancel.is_set():
        raise WorkerCancelled(f"{what} was cancelled before it started", argv=args)
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=worker_env(env),
            cwd=cwd,
            start_new_session=_POSIX,
        )
    except OSError as exc:
        raise WorkerStartError(f"could not start {what} ({args[0]}): {exc}", argv=args) from exc
    out = _Drain(proc.stdout, keep=None)
    err = _Drain(proc.stderr, keep=STDERR_KEEP_BYTES)
    try:
        stop = _wait(proc, timeout, cancel)
    finally:
        # On a timeout, a cancel or Ctrl-C: never leave a worker running behind us. Also after
        # a normal exit: whatever the worker started and left running would hold the pipes open
        # (the drains would never end) and outlive it. The group's id cannot be reused while
        # any of its members lives, so this reaches only the worker's processes.
        _kill_group(proc)
        proc.wait()
        out.join()
        err.join()
    tail = _tail(err.text())
    code = proc.returncode
    if stop == "cancel":
        raise WorkerCancelled(f"{what} was cancelled and killed", argv=args, exit_code=code)
    if stop == "timeout":
        raise WorkerTimeout(
            f"{what} did not finish within {timeout:g} s and was killed",
            timeout_s=timeout,
            argv=args,
            exit_code=code,
            stderr_tail=tail,
        )
    if code != 0:
        raise WorkerFailed(
            f"{what} exited with status {code}{_signal_name(code)}",
            argv=args,
            exit_code=code,
            stderr_tail=tail,
        )
    return Completed(tuple(args), out.text(), tail, what)


def _wait(proc: subprocess.Popen[bytes], timeout: float, cancel: threading.Event | None) -> str:
    """Wait for the worker: ``"exited"``, or ``"timeout"``/``"cancel"`` with it still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        try:
            proc.wait(timeout=left if cancel is None else min(left, CANCEL_POLL_S))
            return "exited"
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                return "cancel"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (POSIX), or the worker alone elsewhere."""
    if _POSIX:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return  # the group is gone: nothing left to kill
        except OSError:
            pass
    if proc.returncode is None:
        proc.kill()


class _Drain:
    """A thread reading a pipe to its end, keeping all of it or only its last ``keep`` bytes.

    Reading while the worker runs keeps it from blocking on a full pipe; bounding stderr keeps a
    chatty worker from filling the manager's memory.
    """

    def __init__(self, pipe: IO[bytes] | None, *, keep: int | None) -> None:
        self._pipe = pipe
        self._keep = keep
        self._chunks: list[bytes] = []
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="lifelab-spawn-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._pipe is None:
            return
        with self._pipe:
            for chunk in iter(partial(self._pipe.read1, 65_536), b""):
                self._chunks.append(chunk)
                self._size += len(chunk)
                if self._keep is not None and self._size > 2 * self._keep:
                    kept = b"".join(self._chunks)[-self._keep :]
                    self._chunks, self._size = [kept], len(kept)

    def join(self) -> None:
        self._thread.join()

    def text(self) -> str:
        data = b"".join(self._chunks)
        if self._keep is not None:
            data = data[-self._keep :]
        return data.decode("utf-8", "replace")


def _tail(text: str, chars: int = STDERR_TAIL_CHARS) -> str:
    """The last ``chars`` characters of ``text`` ("…" marks a cut), or ``"(no stderr)"``."""
    text = text.rstrip()
    if not text.strip():
        return "(no stderr)"
    return text if len(text) <= chars else "…" + text[-chars:]


def _signal_name(code: int) -> str:
    if code >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-code).name})"
    except ValueError:
        return " (killed by a signal)"
