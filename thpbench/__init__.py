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
from thpbench.kernel import Kernel, OutOfMemory, Process, Result, SegmentationFault

__all__ = [
    "BuddyAllocator",
    "BulkOpError",
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
]
__version__ = "0.1.0"
