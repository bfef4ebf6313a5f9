"""The compiled core must never be older than its sources (a stale .so is the costliest
bug of a Cython research repo).  meson-python's editable install rebuilds on import; this
test catches any other way of ending up with an old build."""
from pathlib import Path

import thpbench
import thpbench._core as core


def test_core_is_newer_than_its_sources():
    src = Path(thpbench.__file__).parent
    sources = [p for pat in ("_core.pyx", "*.pxi", "_core.pxd") for p in src.glob(pat)]
    so = Path(core.__file__)
    if not sources:      # an installed wheel carries no sources to compare with
        return
    newest = max(sources, key=lambda p: p.stat().st_mtime)
    assert so.stat().st_mtime >= newest.stat().st_mtime, (
        f"{so} is older than {newest}: rebuild with pip install --no-build-isolation -e .")


def test_every_part_is_compiled_in():
    # each .pxi included by _core.pyx contributes names to the module
    assert hasattr(core, "BuddyAllocator")
