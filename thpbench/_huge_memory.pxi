# Transparent huge pages (mm/huge_memory.c, Linux 6.18), included by _core.pyx.
#
# The THP fault (do_huge_pmd_anonymous_page, the huge zero folio), splitting a PMD
# (__split_huge_pmd_locked) and a folio (__folio_split, try_to_map_unused_to_zeropage),
# the deferred split queue and its shrinker (deferred_split_scan, thp_underused), the
# sysfs policy of a fault (__thp_vma_allowable_orders, vma_thp_gfp_mask) and the THP
# fault log.  Functions of MMCore's state (class in _memory.pxi); other parts call only
# what _core.pxd declares under "in _huge_memory.pxi".
#
# Simplifications (also in Kernel's docstring): PMD-order (9) folios only at fault (no
# mTHP); "shared" means mapped more than once (the pre-6.15 rule).

from libc.stdlib cimport realloc
from libc.string cimport memset
import numpy as np


cdef void dq_add(MMCore self, pfn_t head) noexcept nogil:
    if self.pflags[head] & PF_DEFERRED:
        return
    self.pflags[head] |= PF_DEFERRED
    self.dq_prev[head] = <int32_t>self.dq_tail
    self.dq_next[head] = -1
    if self.dq_tail >= 0:
        self.dq_next[self.dq_tail] = <int32_t>head
    else:
        self.dq_head = head
    self.dq_tail = head
    self.dq_len += 1


cdef void dq_del(MMCore self, pfn_t head) noexcept nogil:
    cdef int32_t p, n
    if not (self.pflags[head] & PF_DEFERRED):
        return
    p = self.dq_prev[head]
    n = self.dq_next[head]
    if p >= 0:
        self.dq_next[p] = n
    else:
        self.dq_head = n
    if n >= 0:
        self.dq_prev[n] = p
    else:
        self.dq_tail = p
    self.pflags[head] &= ~PF_DEFERRED
    self.dq_len -= 1


cdef void deferred_split_folio(MMCore self, pfn_t head, bint partially_mapped) noexcept nogil:
    # mm/huge_memory.c: deferred_split_folio()
    if self.z.frame[head].order <= 1:
        return
    if partially_mapped:
        if not (self.pflags[head] & PF_PARTIAL):
            self.pflags[head] |= PF_PARTIAL
            if self.z.frame[head].order == HPAGE_PMD_ORDER:
                self.stat[S_THP_DEFERRED_SPLIT_PAGE] += 1
    elif not self.shrink_underused:
        return
    dq_add(self, head)


cdef bint thp_fault_allowed(MMCore self, uint32_t vmflags) noexcept nogil:
    # __thp_vma_allowable_orders() for a fault: sysfs "enabled" and VM_(NO)HUGEPAGE
    if vmflags & VM_NOHUGEPAGE:
        return False
    if self.thp_enabled == THP_ALWAYS:
        return True
    return self.thp_enabled == THP_MADVISE and (vmflags & VM_HUGEPAGE) != 0


cdef int thp_gfp(MMCore self, uint32_t vmflags) noexcept nogil:
    # mm/huge_memory.c: vma_thp_gfp_mask(), the reclaim bits of this fault's THP
    # allocation (GFP_TRANSHUGE_LIGHT carries none; GFP_TRANSHUGE adds direct reclaim)
    cdef int d = self.thp_defrag
    cdef bint madvised = (vmflags & VM_HUGEPAGE) != 0
    if d == DEFRAG_ALWAYS:          # "Always do synchronous compaction"
        return GFP_DIRECT_RECLAIM | (0 if madvised else GFP_NORETRY)
    if d == DEFRAG_DEFER:           # "Kick kcompactd and fail quickly"
        return GFP_KSWAPD_RECLAIM
    if d == DEFRAG_DEFER_MADVISE:   # "Synchronous compaction if madvised, otherwise kick kcompactd"
        return GFP_DIRECT_RECLAIM if madvised else GFP_KSWAPD_RECLAIM
    if d == DEFRAG_MADVISE:         # "Only do synchronous compaction if madvised"
        return GFP_DIRECT_RECLAIM if madvised else 0
    return 0


