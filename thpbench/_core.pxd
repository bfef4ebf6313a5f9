# The contract of the Cython core: scalar types, structs and the cdef classes with
# their fields.  Code lives in _core.pyx (and the .pxi files it includes).
from libc.stdint cimport int8_t, uint8_t, int32_t, uint32_t, int64_t, uint64_t

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
    int32_t head[NR_ORDERS_MAX][NR_MIGRATETYPES]     # zone->free_area[order].free_list[mt] (first, -1 if empty)
    int32_t tail[NR_ORDERS_MAX][NR_MIGRATETYPES]
    int64_t nr_free[NR_ORDERS_MAX][NR_MIGRATETYPES]  # blocks on each list
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
    int64_t walks[TLB_NR_SIZES] # completed walks by TLB entry size (4 KiB, 2 MiB)
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
    TlbCache *l1[TLB_NR_SIZES] # per page size; both point to one cache when the L1 is shared
    TlbCache *l2[TLB_NR_SIZES]
    TlbCache *pwc[TLB_MAX_LEVELS]  # guest/native page-walk caches by level (2..levels); shared when unified
    TlbCache *hpwc[TLB_MAX_LEVELS] # host (nested) page-walk caches by level
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
    int walk_model             # 0: a last-level miss counts a walk but models none (pure-TLB run)
    TlbCounters cnt


# Slots of TlbSim.caches[]
cdef enum:
    CACHE_L1_4K = 0
    CACHE_L1_2M = 1
    CACHE_L2_4K = 2
    CACHE_L2_2M = 3
    CACHE_PWC0 = 4            # 4 + level (level 0 slot: the unified PWC)
    CACHE_HPWC0 = 10          # 10 + level (level 0 slot: the unified host PWC); = CACHE_PWC0 + TLB_MAX_LEVELS
    CACHE_NTLB = 16
    CACHE_ABSENT = 17         # an all-zero cache: n_sets == 0, every lookup misses uncounted
    CACHE_PTCACHE = 18        # data-cache lines holding page-table entries (walker's view)
    CACHE_NR_SLOTS = 19

cdef class TlbSim:
    cdef TlbState s
    cdef TlbCache caches[CACHE_NR_SLOTS]   # storage behind the pointers in s
    cdef object _keep          # numpy arrays whose buffers s points into
    cdef public dict geometry  # structure name -> (entries, ways), as given

# --- reclaim ---------------------------------------------------------------
# The classic two-list LRU, the page cache and reclaim (mm/vmscan.c, mm/swap.c,
# mm/workingset.c, mm/filemap.c); code in _vmscan.pxi, Python face in kernel/reclaim.py.
# Declared before the mm section because MMCore holds a pointer to the LRU state
# (NULL: no reclaim attached; the mm hooks then do nothing).
cdef enum:
    PF_FILE = 0x20            # MMCore.pflags: a page-cache page (owned by the reclaim layer)
    PF_SLAB = 0x40            # MMCore.pflags: a slab page (dentry/inode/kmalloc caches)
    LRU_INACTIVE_ANON = 0     # enum lru_list (include/linux/mmzone.h)
    LRU_ACTIVE_ANON = 1
    LRU_INACTIVE_FILE = 2
    LRU_ACTIVE_FILE = 3
    NR_LRU_LISTS = 4          # LRU_UNEVICTABLE is not modelled
    # LruState.pg bits (struct page flags of the LRU)
    PG_referenced = 0x01
    PG_active = 0x02
    PG_dirty = 0x04
    PG_reclaim = 0x08
    PG_workingset = 0x10
    PG_young = 0x20           # file pages: stands for the accessed bit of the PTEs mapping it


cdef enum:
    # reclaim counters (names: RECLAIM_STAT_NAMES)
    RS_PGSCAN_KSWAPD = 0
    RS_PGSCAN_DIRECT
    RS_PGSTEAL_KSWAPD
    RS_PGSTEAL_DIRECT
    RS_PGSCAN_ANON
    RS_PGSCAN_FILE
    RS_PGSTEAL_ANON
    RS_PGSTEAL_FILE
    RS_PGACTIVATE
    RS_PGDEACTIVATE
    RS_PGREFILL
    RS_WORKINGSET_REFAULT_FILE
    RS_WORKINGSET_ACTIVATE_FILE
    RS_NR_VMSCAN_WRITE
    RS_NR_VMSCAN_IMMEDIATE
    RS_PGPGIN_FILE_KB         # file reads, KiB (vmstat pgpgin adds swap-ins)
    RS_PGPGOUT_KB             # file and swap writes, KiB
    RS_PAGECACHE_HITS
    RS_PAGECACHE_MISSES
    RS_FILE_WRITTEN           # page-cache pages written back (reclaim or flusher)
    RS_FILE_UNMAPPED          # mapped page-cache pages unmapped by reclaim
    RS_NR_STATS

