"""thpbench: a laboratory for memory management under virtualization.

The 2010 linux-mm debate over transparent huge pages, balloon drivers and
transcendent memory, replayed with a simulated kernel whose mechanisms follow
Linux's own (see docs/architecture.md and the notebooks).
"""
from thpbench._core import (
    BuddyAllocator,
    BulkOpError,
    InvariantError,
    MIGRATETYPE_NAMES,
    OP_ALLOC,
    OP_FREE,
    OP_FREE_SLOT,
    OP_REPLACE_SLOT,
)
from thpbench.costs import CostModel
from thpbench.kernel import Clock, Kernel, OutOfMemory, PageKind, PmdKind, Process, Result, SegmentationFault

__all__ = [
    "BuddyAllocator",
    "BulkOpError",
    "Clock",
    "CostModel",
    "Kernel",
    "OutOfMemory",
    "Process",
    "Result",
    "SegmentationFault",
    "InvariantError",
    "MIGRATETYPE_NAMES",
    "OP_ALLOC",
    "OP_FREE",
    "OP_FREE_SLOT",
    "OP_REPLACE_SLOT",
    "PageKind",
    "PmdKind",
]
__version__ = "0.1.0"

# Subpackages that import heavier dependencies load on first use: ``thpbench.tlb``,
# ``thpbench.experiments`` and ``thpbench.widgets`` are reachable after ``import thpbench``.
_LAZY_SUBMODULES = ("tlb", "experiments", "widgets", "workloads", "procfs", "plots", "costs", "units")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"thpbench.{name}")
    raise AttributeError(f"module 'thpbench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
