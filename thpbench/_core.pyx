# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython core of thpbench: the kernel's hot state machines.

One extension module; its parts live in include files so that each mechanism can be
read on its own:

* ``_buddy.pxi`` -- the buddy allocator with migratetypes (mm/page_alloc.c).
* ``_mm.pxi`` -- page tables, rmap, the THP fault, collapse and split paths
  (mm/memory.c, mm/huge_memory.c, mm/khugepaged.c).
* ``_tlb.pxi`` -- TLBs, page-walk caches, native / nested / shadow walks.
* ``_compaction.pxi`` -- memory compaction (mm/compaction.c) and the PageBook mover.
* ``_mm_compaction.pxi`` -- compaction in the simulated kernel: the MMCore mover, the
  allocator slow path with direct compaction (mm/page_alloc.c), the THP fault log.

* ``_reclaim.pxi`` -- LRU lists, page cache, reclaim (mm/vmscan.c, mm/workingset.c).

Policy that a user might want to change arrives as parameters; the Python modules
(``mm.py``, ``tlb.py``, ``virt.py``) hold the rest.
"""

include "_page_alloc.pxi"
include "_memory.pxi"
include "_vmscan.pxi"
include "_tlb.pxi"
include "_compaction.pxi"
include "_migrate.pxi"