cdef struct LruState:
    int64_t nr_frames
    int32_t *prev             # per folio head: the LRU neighbours (-1 none)
    int32_t *next
    uint8_t *lru              # 0 = on no list, else 1 + enum lru_list
    uint8_t *pg               # PG_* bits above
    int32_t *ino              # page-cache pages: inode number
    int32_t *index            # page-cache pages: page index in the file
    int32_t *fmapcount        # page-cache pages: mappings by processes (no PTEs: see _vmscan.pxi)
    int64_t head[NR_LRU_LISTS]
    int64_t tail[NR_LRU_LISTS]
    int64_t nr[NR_LRU_LISTS]  # pages on each list
    # the page cache: per inode, one entry per page index: >= 0 pfn, -1 empty, <= -2 shadow
    int64_t **imap
    uint64_t **idisk          # per inode: the file's data on disk (one value per page)
    int64_t *isize            # pages
    int32_t nr_inodes
    int32_t inode_cap
    int64_t nr_file_pages
    int64_t nr_dirty
    int64_t nr_mapped
    int64_t nonresident_age   # lruvec->nonresident_age (mm/workingset.c)
    # policy
    int64_t wmark_low
    int64_t wmark_high
    int swappiness
    int thp_swap              # 1: swap a THP whole (thp_swpout); 0: split first (2010)
    int kswapd_wake           # set by an allocation that left free pages below low
    int kswapd_order
    int need_reclaim          # set by a failed order-0 allocation (the caller reclaims, retries)
    int wake_flusher          # reclaim met dirty file pages it may not write
    int64_t stat[RS_NR_STATS] # RECLAIM_STAT_NAMES

cdef struct ScanControl:      # struct scan_control (mm/vmscan.c), the fields modelled
    int64_t nr_to_reclaim
    int64_t nr_reclaimed
    int64_t nr_scanned
    int priority
    int may_writepage
    int may_unmap
    int may_swap
    int order
    int is_kswapd
    int hibernation_mode

# --- mm ---------------------------------------------------------------------
# Page tables, rmap, per-page content and the fault / collapse / split state
# machines (_memory.pxi, _rmap.pxi, _huge_memory.pxi, _khugepaged.pxi).  A page-table entry (PTE or PMD) is one uint64: flag bits
# below, the pfn (or swap slot, or PTE-table slot) from bit 8 up; 0 = pte_none.
cdef enum:
    E_PRESENT = 0x01
    E_WRITE = 0x02
    E_YOUNG = 0x04
    E_DIRTY = 0x08
    E_SWAP = 0x10             # a swap entry (not present); payload = swap slot
    E_ZERO = 0x20             # maps the (huge) zero page
    E_TABLE = 0x40            # PMD only: points to a PTE table; payload = table slot
    E_HUGE = 0x80             # PMD only: maps a 2 MiB folio; payload = head pfn
    E_SHIFT = 8

# an entry's payload (pfn, swap slot, table slot) and an entry from payload and bits
cdef inline int64_t ent_payload(uint64_t e) noexcept nogil:
    return <int64_t>(e >> E_SHIFT)

cdef inline uint64_t mk_ent(int64_t payload, uint64_t bits) noexcept nogil:
    return ((<uint64_t>payload) << E_SHIFT) | bits

# Per-frame page flags of the mm layer (struct page / folio flags).
cdef enum:
    PF_ANON = 0x01            # head of an anonymous folio owned by the mm layer
    PF_DEFERRED = 0x02        # on the deferred split queue (folio->_deferred_list)
    PF_PARTIAL = 0x04         # PG_partially_mapped
    PF_HUGE_ZERO = 0x08       # the huge zero folio
    PF_PGTABLE = 0x10         # a page-table page

# VMA flags (the subset of vm_flags the model needs).
cdef enum:
    VM_READ = 0x1
    VM_WRITE = 0x2
    VM_HUGEPAGE = 0x4
    VM_NOHUGEPAGE = 0x8

