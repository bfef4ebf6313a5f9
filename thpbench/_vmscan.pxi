# Reclaim and the page cache (mm/vmscan.c, mm/swap.c, mm/workingset.c, mm/filemap.c
# of Linux 6.18), included by _core.pyx.
#
# The classic two-list LRU (CONFIG_LRU_GEN off): per folio head a place on one of
# four lists (inactive/active x anon/file), PG_referenced / PG_active, and the
# decisions of shrink_active_list(), shrink_folio_list() and folio_check_references().
# Anon folios are unmapped through MMCore's reverse map (rmap_fam / rmap_vpn) and
# written to its swap area; page-cache pages are dropped (clean) or written to their
# file's disk copy first (dirty) and leave a shadow entry for refault detection.
#
# Simplifications (also in thpbench/kernel/reclaim.py):
# * one node, one zone, no memcg, no MGLRU, no unevictable list, no swap cache (a
#   swap-out writes and frees at once), writeback is synchronous;
# * page-cache folios are order 0; a "mapped" page-cache page carries a mapcount and
#   one accessed bit (PG_young) that stand for the PTEs of the processes mapping it:
#   file mappings are not in MMCore's page tables;
# * isolation is not modelled: the lists are scanned in place from the tail;
# * get_scan_count() without the cost-based anon/file balance (swappiness splits
#   the scan, cache_trim_mode scans file only); no proportional scan adjustment.
#
# MMCore calls lru_add / lru_del / lru_split / lru_replace (module functions below)
# through its `lru` pointer when a ReclaimCore is attached.

from libc.math cimport sqrt
from libc.stdlib cimport malloc, calloc, realloc, free as c_free
from libc.string cimport memset
import numpy as np

DEF SWAP_CLUSTER_MAX = 32
DEF DEF_PRIORITY = 12


RECLAIM_STAT_NAMES = ("pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
                      "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file", "pgactivate",
                      "pgdeactivate", "pgrefill", "workingset_refault_file", "workingset_activate_file",
                      "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "x_pgpgin_file_kb", "x_pgpgout_kb",
                      "x_pagecache_hits", "x_pagecache_misses", "x_file_written", "x_file_unmapped")

LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file")

cdef enum:
    # folio_check_references() results
    FOLIOREF_RECLAIM = 0
    FOLIOREF_RECLAIM_CLEAN = 1
    FOLIOREF_KEEP = 2
    FOLIOREF_ACTIVATE = 3


# ---------------------------------------------------------------------- list primitives
cdef void lru_add(LruState *s, pfn_t p, int64_t nr, int L, bint at_tail) noexcept nogil:
    # lruvec_add_folio() (head = most recently added) / lruvec_add_folio_tail()
    if s.lru[p] != 0:
        return
    if at_tail:
        s.next[p] = -1
        s.prev[p] = <int32_t>s.tail[L]
        if s.tail[L] >= 0:
            s.next[s.tail[L]] = <int32_t>p
        else:
            s.head[L] = p
        s.tail[L] = p
    else:
        s.prev[p] = -1
        s.next[p] = <int32_t>s.head[L]
        if s.head[L] >= 0:
            s.prev[s.head[L]] = <int32_t>p
        else:
            s.tail[L] = p
        s.head[L] = p
    s.lru[p] = <uint8_t>(L + 1)
    if L == LRU_ACTIVE_ANON or L == LRU_ACTIVE_FILE:
        s.pg[p] |= PG_active
    else:
        s.pg[p] &= ~(<uint8_t>PG_active)
    s.nr[L] += nr


cdef void lru_del(LruState *s, pfn_t p, int64_t nr) noexcept nogil:
    # lruvec_del_folio(); a folio on no list is left alone
    cdef int L
    cdef int32_t a, b
    if s.lru[p] == 0:
        return
    L = s.lru[p] - 1
    a = s.prev[p]
    b = s.next[p]
    if a >= 0:
        s.next[a] = b
    else:
        s.head[L] = b
    if b >= 0:
        s.prev[b] = a
    else:
        s.tail[L] = a
    s.prev[p] = -1
    s.next[p] = -1
    s.lru[p] = 0
    s.nr[L] -= nr


cdef void lru_split(LruState *s, pfn_t head, int64_t nr, int64_t step) noexcept nogil:
    # lru_add_split_folio(): the new folios follow the head on its list, flags copied
    cdef int L
    cdef int64_t h
    cdef int32_t b
    if s.lru[head] == 0:
        return
    L = s.lru[head] - 1
    h = head + nr - step
    while h > head:
        b = s.next[head]
        s.prev[h] = <int32_t>head
        s.next[h] = b
        s.next[head] = <int32_t>h
        if b >= 0:
            s.prev[b] = <int32_t>h
        else:
            s.tail[L] = h
        s.lru[h] = s.lru[head]
        s.pg[h] = s.pg[head]
        h -= step
    # the page count of the list is unchanged: the head's share shrinks to `step`


cdef void lru_replace(LruState *s, pfn_t src, pfn_t dst) noexcept nogil:
    # migration: the new folio takes the old one's place and flags (folio_migrate_flags)
    cdef int L
    cdef int32_t a, b
    s.pg[dst] = s.pg[src]
    s.ino[dst] = s.ino[src]
    s.index[dst] = s.index[src]
    s.fmapcount[dst] = s.fmapcount[src]
    if s.lru[src] == 0:
        s.lru[dst] = 0
        return
    L = s.lru[src] - 1
    a = s.prev[src]
    b = s.next[src]
    s.prev[dst] = a
    s.next[dst] = b
    if a >= 0:
        s.next[a] = <int32_t>dst
    else:
        s.head[L] = dst
    if b >= 0:
        s.prev[b] = <int32_t>dst
    else:
        s.tail[L] = dst
    s.lru[dst] = s.lru[src]
    s.lru[src] = 0
    s.prev[src] = -1
    s.next[src] = -1


