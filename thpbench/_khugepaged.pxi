# khugepaged's scan and collapse (mm/khugepaged.c, Linux 6.18), included by _core.pyx.
#
# hpage_collapse_scan_pmd() and collapse_huge_page() for one PMD of one mm; the
# scheduling (pages_to_scan, the sleeps, the mm list) lives in thpbench/kernel/.
# Functions of MMCore's state (class in _memory.pxi); other parts call only what
# _core.pxd declares under "in _khugepaged.pxi".


cdef int scan_pmd_c(MMCore self, int mmid, int64_t pi, bint is_khugepaged, int64_t *out) noexcept nogil:
    # hpage_collapse_scan_pmd(): out = [none_or_zero, unmapped, shared, referenced, writable]
    cdef MMStruct *mm = &self.mms[mmid]
    cdef uint64_t pmd = mm.pmd[pi], ent
    cdef uint64_t *t
    cdef int64_t i, none_or_zero = 0, unmapped = 0, shared = 0, referenced = 0
    cdef bint writable = False
    cdef pfn_t pfn
    cdef int result = SCAN_SUCCEED
    if pmd == 0:
        return SCAN_PMD_NONE
    if pmd & E_HUGE:
        return SCAN_PMD_MAPPED
    t = &self.pt[ent_payload(pmd) * HPAGE_PMD_NR]
    for i in range(HPAGE_PMD_NR):
        self.stat[S_PTES_SCANNED] += 1
        ent = t[i]
        if ent & E_SWAP:
            unmapped += 1
            if not is_khugepaged or unmapped <= self.max_ptes_swap:
                continue
            self.stat[S_THP_SCAN_EXCEED_SWAP_PTE] += 1
            result = SCAN_EXCEED_SWAP_PTE
            break
        if ent == 0 or (ent & E_ZERO):
            none_or_zero += 1
            if none_or_zero <= self.max_ptes_none or not is_khugepaged:
                continue
            self.stat[S_THP_SCAN_EXCEED_NONE_PTE] += 1
            result = SCAN_EXCEED_NONE_PTE
            break
        if ent & E_WRITE:
            writable = True
        pfn = ent_payload(ent)
        if self.pmapcount[pfn] + self.emap[head_of(self, pfn)] > 1:
            shared += 1
            if is_khugepaged and shared > self.max_ptes_shared:
                self.stat[S_THP_SCAN_EXCEED_SHARE_PTE] += 1
                result = SCAN_EXCEED_SHARED_PTE
                break
        if is_khugepaged and (ent & E_YOUNG):
            referenced += 1
    if result == SCAN_SUCCEED:
        if not writable:
            result = SCAN_PAGE_RO
        elif is_khugepaged and (referenced == 0 or (unmapped > 0 and referenced < HPAGE_PMD_NR // 2)):
            result = SCAN_LACK_REFERENCED_PAGE
    if out != NULL:
        out[0] = none_or_zero
        out[1] = unmapped
        out[2] = shared
        out[3] = referenced
        out[4] = writable
    return result


cdef int collapse_huge_page_c(MMCore self, int mmid, int64_t pi, uint32_t vmflags, bint is_khugepaged) noexcept nogil:
    # collapse_huge_page(): allocate, swap in, copy, free the originals, set the PMD
    cdef MMStruct *mm = &self.mms[mmid]
    cdef pfn_t head, pfn
    cdef int64_t i, slot, nr_present = 0
    cdef uint64_t ent
    cdef uint64_t *t
    cdef uint64_t bits
    # alloc_charge_folio(): khugepaged's gfp follows khugepaged/defrag
    # (alloc_hugepage_khugepaged_gfpmask), MADV_COLLAPSE always GFP_TRANSHUGE
    head = self.alloc_pages(HPAGE_PMD_ORDER, MIGRATE_MOVABLE,
                            (GFP_DIRECT_RECLAIM if self.khugepaged_defrag != 0 else 0)
                            if is_khugepaged else GFP_DIRECT_RECLAIM)
    if head < 0:
        self.stat[S_THP_COLLAPSE_ALLOC_FAILED] += 1
        return SCAN_ALLOC_HUGE_PAGE_FAIL
    self.stat[S_THP_COLLAPSE_ALLOC] += 1
    slot = ent_payload(mm.pmd[pi])
    t = &self.pt[slot * HPAGE_PMD_NR]
    # __collapse_huge_page_swapin(): fault the swapped pages back in
    for i in range(HPAGE_PMD_NR):
        if t[i] & E_SWAP:
            if self.fault_c(mmid, pi * HPAGE_PMD_NR + i, False, 0) != F_OK:
                zone_free(self.z, head, HPAGE_PMD_ORDER)
                return SCAN_FAIL
    # __collapse_huge_page_copy(): copy the present pages, clear the rest
    for i in range(HPAGE_PMD_NR):
        ent = t[i]
        if (ent & E_PRESENT) and not (ent & E_ZERO):
            self.content[head + i] = self.content[ent_payload(ent)]
        else:
            self.content[head + i] = 0
    self.stat[S_COLLAPSE_COPIED] += HPAGE_PMD_NR
    # ... and release the originals (__collapse_huge_page_copy_succeeded)
    for i in range(HPAGE_PMD_NR):
        ent = t[i]
        t[i] = 0
        if (ent & E_PRESENT) and not (ent & E_ZERO):
            nr_present += 1
            unmap_pte(self, ent_payload(ent))
    mm.rss_anon -= nr_present
    # the emptied PTE table becomes the deposit of the new huge PMD
    bits = E_PRESENT | E_HUGE | E_YOUNG | E_DIRTY
    mm.pmd[pi] = 0
    new_folio(self, head, HPAGE_PMD_ORDER, mm.family, pi * HPAGE_PMD_NR, False)
    self.emap[head] = 1
    self.fmap[head] = 1
    self.stat[S_NR_ANON_THPS] += 1
    mm.deposit[pi] = <int32_t>slot
    mm.pmd[pi] = mk_ent(head, bits | (E_WRITE if vmflags & VM_WRITE else 0))
    mm.rss_anon += HPAGE_PMD_NR
    deferred_split_folio(self, head, False)
    self.log(EV_COLLAPSE, mmid, pi * HPAGE_PMD_NR, HPAGE_PMD_NR)
    return SCAN_SUCCEED