cdef enum:
    HPAGE_PMD_ORDER = 9
    HPAGE_PMD_NR = 512

cdef enum:
    # vmstat counters (their names: MM_STAT_NAMES, same order)
    S_THP_FAULT_ALLOC = 0
    S_THP_FAULT_FALLBACK
    S_THP_FAULT_FALLBACK_CHARGE
    S_THP_COLLAPSE_ALLOC
    S_THP_COLLAPSE_ALLOC_FAILED
    S_THP_SPLIT_PAGE
    S_THP_SPLIT_PAGE_FAILED
    S_THP_DEFERRED_SPLIT_PAGE
    S_THP_UNDERUSED_SPLIT_PAGE
    S_THP_SPLIT_PMD
    S_THP_SCAN_EXCEED_NONE_PTE
    S_THP_SCAN_EXCEED_SWAP_PTE
    S_THP_SCAN_EXCEED_SHARE_PTE
    S_THP_ZERO_PAGE_ALLOC
    S_THP_ZERO_PAGE_ALLOC_FAILED
    S_THP_SWPOUT
    S_THP_SWPOUT_FALLBACK
    S_PGFAULT
    S_PGMAJFAULT
    S_PSWPIN
    S_PSWPOUT
    S_OOM_KILL
    S_NR_ANON_THPS            # gauge: PMD-mapped anon THPs (NR_ANON_THPS)
    S_NR_ANON_PAGES           # gauge: pages of anon folios
    S_NR_PAGETABLE            # gauge: PTE-table pages (in use or deposited)
    # model-internal event counts (cost accounting, benchmarks)
    S_FAULT_PAGES             # order-0 anon pages allocated by faults (zeroed)
    S_COW_COPIES
    S_COLLAPSE_COPIED         # pages copied or cleared by collapse
    S_PTES_SCANNED            # PTEs examined by hpage_collapse_scan_pmd
    S_SHRINKER_RUNS
    S_PGMIGRATE_SUCCESS       # pages migrated (pgmigrate_success)
    S_THP_MIGRATION_SUCCESS
    # compaction in the simulated kernel (_migrate.pxi, _page_alloc.pxi)
    S_THP_MIGRATION_FAIL
    S_THP_MIGRATION_SPLIT
    S_MIGRATION_SPLIT         # large folios of any order split for migration (model-internal)
    S_DIRECT_COMPACT_SCANNED  # pfns the scanners of direct compaction looked at (cost accounting)
    S_DIRECT_COMPACT_MIGRATED # pages direct compaction migrated
    S_DIRECT_COMPACT_FAILED   # pages direct compaction failed to migrate
    S_KSWAPD_WAKE             # wakeup_kswapd() calls of the allocator slow path
    S_NR_STATS

cdef struct MMStruct:
    uint64_t *pmd              # one entry per 2 MiB of the virtual window
    int32_t *deposit           # per PMD: the deposited PTE table slot of a huge PMD, -1 none
    int64_t nr_pmds
    int64_t rss_anon           # MM_ANONPAGES, pages
    int64_t nr_swap            # MM_SWAPENTS
    int32_t family             # anon_vma root: mms that may share CoW pages
    int32_t alive
    int64_t *vma_start         # sorted VMAs, virtual page numbers [start, end)
    int64_t *vma_end
    uint32_t *vma_flags
    int32_t nr_vmas

cdef struct CompactZoneState     # forward declarations: the compaction section below
cdef struct CompactStats

cdef struct MMEvent:
    int32_t kind
    int32_t mm
    int64_t vpn
    int64_t nr