cdef void split_huge_pmd_c(MMCore self, int mmid, int64_t pi) noexcept nogil:
    # __split_huge_pmd_locked(): remap a PMD-mapped folio (or the huge zero
    # folio) with the deposited PTE table; the folio stays whole
    cdef MMStruct *mm = &self.mms[mmid]
    cdef uint64_t pmd = mm.pmd[pi]
    cdef int64_t slot, i
    cdef uint64_t bits
    cdef uint64_t *t
    cdef pfn_t head
    if not (pmd & E_HUGE):
        return
    slot = mm.deposit[pi]
    mm.deposit[pi] = -1
    t = &self.pt[slot * HPAGE_PMD_NR]
    bits = pmd & (E_PRESENT | E_WRITE | E_YOUNG | E_DIRTY)
    self.stat[S_THP_SPLIT_PMD] += 1
    if pmd & E_ZERO:
        for i in range(HPAGE_PMD_NR):
            t[i] = E_PRESENT | E_ZERO | (bits & E_YOUNG)
    else:
        head = ent_payload(pmd)
        for i in range(HPAGE_PMD_NR):
            t[i] = mk_ent(head + i, bits)
            self.pmapcount[head + i] += 1
        self.fmap[head] += HPAGE_PMD_NR - 1
        self.emap[head] -= 1
        if self.emap[head] == 0:
            self.stat[S_NR_ANON_THPS] -= 1
    mm.pmd[pi] = mk_ent(slot, E_TABLE)
    self.log(EV_SPLIT_PMD, mmid, pi * HPAGE_PMD_NR, HPAGE_PMD_NR)


cdef int huge_pmd_anonymous_page(MMCore self, int mmid, int64_t pi, uint32_t vmflags, bint write) noexcept nogil:
    # do_huge_pmd_anonymous_page()
    cdef MMStruct *mm = &self.mms[mmid]
    cdef int64_t slot
    cdef pfn_t head
    if not write and self.use_zero_page:
        if self.hzp < 0:
            # get_huge_zero_folio(): allocated on first use, never freed here
            head = self.alloc_pages(HPAGE_PMD_ORDER, MIGRATE_UNMOVABLE, GFP_DIRECT_RECLAIM)
            if head < 0:
                self.stat[S_THP_ZERO_PAGE_ALLOC_FAILED] += 1
            else:
                self.stat[S_THP_ZERO_PAGE_ALLOC] += 1
                self.hzp = head
                memset(&self.content[head], 0, HPAGE_PMD_NR * sizeof(uint64_t))
                self.pflags[head] = PF_HUGE_ZERO
        if self.hzp >= 0:
            slot = self.alloc_pt()
            if slot < 0:
                return F_OOM
            mm.deposit[pi] = <int32_t>slot
            mm.pmd[pi] = mk_ent(self.hzp, E_PRESENT | E_HUGE | E_ZERO | E_YOUNG)
            return F_OK
    head = self.alloc_pages(HPAGE_PMD_ORDER, MIGRATE_MOVABLE, thp_gfp(self, vmflags))
    mm_log_thp_fault(self, mmid, pi, head >= 0)
    if head < 0:
        self.stat[S_THP_FAULT_FALLBACK] += 1
        return F_FALLBACK
    slot = self.alloc_pt()
    if slot < 0:
        zone_free(self.z, head, HPAGE_PMD_ORDER)
        return F_OOM
    install_thp(self, mmid, pi, head, slot, vmflags, write)
    self.stat[S_THP_FAULT_ALLOC] += 1
    self.log(EV_THP_FAULT, mmid, pi * HPAGE_PMD_NR, HPAGE_PMD_NR)
    return F_OK


