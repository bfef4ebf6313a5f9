# The contract of the Cython core: scalar types, structs and the cdef classes with
# their fields.  Code lives in _core.pyx (and the .pxi files it includes).
from libc.stdint cimport int8_t, uint8_t, int32_t, int64_t, uint64_t

ctypedef int64_t pfn_t


cdef enum:
    NR_ORDERS_MAX = 16        # static size of the per-order arrays (max_order <= 15)
    NR_MIGRATETYPES = 5       # Unmovable, Movable, Reclaimable, HighAtomic, Isolate
    MIGRATE_UNMOVABLE = 0
    MIGRATE_MOVABLE = 1
    MIGRATE_RECLAIMABLE = 2
    MIGRATE_PCPTYPES = 3      # = MIGRATE_HIGHATOMIC, as in include/linux/mmzone.h
    MIGRATE_HIGHATOMIC = 3
    MIGRATE_ISOLATE = 4

# Per-frame flag bits (one byte a frame).  Only the first frame of a block ("head")
# carries flags; every other frame reads 0, as struct page's PageBuddy is set on the
# first page of a free block only.
cdef enum:
    FRAME_BUDDY = 0x01        # head of a free block (PageBuddy); order[] holds buddy_order
    FRAME_ALLOC = 0x02        # head of an allocated block; order[] holds its order
    FRAME_MT_SHIFT = 4        # bits 4..6: migratetype (free list for BUDDY, request for ALLOC)

# Error codes of the nogil layer; the Python boundary turns them into exceptions.
cdef enum:
    E_OK = 0
    E_RANGE = -1
    E_ORDER = -2
    E_ALIGN = -3
    E_DOUBLE_FREE = -4
    E_NOT_HEAD = -5
    E_ORDER_MISMATCH = -6
    E_MIGRATETYPE = -7
    E_OPCODE = -8
    E_SLOT = -9

# Operation codes of BuddyAllocator.run() (exported as OP_ALLOC, ... in Python).
cdef enum:
    K_OP_ALLOC = 0
    K_OP_FREE = 1
    K_OP_FREE_SLOT = 2
    K_OP_REPLACE_SLOT = 3

cdef struct FrameState:       # 2 bytes a frame, together so that one cache miss reads both
    uint8_t flags              # FRAME_* bits
    uint8_t order              # order of the block whose head this is (buddy_order / folio order)

cdef struct Zone:
    int64_t nr_pages           # frames 0..nr_pages-1 (spanned == present: no holes)
    int max_order              # MAX_PAGE_ORDER, inclusive
    int pageblock_order
    int grouping               # 0: page_group_by_mobility_disabled
    int64_t nr_pageblocks
    int32_t *link              # 2 per frame: prev, next of a free block on its list
    FrameState *frame          # per frame: flags and order
    uint8_t *pb_mt             # per pageblock: migratetype
    int32_t head[16][5]        # zone->free_area[order].free_list[mt] (first, -1 if empty)
    int32_t tail[16][5]
    int64_t nr_free[16][5]     # blocks on each list
    int64_t nr_free_pages
    # event counters (tracepoint-like; the kernel has no vmstat for these)
    int64_t nr_alloc
    int64_t nr_alloc_fail
    int64_t nr_free_calls
    int64_t nr_extfrag         # trace_mm_page_alloc_extfrag: fallback allocations
    int64_t nr_claim           # whole pageblocks claimed for another type
    int64_t nr_steal           # blocks stolen without claiming the pageblock


cdef class BuddyAllocator:
    cdef Zone z
    cdef void *_mem            # one allocation backing link/order/flags/pb_mt
    cdef size_t _mem_bytes
    cdef int _raise(self, int rc, pfn_t pfn, int order) except -1