cdef class MMCore:
    cdef BuddyAllocator buddy
    cdef Zone *z
    cdef int64_t nr_frames
    # per frame
    cdef uint64_t *content     # the 64-bit value a page holds
    cdef int32_t *pmapcount    # PTE mappings of this page
    cdef int32_t *fmap         # at a folio head: all mappings (PTE + PMD) of the folio
    cdef int32_t *emap         # at a folio head: PMD mappings (entire_mapcount)
    cdef int32_t *rmap_fam     # anon_vma family of the mapping(s)
    cdef int64_t *rmap_vpn     # page->index: the virtual page number it is mapped at
    cdef uint8_t *pflags
    cdef int32_t *dq_prev
    cdef int32_t *dq_next
    cdef int64_t dq_head, dq_tail, dq_len
    # PTE tables
    cdef uint64_t *pt
    cdef int64_t *pt_pfn
    cdef int32_t *pt_free
    cdef int64_t pt_cap, pt_nfree, pt_used
    # processes
    cdef MMStruct *mms
    cdef int32_t max_mms
    cdef int32_t mm_hi         # 1 + the highest mm id ever created (bounds rmap walks)
    cdef int64_t nr_pmds
    # swap
    cdef uint64_t *swap_content
    cdef int32_t *swap_count
    cdef int32_t *swap_free
    cdef int64_t swap_cap, swap_nfree
    # huge zero folio
    cdef int64_t hzp
    # policy
    cdef int thp_enabled, thp_defrag, use_zero_page, shrink_underused, khugepaged_defrag
    cdef int max_ptes_none, max_ptes_swap, max_ptes_shared
    cdef int64_t wmark_min
    # counters
    cdef int64_t stat[S_NR_STATS]   # MM_STAT_NAMES
    # reclaim (see the reclaim section): NULL = not attached
    cdef LruState *lru
    # event log
    cdef MMEvent *ev
    cdef int64_t ev_len, ev_cap
    # compaction in the simulated kernel (_migrate.pxi, _page_alloc.pxi)
    cdef int32_t *pincount     # per page: pin_user_pages() references (FOLL_PIN); pinned = unmovable
    cdef CompactZoneState *czs # the zone's compaction fields (a CompactionState attached by the kernel)
    cdef CompactStats *cstats
    cdef object compaction_state   # keeps czs / cstats alive
    cdef int compaction_on     # CONFIG_COMPACTION
    cdef int extfrag_threshold # vm.extfrag_threshold
    cdef int64_t wmark_low
    cdef int kswapd_wake_order # pending wakeup_kswapd() order (-1: none), drained by the kernel
    cdef object reclaim_hook   # Python callable(order) -> pages reclaimed (Kernel._direct_reclaim), or None
    cdef int reclaim_hooked    # reclaim_hook is set (readable without the GIL)
    cdef object hook_exc       # an exception the hook raised inside a nogil loop
    cdef int64_t *flog         # THP fault log: FLOG_FIELDS int64 per THP allocation attempt at fault
    cdef int64_t flog_len, flog_cap
    cdef int64_t ac_stalls, ac_scanned, ac_migrated, ac_failed   # work of the current allocation's slow path
    cdef int ac_result         # its last compact_result (-1: no compaction)
    cdef pfn_t *split_left     # order-0 pieces of folios split for migration (freed afterwards if unmapped)
    cdef int64_t split_left_len, split_left_cap
    # nogil state machines of _memory.pxi (the other parts call these; the free
    # functions of _rmap, _huge_memory, _khugepaged and _migrate are declared at the end)
    cdef void _free_mm_arrays(self, MMStruct *mm) noexcept
    cdef void log(self, int kind, int mmid, int64_t vpn, int64_t nr) noexcept nogil
    cdef pfn_t alloc_pages(self, int order, int mt, int gfp) noexcept nogil
    cdef int64_t alloc_pt(self) noexcept nogil
    cdef void free_pt(self, int64_t slot) noexcept nogil
    cdef int64_t swap_alloc(self) noexcept nogil
    cdef void swap_put(self, int64_t slot) noexcept nogil
    cdef uint64_t *pte_ptr(self, MMStruct *mm, int64_t vpn) noexcept nogil
    cdef int find_vma(self, MMStruct *mm, int64_t vpn) noexcept nogil
    cdef void zap_c(self, int mmid, int64_t s, int64_t e, bint free_tables) noexcept nogil
    cdef int fault_c(self, int mmid, int64_t vpn, bint write, uint64_t value) noexcept nogil
    cdef bint pt_owner_check(self, pfn_t pfn) noexcept

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
    ASYNC_AND_SYNC = 2            # include/linux/mmzone.h: compact_cached_migrate_pfn[ASYNC_AND_SYNC]

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
    pfn_t compact_cached_migrate_pfn[ASYNC_AND_SYNC]   # [0] async, [1] sync
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
    pfn_t fp_head[NR_ORDERS_MAX]
    pfn_t fp_tail[NR_ORDERS_MAX]
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

# Entry points for other parts of the core: declared at the end of this file ("in _compaction.pxi").
# A caller: compact_control_init(), then cc flags, watermarks and the mover; compact_zone_c();
# compact_control_release() always.

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