cdef void install_thp(MMCore self, int mmid, int64_t pi, pfn_t head, int64_t slot, uint32_t vmflags,
                      bint dirty) noexcept nogil:
    # map_anon_folio_pmd(): a fresh zeroed folio behind a huge PMD
    cdef MMStruct *mm = &self.mms[mmid]
    cdef uint64_t bits = E_PRESENT | E_HUGE | E_YOUNG
    new_folio(self, head, HPAGE_PMD_ORDER, mm.family, pi * HPAGE_PMD_NR)
    self.emap[head] = 1
    self.fmap[head] = 1
    self.stat[S_NR_ANON_THPS] += 1
    if vmflags & VM_WRITE:
        bits |= E_WRITE
    if dirty:
        bits |= E_DIRTY
    mm.deposit[pi] = <int32_t>slot
    mm.pmd[pi] = mk_ent(head, bits)
    mm.rss_anon += HPAGE_PMD_NR
    deferred_split_folio(self, head, False)


cdef void remap_zero(MMCore self, pfn_t pfn) noexcept nogil:
    # try_to_map_unused_to_zeropage(): a zero-filled subpage becomes a zero-page PTE
    cdef int32_t fam = self.rmap_fam[pfn]
    cdef int64_t vpn = self.rmap_vpn[pfn]
    cdef int m
    cdef MMStruct *mm
    cdef uint64_t *p
    for m in range(self.max_mms):
        mm = &self.mms[m]
        if not mm.alive or mm.family != fam or vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
            continue
        p = self.pte_ptr(mm, vpn)
        if p == NULL or not (p[0] & E_PRESENT) or (p[0] & E_ZERO) or ent_payload(p[0]) != pfn:
            continue
        p[0] = E_PRESENT | E_ZERO | (p[0] & E_YOUNG)
        mm.rss_anon -= 1
        self.log(EV_ZAP, m, vpn, 1)
        unmap_pte(self, pfn)
        if self.pflags[pfn] == 0:
            return      # freed with its last mapping


cdef int split_folio_c(MMCore self, pfn_t head, int new_order) noexcept nogil:
    # __folio_split(): unmap the PMD mappings (split_huge_pmd via the rmap), break
    # the folio into order-new_order folios, free the unmapped ones, remap
    # zero-filled order-0 subpages to the zero page.  0, or -errno.
    cdef int order = self.z.frame[head].order
    cdef int64_t nr, step, h, j, f, pi, vpn
    cdef int m
    cdef int32_t fam
    cdef uint8_t fl
    cdef MMStruct *mm
    if not (self.pflags[head] & PF_ANON) or order == 0 or new_order >= order or new_order == 1 or new_order < 0:
        return -22
    nr = (<int64_t>1) << order
    # can_split_folio(): extra (pin) references make the split fail with -EAGAIN
    for j in range(head, head + nr):
        if self.pincount[j]:
            if order == HPAGE_PMD_ORDER:
                self.stat[S_THP_SPLIT_PAGE_FAILED] += 1
            return -11
    if self.emap[head] > 0:
        fam = self.rmap_fam[head]
        vpn = self.rmap_vpn[head]
        pi = vpn >> 9
        for m in range(self.max_mms):
            mm = &self.mms[m]
            if mm.alive and mm.family == fam and 0 <= pi < mm.nr_pmds:
                if (mm.pmd[pi] & E_HUGE) and not (mm.pmd[pi] & E_ZERO) and ent_payload(mm.pmd[pi]) == head:
                    split_huge_pmd_c(self, m, pi)
        if self.emap[head] != 0:
            if order == HPAGE_PMD_ORDER:
                self.stat[S_THP_SPLIT_PAGE_FAILED] += 1
            return -11
    dq_del(self, head)
    fl = self.z.frame[head].flags
    step = (<int64_t>1) << new_order
    h = head
    while h < head + nr:
        self.z.frame[h].flags = fl
        self.z.frame[h].order = new_order
        f = 0
        for j in range(h, h + step):
            f += self.pmapcount[j]
        self.fmap[h] = <int32_t>f
        self.emap[h] = 0
        self.pflags[h] = PF_ANON
        h += step
    self.z.nr_alloc += nr // step - 1
    if self.lru != NULL:
        lru_split(self.lru, head, nr, step)     # reclaim: lru_add_split_folio()
    h = head
    while h < head + nr:
        if self.fmap[h] == 0:
            free_folio(self, h)
        elif new_order == 0 and self.content[h] == 0:
            remap_zero(self, h)
        h += step
    if order == HPAGE_PMD_ORDER:
        self.stat[S_THP_SPLIT_PAGE] += 1
    return 0


