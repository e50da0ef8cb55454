"""The public package surface: a small sorted __all__ and a cheap import."""

import subprocess
import sys

import lifelab


def test_all_is_sorted_and_holds_the_contract_names():
    """__all__ is sorted and exposes Life, LifeConfig and Event (DESIGN §5)."""
    assert lifelab.__all__ == sorted(lifelab.__all__)
    assert {"Life", "LifeConfig", "Event"} <= set(lifelab.__all__)


def test_every_public_name_resolves():
    """Each name in __all__ is importable from the package and is the real object."""
    from lifelab.config import LifeConfig
    from lifelab.life.events import Event
    from lifelab.life.loop import Life

    for name in lifelab.__all__:
        assert getattr(lifelab, name) is not None
    assert lifelab.Life is Life
    assert lifelab.LifeConfig is LifeConfig
    assert lifelab.Event is Event


def test_dir_lists_the_public_names():
    """dir(lifelab) is the sorted public surface."""
    assert dir(lifelab) == sorted(lifelab.__all__)


def test_import_lifelab_does_not_import_numpy():
    """``import lifelab`` stays cheap: heavy libraries load on first use (fresh process)."""
    code = "import sys, lifelab; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