# --- compaction in the simulated kernel ------------------------------------------------
# The MMCore mover (the contract above, for anonymous folios through the reverse map),
# the allocator slow path with direct compaction and the THP fault log; code in
# _migrate.pxi and _page_alloc.pxi, Python face in thpbench/kernel/ (Kernel).

# gfp bits of MMCore.alloc_pages (the reclaim part of a gfp_t, include/linux/gfp_types.h)
cdef enum:
    GFP_DIRECT_RECLAIM = 0x1      # __GFP_DIRECT_RECLAIM: may reclaim and compact (stall)
    GFP_KSWAPD_RECLAIM = 0x2      # __GFP_KSWAPD_RECLAIM: may wake kswapd (and so kcompactd)
    GFP_NORETRY = 0x4             # __GFP_NORETRY
    GFP_KERNEL = 0x3              # GFP_KERNEL / GFP_HIGHUSER_MOVABLE: __GFP_RECLAIM
    GFP_HIGHUSER_MOVABLE = 0x3
    PF_SPLIT_PIECE = 0x80         # pflags: an unmapped order-0 piece of a folio split for migration (0x20, 0x40: PF_FILE, PF_SLAB)
    FLOG_FIELDS = 8               # THP fault log row: mm, vpn, ok, stalls, scanned, migrated, failed, result
    MM_COMPACT_PRIO_SYNC_FULL = 0 # enum compact_priority
    MM_COMPACT_PRIO_SYNC_LIGHT = 1
    MM_COMPACT_PRIO_ASYNC = 2

# --- reclaim (classes) ---------------------------------------------------------------
cdef class ReclaimCore:
    cdef MMCore mm
    cdef LruState s
    cdef int32_t *alive_mms   # scratch: live mm ids, refreshed per reclaim call
    cdef int nr_alive
    cdef void refresh_alive(self) noexcept nogil
    cdef int anon_referenced(self, pfn_t head, bint clear) noexcept nogil
    cdef int swap_out_folio(self, pfn_t head) noexcept nogil
    cdef void free_file_page(self, pfn_t pfn, bint shadow) noexcept nogil
    cdef pfn_t file_page_new(self, int32_t ino, int64_t idx) noexcept nogil
    cdef void mark_accessed(self, pfn_t pfn) noexcept nogil
    cdef int _inode_range(self, int32_t ino, int64_t start, int64_t n) except -1
    cdef void write_file_page(self, pfn_t pfn) noexcept nogil
    cdef bint inactive_is_low(self, int inactive_lru) noexcept nogil
    cdef void rotate(self, pfn_t p, int L) noexcept nogil
    cdef void activate(self, pfn_t p, int inactive_L) noexcept nogil
    cdef pfn_t *isolate(self, int L, int64_t nr_to_scan, int64_t *cnt) noexcept nogil
    cdef int64_t shrink_active_list(self, int64_t nr_to_scan, int L) noexcept nogil
    cdef int check_references(self, pfn_t p, bint file) noexcept nogil
    cdef int64_t shrink_folio(self, pfn_t p, int L, ScanControl *sc) noexcept nogil
    cdef int64_t shrink_inactive_list(self, int64_t nr_to_scan, int L, ScanControl *sc) noexcept nogil
    cdef void shrink_lruvec_c(self, ScanControl *sc) noexcept nogil


# ==========================================================================================
# The core's mm/internal.h: every function one part calls in another, by the part that
# defines it.  A call across parts to anything not declared here fails
# tests/core/test_core_interfaces.py.  (Methods of MMCore / ReclaimCore that other parts
# call are declared in their class above.)  Declared here without `inline`; the parts
# may define them inline (the C compiler inlines them within the one module).
# ==========================================================================================

# in _page_alloc.pxi:
cdef int frame_mt(const Zone *z, pfn_t pfn) noexcept nogil
cdef int pageblock_mt(const Zone *z, pfn_t pfn) noexcept nogil
cdef void del_from_free_list(Zone *z, pfn_t pfn, int order, int mt) noexcept nogil
cdef bint mt_is_mergeable(int mt) noexcept nogil
cdef int find_suitable_fallback(const Zone *z, int order, int mt, bint claimable) noexcept nogil
cdef int64_t move_freepages_block(Zone *z, pfn_t start, int old_mt, int new_mt) noexcept nogil
cdef void free_one_page(Zone *z, pfn_t pfn, int order, int mt, bint to_tail) noexcept nogil
cdef void zone_free(Zone *z, pfn_t pfn, int order) noexcept nogil
cdef pfn_t find_head(const Zone *z, pfn_t pfn) noexcept nogil
cdef int64_t _int_arg(object value, str what, int64_t lo, int64_t hi) except? -1
cdef int zone_take_block(Zone *z, pfn_t pfn, int order) noexcept nogil
cdef pfn_t mm_get_page_from_freelist(MMCore m, int order, int mt, int64_t mark) noexcept nogil
cdef pfn_t mm_alloc_slowpath(MMCore m, int order, int mt, int gfp) noexcept nogil

