"""The one way to find the data shipped with thpbench: real snapshots, traces and
calibrations in the repository's ``data/`` directory (see ``data/README.md``).

An editable install or a checkout finds it beside the package; ``THPBENCH_DATA`` points
elsewhere (a copy of that directory)."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$THPBENCH_DATA`` if set, else ``data/`` beside the package."""
    env = os.environ.get("THPBENCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a shipped file or folder, e.g. ``data_path("procfs", "idle")``; raises
    FileNotFoundError naming the directory searched when it is not there."""
    p = data_dir().joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"{'/'.join(parts)!r} not found in the data directory {data_dir()} "
                                "(set THPBENCH_DATA to a copy of the repository's data/)")
    return p
