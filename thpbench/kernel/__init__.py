"""A simulated Linux kernel, as subsystems: the :class:`Kernel` with its processes, THP
tunables under their sysfs names, khugepaged, compaction (kcompactd) and reclaim
(kswapd, LRU lists, the page cache, slab caches), whose daemons run on one
:class:`~thpbench.kernel.clock.Clock`.  The hot state machines live in the Cython core."""
from thpbench.kernel.clock import Clock
from thpbench.kernel.errors import OutOfMemory, SegmentationFault
from thpbench.kernel.kernel import Kernel, Result
from thpbench.kernel.process import PageKind, PmdKind, Process, Vma
from thpbench.kernel.tunables import DEFRAG_MODES, ENABLED_MODES, ThpSysfs, VmSysctl

__all__ = ["Kernel", "Result", "Clock", "Process", "Vma", "PmdKind", "PageKind", "OutOfMemory",
           "SegmentationFault", "ThpSysfs", "VmSysctl", "ENABLED_MODES", "DEFRAG_MODES"]