cdef int migrate_file_page_c(MMCore mm, pfn_t src, pfn_t dst) noexcept nogil:
    # For the compaction mover: move a page-cache page to dst (an allocated order-0
    # block the caller owns, pflags 0): its data, its mapping entry, its LRU place and
    # flags (folio_migrate_mapping + folio_migrate_flags).  0, or -1 if src is not a
    # page-cache page.  Slab pages are not movable (PF_SLAB): the mover must refuse them.
    cdef LruState *s = mm.lru
    if s == NULL or not (mm.pflags[src] & PF_FILE) or mm.pflags[dst] != 0:
        return -1
    mm.content[dst] = mm.content[src]
    mm.pflags[dst] = PF_FILE
    s.imap[s.ino[src]][s.index[src]] = dst
    lru_replace(s, src, dst)
    s.pg[src] = 0
    s.ino[src] = -1
    s.fmapcount[src] = 0
    mm.pflags[src] = 0
    return 0


cdef inline void mm_stat_add(MMCore mm, int i, int64_t v) noexcept nogil:
    cdef int64_t *st = &mm.stat[0]
    st[i] += v


cdef class ReclaimCore:
    """The LRU lists, the page cache and the reclaim loops of one MMCore (use
    thpbench.reclaim via Kernel: kernel.reclaim)."""

    def __cinit__(self, MMCore mm):
        cdef int64_t n = mm.nr_frames, i
        if mm.lru != NULL:
            raise ValueError("this MMCore already has a ReclaimCore attached")
        self.mm = mm
        memset(&self.s, 0, sizeof(LruState))
        self.s.nr_frames = n
        self.s.prev = <int32_t *>malloc(n * sizeof(int32_t))
        self.s.next = <int32_t *>malloc(n * sizeof(int32_t))
        self.s.lru = <uint8_t *>calloc(n, sizeof(uint8_t))
        self.s.pg = <uint8_t *>calloc(n, sizeof(uint8_t))
        self.s.ino = <int32_t *>malloc(n * sizeof(int32_t))
        self.s.index = <int32_t *>calloc(n, sizeof(int32_t))
        self.s.fmapcount = <int32_t *>calloc(n, sizeof(int32_t))
        self.alive_mms = <int32_t *>malloc(mm.max_mms * sizeof(int32_t))
        if (self.s.prev == NULL or self.s.next == NULL or self.s.lru == NULL or self.s.pg == NULL
                or self.s.ino == NULL or self.s.index == NULL or self.s.fmapcount == NULL or self.alive_mms == NULL):
            raise MemoryError(f"could not allocate the LRU state for {n} frames")
        for i in range(n):
            self.s.prev[i] = -1
            self.s.next[i] = -1
            self.s.ino[i] = -1
        for i in range(NR_LRU_LISTS):
            self.s.head[i] = -1
            self.s.tail[i] = -1
        self.s.swappiness = 60
        self.s.wmark_low = 0
        self.s.wmark_high = 0
        mm.lru = &self.s

    def __dealloc__(self):
        cdef int32_t i
        if self.mm is not None and self.mm.lru == &self.s:
            self.mm.lru = NULL
        for i in range(self.s.nr_inodes):
            c_free(self.s.imap[i]); c_free(self.s.idisk[i])
        c_free(self.s.imap); c_free(self.s.idisk); c_free(self.s.isize)
        c_free(self.s.prev); c_free(self.s.next); c_free(self.s.lru); c_free(self.s.pg)
        c_free(self.s.ino); c_free(self.s.index); c_free(self.s.fmapcount); c_free(self.alive_mms)

    def __reduce__(self):
        raise TypeError("ReclaimCore cannot be pickled")

    # ------------------------------------------------------------------ policy, read-outs
    def set_policy(self, int64_t wmark_low, int64_t wmark_high, int swappiness, int thp_swap):
        self.s.wmark_low = wmark_low
        self.s.wmark_high = wmark_high
        self.s.swappiness = swappiness
        self.s.thp_swap = thp_swap

    def stats(self):
        return {RECLAIM_STAT_NAMES[i]: self.s.stat[i] for i in range(RS_NR_STATS)}

    def lru_sizes(self):
        """Pages on each list: nr_inactive_anon, nr_active_anon, nr_inactive_file, nr_active_file."""
        return {"nr_" + LRU_NAMES[i]: self.s.nr[i] for i in range(NR_LRU_LISTS)}

    @property
    def nr_file_pages(self):
        return self.s.nr_file_pages

    @property
    def nr_dirty(self):
        return self.s.nr_dirty

    @property
    def nr_mapped(self):
        return self.s.nr_mapped

    def take_flags(self):
        """(kswapd_wake, kswapd_order, need_reclaim, wake_flusher), cleared on read."""
        out = (self.s.kswapd_wake, self.s.kswapd_order, self.s.need_reclaim, self.s.wake_flusher)
        self.s.kswapd_wake = 0
        self.s.kswapd_order = 0
        self.s.need_reclaim = 0
        self.s.wake_flusher = 0
        return out

    def lru_list(self, int L):
        """The folio heads on list L from head (newest) to tail (oldest), with their pg bits."""
        if not 0 <= L < NR_LRU_LISTS:
            raise ValueError(f"list {L} out of range 0..{NR_LRU_LISTS - 1}")
        out = []
        cdef int64_t p = self.s.head[L]
        while p >= 0:
            out.append((p, self.s.pg[p]))
            p = self.s.next[p]
        return out

    def folio_young(self, int64_t pfn):
        """Mappings of the folio whose accessed bit is set (no side effect)."""
        cdef pfn_t head = head_of(self.mm, pfn)
        if self.mm.pflags[head] & PF_FILE:
            return 1 if (self.s.fmapcount[head] > 0 and (self.s.pg[head] & PG_young)) else 0
        self.refresh_alive()
        return self.anon_referenced(head, False)

    def set_referenced(self, int64_t pfn, bint on):
        """Set or clear PG_referenced of the folio holding pfn (tests, scenarios)."""
        cdef pfn_t head = head_of(self.mm, pfn)
        if on:
            self.s.pg[head] |= PG_referenced
        else:
            self.s.pg[head] &= ~(<uint8_t>PG_referenced)

    # ------------------------------------------------------------------ rmap helpers (anon)
    cdef void refresh_alive(self) noexcept nogil:
        cdef int m
        self.nr_alive = 0
        for m in range(self.mm.max_mms):
            if self.mm.mms[m].alive:
                self.alive_mms[self.nr_alive] = m
                self.nr_alive += 1

    cdef int anon_referenced(self, pfn_t head, bint clear) noexcept nogil:
        # folio_referenced() -> folio_referenced_one(): accessed bits of every mapping,
        # found through the rmap (every mm of the anon_vma family at page->index)
        cdef int32_t fam = self.mm.rmap_fam[head]
        cdef int64_t nr = (<int64_t>1) << self.mm.z.frame[head].order, i, vpn, pi
        cdef int k, refs = 0
        cdef MMStruct *mm
        cdef uint64_t *p
        for k in range(self.nr_alive):
            mm = &self.mm.mms[self.alive_mms[k]]
            if mm.family != fam:
                continue
            if self.mm.emap[head] > 0:
                pi = self.mm.rmap_vpn[head] >> 9
                if 0 <= pi < mm.nr_pmds and (mm.pmd[pi] & E_HUGE) and not (mm.pmd[pi] & E_ZERO) \
                        and ent_payload(mm.pmd[pi]) == head and (mm.pmd[pi] & E_YOUNG):
                    refs += 1
                    if clear:
                        mm.pmd[pi] &= ~(<uint64_t>E_YOUNG)
            for i in range(nr):
                if self.mm.pmapcount[head + i] == 0:
                    continue
                vpn = self.mm.rmap_vpn[head + i]
                if vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
                    continue
                p = self.mm.pte_ptr(mm, vpn)
                if p != NULL and (p[0] & E_PRESENT) and not (p[0] & E_ZERO) and ent_payload(p[0]) == head + i \
                        and (p[0] & E_YOUNG):
                    refs += 1
                    if clear:
                        p[0] &= ~(<uint64_t>E_YOUNG)
        return refs

    cdef int swap_out_folio(self, pfn_t head) noexcept nogil:
        # add_to_swap() + try_to_unmap() + pageout() + __remove_mapping() of an anon
        # folio mapped only by PTEs (a PMD mapping is split first, TTU_SPLIT_HUGE_PMD):
        # every PTE becomes a swap entry, the data goes to the slot, the folio is freed.
        # 0 done, -1 no swap space, -2 a mapping was not found (the folio is kept).
        cdef int32_t fam = self.mm.rmap_fam[head]
        cdef int order = self.mm.z.frame[head].order
        cdef int64_t nr = (<int64_t>1) << order, i, vpn, pi, slot, cnt = 0, need = 0, written = 0
        cdef int k, refs
        cdef MMStruct *mm
        cdef uint64_t *p
        if self.mm.emap[head] > 0:
            pi = self.mm.rmap_vpn[head] >> 9
            for k in range(self.nr_alive):
                mm = &self.mm.mms[self.alive_mms[k]]
                if mm.family == fam and 0 <= pi < mm.nr_pmds and (mm.pmd[pi] & E_HUGE) \
                        and not (mm.pmd[pi] & E_ZERO) and ent_payload(mm.pmd[pi]) == head:
                    split_huge_pmd_c(self.mm, self.alive_mms[k], pi)
            if self.mm.emap[head] != 0:
                return -2
        # first pass: every mapping must be found through the rmap
        for i in range(nr):
            if self.mm.pmapcount[head + i] == 0:
                continue
            need += 1
            vpn = self.mm.rmap_vpn[head + i]
            for k in range(self.nr_alive):
                mm = &self.mm.mms[self.alive_mms[k]]
                if mm.family != fam or vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
                    continue
                p = self.mm.pte_ptr(mm, vpn)
                if p != NULL and (p[0] & E_PRESENT) and not (p[0] & E_ZERO) and ent_payload(p[0]) == head + i:
                    cnt += 1
        if cnt != self.mm.fmap[head] or cnt == 0:
            return -2
        if self.mm.swap_nfree < need:
            return -1
        for i in range(nr):
            if self.mm.pmapcount[head + i] == 0:
                continue
            slot = self.mm.swap_alloc()
            self.mm.swap_content[slot] = self.mm.content[head + i]
            refs = 0
            vpn = self.mm.rmap_vpn[head + i]
            for k in range(self.nr_alive):
                mm = &self.mm.mms[self.alive_mms[k]]
                if mm.family != fam or vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
                    continue
                p = self.mm.pte_ptr(mm, vpn)
                if p != NULL and (p[0] & E_PRESENT) and not (p[0] & E_ZERO) and ent_payload(p[0]) == head + i:
                    p[0] = mk_ent(slot, E_SWAP)
                    mm.rss_anon -= 1
                    mm.nr_swap += 1
                    refs += 1
                    self.mm.log(EV_SWAPOUT, self.alive_mms[k], vpn, 1)
            self.mm.swap_count[slot] = refs
            self.mm.pmapcount[head + i] = 0
            written += 1
        self.mm.fmap[head] = 0
        mm_stat_add(self.mm, S_PSWPOUT, written)
        self.s.stat[RS_PGPGOUT_KB] += 4 * written
        if order == HPAGE_PMD_ORDER:
            mm_stat_add(self.mm, S_THP_SWPOUT, 1)
        free_folio(self.mm, head)
        return 0

    # ------------------------------------------------------------------ page cache
    cdef void free_file_page(self, pfn_t pfn, bint shadow) noexcept nogil:
        # __filemap_remove_folio() with a shadow entry (workingset_eviction) or none
        cdef int32_t ino = self.s.ino[pfn]
        cdef int64_t idx = self.s.index[pfn]
        if shadow:
            self.s.nonresident_age += 1         # workingset_age_nonresident(), then read it
            self.s.imap[ino][idx] = -2 - self.s.nonresident_age
        else:
            self.s.imap[ino][idx] = -1
        if self.s.pg[pfn] & PG_dirty:
            self.s.nr_dirty -= 1
        if self.s.fmapcount[pfn] > 0:
            self.s.nr_mapped -= 1
        lru_del(&self.s, pfn, 1)
        self.s.pg[pfn] = 0
        self.s.fmapcount[pfn] = 0
        self.s.ino[pfn] = -1
        self.mm.pflags[pfn] = 0
        self.s.nr_file_pages -= 1
        zone_free(self.mm.z, pfn, 0)

    cdef pfn_t file_page_new(self, int32_t ino, int64_t idx) noexcept nogil:
        # filemap_add_folio() of a freshly allocated page; a shadow entry there means a
        # refault (workingset_refault): activate when the refault distance fits in the
        # workingset (active file, plus anon when it can be swapped)
        cdef pfn_t pfn = self.mm.alloc_pages(0, MIGRATE_MOVABLE, True)
        cdef int64_t e, dist, ws
        cdef int L = LRU_INACTIVE_FILE
        if pfn < 0:
            return -1
        e = self.s.imap[ino][idx]
        self.mm.pflags[pfn] = PF_FILE
        self.s.ino[pfn] = ino
        self.s.index[pfn] = <int32_t>idx
        self.s.pg[pfn] = 0
        self.s.fmapcount[pfn] = 0
        self.mm.content[pfn] = self.s.idisk[ino][idx]
        if e <= -2:
            self.s.stat[RS_WORKINGSET_REFAULT_FILE] += 1
            dist = self.s.nonresident_age - (-2 - e)
            ws = self.s.nr[LRU_ACTIVE_FILE]
            if self.mm.swap_nfree > 0 and self.s.swappiness > 0:
                ws += self.s.nr[LRU_ACTIVE_ANON] + self.s.nr[LRU_INACTIVE_ANON]
            if dist <= ws:
                L = LRU_ACTIVE_FILE
                self.s.stat[RS_WORKINGSET_ACTIVATE_FILE] += 1
                self.s.nonresident_age += 1
        self.s.imap[ino][idx] = pfn
        lru_add(&self.s, pfn, 1, L, False)
        if L == LRU_ACTIVE_FILE:
            self.s.pg[pfn] |= PG_workingset
        self.s.nr_file_pages += 1
        return pfn

    cdef void mark_accessed(self, pfn_t pfn) noexcept nogil:
        # folio_mark_accessed(): inactive,unreferenced -> inactive,referenced ->
        # active,unreferenced (workingset_activation ages the non-resident clock)
        cdef uint8_t g = self.s.pg[pfn]
        if not (g & PG_referenced):
            self.s.pg[pfn] = g | PG_referenced
        elif not (g & PG_active) and self.s.lru[pfn] == LRU_INACTIVE_FILE + 1:
            lru_del(&self.s, pfn, 1)
            lru_add(&self.s, pfn, 1, LRU_ACTIVE_FILE, False)
            self.s.pg[pfn] &= ~(<uint8_t>PG_referenced)
            self.s.stat[RS_PGACTIVATE] += 1
            self.s.nonresident_age += 1

    def create_inode(self, int64_t nr_pages, uint64_t seed):
        """A new file of nr_pages pages whose data on disk is a distinct value per page
        (derived from seed and the index).  Returns the inode number."""
        cdef int32_t ino = self.s.nr_inodes, cap
        cdef int64_t i
        if nr_pages < 0 or nr_pages > 2**31 - 1:
            raise ValueError(f"file size {nr_pages} pages out of range")
        if ino == self.s.inode_cap:
            cap = 64 if self.s.inode_cap == 0 else 2 * self.s.inode_cap
            self.s.imap = <int64_t **>realloc(self.s.imap, cap * sizeof(int64_t *))
            self.s.idisk = <uint64_t **>realloc(self.s.idisk, cap * sizeof(uint64_t *))
            self.s.isize = <int64_t *>realloc(self.s.isize, cap * sizeof(int64_t))
            if self.s.imap == NULL or self.s.idisk == NULL or self.s.isize == NULL:
                raise MemoryError("inode table")
            self.s.inode_cap = cap
        self.s.imap[ino] = <int64_t *>malloc((nr_pages + 1) * sizeof(int64_t))
        self.s.idisk[ino] = <uint64_t *>malloc((nr_pages + 1) * sizeof(uint64_t))
        if self.s.imap[ino] == NULL or self.s.idisk[ino] == NULL:
            raise MemoryError(f"file of {nr_pages} pages")
        for i in range(nr_pages):
            self.s.imap[ino][i] = -1
            self.s.idisk[ino][i] = (seed << 32) ^ (<uint64_t>(i + 1) * <uint64_t>0x9E3779B97F4A7C15)
        self.s.isize[ino] = nr_pages
        self.s.nr_inodes += 1
        return ino

    cdef int _inode_range(self, int32_t ino, int64_t start, int64_t n) except -1:
        if not 0 <= ino < self.s.nr_inodes or self.s.isize[ino] < 0:
            raise ValueError(f"no inode {ino}")
        if start < 0 or n < 0 or start + n > self.s.isize[ino]:
            raise ValueError(f"pages [{start}, {start + n}) outside file {ino} of {self.s.isize[ino]} pages")
        return 0

    def file_read(self, int32_t ino, int64_t start, int64_t n, bint mapped_access=False):
        """filemap_read() of pages [start, start+n): a hit marks the page accessed, a miss
        allocates a page (which may wake kswapd, or fail: then need_reclaim is set and
        the loop stops).  With mapped_access the access goes through a mapping (sets the
        accessed bit instead of PG_referenced).  Returns (pages done, misses)."""
        self._inode_range(ino, start, n)
        cdef int64_t i, e, misses = 0, done = 0
        cdef pfn_t pfn
        with nogil:
            for i in range(start, start + n):
                e = self.s.imap[ino][i]
                if e < 0:
                    pfn = self.file_page_new(ino, i)
                    if pfn < 0:
                        break
                    misses += 1
                    self.s.stat[RS_PAGECACHE_MISSES] += 1
                    self.s.stat[RS_PGPGIN_FILE_KB] += 4
                else:
                    pfn = e
                    self.s.stat[RS_PAGECACHE_HITS] += 1
                if mapped_access and self.s.fmapcount[pfn] > 0:
                    self.s.pg[pfn] |= PG_young
                else:
                    self.mark_accessed(pfn)
                done += 1
                if self.s.kswapd_wake:
                    break           # pause: kswapd runs (kernel/reclaim.py), the caller resumes
        return done, misses

    def file_values(self, int32_t ino, int64_t start, int64_t n):
        """What pages [start, start+n) hold: the cached page's content, else the disk's
        (a read through the cache without side effects)."""
        self._inode_range(ino, start, n)
        out = np.empty(n, dtype=np.uint64)
        cdef uint64_t[::1] o = out
        cdef int64_t i, e
        for i in range(n):
            e = self.s.imap[ino][start + i]
            o[i] = self.mm.content[e] if e >= 0 else self.s.idisk[ino][start + i]
        return out

    def file_cached(self, int32_t ino, int64_t start, int64_t n):
        """Per page of [start, start+n): pfn if cached, -1 if not (shadow entries read -1)."""
        self._inode_range(ino, start, n)
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef int64_t i, e
        for i in range(n):
            e = self.s.imap[ino][start + i]
            o[i] = e if e >= 0 else -1
        return out

    def file_write(self, int32_t ino, int64_t start, const uint64_t[::1] values):
        """Buffered write of whole pages: a missing page is allocated (no read needed for
        a full-page write), filled and marked dirty (folio_mark_dirty).  Returns pages done."""
        cdef int64_t n = values.shape[0], i, e, done = 0
        cdef pfn_t pfn
        self._inode_range(ino, start, n)
        with nogil:
            for i in range(n):
                e = self.s.imap[ino][start + i]
                if e < 0:
                    pfn = self.file_page_new(ino, start + i)
                    if pfn < 0:
                        break
                    self.s.stat[RS_PAGECACHE_MISSES] += 1
                else:
                    pfn = e
                self.mm.content[pfn] = values[i]
                if not (self.s.pg[pfn] & PG_dirty):
                    self.s.pg[pfn] |= PG_dirty
                    self.s.nr_dirty += 1
                self.mark_accessed(pfn)
                done += 1
                if self.s.kswapd_wake:
                    break
        return done

    def file_map(self, int32_t ino, int64_t start, int64_t n, int delta):
        """Processes map (+1) or unmap (-1) cached pages [start, start+n) (mmap of a file:
        the pages must be cached, map them after reading).  Returns pages changed."""
        self._inode_range(ino, start, n)
        cdef int64_t i, e, done = 0
        for i in range(start, start + n):
            e = self.s.imap[ino][i]
            if e < 0:
                continue
            if delta > 0:
                if self.s.fmapcount[e] == 0:
                    self.s.nr_mapped += 1
                self.s.fmapcount[e] += 1
                self.s.pg[e] |= PG_young
                done += 1
            elif self.s.fmapcount[e] > 0:
                self.s.fmapcount[e] -= 1
                if self.s.fmapcount[e] == 0:
                    self.s.nr_mapped -= 1
                done += 1
        return done

    cdef void write_file_page(self, pfn_t pfn) noexcept nogil:
        # writeback of one dirty page-cache page (synchronous in the model)
        self.s.idisk[self.s.ino[pfn]][self.s.index[pfn]] = self.mm.content[pfn]
        self.s.pg[pfn] &= ~(<uint8_t>(PG_dirty | PG_reclaim))
        self.s.nr_dirty -= 1
        self.s.stat[RS_PGPGOUT_KB] += 4
        self.s.stat[RS_FILE_WRITTEN] += 1

    def writeback(self, int64_t nr_pages):
        """The flusher (wb_writeback): write up to nr_pages dirty page-cache pages, oldest
        on the LRU first.  Returns pages written."""
        cdef int64_t done = 0, p
        cdef int L
        with nogil:
            for L in range(LRU_INACTIVE_FILE, LRU_ACTIVE_FILE + 1):
                p = self.s.tail[L]
                while p >= 0 and done < nr_pages:
                    if self.s.pg[p] & PG_dirty:
                        self.write_file_page(p)
                        done += 1
                    p = self.s.prev[p]
        return done

    def truncate(self, int32_t ino):
        """truncate_inode_pages() + unlink: every cached page of the file is freed (dirty
        data of a deleted file is discarded, as the kernel does); the inode is gone.
        Returns pages freed."""
        self._inode_range(ino, 0, 0)
        cdef int64_t i, e, freed = 0
        for i in range(self.s.isize[ino]):
            e = self.s.imap[ino][i]
            if e >= 0:
                self.free_file_page(e, False)
                freed += 1
        self.s.isize[ino] = -1
        return freed

    def drop_pagecache(self):
        """drop_caches 1: invalidate_mapping_pages() of every inode: clean, unmapped pages
        are freed (dirty, mapped ones stay).  Returns pages freed."""
        cdef int32_t ino
        cdef int64_t i, e, freed = 0
        with nogil:
            for ino in range(self.s.nr_inodes):
                for i in range(max(self.s.isize[ino], 0)):
                    e = self.s.imap[ino][i]
                    if e >= 0 and not (self.s.pg[e] & PG_dirty) and self.s.fmapcount[e] == 0:
                        self.free_file_page(e, False)
                        freed += 1
        return freed

    # ------------------------------------------------------------------ slab pages
    def slab_page_alloc(self, int mt):
        """A page for a slab cache (new_slab: order 0, RECLAIMABLE for dentry/inode caches,
        UNMOVABLE for kmalloc); -1 when the allocation failed (need_reclaim set)."""
        if mt not in (MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE):
            raise ValueError(f"slab migratetype {mt} not allowed (0 unmovable, 2 reclaimable)")
        cdef pfn_t pfn = self.mm.alloc_pages(0, mt, True)
        if pfn >= 0:
            self.mm.pflags[pfn] = PF_SLAB
        return pfn

    def slab_page_free(self, int64_t pfn):
        if not 0 <= pfn < self.mm.nr_frames or self.mm.pflags[pfn] != PF_SLAB:
            raise ValueError(f"pfn {pfn} is not a slab page")
        self.mm.pflags[pfn] = 0
        zone_free(self.mm.z, pfn, 0)

    def migrate_file_page(self, int64_t src, int64_t dst):
        """Move the page-cache page at src to dst (allocated order-0, unowned); the caller
        then frees src.  0 or -1 (see migrate_file_page_c)."""
        if not (0 <= src < self.mm.nr_frames and 0 <= dst < self.mm.nr_frames):
            raise ValueError(f"pfn out of range: {src}, {dst}")
        return migrate_file_page_c(self.mm, src, dst)

    # ------------------------------------------------------------------ reclaim
    cdef bint inactive_is_low(self, int inactive_lru) noexcept nogil:
        # inactive_is_low(): inactive * inactive_ratio < active, ratio = sqrt(10 * GB)
        cdef int64_t inactive = self.s.nr[inactive_lru], active = self.s.nr[inactive_lru + 1]
        cdef int64_t gb = (inactive + active) >> (30 - 12)
        cdef int64_t ratio = <int64_t>sqrt(<double>(10 * gb)) if gb else 1
        return inactive * ratio < active

    cdef void rotate(self, pfn_t p, int L) noexcept nogil:
        cdef int64_t nr = (<int64_t>1) << self.mm.z.frame[p].order
        lru_del(&self.s, p, nr)
        lru_add(&self.s, p, nr, L, False)

    cdef void activate(self, pfn_t p, int inactive_L) noexcept nogil:
        cdef int64_t nr = (<int64_t>1) << self.mm.z.frame[p].order
        lru_del(&self.s, p, nr)
        lru_add(&self.s, p, nr, inactive_L + 1, False)
        self.s.stat[RS_PGACTIVATE] += nr

    cdef pfn_t *isolate(self, int L, int64_t nr_to_scan, int64_t *cnt) noexcept nogil:
        # isolate_lru_folios(): the folios from the tail holding nr_to_scan pages, oldest
        # first (they stay linked; each is then moved or freed exactly once)
        cdef int64_t n = 0, pages = 0, cap = 64
        cdef pfn_t cur = self.s.tail[L]
        cdef pfn_t *out = <pfn_t *>malloc(cap * sizeof(pfn_t))
        cdef pfn_t *grown
        cnt[0] = 0
        if out == NULL:
            return NULL
        while cur >= 0 and pages < nr_to_scan:
            if n == cap:
                cap *= 2
                grown = <pfn_t *>realloc(out, cap * sizeof(pfn_t))
                if grown == NULL:
                    break
                out = grown
            out[n] = cur
            n += 1
            pages += (<int64_t>1) << self.mm.z.frame[cur].order
            cur = self.s.prev[cur]
        cnt[0] = n
        return out

    cdef int64_t shrink_active_list(self, int64_t nr_to_scan, int L) noexcept nogil:
        # shrink_active_list(): folios from the tail go to the inactive list, their
        # accessed bits cleared by folio_referenced(); referenced executable file
        # folios would stay active (VM_EXEC is not modelled)
        cdef int64_t scanned = 0, nr, k, cnt
        cdef pfn_t cur
        cdef pfn_t *iso = self.isolate(L, nr_to_scan, &cnt)
        if iso == NULL:
            return 0
        for k in range(cnt):
            cur = iso[k]
            nr = (<int64_t>1) << self.mm.z.frame[cur].order
            scanned += nr
            if L == LRU_ACTIVE_FILE:
                self.s.pg[cur] &= ~(<uint8_t>PG_young)
            else:
                self.anon_referenced(cur, True)
            lru_del(&self.s, cur, nr)
            lru_add(&self.s, cur, nr, L - 1, False)
            self.s.pg[cur] |= PG_workingset
            self.s.stat[RS_PGDEACTIVATE] += nr
        c_free(iso)
        self.s.stat[RS_PGREFILL] += scanned
        return scanned

    cdef int check_references(self, pfn_t p, bint file) noexcept nogil:
        # folio_check_references()
        cdef int refs
        cdef bint ref_folio = (self.s.pg[p] & PG_referenced) != 0
        if file:
            refs = 1 if (self.s.fmapcount[p] > 0 and (self.s.pg[p] & PG_young)) else 0
            self.s.pg[p] &= ~(<uint8_t>PG_young)
        else:
            refs = self.anon_referenced(p, True)
        self.s.pg[p] &= ~(<uint8_t>PG_referenced)
        if refs:
            # mapped folios start with a reference from the instantiating fault: look twice
            self.s.pg[p] |= PG_referenced
            if ref_folio or refs > 1:
                return FOLIOREF_ACTIVATE
            return FOLIOREF_KEEP
        if ref_folio and file:
            return FOLIOREF_RECLAIM_CLEAN
        return FOLIOREF_RECLAIM

    cdef int64_t shrink_folio(self, pfn_t p, int L, ScanControl *sc) noexcept nogil:
        # shrink_folio_list() for one folio; returns pages freed
        cdef bint file = L == LRU_INACTIVE_FILE
        cdef int ref, r
        cdef int order = self.mm.z.frame[p].order
        cdef int64_t nr = (<int64_t>1) << order, before, i
        if file:
            if self.s.fmapcount[p] > 0 and not sc.may_unmap:
                self.rotate(p, L)
                return 0
            ref = self.check_references(p, True)
            if ref == FOLIOREF_ACTIVATE:
                self.activate(p, L)
                return 0
            if ref == FOLIOREF_KEEP:
                self.rotate(p, L)
                return 0
            if self.s.pg[p] & PG_dirty:
                if ref == FOLIOREF_RECLAIM_CLEAN:
                    self.rotate(p, L)
                    return 0
                # "Only kswapd can writeback filesystem folios", and only one it met before
                # (PG_reclaim): others are marked for immediate reclaim, the flusher woken
                if not sc.may_writepage or not (sc.is_kswapd or sc.hibernation_mode) \
                        or not (self.s.pg[p] & PG_reclaim):
                    self.s.pg[p] |= PG_reclaim
                    self.s.stat[RS_NR_VMSCAN_IMMEDIATE] += 1
                    self.s.wake_flusher = 1
                    self.activate(p, L)
                    return 0
                self.write_file_page(p)          # pageout(): written before it may be freed
                self.s.stat[RS_NR_VMSCAN_WRITE] += 1
            if self.s.fmapcount[p] > 0:
                self.s.stat[RS_FILE_UNMAPPED] += 1   # try_to_unmap()
            self.free_file_page(p, True)
            self.s.stat[RS_PGSTEAL_FILE] += 1
            self.s.stat[RS_PGSTEAL_KSWAPD if sc.is_kswapd else RS_PGSTEAL_DIRECT] += 1
            return 1
        # anon
        if not sc.may_unmap:
            self.rotate(p, L)
            return 0
        ref = self.check_references(p, False)
        if ref == FOLIOREF_ACTIVATE:
            self.activate(p, L)
            return 0
        if ref == FOLIOREF_KEEP:
            self.rotate(p, L)
            return 0
        if not sc.may_swap or self.mm.swap_nfree == 0:
            self.activate(p, L)                  # add_to_swap() failed: activate_locked
            return 0
        before = self.mm.z.nr_free_pages
        if order > 0 and ((self.mm.pflags[p] & PF_PARTIAL) or not self.s.thp_swap or self.mm.swap_nfree < nr):
            # partially mapped folios are split at once; a THP without whole-THP swap
            # (2010) or without room for it is split: thp_swpout_fallback
            if order == HPAGE_PMD_ORDER and not (self.mm.pflags[p] & PF_PARTIAL):
                mm_stat_add(self.mm, S_THP_SWPOUT_FALLBACK, 1)
            if split_folio_c(self.mm, p, 0) != 0:
                self.rotate(p, L)
                return 0
            for i in range(p, p + nr):
                if (self.mm.z.frame[i].flags & FRAME_ALLOC) and (self.mm.pflags[i] & PF_ANON) and self.mm.z.frame[i].order == 0:
                    r = self.swap_out_folio(i)
                    if r == -1:
                        self.activate(i, L)
                    elif r == -2:
                        self.rotate(i, L)
        else:
            r = self.swap_out_folio(p)
            if r == -1:
                self.activate(p, L)
                return 0
            if r == -2:
                self.rotate(p, L)
                return 0
        nr = self.mm.z.nr_free_pages - before
        self.s.stat[RS_PGSTEAL_ANON] += nr
        self.s.stat[RS_PGSTEAL_KSWAPD if sc.is_kswapd else RS_PGSTEAL_DIRECT] += nr
        return nr

    cdef int64_t shrink_inactive_list(self, int64_t nr_to_scan, int L, ScanControl *sc) noexcept nogil:
        cdef int64_t scanned = 0, nr, freed = 0, k, cnt
        cdef pfn_t cur
        cdef pfn_t *iso = self.isolate(L, nr_to_scan, &cnt)
        if iso == NULL:
            return 0
        for k in range(cnt):
            cur = iso[k]
            nr = (<int64_t>1) << self.mm.z.frame[cur].order
            scanned += nr
            self.s.stat[RS_PGSCAN_KSWAPD if sc.is_kswapd else RS_PGSCAN_DIRECT] += nr
            self.s.stat[RS_PGSCAN_FILE if L == LRU_INACTIVE_FILE else RS_PGSCAN_ANON] += nr
            freed += self.shrink_folio(cur, L, sc)
        c_free(iso)
        sc.nr_scanned += scanned
        return freed

    cdef void shrink_lruvec_c(self, ScanControl *sc) noexcept nogil:
        # get_scan_count() + shrink_lruvec()
        cdef int64_t target[4]
        cdef int64_t n, scan
        cdef int L, ap, fp
        cdef bint swappable = sc.may_swap and self.mm.swap_nfree > 0 and self.s.swappiness > 0
        cdef bint file_only = not swappable, anon_only = False, equal = False
        if swappable and sc.priority == 0:
            equal = True                           # SCAN_EQUAL: out of options, scan both fully
        elif swappable and self.s.nr[LRU_INACTIVE_FILE] + self.s.nr[LRU_ACTIVE_FILE] \
                + self.mm.z.nr_free_pages <= self.s.wmark_high and not self.inactive_is_low(LRU_INACTIVE_ANON) \
                and (self.s.nr[LRU_INACTIVE_ANON] >> sc.priority) > 0:
            anon_only = True                       # file_is_tiny: SCAN_ANON
        elif swappable and not self.inactive_is_low(LRU_INACTIVE_FILE) and \
                (self.s.nr[LRU_INACTIVE_FILE] >> sc.priority) > 0:
            file_only = True                       # cache_trim_mode: SCAN_FILE
        ap = self.s.swappiness
        fp = 200 - self.s.swappiness
        for L in range(NR_LRU_LISTS):
            scan = self.s.nr[L] >> sc.priority
            if equal:
                pass
            elif L < LRU_INACTIVE_FILE:
                scan = 0 if file_only else (scan if anon_only else scan * ap // (ap + fp + 1))
            else:
                scan = 0 if anon_only else (scan if file_only else scan * fp // (ap + fp + 1))
            target[L] = scan
        while target[LRU_INACTIVE_ANON] or target[LRU_ACTIVE_FILE] or target[LRU_INACTIVE_FILE]:
            for L in range(NR_LRU_LISTS):
                if target[L] <= 0:
                    continue
                n = min(target[L], SWAP_CLUSTER_MAX)
                target[L] -= n
                if L == LRU_ACTIVE_ANON or L == LRU_ACTIVE_FILE:
                    if self.inactive_is_low(L - 1):
                        self.shrink_active_list(n, L)
                else:
                    sc.nr_reclaimed += self.shrink_inactive_list(n, L, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
        # "Even if we did not try to evict anon pages at all, we want to rebalance the
        # anon lru active/inactive ratio."
        if self.mm.swap_cap > 0 and self.inactive_is_low(LRU_INACTIVE_ANON):
            self.shrink_active_list(SWAP_CLUSTER_MAX, LRU_ACTIVE_ANON)

    def shrink_lruvec(self, int priority, int64_t nr_to_reclaim, bint may_writepage=True,
                      bint may_unmap=True, bint may_swap=True, bint is_kswapd=False,
                      bint hibernation_mode=False):
        """One shrink_lruvec() pass at `priority` (12..0).  Returns (reclaimed, scanned)."""
        if not 0 <= priority <= DEF_PRIORITY:
            raise ValueError(f"priority {priority} out of range 0..{DEF_PRIORITY}")
        cdef ScanControl sc
        memset(&sc, 0, sizeof(ScanControl))
        sc.priority = priority
        sc.nr_to_reclaim = nr_to_reclaim
        sc.may_writepage = may_writepage
        sc.may_unmap = may_unmap
        sc.may_swap = may_swap
        sc.is_kswapd = is_kswapd
        sc.hibernation_mode = hibernation_mode
        with nogil:
            self.refresh_alive()
            self.shrink_lruvec_c(&sc)
        return sc.nr_reclaimed, sc.nr_scanned

    def shrink_list(self, int L, int64_t nr_to_scan, bint may_writepage=True, bint may_unmap=True,
                    bint may_swap=True, bint is_kswapd=False):
        """One shrink_list() of list L (active lists: shrink_active_list unconditionally).
        Returns pages freed.  For tests and the differential reference."""
        if not 0 <= L < NR_LRU_LISTS:
            raise ValueError(f"list {L} out of range 0..{NR_LRU_LISTS - 1}")
        cdef ScanControl sc
        memset(&sc, 0, sizeof(ScanControl))
        sc.nr_to_reclaim = nr_to_scan
        sc.may_writepage = may_writepage
        sc.may_unmap = may_unmap
        sc.may_swap = may_swap
        sc.is_kswapd = is_kswapd
        self.refresh_alive()
        if L == LRU_ACTIVE_ANON or L == LRU_ACTIVE_FILE:
            self.shrink_active_list(nr_to_scan, L)
            return 0
        return self.shrink_inactive_list(nr_to_scan, L, &sc)

    # ------------------------------------------------------------------ invariants
    def check(self, slab_pfns=None):
        """Pages on the LRU lists = anon folios + page-cache pages, each on exactly one
        list of its kind with the right PG_active; list counts; the page cache against
        the per-inode maps; slab pages = slab_pfns (when given)."""
        cdef MMCore m = self.mm
        cdef Zone *z = m.z
        cdef int64_t n = m.nr_frames, pfn, p, nr, cnt, prev, file_pages = 0, dirty = 0, mapped = 0, slab = 0
        cdef int L, want
        seen = np.zeros(n, dtype=np.uint8)
        cdef uint8_t[::1] sv = seen
        for L in range(NR_LRU_LISTS):
            p = self.s.head[L]
            prev = -1
            cnt = 0
            while p >= 0:
                if sv[p]:
                    raise InvariantError(f"pfn {p} is on two LRU lists (or twice on {LRU_NAMES[L]})")
                sv[p] = 1
                if self.s.lru[p] != L + 1:
                    raise InvariantError(f"pfn {p} is on {LRU_NAMES[L]} but its lru field says {self.s.lru[p]}")
                if self.s.prev[p] != prev:
                    raise InvariantError(f"{LRU_NAMES[L]}: bad back link at pfn {p}")
                if not (z.frame[p].flags & FRAME_ALLOC):
                    raise InvariantError(f"pfn {p} on {LRU_NAMES[L]} is not an allocated folio head")
                if L < LRU_INACTIVE_FILE and not (m.pflags[p] & PF_ANON):
                    raise InvariantError(f"pfn {p} on {LRU_NAMES[L]} is not an anon folio")
                if L >= LRU_INACTIVE_FILE and not (m.pflags[p] & PF_FILE):
                    raise InvariantError(f"pfn {p} on {LRU_NAMES[L]} is not a page-cache page")
                if ((self.s.pg[p] & PG_active) != 0) != (L == LRU_ACTIVE_ANON or L == LRU_ACTIVE_FILE):
                    raise InvariantError(f"pfn {p} on {LRU_NAMES[L]} has PG_active {self.s.pg[p] & PG_active}")
                cnt += (<int64_t>1) << z.frame[p].order
                prev = p
                p = self.s.next[p]
            if prev != self.s.tail[L] or cnt != self.s.nr[L]:
                raise InvariantError(f"{LRU_NAMES[L]} holds {cnt} pages (tail {prev}), counted {self.s.nr[L]} (tail {self.s.tail[L]})")
        pfn = 0
        while pfn < n:
            nr = (<int64_t>1) << z.frame[pfn].order
            if z.frame[pfn].flags & FRAME_ALLOC:
                want = 1 if (m.pflags[pfn] & (PF_ANON | PF_FILE)) else 0
                if want != sv[pfn]:
                    raise InvariantError(f"pfn {pfn} (pflags {m.pflags[pfn]:#x}) is {'not ' if want else ''}on an LRU list"
                                         f"{'' if want else ' but is no anon or page-cache page'}")
                if m.pflags[pfn] & PF_FILE:
                    file_pages += 1
                    if nr != 1:
                        raise InvariantError(f"page-cache folio {pfn} has order {z.frame[pfn].order}")
                    if not (0 <= self.s.ino[pfn] < self.s.nr_inodes) or self.s.isize[self.s.ino[pfn]] <= self.s.index[pfn] \
                            or self.s.imap[self.s.ino[pfn]][self.s.index[pfn]] != pfn:
                        raise InvariantError(f"page-cache page {pfn} (inode {self.s.ino[pfn]}, index {self.s.index[pfn]}) is not in its mapping")
                    if self.s.pg[pfn] & PG_dirty:
                        dirty += 1
                    if self.s.fmapcount[pfn] > 0:
                        mapped += 1
                if m.pflags[pfn] & PF_SLAB:
                    slab += 1
            elif sv[pfn]:
                raise InvariantError(f"free pfn {pfn} is on an LRU list")
            pfn += nr if (z.frame[pfn].flags & (FRAME_ALLOC | FRAME_BUDDY)) else 1
        cdef int32_t ino
        cdef int64_t i, e, in_maps = 0
        for ino in range(self.s.nr_inodes):
            for i in range(max(self.s.isize[ino], 0)):
                e = self.s.imap[ino][i]
                if e >= 0:
                    in_maps += 1
                    if not (m.pflags[e] & PF_FILE) or self.s.ino[e] != ino or self.s.index[e] != i:
                        raise InvariantError(f"inode {ino} page {i} points to pfn {e}, which is not that page")
        if file_pages != self.s.nr_file_pages or in_maps != file_pages:
            raise InvariantError(f"page cache: {file_pages} pages allocated, {in_maps} in the mappings, counted {self.s.nr_file_pages}")
        if dirty != self.s.nr_dirty or mapped != self.s.nr_mapped:
            raise InvariantError(f"page cache: {dirty} dirty / {mapped} mapped, counted {self.s.nr_dirty} / {self.s.nr_mapped}")
        if slab_pfns is not None:
            want_slab = set(int(x) for x in slab_pfns)
            if len(want_slab) != slab:
                raise InvariantError(f"{slab} slab pages allocated, the slab caches own {len(want_slab)}")
            for x in want_slab:
                if not (m.pflags[x] & PF_SLAB):
                    raise InvariantError(f"slab caches own pfn {x}, which is not a slab page")
        return True
