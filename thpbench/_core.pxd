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


# --- compaction ---------------------------------------------------------------------
# mm/compaction.c (Linux 6.18) over the Zone above; code in _compaction.pxi.
#
# THE MOVER CONTRACT.  Compaction moves buddy state itself; what an allocated block
# means to its owner (page-table entries found through the rmap, a slot of a workload,
# the data) is moved by a mover:
#
#     int migrate_folio(void *ctx, pfn_t src, pfn_t dst, int order) noexcept nogil
#
# * called once per isolated source, in migrate-list order, after targets were taken
#   for the whole batch (migrate_pages_batch's unmap step): `src` is the head of an
#   allocated block of 2**order frames with MOVABLE mobility; `dst` is an isolated
#   free block of the same order (on no free list, flags 0).  The buddy state of src
#   and dst is untouched when it is called.
# * return 0 = moved: the core then makes `dst` an allocated head of `order` with
#   src's mobility and frees `src` (zone_free), pgmigrate_success += 2**order.
# * return nonzero = could not move (pinned: an extra reference, as migrate_folio_move
#   fails with -EAGAIN): nothing changes; after the batch `dst` goes back to the
#   isolated free lists (compaction_free), pgmigrate_fail += 2**order.
# * it must not allocate or free through the Zone, and must not raise.
# A NULL mover moves every block (an allocator without owners).  PageBook below is
# one mover; the THP kernel provides its own (PTEs/PMDs via its reverse map).
#
#     int split_folio(void *ctx, pfn_t head, int order) noexcept nogil
#
# * called when a large folio (order > 0) finds no free target of its order
#   (migrate_pages_batch() gets -ENOMEM and tries try_split_folio()).
# * return 0 = the owner split its folio into 2**order order-0 pages: the core then
#   splits the buddy block (each frame an allocated order-0 head with the same
#   mobility, as split_page) and migrates the pieces after the batch, calling
#   migrate_folio(ctx, piece, dst, 0) for each.
# * return nonzero = it cannot split: the batch ends with -ENOMEM (compact_zone
#   returns COMPACT_CONTENDED unless the scanners met).
# A NULL split_folio with a NULL mover splits freely (no owner to ask); a NULL
# split_folio with a mover never splits.
ctypedef int (*migrate_folio_t)(void *ctx, pfn_t src, pfn_t dst, int order) noexcept nogil
ctypedef int (*split_folio_t)(void *ctx, pfn_t head, int order) noexcept nogil

cdef enum:
    COMPACT_CLUSTER_MAX = 32      # SWAP_CLUSTER_MAX: pages isolated per migrate batch
    COMPACT_MAX_DEFER_SHIFT = 6   # "Do not skip compaction more than 64 times"
    PAGE_ALLOC_COSTLY_ORDER = 3

# enum compact_result (include/linux/compaction.h), in the kernel's order: callers
# take max() over results.
cdef enum:
    COMPACT_NOT_SUITABLE_ZONE = 0
    COMPACT_SKIPPED = 1
    COMPACT_DEFERRED = 2
    COMPACT_NO_SUITABLE_PAGE = 3
    COMPACT_CONTINUE = 4
    COMPACT_COMPLETE = 5
    COMPACT_PARTIAL_SKIPPED = 6
    COMPACT_CONTENDED = 7
    COMPACT_SUCCESS = 8

# enum migrate_mode (include/linux/migrate_mode.h)
cdef enum:
    K_MIGRATE_ASYNC = 0
    K_MIGRATE_SYNC_LIGHT = 1
    K_MIGRATE_SYNC = 2

cdef struct CompactZoneState:     # the compaction fields of struct zone
    pfn_t compact_cached_free_pfn
    pfn_t compact_cached_migrate_pfn[2]   # [0] async, [1] sync
    pfn_t compact_init_migrate_pfn
    pfn_t compact_init_free_pfn
    uint8_t *pageblock_skip       # PB_migrate_skip, one byte a pageblock (owned by CompactionState)
    int64_t compact_considered
    int compact_defer_shift
    int compact_order_failed
    int compact_blockskip_flush

