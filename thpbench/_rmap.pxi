# The reverse map (mm/rmap.c, Linux 6.18), included by _core.pyx.
#
# Per-frame mapcounts (page->_mapcount, folio->_large_mapcount, folio->_entire_mapcount)
# and the anon_vma family + page->index each mapped page is found through; a new anon
# folio (folio_add_new_anon_rmap) and its freeing with the last mapping.  Functions of
# MMCore's state (the class and its fields are in _memory.pxi / _core.pxd); other parts
# call only what _core.pxd declares under "in _rmap.pxi".
#
# Simplification: rmap walks visit every mm of a fork family at page->index (no
# anon_vma tree, no interval tree).

from libc.string cimport memset


cdef pfn_t head_of(MMCore self, pfn_t pfn) noexcept nogil:
    return find_head(self.z, pfn)


cdef void new_folio(MMCore self, pfn_t head, int order, int32_t fam, int64_t vpn, bint zero=True) noexcept nogil:
    cdef int64_t i, nr = (<int64_t>1) << order
    for i in range(nr):
        if zero:
            self.content[head + i] = 0          # __GFP_ZERO / clear_huge_page
        self.pmapcount[head + i] = 0
        self.rmap_fam[head + i] = fam
        self.rmap_vpn[head + i] = vpn + i
    self.fmap[head] = 0
    self.emap[head] = 0
    self.pflags[head] = PF_ANON
    self.stat[S_NR_ANON_PAGES] += nr
    if self.lru != NULL:
        # reclaim: folio_add_lru_vma(): new anon folios start on the inactive list (5.9+)
        lru_add(self.lru, head, nr, LRU_INACTIVE_ANON, False)


cdef void free_folio(MMCore self, pfn_t head) noexcept nogil:
    cdef int order = self.z.frame[head].order
    # a pin does not outlive the folio here (no refcount apart from the mapcount)
    memset(&self.pincount[head], 0, ((<size_t>1) << order) * sizeof(int32_t))
    dq_del(self, head)
    if self.lru != NULL:
        lru_del(self.lru, head, (<int64_t>1) << order)      # reclaim: off its LRU list
    self.pflags[head] = 0
    self.stat[S_NR_ANON_PAGES] -= (<int64_t>1) << order
    zone_free(self.z, head, order)


cdef void map_pte(MMCore self, pfn_t pfn, int32_t fam, int64_t vpn) noexcept nogil:
    cdef pfn_t head = head_of(self, pfn)
    self.pmapcount[pfn] += 1
    self.fmap[head] += 1
    self.rmap_fam[pfn] = fam
    self.rmap_vpn[pfn] = vpn


cdef void unmap_pte(MMCore self, pfn_t pfn) noexcept nogil:
    # folio_remove_rmap_pte(): free the folio with its last mapping, queue a
    # large folio that became partially mapped for deferred split
    cdef pfn_t head = head_of(self, pfn)
    self.pmapcount[pfn] -= 1
    self.fmap[head] -= 1
    if self.fmap[head] == 0:
        free_folio(self, head)
    elif self.z.frame[head].order > 0 and self.pmapcount[pfn] == 0 and self.emap[head] == 0:
        deferred_split_folio(self, head, True)


cdef void unmap_pmd(MMCore self, pfn_t head) noexcept nogil:
    # folio_remove_rmap_pmd()
    cdef int64_t i
    self.emap[head] -= 1
    self.fmap[head] -= 1
    if self.emap[head] == 0:
        self.stat[S_NR_ANON_THPS] -= 1
    if self.fmap[head] == 0:
        free_folio(self, head)
    elif self.emap[head] == 0:
        for i in range(HPAGE_PMD_NR):
            if self.pmapcount[head + i] == 0:
                deferred_split_folio(self, head, True)
                break


cdef bint folio_exclusive(MMCore self, int mmid, pfn_t head) noexcept nogil:
    """Are all mappings of the folio in this mm? (wp_can_reuse_anon_folio)"""
    cdef MMStruct *mm = &self.mms[mmid]
    cdef int64_t nr = (<int64_t>1) << self.z.frame[head].order, i, n = 0, vpn
    cdef uint64_t *p
    cdef uint64_t pmd
    if nr == 1:
        return self.fmap[head] == 1
    # count this mm's mappings of the folio at the pages' rmap addresses
    for i in range(nr):
        if self.pmapcount[head + i] == 0:
            continue
        vpn = self.rmap_vpn[head + i]
        if vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
            continue
        p = self.pte_ptr(mm, vpn)
        if p != NULL and (p[0] & E_PRESENT) and not (p[0] & E_ZERO) and ent_payload(p[0]) == head + i:
            n += 1
    if self.emap[head] > 0:
        vpn = self.rmap_vpn[head]
        pmd = mm.pmd[vpn >> 9]
        if (pmd & E_HUGE) and ent_payload(pmd) == head:
            n += 1
    return n == self.fmap[head]
