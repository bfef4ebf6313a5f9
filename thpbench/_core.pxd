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


# --- TLB ---
# The TLB / page-walk simulation (code in _tlb.pxi; Python face in thpbench/tlb.py).

cdef enum:
    TLB_MODE_NATIVE = 0       # 1D walk of the process page table (4 or 5 levels)
    TLB_MODE_NESTED = 1       # 2D walk: guest table, each guest reference through the host table (EPT/NPT)
    TLB_MODE_SHADOW = 2       # 1D walk of the shadow table the hypervisor keeps (page size min(guest, host))
    TLB_MAX_LEVELS = 6        # per-level arrays indexed by level 1..5 (1 = PTE, 2 = PMD, ... 5 = P4D/PML5)
    TLB_NR_SIZES = 2          # page-size classes: 0 = 4 KiB, 1 = 2 MiB

cdef struct TlbCache:
    # One set-associative LRU structure: a TLB level, a page-walk cache or the nested TLB.
    # n_sets == 0 means "absent": every lookup misses and nothing is filled.
    int64_t n_sets
    int64_t n_ways
    int64_t set_mask           # n_sets - 1 when n_sets is a power of two, else -1 (index by modulo)
    uint64_t *tags             # n_sets * n_ways tags, each set most recent first; 0 = empty (last)
    int64_t hits
    int64_t misses
    int64_t fills
    int64_t evictions          # fills that replaced a valid entry

cdef struct TlbCounters:
    int64_t accesses
    int64_t walks[2]           # completed walks by TLB entry size (4 KiB, 2 MiB)
    int64_t walk_refs          # memory references made by page walks (guest + host)
    int64_t guest_refs         # references to the (guest or native or shadow) page table
    int64_t host_refs          # references to the host (nested) page table
    int64_t nr_tlb_local_flush_one   # entries invalidated one page at a time (arch/x86/mm/tlb.c)
    int64_t nr_tlb_local_flush_all   # full flushes (flush_tlb_all, or a range over the ceiling)
    int64_t flush_range_calls
    int64_t entries_flushed    # valid TLB/PWC entries invalidated by flushes

cdef struct TlbState:
    int mode
    int levels                 # guest (or native) paging levels: 4 or 5
    int host_levels            # host paging levels (nested mode)
    TlbCache *l1[2]            # per page size; both point to one cache when the L1 is shared
    TlbCache *l2[2]
    TlbCache *pwc[6]           # guest/native page-walk caches by level (2..levels); shared when unified
    TlbCache *hpwc[6]          # host (nested) page-walk caches by level
    TlbCache *ntlb             # nested TLB: guest-physical -> host-physical, for the walker
    TlbCache *ptcache          # data-cache lines of page-table entries that walks read
    int pwc_unified
    int hpwc_unified
    # the mappings (contract in tlb.py): per 2 MiB region flags
    const uint8_t *guest_huge  # guest (native) PMD-mapped huge, per 2 MiB virtual region from base_va
    int64_t n_guest
    uint64_t base_va
    int default_guest_huge     # mapping outside the array
    const int64_t *gpa_region  # guest virtual region -> guest-physical 2 MiB region (NULL: identity)
    const uint8_t *host_huge   # host backs guest-physical 2 MiB region with a 2 MiB page
    int64_t n_host
    int default_host_huge
    int host_pt_huge           # host page size backing the guest's page-table pages
    TlbCounters cnt


cdef class TlbSim:
    cdef TlbState s
    cdef TlbCache caches[20]   # storage behind the pointers in s (see _tlb.pxi: CACHE_* slots)
    cdef object _keep          # numpy arrays whose buffers s points into
    cdef public dict geometry  # structure name -> (n_sets, n_ways), as given
