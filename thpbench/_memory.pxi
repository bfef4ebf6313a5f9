# MMCore: page tables, the fault path, the mm lifecycle, fork, zap / mprotect / mremap
# and swap (mm/memory.c, mm/mmap.c, mm/mprotect.c, mm/mremap.c, kernel/fork.c,
# mm/swapfile.c), included by _core.pyx.  The reverse map, the THP paths and
# khugepaged's scan and collapse are free functions of MMCore's state in _rmap.pxi,
# _huge_memory.pxi and _khugepaged.pxi (declared in _core.pxd); the methods below that
# Python calls for them are thin wrappers.
#
# MMCore holds, for one zone (a BuddyAllocator), every process's page tables, the
# per-frame struct-page fields the THP code reads (mapcounts, the folio's deferred-split
# state, the page's content), a swap area and the event log the TLB model consumes.
# Policy (sysfs tunables, watermarks, khugepaged's scheduling, VMA bookkeeping) lives
# in thpbench/kernel/ and arrives here as plain fields; every method below assumes its
# arguments were validated there.
#
# Simplifications, also stated in Kernel's docstring:
# * anonymous private memory only; order-0 or PMD-order (9) folios at fault (no mTHP);
# * refcount == mapcount except for pins (pincount, _migrate.pxi); no swap cache
#   (a swapped-in page is a private copy);
# * "shared" means mapped more than once (page_mapcount() > 1, the pre-6.15 rule);
# * direct reclaim inside the allocator is shrink_slab() of the deferred-split shrinker
#   (or the kernel's hook); the slow path with direct compaction is in
#   _page_alloc.pxi.  LRU reclaim lives in _vmscan.pxi / kernel/reclaim.py: with a
#   ReclaimCore attached (self.lru), an allocation below the low watermark sets
#   lru.kswapd_wake (bulk loops pause so that kswapd runs), and a failed order-0
#   allocation sets lru.need_reclaim: the Python caller reclaims and retries.  An
#   order-0 fault with nothing to reclaim is an OOM;
# * rmap walks visit every mm of a fork family at page->index, so mremap of pages
#   shared with another mm is refused.

from libc.stdlib cimport malloc, calloc, realloc, free as c_free
from libc.string cimport memset, memcpy
import numpy as np


MM_STAT_NAMES = ("thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
                 "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_split_page",
                 "thp_split_page_failed", "thp_deferred_split_page", "thp_underused_split_page",
                 "thp_split_pmd", "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte",
                 "thp_scan_exceed_share_pte", "thp_zero_page_alloc", "thp_zero_page_alloc_failed",
                 "thp_swpout", "thp_swpout_fallback", "pgfault", "pgmajfault", "pswpin", "pswpout",
                 "oom_kill", "nr_anon_transparent_hugepages", "nr_anon_pages", "nr_page_table_pages",
                 "x_fault_pages", "x_cow_copies", "x_collapse_copied", "x_ptes_scanned", "x_shrinker_runs",
                 "pgmigrate_success", "thp_migration_success", "thp_migration_fail", "thp_migration_split",
                 "x_migration_split", "x_direct_compact_scanned", "x_direct_compact_migrated",
                 "x_direct_compact_failed", "x_kswapd_wake")

cdef enum:
    # fault results
    F_OK = 0
    F_SEGV_MAPERR = 1         # no VMA: SIGSEGV / SEGV_MAPERR
    F_SEGV_ACCERR = 2         # VMA forbids the access: SIGSEGV / SEGV_ACCERR
    F_OOM = 3                 # VM_FAULT_OOM
    F_FALLBACK = 4            # internal: VM_FAULT_FALLBACK

cdef enum:
    # enum scan_result (mm/khugepaged.c), the subset the model can produce
    SCAN_FAIL = 0
    SCAN_SUCCEED
    SCAN_PMD_NULL
    SCAN_PMD_NONE
    SCAN_PMD_MAPPED
    SCAN_EXCEED_NONE_PTE
    SCAN_EXCEED_SWAP_PTE
    SCAN_EXCEED_SHARED_PTE
    SCAN_PAGE_RO
    SCAN_LACK_REFERENCED_PAGE
    SCAN_ALLOC_HUGE_PAGE_FAIL
    SCAN_NR

SCAN_RESULT_NAMES = ("SCAN_FAIL", "SCAN_SUCCEED", "SCAN_PMD_NULL", "SCAN_PMD_NONE", "SCAN_PMD_MAPPED",
                     "SCAN_EXCEED_NONE_PTE", "SCAN_EXCEED_SWAP_PTE", "SCAN_EXCEED_SHARED_PTE",
                     "SCAN_PAGE_RO", "SCAN_LACK_REFERENCED_PAGE", "SCAN_ALLOC_HUGE_PAGE_FAIL")

cdef enum:
    # event kinds of the log the TLB model reads
    EV_COLLAPSE = 0
    EV_SPLIT_PMD = 1
    EV_ZAP = 2                # munmap / MADV_DONTNEED / zero-page remap
    EV_PROTECT = 3            # mprotect
    EV_MIGRATE = 4            # mremap / page moves
    EV_COW = 5
    EV_SWAPOUT = 6
    EV_THP_FAULT = 7          # a PMD was installed at fault (no flush needed; informative)
    EV_NR

MM_EVENT_NAMES = ("collapse", "split_pmd", "zap", "mprotect", "migrate", "cow", "swapout", "thp_fault")

# enabled: never / madvise / always; defrag: always / defer / defer+madvise / madvise / never
cdef enum:
    THP_NEVER = 0
    THP_MADVISE = 1
    THP_ALWAYS = 2
    DEFRAG_ALWAYS = 0
    DEFRAG_DEFER = 1
    DEFRAG_DEFER_MADVISE = 2
    DEFRAG_MADVISE = 3
    DEFRAG_NEVER = 4