cdef struct CompactStats:         # /proc/vmstat events of compaction and migration
    int64_t compact_migrate_scanned
    int64_t compact_free_scanned
    int64_t compact_isolated
    int64_t compact_stall
    int64_t compact_fail
    int64_t compact_success
    int64_t compact_daemon_wake
    int64_t compact_daemon_migrate_scanned
    int64_t compact_daemon_free_scanned
    int64_t pgmigrate_success
    int64_t pgmigrate_fail

cdef struct compact_control:      # struct compact_control (mm/internal.h), the fields modelled
    Zone *zone
    CompactZoneState *zs
    CompactStats *stats
    int order                     # -1: whole zone (compact_memory, proactive)
    int mode                      # K_MIGRATE_*
    int migratetype               # gfp_migratetype() of the request
    int whole_zone
    int direct_compaction
    int proactive_compaction
    int ignore_skip_hint
    int ignore_block_suitable
    int finish_pageblock
    int contended                 # never set: no locks
    pfn_t migrate_pfn
    pfn_t free_pfn
    int64_t nr_migratepages       # pages (not folios), as the kernel counts
    int64_t nr_freepages
    int64_t total_migrate_scanned
    int64_t total_free_scanned
    # watermarks (pages) that compaction reads; the zone's own live in the simulated kernel
    int64_t wmark_min
    int64_t wmark_low
    int64_t alloc_wmark           # the allocation's watermark (compact_zone's early success test)
    int extfrag_threshold
    int proactive_wmark_low       # fragmentation_score_wmark(true)
    # isolated free blocks: per-order lists linked through Zone.link (as page->lru)
    pfn_t fp_head[16]
    pfn_t fp_tail[16]
    # isolated migrate sources (heads), in isolation order
    pfn_t *migratepages
    int64_t nr_migrate_blocks
    int64_t migrate_cap
    # the mover
    migrate_folio_t migrate_folio
    split_folio_t split_folio
    void *mover_ctx
    pfn_t *split_folios            # order-0 pieces of split folios, migrated after the batch
    int64_t nr_split
    pfn_t *batch_src               # migrate_pages_batch(): the unmapped folios and their targets
    pfn_t *batch_dst
    # optional trace of migrations: (src, dst, order, rc) quadruples
    int64_t *trace
    int64_t trace_len             # records
    int64_t trace_cap
    int want_trace

cdef struct PageBookC:            # what the PageBook mover reads and writes
    int64_t nr_pages
    int64_t *owner                # per frame: owner id (a slot), -1 none
    uint64_t *content             # per frame: a value (the page's data)
    uint8_t *pinned               # per frame: 1 = pinned (an extra reference)
    int64_t *slots                # optional: slot -> head pfn, rewritten on migration
    int64_t nr_slots

# Entry points for other parts of the core (the THP kernel), in _compaction.pxi:
#   compact_control_init(cc, zone, zone_state, stats, order, mode, migratetype) -> 0 / -1
#   then set cc flags, watermarks and cc.migrate_folio / cc.split_folio / cc.mover_ctx;
#   compact_zone_c(cc) -> COMPACT_*;  compact_control_release(cc) always.
#   compaction_suitable_c, compaction_deferred, defer_compaction, compaction_defer_reset,
#   zone_watermark_ok, fragmentation_index_c, extfrag_for_order, fragmentation_score_node.

cdef class CompactionState:
    cdef CompactZoneState zs
    cdef CompactStats stats
    cdef readonly int64_t nr_pages    # the zone it belongs to (size check)
    cdef readonly object pageblock_skip   # numpy uint8[nr_pageblocks], backs zs.pageblock_skip

cdef class PageBook:
    cdef PageBookC c
    cdef readonly object allocator
    cdef readonly object owner        # numpy int64[nr_pages]
    cdef readonly object content      # numpy uint64[nr_pages]
    cdef readonly object pinned       # numpy uint8[nr_pages]
    cdef readonly object slots        # the attached slots array, or None
