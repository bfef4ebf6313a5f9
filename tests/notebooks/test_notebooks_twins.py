"""Every notebook has a jupytext py:percent twin with the same cells (reviews read the .py)."""
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_twin_exists_and_matches(nb):
    twin = nb.with_suffix(".py")
    assert twin.exists(), f"{nb.name} has no jupytext twin {twin.name}"
    a = jupytext.read(nb)
    b = jupytext.read(twin)
    cells_a = [(c.cell_type, c.source.strip()) for c in a.cells]
    cells_b = [(c.cell_type, c.source.strip()) for c in b.cells]
    assert cells_a == cells_b, f"{nb.name} and {twin.name} differ: run `jupytext --sync {nb}`"


def test_every_notebook_is_listed():
    assert NOTEBOOKS, "no notebooks found"