cdef bint thp_underused(MMCore self, pfn_t head) noexcept nogil:
    # thp_underused(): more zero-filled subpages than max_ptes_none
    cdef int64_t i, nz = 0, filled = 0
    if self.max_ptes_none == HPAGE_PMD_NR - 1:
        return False
    for i in range(HPAGE_PMD_NR):
        if self.content[head + i] == 0:
            nz += 1
            if nz > self.max_ptes_none:
                return True
        else:
            filled += 1
            if filled >= HPAGE_PMD_NR - self.max_ptes_none:
                return False
    return False


cdef int64_t deferred_split_scan_c(MMCore self, int64_t nr_to_scan) noexcept nogil:
    # deferred_split_scan(): split partially mapped folios, and underused ones;
    # a fully mapped folio that is not underused leaves the queue
    cdef int64_t cur = self.dq_head, nxt, scanned = 0, nsplit = 0
    cdef bint underused, partial
    self.stat[S_SHRINKER_RUNS] += 1
    while cur >= 0 and scanned < nr_to_scan:
        nxt = self.dq_next[cur]
        scanned += 1
        partial = (self.pflags[cur] & PF_PARTIAL) != 0
        underused = False
        if not partial:
            underused = self.z.frame[cur].order == HPAGE_PMD_ORDER and thp_underused(self, cur)
            if not underused:
                dq_del(self, cur)
                cur = nxt
                continue
        if split_folio_c(self, cur, 0) == 0:
            nsplit += 1
            if underused:
                self.stat[S_THP_UNDERUSED_SPLIT_PAGE] += 1
        elif not partial:
            dq_del(self, cur)
        cur = nxt
    return nsplit


cdef void mm_log_thp_fault(MMCore m, int mmid, int64_t pi, bint ok) noexcept nogil:
    cdef int64_t *n
    cdef int64_t cap
    cdef int64_t *r
    if m.flog_len == m.flog_cap:
        cap = 1024 if m.flog_cap == 0 else 2 * m.flog_cap
        n = <int64_t *>realloc(m.flog, <size_t>cap * FLOG_FIELDS * sizeof(int64_t))
        if n == NULL:
            return          # best effort, as the event log
        m.flog = n
        m.flog_cap = cap
    r = m.flog + m.flog_len * FLOG_FIELDS
    r[0] = mmid
    r[1] = pi * HPAGE_PMD_NR
    r[2] = ok
    r[3] = m.ac_stalls
    r[4] = m.ac_scanned
    r[5] = m.ac_migrated
    r[6] = m.ac_failed
    r[7] = m.ac_result
    m.flog_len += 1


def _mm_drain_thp_fault_log(MMCore core):
    """THP allocations at fault since the last call: int64 [n, FLOG_FIELDS]
    (mm, vpn, ok, compact_stalls, scanned, migrated, failed, last compact_result or -1)."""
    out = np.empty((core.flog_len, FLOG_FIELDS), dtype=np.int64)
    if core.flog_len:
        out[:] = np.asarray(<int64_t[:core.flog_len * FLOG_FIELDS]>core.flog).reshape(core.flog_len, FLOG_FIELDS)
    core.flog_len = 0
    return out