# in _rmap.pxi:
cdef pfn_t head_of(MMCore self, pfn_t pfn) noexcept nogil
cdef void new_folio(MMCore self, pfn_t head, int order, int32_t fam, int64_t vpn, bint zero=*) noexcept nogil
cdef void free_folio(MMCore self, pfn_t head) noexcept nogil
cdef void map_pte(MMCore self, pfn_t pfn, int32_t fam, int64_t vpn) noexcept nogil
cdef void unmap_pte(MMCore self, pfn_t pfn) noexcept nogil
cdef void unmap_pmd(MMCore self, pfn_t head) noexcept nogil
cdef bint folio_exclusive(MMCore self, int mmid, pfn_t head) noexcept nogil

# in _huge_memory.pxi:
cdef void dq_add(MMCore self, pfn_t head) noexcept nogil
cdef void dq_del(MMCore self, pfn_t head) noexcept nogil
cdef void deferred_split_folio(MMCore self, pfn_t head, bint partially_mapped) noexcept nogil
cdef bint thp_fault_allowed(MMCore self, uint32_t vmflags) noexcept nogil
cdef int thp_gfp(MMCore self, uint32_t vmflags) noexcept nogil
cdef void split_huge_pmd_c(MMCore self, int mmid, int64_t pi) noexcept nogil
cdef int huge_pmd_anonymous_page(MMCore self, int mmid, int64_t pi, uint32_t vmflags, bint write) noexcept nogil
cdef void install_thp(MMCore self, int mmid, int64_t pi, pfn_t head, int64_t slot, uint32_t vmflags, bint dirty) noexcept nogil
cdef int split_folio_c(MMCore self, pfn_t head, int new_order) noexcept nogil
cdef int64_t deferred_split_scan_c(MMCore self, int64_t nr_to_scan) noexcept nogil
cdef void mm_log_thp_fault(MMCore m, int mmid, int64_t pi, bint ok) noexcept nogil

# in _khugepaged.pxi:
cdef int scan_pmd_c(MMCore self, int mmid, int64_t pi, bint is_khugepaged, int64_t *out) noexcept nogil
cdef int collapse_huge_page_c(MMCore self, int mmid, int64_t pi, uint32_t vmflags, bint is_khugepaged) noexcept nogil

# in _migrate.pxi:
cdef bint mm_folio_pinned(MMCore m, pfn_t head) noexcept nogil
cdef int migrate_folio_c(MMCore self, pfn_t src, pfn_t dst) noexcept nogil
cdef void mm_free_split_pieces(MMCore m) noexcept nogil
cdef void mm_set_mover(compact_control *cc, MMCore m) noexcept nogil

# in _compaction.pxi:
cdef bint zone_watermark_ok(const Zone *z, int order, int64_t mark) noexcept nogil
cdef void defer_compaction(CompactZoneState *zs, int order) noexcept nogil
cdef bint compaction_deferred(CompactZoneState *zs, int order) noexcept nogil
cdef void compaction_defer_reset(CompactZoneState *zs, int order, bint alloc_success) noexcept nogil
cdef int compact_zone_c(compact_control *cc) noexcept nogil
cdef int compact_control_init(compact_control *cc, Zone *z, CompactZoneState *zs, CompactStats *stats, int order, int mode, int migratetype) noexcept nogil
cdef void compact_control_release(compact_control *cc) noexcept nogil

# in _vmscan.pxi:
cdef void lru_add(LruState *s, pfn_t p, int64_t nr, int L, bint at_tail) noexcept nogil
cdef void lru_del(LruState *s, pfn_t p, int64_t nr) noexcept nogil
cdef void lru_split(LruState *s, pfn_t head, int64_t nr, int64_t step) noexcept nogil
cdef void lru_replace(LruState *s, pfn_t src, pfn_t dst) noexcept nogil
cdef int migrate_file_page_c(MMCore mm, pfn_t src, pfn_t dst) noexcept nogil
