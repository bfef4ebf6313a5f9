"""A simulated Linux kernel, as subsystems: the :class:`Kernel` with its processes, THP
tunables under their sysfs names, compaction (kcompactd) and reclaim (kswapd, LRU lists,
the page cache, slab caches).  The hot state machines live in the Cython core."""
from thpbench.kernel.errors import OutOfMemory, SegmentationFault
from thpbench.kernel.kernel import Kernel, Result
from thpbench.kernel.process import Process, Vma
from thpbench.kernel.tunables import DEFRAG_MODES, ENABLED_MODES, ThpSysfs, VmSysctl

__all__ = ["Kernel", "Result", "Process", "Vma", "OutOfMemory", "SegmentationFault", "ThpSysfs", "VmSysctl",
           "ENABLED_MODES", "DEFRAG_MODES"]