cdef class MMCore:
    """The page-table and THP state machines of one simulated kernel (use thpbench.Kernel)."""

    def __cinit__(self, BuddyAllocator buddy, int max_mms, int64_t nr_pmds, int64_t swap_pages):
        cdef int64_t n = buddy.z.nr_pages
        self.buddy = buddy
        self.z = &buddy.z
        self.nr_frames = n
        self.content = <uint64_t *>calloc(n, sizeof(uint64_t))
        self.pmapcount = <int32_t *>calloc(n, sizeof(int32_t))
        self.fmap = <int32_t *>calloc(n, sizeof(int32_t))
        self.emap = <int32_t *>calloc(n, sizeof(int32_t))
        self.rmap_fam = <int32_t *>calloc(n, sizeof(int32_t))
        self.rmap_vpn = <int64_t *>calloc(n, sizeof(int64_t))
        self.pflags = <uint8_t *>calloc(n, sizeof(uint8_t))
        self.pincount = <int32_t *>calloc(n, sizeof(int32_t))
        self.dq_prev = <int32_t *>calloc(n, sizeof(int32_t))
        self.dq_next = <int32_t *>calloc(n, sizeof(int32_t))
        self.mms = <MMStruct *>calloc(max_mms, sizeof(MMStruct))
        self.swap_content = <uint64_t *>calloc(swap_pages + 1, sizeof(uint64_t))
        self.swap_count = <int32_t *>calloc(swap_pages + 1, sizeof(int32_t))
        self.swap_free = <int32_t *>calloc(swap_pages + 1, sizeof(int32_t))
        if (self.content == NULL or self.pmapcount == NULL or self.fmap == NULL or self.emap == NULL
                or self.rmap_fam == NULL or self.rmap_vpn == NULL or self.pflags == NULL or self.pincount == NULL
                or self.dq_prev == NULL or self.dq_next == NULL or self.mms == NULL
                or self.swap_content == NULL or self.swap_count == NULL or self.swap_free == NULL):
            raise MemoryError(f"could not allocate the mm state for {n} frames")
        self.max_mms = max_mms
        self.nr_pmds = nr_pmds
        self.dq_head = -1
        self.dq_tail = -1
        self.swap_cap = swap_pages
        cdef int64_t i
        # slot 0 is never used so that a swap entry is never 0 (= pte_none)
        for i in range(swap_pages):
            self.swap_free[i] = <int32_t>(swap_pages - i)
        self.swap_nfree = swap_pages
        self.pt_cap = 0
        self.hzp = -1
        self.max_ptes_none = 511
        self.max_ptes_swap = 64
        self.max_ptes_shared = 256
        self.khugepaged_defrag = 1
        self.thp_enabled = THP_MADVISE
        self.thp_defrag = DEFRAG_MADVISE
        self.use_zero_page = 1
        self.shrink_underused = 1
        # compaction is off until the kernel attaches a CompactionState (attach_compaction)
        self.compaction_on = 0
        self.extfrag_threshold = 500
        self.kswapd_wake_order = -1
        self.ac_result = -1

    def __dealloc__(self):
        cdef int i
        if self.mms != NULL:
            for i in range(self.max_mms):
                self._free_mm_arrays(&self.mms[i])
        c_free(self.content); c_free(self.pmapcount); c_free(self.fmap); c_free(self.emap)
        c_free(self.rmap_fam); c_free(self.rmap_vpn); c_free(self.pflags); c_free(self.dq_prev)
        c_free(self.dq_next); c_free(self.mms); c_free(self.swap_content); c_free(self.swap_count)
        c_free(self.swap_free); c_free(self.pt); c_free(self.pt_pfn); c_free(self.pt_free); c_free(self.ev)
        c_free(self.pincount); c_free(self.flog); c_free(self.split_left)

    cdef void _free_mm_arrays(self, MMStruct *mm) noexcept:
        c_free(mm.pmd); c_free(mm.deposit); c_free(mm.vma_start); c_free(mm.vma_end); c_free(mm.vma_flags)
        mm.pmd = NULL; mm.deposit = NULL; mm.vma_start = NULL; mm.vma_end = NULL; mm.vma_flags = NULL
        mm.nr_vmas = 0

    def __reduce__(self):
        raise TypeError("MMCore cannot be pickled")

    # ------------------------------------------------------------------ events
    cdef void log(self, int kind, int mmid, int64_t vpn, int64_t nr) noexcept nogil:
        cdef MMEvent *nev
        cdef int64_t cap
        if self.ev_len == self.ev_cap:
            cap = 1024 if self.ev_cap == 0 else 2 * self.ev_cap
            nev = <MMEvent *>realloc(self.ev, cap * sizeof(MMEvent))
            if nev == NULL:
                return      # the log is best effort; the state machines never depend on it
            self.ev = nev
            self.ev_cap = cap
        self.ev[self.ev_len].kind = kind
        self.ev[self.ev_len].mm = mmid
        self.ev[self.ev_len].vpn = vpn
        self.ev[self.ev_len].nr = nr
        self.ev_len += 1

    def drain_events(self):
        """The events logged since the last call: (kind, mm, vpn, nr) int64 array [n, 4]."""
        out = np.empty((self.ev_len, 4), dtype=np.int64)
        cdef int64_t[:, ::1] v = out
        cdef int64_t i
        for i in range(self.ev_len):
            v[i, 0] = self.ev[i].kind
            v[i, 1] = self.ev[i].mm
            v[i, 2] = self.ev[i].vpn
            v[i, 3] = self.ev[i].nr
        self.ev_len = 0
        return out

    # ------------------------------------------------------------------ policy
    def set_policy(self, int enabled, int defrag, int use_zero_page, int shrink_underused,
                   int max_ptes_none, int max_ptes_swap, int max_ptes_shared, int khugepaged_defrag,
                   int64_t wmark_min):
        self.thp_enabled = enabled
        self.thp_defrag = defrag
        self.use_zero_page = use_zero_page
        self.shrink_underused = shrink_underused
        self.max_ptes_none = max_ptes_none
        self.max_ptes_swap = max_ptes_swap
        self.max_ptes_shared = max_ptes_shared
        self.khugepaged_defrag = khugepaged_defrag
        self.wmark_min = wmark_min

    def count_oom(self):
        """Count an OOM kill (oom_kill) that kernel/reclaim.py decided after direct reclaim failed."""
        self.stat[S_OOM_KILL] += 1

    def stats(self):
        return {MM_STAT_NAMES[i]: self.stat[i] for i in range(S_NR_STATS)}

    @property
    def deferred_split_queue_len(self):
        return self.dq_len

    @property
    def nr_swap_free(self):
        return self.swap_nfree

    @property
    def huge_zero_pfn(self):
        return self.hzp

    # ------------------------------------------------------------------ allocation
    cdef pfn_t alloc_pages(self, int order, int mt, int gfp) noexcept nogil:
        """__alloc_pages: the fast path (get_page_from_freelist at the low watermark,
        __zone_watermark_ok, then the buddy lists); on failure the slow path of
        _page_alloc.pxi (__alloc_pages_slowpath: wake kswapd, the min watermark,
        direct compaction, direct reclaim) as far as the gfp bits (GFP_* in _core.pxd) allow."""
        cdef pfn_t pfn
        self.ac_stalls = 0
        self.ac_scanned = 0
        self.ac_migrated = 0
        self.ac_failed = 0
        self.ac_result = -1
        if self.lru != NULL and self.z.nr_free_pages - ((<int64_t>1) << order) < self.lru.wmark_low:
            # reclaim: the low watermark failed: wake_all_kswapds() (kswapd runs in kernel/reclaim.py)
            self.lru.kswapd_wake = 1
            if order > self.lru.kswapd_order:
                self.lru.kswapd_order = order
        # the first get_page_from_freelist() is at ALLOC_WMARK_LOW
        pfn = mm_get_page_from_freelist(self, order, mt, self.wmark_low if self.wmark_low > self.wmark_min
                                        else self.wmark_min)
        if pfn >= 0:
            return pfn
        pfn = mm_alloc_slowpath(self, order, mt, gfp)
        if pfn < 0 and self.lru != NULL and order == 0 and (gfp & GFP_DIRECT_RECLAIM):
            # reclaim: the caller (thpbench/kernel/reclaim.py) runs LRU direct reclaim and retries
            self.lru.need_reclaim = 1
        return pfn

    cdef int64_t alloc_pt(self) noexcept nogil:
        """pte_alloc_one(): a PTE-table page from the buddy (unmovable) and a table slot."""
        cdef pfn_t pfn = self.alloc_pages(0, MIGRATE_UNMOVABLE, GFP_KERNEL)
        cdef int64_t slot, cap, i
        cdef uint64_t *npt
        cdef int64_t *npfn
        cdef int32_t *nfree
        if pfn < 0:
            return -1
        if self.pt_nfree == 0:
            cap = 256 if self.pt_cap == 0 else 2 * self.pt_cap
            npt = <uint64_t *>realloc(self.pt, cap * HPAGE_PMD_NR * sizeof(uint64_t))
            if npt == NULL:
                zone_free(self.z, pfn, 0)
                return -1
            self.pt = npt
            npfn = <int64_t *>realloc(self.pt_pfn, cap * sizeof(int64_t))
            if npfn == NULL:
                zone_free(self.z, pfn, 0)
                return -1
            self.pt_pfn = npfn
            nfree = <int32_t *>realloc(self.pt_free, cap * sizeof(int32_t))
            if nfree == NULL:
                zone_free(self.z, pfn, 0)
                return -1
            self.pt_free = nfree
            for i in range(cap - 1, self.pt_cap - 1, -1):
                self.pt_pfn[i] = -1
                self.pt_free[self.pt_nfree] = <int32_t>i
                self.pt_nfree += 1
            self.pt_cap = cap
        self.pt_nfree -= 1
        slot = self.pt_free[self.pt_nfree]
        memset(&self.pt[slot * HPAGE_PMD_NR], 0, HPAGE_PMD_NR * sizeof(uint64_t))
        self.pt_pfn[slot] = pfn
        self.pflags[pfn] = PF_PGTABLE
        self.pt_used += 1
        self.stat[S_NR_PAGETABLE] += 1
        return slot

    cdef void free_pt(self, int64_t slot) noexcept nogil:
        cdef pfn_t pfn = self.pt_pfn[slot]
        self.pflags[pfn] = 0
        zone_free(self.z, pfn, 0)
        self.pt_pfn[slot] = -1
        self.pt_free[self.pt_nfree] = <int32_t>slot
        self.pt_nfree += 1
        self.pt_used -= 1
        self.stat[S_NR_PAGETABLE] -= 1

    cdef int64_t swap_alloc(self) noexcept nogil:
        cdef int64_t slot
        if self.swap_nfree == 0:
            return -1
        self.swap_nfree -= 1
        slot = self.swap_free[self.swap_nfree]
        self.swap_count[slot] = 1
        return slot

    cdef void swap_put(self, int64_t slot) noexcept nogil:
        # swap_free(): drop one reference to the slot
        self.swap_count[slot] -= 1
        if self.swap_count[slot] == 0:
            self.swap_free[self.swap_nfree] = <int32_t>slot
            self.swap_nfree += 1

    # ------------------------------------------------------------------ folios
    # ------------------------------------------------------------------ page-table walks
    cdef uint64_t *pte_ptr(self, MMStruct *mm, int64_t vpn) noexcept nogil:
        cdef uint64_t pmd = mm.pmd[vpn >> 9]
        if pmd & E_TABLE:
            return &self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (vpn & 511)]
        return NULL

    cdef int find_vma(self, MMStruct *mm, int64_t vpn) noexcept nogil:
        cdef int lo = 0, hi = mm.nr_vmas - 1, mid
        while lo <= hi:
            mid = (lo + hi) >> 1
            if vpn < mm.vma_start[mid]:
                hi = mid - 1
            elif vpn >= mm.vma_end[mid]:
                lo = mid + 1
            else:
                return mid
        return -1

    def set_vmas(self, int mmid, starts, ends, flags):
        """Replace mm's VMA list (sorted, non-overlapping [start, end) page numbers)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t[::1] s = np.ascontiguousarray(starts, dtype=np.int64)
        cdef int64_t[::1] e = np.ascontiguousarray(ends, dtype=np.int64)
        cdef uint32_t[::1] f = np.ascontiguousarray(flags, dtype=np.uint32)
        cdef int n = s.shape[0], i
        c_free(mm.vma_start); c_free(mm.vma_end); c_free(mm.vma_flags)
        mm.vma_start = <int64_t *>malloc((n + 1) * sizeof(int64_t))
        mm.vma_end = <int64_t *>malloc((n + 1) * sizeof(int64_t))
        mm.vma_flags = <uint32_t *>malloc((n + 1) * sizeof(uint32_t))
        if mm.vma_start == NULL or mm.vma_end == NULL or mm.vma_flags == NULL:
            raise MemoryError("VMA arrays")
        for i in range(n):
            mm.vma_start[i] = s[i]
            mm.vma_end[i] = e[i]
            mm.vma_flags[i] = f[i]
        mm.nr_vmas = n

    # ------------------------------------------------------------------ processes
    def mm_create(self, int mmid, int family):
        cdef MMStruct *mm = &self.mms[mmid]
        self._free_mm_arrays(mm)
        memset(mm, 0, sizeof(MMStruct))
        mm.pmd = <uint64_t *>calloc(self.nr_pmds, sizeof(uint64_t))
        mm.deposit = <int32_t *>malloc(self.nr_pmds * sizeof(int32_t))
        if mm.pmd == NULL or mm.deposit == NULL:
            raise MemoryError("page directory")
        memset(mm.deposit, 0xff, self.nr_pmds * sizeof(int32_t))
        mm.nr_pmds = self.nr_pmds
        mm.family = family
        mm.alive = 1
        if mmid + 1 > self.mm_hi:
            self.mm_hi = mmid + 1      # rmap walks of the mover stop here

    def mm_destroy(self, int mmid):
        """exit_mmap(): zap and free every page table."""
        cdef MMStruct *mm = &self.mms[mmid]
        self.zap_c(mmid, 0, self.nr_pmds * HPAGE_PMD_NR, True)
        mm.alive = 0
        self._free_mm_arrays(mm)
        c_free(mm.pmd); c_free(mm.deposit)

    def rss(self, int mmid):
        return self.mms[mmid].rss_anon, self.mms[mmid].nr_swap

    # ------------------------------------------------------------------ THP policy
    # ------------------------------------------------------------------ split_huge_pmd
    def split_huge_pmd(self, int mmid, int64_t vpn):
        split_huge_pmd_c(self, mmid, vpn >> 9)

    # ------------------------------------------------------------------ zap (munmap, DONTNEED)
    cdef void zap_c(self, int mmid, int64_t s, int64_t e, bint free_tables) noexcept nogil:
        # zap_pte_range() / zap_huge_pmd(); free_pgtables() when free_tables
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t pi, v, a, b, slot
        cdef uint64_t pmd, ent
        cdef uint64_t *t
        cdef pfn_t pfn
        cdef bint any_left
        if e <= s:
            return
        for pi in range(s >> 9, ((e - 1) >> 9) + 1):
            pmd = mm.pmd[pi]
            if pmd == 0:
                continue
            a = pi * HPAGE_PMD_NR
            b = a + HPAGE_PMD_NR
            if pmd & E_HUGE:
                if s <= a and b <= e:
                    mm.pmd[pi] = 0
                    slot = mm.deposit[pi]
                    mm.deposit[pi] = -1
                    self.free_pt(slot)
                    if not (pmd & E_ZERO):
                        mm.rss_anon -= HPAGE_PMD_NR
                        unmap_pmd(self, ent_payload(pmd))
                    continue
                split_huge_pmd_c(self, mmid, pi)
                pmd = mm.pmd[pi]
            t = &self.pt[ent_payload(pmd) * HPAGE_PMD_NR]
            for v in range(max(a, s), min(b, e)):
                ent = t[v - a]
                if ent == 0:
                    continue
                t[v - a] = 0
                if ent & E_SWAP:
                    self.swap_put(ent_payload(ent))
                    mm.nr_swap -= 1
                elif not (ent & E_ZERO):
                    mm.rss_anon -= 1
                    unmap_pte(self, ent_payload(ent))
            if free_tables:
                any_left = False
                for v in range(HPAGE_PMD_NR):
                    if t[v] != 0:
                        any_left = True
                        break
                if not any_left:
                    self.free_pt(ent_payload(pmd))
                    mm.pmd[pi] = 0
        self.log(EV_ZAP, mmid, s, e - s)

    def zap(self, int mmid, int64_t s, int64_t e, bint free_tables):
        self.zap_c(mmid, s, e, free_tables)

    # ------------------------------------------------------------------ mprotect
    def protect(self, int mmid, int64_t s, int64_t e, bint writable):
        """change_protection(): split partially covered huge PMDs; drop write permission
        when the new protection has none (gaining it is left to the next write fault)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t pi, v, a, b
        cdef uint64_t pmd
        cdef uint64_t *t
        for pi in range(s >> 9, ((e - 1) >> 9) + 1):
            pmd = mm.pmd[pi]
            if pmd == 0:
                continue
            a = pi * HPAGE_PMD_NR
            b = a + HPAGE_PMD_NR
            if pmd & E_HUGE:
                if s <= a and b <= e:
                    if not writable:
                        mm.pmd[pi] = pmd & ~(<uint64_t>E_WRITE)
                    continue
                split_huge_pmd_c(self, mmid, pi)
                pmd = mm.pmd[pi]
            if not writable:
                t = &self.pt[ent_payload(pmd) * HPAGE_PMD_NR]
                for v in range(max(a, s), min(b, e)):
                    t[v - a] &= ~(<uint64_t>E_WRITE)
        self.log(EV_PROTECT, mmid, s, e - s)

    def clear_young(self, int mmid, int64_t s, int64_t e):
        """Age a range: clear the accessed bits (what page_referenced() does during reclaim)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t pi, v, a
        cdef uint64_t *p
        for pi in range(s >> 9, ((e - 1) >> 9) + 1):
            if mm.pmd[pi] & E_HUGE:
                mm.pmd[pi] &= ~(<uint64_t>E_YOUNG)
            elif mm.pmd[pi] & E_TABLE:
                a = pi * HPAGE_PMD_NR
                for v in range(max(a, s), min(a + HPAGE_PMD_NR, e)):
                    p = self.pte_ptr(mm, v)
                    p[0] &= ~(<uint64_t>E_YOUNG)

    # ------------------------------------------------------------------ fault path
    cdef int fault_c(self, int mmid, int64_t vpn, bint write, uint64_t value) noexcept nogil:
        # handle_mm_fault() -> __handle_mm_fault() -> create_huge_pmd() / handle_pte_fault()
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int vi, r
        cdef uint32_t fl
        cdef int64_t pi = vpn >> 9, slot, first
        cdef uint64_t pmd, ent
        cdef uint64_t *p
        cdef pfn_t pfn, head, npfn
        vi = self.find_vma(mm, vpn)
        if vi < 0:
            return F_SEGV_MAPERR
        fl = mm.vma_flags[vi]
        if (write and not (fl & VM_WRITE)) or not (fl & VM_READ):
            return F_SEGV_ACCERR
        pmd = mm.pmd[pi]
        if pmd == 0:
            first = pi * HPAGE_PMD_NR
            if (thp_fault_allowed(self, fl) and first >= mm.vma_start[vi]
                    and first + HPAGE_PMD_NR <= mm.vma_end[vi]):
                self.stat[S_PGFAULT] += 1
                r = huge_pmd_anonymous_page(self, mmid, pi, fl, write)
                if r == F_OOM:
                    return r
                pmd = mm.pmd[pi]
                if pmd != 0:
                    if write:
                        self.content[ent_payload(pmd) + (vpn & 511)] = value
                    return F_OK
            slot = self.alloc_pt()
            if slot < 0:
                return F_OOM
            mm.pmd[pi] = mk_ent(slot, E_TABLE)
            pmd = mm.pmd[pi]
        if pmd & E_HUGE:
            head = ent_payload(pmd)
            if not write:
                mm.pmd[pi] = pmd | E_YOUNG
                return F_OK
            if pmd & E_ZERO:
                # do_huge_zero_wp_pmd(): replace with a fresh THP, else split and CoW a page
                self.stat[S_PGFAULT] += 1
                npfn = self.alloc_pages(HPAGE_PMD_ORDER, MIGRATE_MOVABLE, thp_gfp(self, fl))
                mm_log_thp_fault(self, mmid, pi, npfn >= 0)
                if npfn >= 0:
                    slot = mm.deposit[pi]
                    install_thp(self, mmid, pi, npfn, slot, fl, True)
                    self.stat[S_THP_FAULT_ALLOC] += 1
                    self.content[npfn + (vpn & 511)] = value
                    self.log(EV_COW, mmid, pi * HPAGE_PMD_NR, HPAGE_PMD_NR)
                    return F_OK
                self.stat[S_THP_FAULT_FALLBACK] += 1
                split_huge_pmd_c(self, mmid, pi)
            elif pmd & E_WRITE:
                mm.pmd[pi] = pmd | E_YOUNG | E_DIRTY
                self.content[head + (vpn & 511)] = value
                return F_OK
            else:
                # do_huge_pmd_wp_page(): reuse an exclusive folio, else split the PMD
                self.stat[S_PGFAULT] += 1
                if self.fmap[head] == 1:
                    mm.pmd[pi] = pmd | E_WRITE | E_YOUNG | E_DIRTY
                    self.content[head + (vpn & 511)] = value
                    return F_OK
                split_huge_pmd_c(self, mmid, pi)
            pmd = mm.pmd[pi]
        p = &self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (vpn & 511)]
        ent = p[0]
        if ent == 0:
            self.stat[S_PGFAULT] += 1
            if not write:
                # do_anonymous_page(): a read maps the shared zero page
                p[0] = E_PRESENT | E_ZERO | E_YOUNG
                return F_OK
            pfn = self.alloc_pages(0, MIGRATE_MOVABLE, GFP_HIGHUSER_MOVABLE)
            if pfn < 0:
                return F_OOM
            new_folio(self, pfn, 0, mm.family, vpn)
            map_pte(self, pfn, mm.family, vpn)
            mm.rss_anon += 1
            self.stat[S_FAULT_PAGES] += 1
            p[0] = mk_ent(pfn, E_PRESENT | E_WRITE | E_YOUNG | E_DIRTY)
            self.content[pfn] = value
            return F_OK
        if ent & E_SWAP:
            # do_swap_page(): read the slot into a private page
            self.stat[S_PGFAULT] += 1
            pfn = self.alloc_pages(0, MIGRATE_MOVABLE, GFP_HIGHUSER_MOVABLE)
            if pfn < 0:
                return F_OOM
            self.stat[S_PGMAJFAULT] += 1
            self.stat[S_PSWPIN] += 1
            new_folio(self, pfn, 0, mm.family, vpn)
            self.content[pfn] = self.swap_content[ent_payload(ent)]
            self.swap_put(ent_payload(ent))
            mm.nr_swap -= 1
            map_pte(self, pfn, mm.family, vpn)
            mm.rss_anon += 1
            # a read swap-in maps the page read-only; a write fault maps it writable
            # (the page is exclusive: no swap cache is modelled)
            ent = mk_ent(pfn, E_PRESENT | E_YOUNG | (E_WRITE | E_DIRTY if write else 0))
            p[0] = ent
            if not write:
                return F_OK
        if ent & E_ZERO:
            if not write:
                p[0] = ent | E_YOUNG
                return F_OK
            # wp_page_copy() from the zero page
            self.stat[S_PGFAULT] += 1
            pfn = self.alloc_pages(0, MIGRATE_MOVABLE, GFP_HIGHUSER_MOVABLE)
            if pfn < 0:
                return F_OOM
            new_folio(self, pfn, 0, mm.family, vpn)
            map_pte(self, pfn, mm.family, vpn)
            mm.rss_anon += 1
            self.stat[S_FAULT_PAGES] += 1
            p[0] = mk_ent(pfn, E_PRESENT | E_WRITE | E_YOUNG | E_DIRTY)
            self.content[pfn] = value
            self.log(EV_COW, mmid, vpn, 1)
            return F_OK
        pfn = ent_payload(ent)
        if not write:
            p[0] = ent | E_YOUNG
            return F_OK
        if not (ent & E_WRITE):
            # do_wp_page(): reuse an exclusive page, else copy it
            self.stat[S_PGFAULT] += 1
            head = head_of(self, pfn)
            if self.pmapcount[pfn] == 1 and folio_exclusive(self, mmid, head):
                p[0] = ent | E_WRITE | E_YOUNG | E_DIRTY
                self.content[pfn] = value
                return F_OK
            npfn = self.alloc_pages(0, MIGRATE_MOVABLE, GFP_HIGHUSER_MOVABLE)
            if npfn < 0:
                return F_OOM
            new_folio(self, npfn, 0, mm.family, vpn)
            self.content[npfn] = self.content[pfn]
            map_pte(self, npfn, mm.family, vpn)
            p[0] = mk_ent(npfn, E_PRESENT | E_WRITE | E_YOUNG | E_DIRTY)
            unmap_pte(self, pfn)
            self.stat[S_COW_COPIES] += 1
            self.content[npfn] = value
            self.log(EV_COW, mmid, vpn, 1)
            return F_OK
        p[0] = ent | E_YOUNG | E_DIRTY
        self.content[pfn] = value
        return F_OK

    def touch(self, int mmid, const int64_t[::1] vpns, bint write, values, bint default_value):
        """Fault in / access each page of ``vpns`` in order.  Returns (done, status):
        the number of pages handled and the fault result of the one that stopped
        the loop (F_OK when all were done).  A write stores values[i] (or the page's
        virtual address when default_value) in the page."""
        cdef Py_ssize_t i, n = vpns.shape[0]
        cdef const uint64_t[::1] vals
        cdef int r = F_OK
        cdef uint64_t val
        if not default_value:
            vals = values
        with nogil:
            for i in range(n):
                val = (<uint64_t>vpns[i]) << 12 if default_value else vals[i]
                r = self.fault_c(mmid, vpns[i], write, val)
                if r != F_OK:
                    break
                if self.lru != NULL and self.lru.kswapd_wake:
                    # reclaim: pause so that kswapd runs (kernel/reclaim.py), the caller resumes
                    with gil:
                        return i + 1, F_OK
        if r != F_OK:
            if r == F_OOM and (self.lru == NULL or not self.lru.need_reclaim):
                self.stat[S_OOM_KILL] += 1
            return i, r
        return n, F_OK

    def touch_range(self, int mmid, int64_t s, int64_t e, bint write, int64_t stride):
        """touch() of every stride-th page of [s, e), writing each page's address."""
        cdef int64_t v = s, done = 0
        cdef int r = F_OK
        with nogil:
            while v < e:
                r = self.fault_c(mmid, v, write, (<uint64_t>v) << 12)
                if r != F_OK:
                    break
                done += 1
                v += stride
                if self.lru != NULL and self.lru.kswapd_wake:
                    break           # reclaim: pause for kswapd; the caller resumes
        if r == F_OOM and (self.lru == NULL or not self.lru.need_reclaim):
            self.stat[S_OOM_KILL] += 1
        return done, r

    def peek(self, int mmid, const int64_t[::1] vpns):
        """What each page holds, read through the page tables without faulting:
        (values uint64, kinds int8: 0 none, 1 page, 2 zero page, 3 swapped, 4 PMD THP, 5 huge zero)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef Py_ssize_t i, n = vpns.shape[0]
        vals = np.zeros(n, dtype=np.uint64)
        kinds = np.zeros(n, dtype=np.int8)
        cdef uint64_t[::1] vv = vals
        cdef int8_t[::1] kv = kinds
        cdef uint64_t pmd, ent
        cdef int64_t vpn
        for i in range(n):
            vpn = vpns[i]
            pmd = mm.pmd[vpn >> 9]
            if pmd & E_HUGE:
                if pmd & E_ZERO:
                    kv[i] = 5
                else:
                    kv[i] = 4
                    vv[i] = self.content[ent_payload(pmd) + (vpn & 511)]
            elif pmd & E_TABLE:
                ent = self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (vpn & 511)]
                if ent == 0:
                    kv[i] = 0
                elif ent & E_SWAP:
                    kv[i] = 3
                    vv[i] = self.swap_content[ent_payload(ent)]
                elif ent & E_ZERO:
                    kv[i] = 2
                else:
                    kv[i] = 1
                    vv[i] = self.content[ent_payload(ent)]
        return vals, kinds

    def entries(self, int mmid, int64_t s, int64_t e):
        """Raw page-table state of [s, e): (pte entries uint64 [n], pmd entries uint64 per page)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t v
        out = np.zeros(e - s, dtype=np.uint64)
        pmds = np.zeros(e - s, dtype=np.uint64)
        cdef uint64_t[::1] o = out
        cdef uint64_t[::1] pm = pmds
        cdef uint64_t *p
        for v in range(s, e):
            pm[v - s] = mm.pmd[v >> 9]
            p = self.pte_ptr(mm, v)
            if p != NULL:
                o[v - s] = p[0]
        return out, pmds

    def pmd_kinds(self, int mmid, int64_t pi_start, int64_t pi_end):
        """Per PMD of [pi_start, pi_end): 0 none, 1 PTE table, 2 huge THP, 3 huge zero."""
        cdef MMStruct *mm = &self.mms[mmid]
        out = np.zeros(pi_end - pi_start, dtype=np.int8)
        cdef int8_t[::1] o = out
        cdef int64_t pi
        cdef uint64_t pmd
        for pi in range(pi_start, pi_end):
            pmd = mm.pmd[pi]
            if pmd & E_HUGE:
                o[pi - pi_start] = 3 if pmd & E_ZERO else 2
            elif pmd & E_TABLE:
                o[pi - pi_start] = 1
        return out

    def frame_info(self, const int64_t[::1] vpns, int mmid):
        """Per page: pfn (-1 unmapped) and the order of the folio it belongs to (-1)."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef Py_ssize_t i, n = vpns.shape[0]
        pfns = np.full(n, -1, dtype=np.int64)
        orders = np.full(n, -1, dtype=np.int8)
        cdef int64_t[::1] pv = pfns
        cdef int8_t[::1] ov = orders
        cdef uint64_t pmd, ent
        cdef pfn_t pfn
        for i in range(n):
            pmd = mm.pmd[vpns[i] >> 9]
            pfn = -1
            if (pmd & E_HUGE) and not (pmd & E_ZERO):
                pfn = ent_payload(pmd) + (vpns[i] & 511)
            elif pmd & E_TABLE:
                ent = self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (vpns[i] & 511)]
                if (ent & E_PRESENT) and not (ent & E_ZERO):
                    pfn = ent_payload(ent)
            if pfn >= 0:
                pv[i] = pfn
                ov[i] = self.z.frame[head_of(self, pfn)].order
        return pfns, orders

    # ------------------------------------------------------------------ fork
    def fork(self, int parent, int child):
        """copy_page_range(): share every anon page copy-on-write (both sides lose write
        permission; the child's entries start old).  Returns False on OOM (page tables)."""
        cdef MMStruct *pm = &self.mms[parent]
        cdef MMStruct *cm = &self.mms[child]
        cdef int64_t pi, i, slot, cslot
        cdef uint64_t pmd, ent
        cdef uint64_t *pt_
        cdef uint64_t *ct
        cdef pfn_t pfn, head
        for pi in range(pm.nr_pmds):
            pmd = pm.pmd[pi]
            if pmd == 0:
                continue
            cslot = self.alloc_pt()
            if cslot < 0:
                return False
            if pmd & E_HUGE:
                # copy_huge_pmd()
                cm.deposit[pi] = <int32_t>cslot
                if not (pmd & E_ZERO):
                    head = ent_payload(pmd)
                    pmd &= ~(<uint64_t>E_WRITE)
                    pm.pmd[pi] = pmd
                    self.emap[head] += 1
                    self.fmap[head] += 1
                    cm.rss_anon += HPAGE_PMD_NR
                cm.pmd[pi] = pmd & ~(<uint64_t>E_YOUNG)
                continue
            slot = ent_payload(pmd)
            cm.pmd[pi] = mk_ent(cslot, E_TABLE)
            pt_ = &self.pt[slot * HPAGE_PMD_NR]
            ct = &self.pt[cslot * HPAGE_PMD_NR]
            for i in range(HPAGE_PMD_NR):
                ent = pt_[i]
                if ent == 0:
                    continue
                if ent & E_SWAP:
                    self.swap_count[ent_payload(ent)] += 1
                    cm.nr_swap += 1
                    ct[i] = ent
                elif ent & E_ZERO:
                    ct[i] = ent & ~(<uint64_t>E_YOUNG)
                else:
                    pfn = ent_payload(ent)
                    ent &= ~(<uint64_t>E_WRITE)
                    pt_[i] = ent
                    ct[i] = ent & ~(<uint64_t>E_YOUNG)
                    self.pmapcount[pfn] += 1
                    self.fmap[head_of(self, pfn)] += 1
                    cm.rss_anon += 1
        self.log(EV_PROTECT, parent, 0, pm.nr_pmds * HPAGE_PMD_NR)
        return True

    # ------------------------------------------------------------------ swap out
    def pageout(self, int mmid, int64_t s, int64_t e):
        """MADV_PAGEOUT: write the range's exclusive anon pages to swap.  A THP in the
        range is split first (no THP swap-out: thp_swpout_fallback).  Returns pages
        swapped out."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t pi, v, a, slot, done = 0
        cdef uint64_t pmd, ent
        cdef uint64_t *p
        cdef pfn_t pfn, head
        for pi in range(s >> 9, ((e - 1) >> 9) + 1):
            pmd = mm.pmd[pi]
            if pmd == 0 or (pmd & E_ZERO):
                continue
            a = pi * HPAGE_PMD_NR
            if pmd & E_HUGE:
                head = ent_payload(pmd)
                if self.fmap[head] != 1:
                    continue        # folio_maybe_mapped_shared(): skipped
                if s <= a and a + HPAGE_PMD_NR <= e:
                    self.stat[S_THP_SWPOUT_FALLBACK] += 1
                split_huge_pmd_c(self, mmid, pi)
                split_folio_c(self, head, 0)
            for v in range(max(a, s), min(a + HPAGE_PMD_NR, e)):
                p = self.pte_ptr(mm, v)
                if p == NULL:
                    break
                ent = p[0]
                if not (ent & E_PRESENT) or (ent & E_ZERO):
                    continue
                pfn = ent_payload(ent)
                head = head_of(self, pfn)
                if self.z.frame[head].order > 0:
                    if not folio_exclusive(self, mmid, head):
                        continue
                    split_folio_c(self, head, 0)
                    ent = p[0]
                    if not (ent & E_PRESENT) or (ent & E_ZERO):
                        continue
                    pfn = ent_payload(ent)
                if self.pmapcount[pfn] != 1:
                    continue
                slot = self.swap_alloc()
                if slot < 0:
                    return done
                self.swap_content[slot] = self.content[pfn]
                p[0] = mk_ent(slot, E_SWAP)
                unmap_pte(self, pfn)
                mm.rss_anon -= 1
                mm.nr_swap += 1
                self.stat[S_PSWPOUT] += 1
                done += 1
        self.log(EV_SWAPOUT, mmid, s, e - s)
        return done

    # ------------------------------------------------------------------ mremap
    def move(self, int mmid, int64_t src, int64_t dst, int64_t n):
        """move_page_tables(): move the entries of [src, src+n) to [dst, dst+n) (dst
        already unmapped).  Whole aligned PMDs move as PMDs (move_huge_pmd); other
        huge PMDs are split.  Returns 0, -1 if a page is shared with another mapping
        (not modelled), -2 on OOM."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t i, v, w, pi, slot
        cdef uint64_t pmd, ent
        cdef uint64_t *p
        cdef uint64_t *q
        cdef pfn_t pfn, head
        # refuse pages mapped elsewhere first, so that a refusal changes nothing
        for v in range(src, src + n):
            pmd = mm.pmd[v >> 9]
            if (pmd & E_HUGE) and not (pmd & E_ZERO):
                if self.fmap[ent_payload(pmd)] != 1:
                    return -1
            elif pmd & E_TABLE:
                ent = self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (v & 511)]
                if (ent & E_PRESENT) and not (ent & E_ZERO) and self.pmapcount[ent_payload(ent)] + self.emap[head_of(self, ent_payload(ent))] != 1:
                    return -1
                if (ent & E_SWAP) and self.swap_count[ent_payload(ent)] != 1:
                    return -1
        i = 0
        while i < n:
            v = src + i
            w = dst + i
            pmd = mm.pmd[v >> 9]
            if pmd & E_HUGE:
                if (v & 511) == 0 and (w & 511) == 0 and n - i >= HPAGE_PMD_NR and mm.pmd[w >> 9] == 0:
                    mm.pmd[w >> 9] = pmd
                    mm.deposit[w >> 9] = mm.deposit[v >> 9]
                    mm.pmd[v >> 9] = 0
                    mm.deposit[v >> 9] = -1
                    if not (pmd & E_ZERO):
                        head = ent_payload(pmd)
                        for pi in range(HPAGE_PMD_NR):
                            self.rmap_vpn[head + pi] = w + pi
                    i += HPAGE_PMD_NR
                    continue
                split_huge_pmd_c(self, mmid, v >> 9)
                pmd = mm.pmd[v >> 9]
            if pmd == 0:
                i += 1
                continue
            p = self.pte_ptr(mm, v)
            ent = p[0]
            if ent != 0:
                if mm.pmd[w >> 9] == 0:
                    slot = self.alloc_pt()
                    if slot < 0:
                        return -2
                    mm.pmd[w >> 9] = mk_ent(slot, E_TABLE)
                elif mm.pmd[w >> 9] & E_HUGE:
                    split_huge_pmd_c(self, mmid, w >> 9)
                q = self.pte_ptr(mm, w)
                q[0] = ent
                p[0] = 0
                if (ent & E_PRESENT) and not (ent & E_ZERO):
                    self.rmap_vpn[ent_payload(ent)] = w
            i += 1
        self.log(EV_MIGRATE, mmid, src, n)
        return 0

    # ------------------------------------------------------------------ khugepaged
    def scan_pmd(self, int mmid, int64_t vpn, bint is_khugepaged):
        """hpage_collapse_scan_pmd() alone: (result, none_or_zero, unmapped, shared, referenced, writable)."""
        cdef int64_t out[5]
        memset(out, 0, sizeof(out))
        cdef int r = scan_pmd_c(self, mmid, vpn >> 9, is_khugepaged, out)
        return r, out[0], out[1], out[2], out[3], bool(out[4])

    def collapse(self, int mmid, int64_t vpn, uint32_t vmflags, bint is_khugepaged):
        """Scan the PMD at vpn and collapse it if the scan allows; returns the scan_result."""
        cdef int64_t pi = vpn >> 9
        cdef int r = scan_pmd_c(self, mmid, pi, is_khugepaged, NULL)
        if r != SCAN_SUCCEED:
            return r
        return collapse_huge_page_c(self, mmid, pi, vmflags, is_khugepaged)

    # ------------------------------------------------------------------ splitting folios
    def split_folio(self, int64_t pfn, int new_order):
        return split_folio_c(self, head_of(self, pfn), new_order)

    def split_range(self, int mmid, int64_t s, int64_t e, int new_order):
        """debugfs split_huge_pages "<pid>,<start>,<end>,<order>": split every anon large
        folio mapped in [s, e) to new_order; returns the number split."""
        cdef MMStruct *mm = &self.mms[mmid]
        cdef int64_t v, nsplit = 0
        cdef uint64_t pmd, ent
        cdef pfn_t pfn, head
        for v in range(s, e):
            pmd = mm.pmd[v >> 9]
            pfn = -1
            if (pmd & E_HUGE) and not (pmd & E_ZERO):
                pfn = ent_payload(pmd) + (v & 511)
            elif pmd & E_TABLE:
                ent = self.pt[ent_payload(pmd) * HPAGE_PMD_NR + (v & 511)]
                if (ent & E_PRESENT) and not (ent & E_ZERO):
                    pfn = ent_payload(ent)
            if pfn < 0:
                continue
            head = head_of(self, pfn)
            if self.z.frame[head].order <= new_order or not (self.pflags[head] & PF_ANON):
                continue
            if split_folio_c(self, head, new_order) == 0:
                nsplit += 1
        return nsplit

    def deferred_split_scan(self, int64_t nr_to_scan):
        return deferred_split_scan_c(self, nr_to_scan)

    # ------------------------------------------------------------------ migration
    @property
    def allocator(self):
        """The BuddyAllocator (zone) whose frames this core owns."""
        return self.buddy

    def frame_owner(self, int64_t pfn):
        """(head pfn, order) of the anonymous folio holding pfn, or None."""
        if not 0 <= pfn < self.nr_frames:
            return None
        cdef pfn_t head = head_of(self, pfn)
        if head < 0 or not (self.z.frame[head].flags & FRAME_ALLOC) or not (self.pflags[head] & PF_ANON):
            return None
        return head, self.z.frame[head].order

    def take_free_block(self, int64_t pfn, int order):
        return zone_take_block(self.z, pfn, order) == 0

    def migrate_folio(self, int64_t pfn, int64_t dst):
        """Move the anon folio holding pfn to dst, a block of the same order the caller
        allocated from the buddy allocator (and owns nothing else); returns the new head
        pfn, or -1 (not an anon folio / dst unsuitable)."""
        if not 0 <= pfn < self.nr_frames or not 0 <= dst < self.nr_frames:
            return -1
        cdef pfn_t head = head_of(self, pfn)
        if head < 0 or not (self.z.frame[head].flags & FRAME_ALLOC) or not (self.pflags[head] & PF_ANON):
            return -1
        if not (self.z.frame[dst].flags & FRAME_ALLOC) or self.z.frame[dst].order != self.z.frame[head].order or self.pflags[dst] != 0:
            return -1
        if self.pt_owner_check(dst):
            return -1
        if mm_folio_pinned(self, head):
            return -1           # an extra reference: migrate_folio_move() fails (-EAGAIN)
        migrate_folio_c(self, head, dst)
        return dst

    cdef bint pt_owner_check(self, pfn_t pfn) noexcept:
        # a block handed to migrate_folio must not be a page-table page or the huge zero folio
        return (self.pflags[pfn] & (PF_PGTABLE | PF_HUGE_ZERO)) != 0

    # ------------------------------------------------------------------ invariants
    def check(self):
        """Verify page tables against the per-frame state; raise InvariantError naming
        the first broken invariant."""
        self.buddy.check()
        cdef Zone *z = self.z
        cdef int64_t n = self.nr_frames
        exp_pmap_a = np.zeros(n, dtype=np.int32)
        exp_emap_a = np.zeros(n, dtype=np.int32)
        ptref_a = np.zeros(max(self.pt_cap, 1), dtype=np.int32)
        swapref_a = np.zeros(self.swap_cap + 1, dtype=np.int32)
        cdef int32_t[::1] exp_pmap = exp_pmap_a
        cdef int32_t[::1] exp_emap = exp_emap_a
        cdef int32_t[::1] ptref = ptref_a
        cdef int32_t[::1] swapref = swapref_a
        cdef int m, vi
        cdef MMStruct *mm
        cdef int64_t pi, i, slot, rss, nswap, vpn, pfn, head, nr, sum_p, anon_pages = 0, nthps = 0, pts = 0
        cdef int64_t allocated = 0, hz = 0, other = 0
        cdef uint64_t pmd, ent
        for m in range(self.max_mms):
            mm = &self.mms[m]
            if not mm.alive:
                continue
            rss = 0
            nswap = 0
            for pi in range(mm.nr_pmds):
                pmd = mm.pmd[pi]
                if pmd == 0:
                    if mm.deposit[pi] != -1:
                        raise InvariantError(f"mm {m}: empty PMD {pi} has a deposited table")
                    continue
                if self.find_vma(mm, pi * HPAGE_PMD_NR) < 0 and (pmd & E_HUGE):
                    raise InvariantError(f"mm {m}: huge PMD {pi} lies outside every VMA")
                if pmd & E_HUGE:
                    slot = mm.deposit[pi]
                    if slot < 0 or slot >= self.pt_cap or self.pt_pfn[slot] < 0:
                        raise InvariantError(f"mm {m}: huge PMD {pi} has no deposited PTE table")
                    ptref[slot] += 1
                    head = ent_payload(pmd)
                    if pmd & E_ZERO:
                        if head != self.hzp:
                            raise InvariantError(f"mm {m}: PMD {pi} maps pfn {head} as the huge zero page ({self.hzp})")
                        continue
                    if head < 0 or head >= n or not (self.pflags[head] & PF_ANON) or not (z.frame[head].flags & FRAME_ALLOC) \
                            or z.frame[head].order != HPAGE_PMD_ORDER:
                        raise InvariantError(f"mm {m}: huge PMD {pi} maps pfn {head}, not the head of an anon order-9 folio")
                    if self.rmap_vpn[head] != pi * HPAGE_PMD_NR or self.rmap_fam[head] != mm.family:
                        raise InvariantError(f"mm {m}: rmap of THP {head} says vpn {self.rmap_vpn[head]}, mapped at {pi * HPAGE_PMD_NR}")
                    exp_emap[head] += 1
                    rss += HPAGE_PMD_NR
                    continue
                if mm.deposit[pi] != -1:
                    raise InvariantError(f"mm {m}: PTE-table PMD {pi} also has a deposit")
                slot = ent_payload(pmd)
                if slot < 0 or slot >= self.pt_cap or self.pt_pfn[slot] < 0:
                    raise InvariantError(f"mm {m}: PMD {pi} points to a free PTE table slot {slot}")
                ptref[slot] += 1
                for i in range(HPAGE_PMD_NR):
                    ent = self.pt[slot * HPAGE_PMD_NR + i]
                    if ent == 0:
                        continue
                    vpn = pi * HPAGE_PMD_NR + i
                    if self.find_vma(mm, vpn) < 0:
                        raise InvariantError(f"mm {m}: page {vpn:#x} is mapped outside every VMA")
                    if ent & E_SWAP:
                        if ent_payload(ent) <= 0 or ent_payload(ent) > self.swap_cap:
                            raise InvariantError(f"mm {m}: page {vpn:#x} has a bad swap entry")
                        swapref[ent_payload(ent)] += 1
                        nswap += 1
                        continue
                    if ent & E_ZERO:
                        continue
                    pfn = ent_payload(ent)
                    if pfn < 0 or pfn >= n:
                        raise InvariantError(f"mm {m}: page {vpn:#x} maps pfn {pfn} out of range")
                    head = find_head(z, pfn)
                    if head < 0 or not (z.frame[head].flags & FRAME_ALLOC) or not (self.pflags[head] & PF_ANON):
                        raise InvariantError(f"mm {m}: page {vpn:#x} maps pfn {pfn}, which is not in an allocated anon folio")
                    if self.rmap_vpn[pfn] != vpn or self.rmap_fam[pfn] != mm.family:
                        raise InvariantError(f"mm {m}: pfn {pfn} mapped at {vpn:#x} but its rmap says {self.rmap_vpn[pfn]:#x}"
                                             f" (family {self.rmap_fam[pfn]}): mapped twice?")
                    exp_pmap[pfn] += 1
                    rss += 1
            if rss != mm.rss_anon:
                raise InvariantError(f"mm {m}: RssAnon is {mm.rss_anon} pages but the page tables map {rss}")
            if nswap != mm.nr_swap:
                raise InvariantError(f"mm {m}: {mm.nr_swap} swap entries counted, {nswap} in the page tables")
        # per-frame state against what the page tables say
        pfn = 0
        while pfn < n:
            if z.frame[pfn].flags & FRAME_BUDDY:
                if exp_pmap[pfn] or exp_emap[pfn]:
                    raise InvariantError(f"free pfn {pfn} is mapped")
                pfn += (<int64_t>1) << z.frame[pfn].order
                continue
            if not (z.frame[pfn].flags & FRAME_ALLOC):
                raise InvariantError(f"pfn {pfn} is in no block")
            nr = (<int64_t>1) << z.frame[pfn].order
            allocated += nr
            if self.pflags[pfn] & PF_PGTABLE:
                pts += 1
            elif self.pflags[pfn] & PF_HUGE_ZERO:
                hz += nr
            elif self.pflags[pfn] & PF_ANON:
                sum_p = 0
                for i in range(pfn, pfn + nr):
                    if self.pmapcount[i] != exp_pmap[i]:
                        raise InvariantError(f"pfn {i}: mapcount {self.pmapcount[i]}, page tables map it {exp_pmap[i]} times")
                    sum_p += exp_pmap[i]
                if self.emap[pfn] != exp_emap[pfn]:
                    raise InvariantError(f"folio {pfn}: entire_mapcount {self.emap[pfn]}, {exp_emap[pfn]} PMDs map it")
                if self.fmap[pfn] != sum_p + exp_emap[pfn]:
                    raise InvariantError(f"folio {pfn}: folio mapcount {self.fmap[pfn]}, expected {sum_p + exp_emap[pfn]}")
                if self.fmap[pfn] == 0:
                    raise InvariantError(f"folio {pfn} (order {z.frame[pfn].order}) is mapped nowhere but not freed (leak)")
                if exp_emap[pfn] > 0:
                    nthps += 1
                anon_pages += nr
            elif self.pflags[pfn] & (PF_FILE | PF_SLAB):
                other += nr         # reclaim: page cache and slab pages (checked by ReclaimCore.check)
            else:
                raise InvariantError(f"allocated block at pfn {pfn} (order {z.frame[pfn].order}) has no owner")
            for i in range(pfn + 1, pfn + nr):
                if exp_pmap[i] and not (self.pflags[pfn] & PF_ANON):
                    raise InvariantError(f"pfn {i} is mapped but not an anon page")
            if not (self.pflags[pfn] & PF_ANON) and exp_pmap[pfn]:
                raise InvariantError(f"pfn {pfn} is mapped but not an anon page")
            pfn += nr
        if allocated != n - z.nr_free_pages:
            raise InvariantError(f"allocated blocks hold {allocated} frames, zone says {n - z.nr_free_pages}")
        if anon_pages + pts + hz + other != allocated:
            raise InvariantError(f"page conservation: anon {anon_pages} + page tables {pts} + huge zero {hz}"
                                 f" + page cache/slab {other} != used {allocated}")
        if pts != self.pt_used or pts != self.stat[S_NR_PAGETABLE]:
            raise InvariantError(f"{pts} page-table pages allocated, {self.pt_used} tables in use")
        for slot in range(self.pt_cap):
            if self.pt_pfn != NULL and self.pt_pfn[slot] >= 0 and slot < ptref_a.shape[0] and ptref[slot] != 1 and self.pt_used > 0:
                if ptref[slot] == 0:
                    raise InvariantError(f"PTE table slot {slot} is allocated but referenced by no PMD (leak)")
                raise InvariantError(f"PTE table slot {slot} is referenced by {ptref[slot]} PMDs")
        if anon_pages != self.stat[S_NR_ANON_PAGES]:
            raise InvariantError(f"nr_anon_pages {self.stat[S_NR_ANON_PAGES]} but anon folios hold {anon_pages}")
        if nthps != self.stat[S_NR_ANON_THPS]:
            raise InvariantError(f"nr_anon_transparent_hugepages {self.stat[S_NR_ANON_THPS]} but {nthps} THPs are PMD-mapped")
        nr = 0
        for slot in range(1, self.swap_cap + 1):
            if swapref[slot] != self.swap_count[slot]:
                raise InvariantError(f"swap slot {slot}: count {self.swap_count[slot]}, referenced {swapref[slot]} times")
            if swapref[slot]:
                nr += 1
        if nr + self.swap_nfree != self.swap_cap:
            raise InvariantError(f"swap: {nr} used + {self.swap_nfree} free != {self.swap_cap}")
        # the deferred split queue
        cdef int64_t cur = self.dq_head, prev = -1, cnt = 0
        while cur >= 0:
            if not (self.pflags[cur] & PF_DEFERRED) or not (self.pflags[cur] & PF_ANON) or z.frame[cur].order < 2:
                raise InvariantError(f"pfn {cur} is on the deferred split queue but is not a queued large anon folio")
            if self.dq_prev[cur] != prev:
                raise InvariantError(f"deferred split queue: bad back link at {cur}")
            cnt += 1
            if cnt > n:
                raise InvariantError("deferred split queue has a cycle")
            prev = cur
            cur = self.dq_next[cur]
        if cnt != self.dq_len or prev != self.dq_tail:
            raise InvariantError(f"deferred split queue holds {cnt} folios, dq_len says {self.dq_len}")
        return True
