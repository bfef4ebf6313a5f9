"""The Cython core of thpbench: the kernel's hot state machines.

One extension module; its parts live in include files named after the kernel files
they follow, so that each mechanism can be read on its own:

* ``_page_alloc.pxi`` -- the buddy allocator with migratetypes, and the allocator slow
  path of the simulated kernel (wake kswapd, direct compaction, direct reclaim)
  (mm/page_alloc.c).
* ``_memory.pxi`` -- ``MMCore``: page tables, the fault path, mm lifecycle, fork,
  zap / mprotect / mremap, swap (mm/memory.c, mm/mmap.c, mm/mremap.c, mm/swapfile.c).
* ``_rmap.pxi`` -- the reverse map: mapcounts, new and freed anon folios (mm/rmap.c).
* ``_huge_memory.pxi`` -- the THP fault, PMD and folio split, the deferred split queue,
  the huge zero page, the THP fault log (mm/huge_memory.c).
* ``_khugepaged.pxi`` -- khugepaged's scan and collapse (mm/khugepaged.c).
* ``_migrate.pxi`` -- migration through the reverse map: the MMCore mover of
  compaction, pins (mm/migrate.c).
* ``_compaction.pxi`` -- memory compaction and the PageBook mover (mm/compaction.c).
* ``_vmscan.pxi`` -- LRU lists, page cache, reclaim (mm/vmscan.c, mm/workingset.c).
* ``_tlb.pxi`` -- TLBs, page-walk caches, native / nested / shadow walks.

``_core.pxd`` is the contract between them, as mm/internal.h is for mm/: structs, the
cdef classes and every function one part calls in another, grouped by the part that
defines it.  Compiler directives live in meson.build only (``THPBENCH_CYTHON_DEBUG=1``
at configure time turns bounds checks on).  Policy that a user might want to change
arrives as parameters; the Python modules (``thpbench/kernel/``, ``tlb.py``) hold the rest.
"""

include "_page_alloc.pxi"
include "_memory.pxi"
include "_rmap.pxi"
include "_huge_memory.pxi"
include "_khugepaged.pxi"
include "_migrate.pxi"
include "_compaction.pxi"
include "_vmscan.pxi"
include "_tlb.pxi"

# The enum counts that the Python-visible name tuples must match, and the lengths of the
# arrays sized by them (tests/core/test_core_interfaces.py compares them).
cdef LruState _lru_probe
cdef compact_control _cc_probe
cdef TlbCounters _tc_probe
_NAME_TUPLES = {
    # name tuple: (its length, the enum count, the length of the array it names, or None)
    "MM_STAT_NAMES": (len(MM_STAT_NAMES), S_NR_STATS, None),
    "RECLAIM_STAT_NAMES": (len(RECLAIM_STAT_NAMES), RS_NR_STATS, sizeof(_lru_probe.stat) // sizeof(int64_t)),
    "LRU_NAMES": (len(LRU_NAMES), NR_LRU_LISTS, sizeof(_lru_probe.head) // sizeof(int64_t)),
    "SCAN_RESULT_NAMES": (len(SCAN_RESULT_NAMES), SCAN_NR, None),
    "MM_EVENT_NAMES": (len(MM_EVENT_NAMES), EV_NR, None),
    "MIGRATETYPE_NAMES": (len(MIGRATETYPE_NAMES), NR_MIGRATETYPES, None),
    "COMPACT_RESULT_NAMES": (len(COMPACT_RESULT_NAMES), COMPACT_SUCCESS + 1, None),
    "MIGRATE_MODE_NAMES": (len(MIGRATE_MODE_NAMES), K_MIGRATE_SYNC + 1, None),
    "COMPACT_STAT_NAMES": (len(COMPACT_STAT_NAMES), sizeof(CompactStats) // sizeof(int64_t), None),
    "TLB_MODES": (len(TLB_MODES), TLB_MODE_SHADOW + 1, None),
    "fp_head (orders)": (NR_ORDERS_MAX, NR_ORDERS_MAX, sizeof(_cc_probe.fp_head) // sizeof(pfn_t)),
    "walks (page sizes)": (TLB_NR_SIZES, TLB_NR_SIZES, sizeof(_tc_probe.walks) // sizeof(int64_t)),
}


def _mm_stat_array_len():
    """Length of MMCore.stat (sized by S_NR_STATS)."""
    cdef MMCore m = MMCore.__new__(MMCore, BuddyAllocator(1, max_order=0, pageblock_order=0), 1, 1, 0)
    return sizeof(m.stat) // sizeof(int64_t)
