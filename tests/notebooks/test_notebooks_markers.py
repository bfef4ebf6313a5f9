"""nbval only honours a marker on a comment line of its own: `x  # NBVAL_CHECK_OUTPUT`
silently checks nothing.  Catch that."""
from pathlib import Path

import pytest

NOTEBOOK_TWINS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.py"))


@pytest.mark.parametrize("twin", NOTEBOOK_TWINS, ids=lambda p: p.name)
def test_nbval_markers_stand_on_their_own_line(twin):
    for n, line in enumerate(twin.read_text().splitlines(), 1):
        if "NBVAL_" in line:
            assert line.strip().startswith("#"), f"{twin.name}:{n}: nbval ignores a marker after code: {line!r}"


def test_some_cells_are_checked():
    assert any("# NBVAL_CHECK_OUTPUT" in p.read_text() for p in NOTEBOOK_TWINS)
