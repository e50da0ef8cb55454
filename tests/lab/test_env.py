"""The environment a trial records: whether the code it ran differs from its commit."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lifelab.lab.env import git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_results_under_data_do_not_make_the_code_dirty(tmp_path):
    """A sweep writing its tables under data/ leaves the tree clean; a changed or new source file
    (or a changed tracked file anywhere but data/) makes it dirty."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kept.parquet").write_text("old\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    commit, dirty = git_state(tmp_path)
    assert len(commit) == 40 and not dirty
    (tmp_path / "data" / "new.parquet").write_text("rows\n")
    (tmp_path / "data" / "kept.parquet").write_text("replaced\n")
    assert git_state(tmp_path) == (commit, False)
    (tmp_path / "new.py").write_text("y = 2\n")
    assert git_state(tmp_path) == (commit, True)
    (tmp_path / "new.py").unlink()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (commit, True)
