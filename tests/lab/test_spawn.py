"""The one worker spawn: output, failures with stderr tails, timeout and cancel kill the group."""

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from lifelab.exceptions import LifelabError
from lifelab.lab import spawn
from lifelab.lab.spawn import (
    SOURCE_ROOT,
    STDERR_TAIL_CHARS,
    WorkerCancelled,
    WorkerError,
    WorkerFailed,
    WorkerStartError,
    WorkerTimeout,
    run_worker,
    worker_env,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")

# A grandchild that sleeps two minutes in its parent's process group, holding none of its
# pipes (so only a kill ends it early, not the pipes closing).
GRANDCHILD = (
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)
# A worker that starts a grandchild, writes both pids to the file named by its first argument,
# then sleeps a minute itself.
FAMILY = f"""
import os, subprocess, sys, time
child = {GRANDCHILD}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("%d %d" % (os.getpid(), child.pid))
os.replace(tmp, sys.argv[1])
time.sleep(60)
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _gone(pid: int) -> bool:
    """The process no longer runs: no such pid, or a zombie (dead, waiting for its reaper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _wait_gone(pid: int, limit_s: float = 30.0) -> bool:
    """Whether ``pid`` is gone within ``limit_s`` (an orphan is reaped by init, not at once)."""
    deadline = time.monotonic() + limit_s
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pids(path: Path) -> tuple[int, int]:
    worker, grandchild = path.read_text().split()
    return int(worker), int(grandchild)


def test_success_returns_stdout_and_the_last_json_line():
    """A worker that exits 0 gives its whole stdout, its stderr tail and its last JSON line."""
    code = "import sys; print('warming up'); print('note', file=sys.stderr); print('[1, 2]')"
    done = run_worker(_python(code), timeout=60)
    assert done.stdout.splitlines() == ["warming up", "[1, 2]"]
    assert done.stderr_tail == "note"
    assert done.json_line() == [1, 2]
    assert done.argv[0] == sys.executable


def test_no_json_on_the_last_line_is_a_worker_error():
    """A last stdout line that is not JSON is a WorkerError naming the line."""
    done = run_worker(_python("print('{\"a\": 1}'); print('done')"), timeout=60, what="the probe")
    with pytest.raises(WorkerError, match=r"the probe printed no JSON result.*'done'"):
        done.json_line()
    with pytest.raises(WorkerError, match="no output"):
        run_worker(_python("pass"), timeout=60).json_line()


def test_nonzero_exit_raises_worker_failed_with_the_stderr_tail():
    """A failed worker's error carries its exit status and the (bounded) tail of its stderr."""
    code = (
        "import sys\n"
        "for i in range(20000): print(f'line {i}', file=sys.stderr)\n"
        "print('boom: the last words', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    with pytest.raises(WorkerFailed) as info:
        run_worker(_python(code), timeout=60, what="the test worker")
    err = info.value
    assert isinstance(err, LifelabError) and isinstance(err, RuntimeError)
    assert err.exit_code == 3
    assert err.stderr_tail.endswith("boom: the last words")
    assert err.stderr_tail.startswith("…")
    assert len(err.stderr_tail) <= STDERR_TAIL_CHARS + 1
    assert "line 0\n" not in err.stderr_tail
    assert str(err).startswith("the test worker exited with status 3. stderr tail:\n")
    assert err.reason == "the test worker exited with status 3"


@posix_only
def test_a_signal_is_named_in_the_failure():
    """A worker killed by a signal reports the negative status and the signal's name."""
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    with pytest.raises(WorkerFailed, match=r"status -9 \(killed by SIGKILL\)") as info:
        run_worker(_python(code), timeout=60)
    assert info.value.stderr_tail == "(no stderr)"


@posix_only
def test_timeout_kills_the_worker_and_its_grandchild(tmp_path):
    """At its timeout the worker's whole process group is killed: the worker and what it started."""
    pids = tmp_path / "pids"
    with pytest.raises(WorkerTimeout, match="did not finish within 5 s and was killed") as info:
        run_worker(_python(FAMILY, str(pids)), timeout=5)
    assert info.value.timeout_s == 5
    assert info.value.exit_code == -9
    worker, grandchild = _pids(pids)  # written well before the timeout (a minute of sleep after)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # killed and reaped
    assert _wait_gone(grandchild)


@posix_only
def test_cancel_kills_the_worker_and_its_grandchild(tmp_path):
    """Setting cancel while the worker runs kills its group and raises WorkerCancelled."""
    pids = tmp_path / "pids"
    cancel = threading.Event()

    def cancel_once_started() -> None:
        while not pids.exists():
            time.sleep(0.01)
        cancel.set()

    watcher = threading.Thread(target=cancel_once_started, daemon=True)
    watcher.start()
    # The timeout is far beyond the workers' minute of sleep: only the cancel can end this.
    with pytest.raises(WorkerCancelled, match="cancelled and killed"):
        run_worker(_python(FAMILY, str(pids)), timeout=600, cancel=cancel)
    watcher.join()
    worker, grandchild = _pids(pids)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    assert _wait_gone(grandchild)


def test_cancel_set_before_the_start_starts_nothing(monkeypatch):
    """An already-set cancel event raises WorkerCancelled without starting a process."""
    cancel = threading.Event()
    cancel.set()
    monkeypatch.setattr(spawn.subprocess, "Popen", lambda *a, **k: pytest.fail("started"))
    with pytest.raises(WorkerCancelled, match="before it started"):
        run_worker(_python("pass"), timeout=60, cancel=cancel)


@posix_only
def test_a_process_the_worker_leaves_behind_is_killed(tmp_path):
    """A grandchild still running when the worker exits is killed with the worker's group."""
    code = f"import subprocess, sys\nchild = {GRANDCHILD}\nprint(child.pid)\n"
    done = run_worker(_python(code), timeout=60)
    assert _wait_gone(int(done.json_line()))


def test_a_program_that_cannot_start_is_a_worker_start_error(tmp_path):
    """A missing program raises WorkerStartError naming it, chained to the OSError."""
    missing = str(tmp_path / "no-python")
    with pytest.raises(WorkerStartError, match="could not start the worker") as info:
        run_worker([missing, "-c", "pass"], timeout=60)
    assert missing in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout"):
        run_worker(_python("pass"), timeout=0)


def test_worker_env_puts_this_lifelab_first(monkeypatch):
    """worker_env: this process's variables, extras on top, the source folder first on the path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/elsewhere", str(SOURCE_ROOT)]))
    monkeypatch.setenv("LIFELAB_SPAWN_TEST", "parent")
    env = worker_env({"LIFELAB_SPAWN_EXTRA": "x"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SOURCE_ROOT), "/elsewhere"]
    assert env["LIFELAB_SPAWN_TEST"] == "parent"
    assert env["LIFELAB_SPAWN_EXTRA"] == "x"
    assert worker_env({"PYTHONPATH": "/mine"})["PYTHONPATH"].split(os.pathsep) == [
        str(SOURCE_ROOT),
        "/mine",
    ]


def test_the_worker_runs_in_worker_env(monkeypatch, tmp_path):
    """The worker sees worker_env() plus the extra variables, in the cwd it was given."""
    monkeypatch.setenv("LIFELAB_SPAWN_TEST", "parent")
    code = (
        "import json, os\n"
        "keys = ('PYTHONPATH', 'LIFELAB_SPAWN_TEST', 'LIFELAB_SPAWN_EXTRA')\n"
        "print(json.dumps({**{k: os.environ.get(k) for k in keys}, 'cwd': os.getcwd()}))\n"
    )
    seen = run_worker(
        _python(code), timeout=60, env={"LIFELAB_SPAWN_EXTRA": "x"}, cwd=tmp_path
    ).json_line()
    expected = worker_env({"LIFELAB_SPAWN_EXTRA": "x"})
    assert seen["PYTHONPATH"] == expected["PYTHONPATH"]
    assert seen["PYTHONPATH"].split(os.pathsep)[0] == str(SOURCE_ROOT)
    assert seen["LIFELAB_SPAWN_TEST"] == "parent"
    assert seen["LIFELAB_SPAWN_EXTRA"] == "x"
    assert Path(seen["cwd"]).resolve() == tmp_path.resolve()


def test_the_worker_reads_no_stdin():
    """The worker's stdin is empty: input goes in its arguments (or a file), never a pipe."""
    code = "import json, sys; print(json.dumps(sys.stdin.read()))"
    assert run_worker(_python(code), timeout=60).json_line() == ""


def test_callers_need_not_import_subprocess():
    """The spawn module is the one place lifelab starts worker processes."""
    lab = SOURCE_ROOT / "lifelab"
    starters = sorted(
        str(path.relative_to(SOURCE_ROOT))
        for path in lab.rglob("*.py")
        if "subprocess.Popen(" in path.read_text() or "subprocess.run(" in path.read_text()
    )
    # env.py asks git for the commit (not a worker: a quick query with its own timeout).
    assert starters == ["lifelab/lab/env.py", "lifelab/lab/spawn.py"]


def test_stdout_is_kept_whole():
    """stdout is kept whole, however long (only stderr is bounded)."""
    code = "import json; print('x' * 200_000); print(json.dumps(list(range(5000))))"
    done = run_worker(_python(code), timeout=60)
    assert len(done.stdout.splitlines()[0]) == 200_000
    assert done.json_line() == list(range(5000))
