# Migration in the simulated kernel (mm/migrate.c, mm/gup.c), through the reverse map,
# included by _core.pyx.
#
# * The MMCore mover: compaction's core (_compaction.pxi) moves buddy state; these
#   functions move what an anonymous folio means to its owner (the contract in
#   _core.pxd): content, mapcounts, rmap, folio flags, deferred-split queue membership,
#   and every PTE / PMD of every mm of the fork family, found through the rmap
#   (MMCore.move_folio_state, shared with Kernel.migrate_folio).  Page-table pages, the
#   huge zero folio and pinned folios never move: compaction does not isolate the first
#   two (they are Unmovable allocations) and the mover refuses all three.
# * Pins (pin_user_pages / unpin_user_pages): a pinned folio never migrates.
#
# The allocator slow path that runs direct compaction is in _page_alloc.pxi; the THP
# fault log in _huge_memory.pxi.
#
# Simplifications: one zone; kswapd is not simulated here (a wakeup is recorded and
# the kernel in thpbench/kernel/ wakes kcompactd, as kswapd would when it goes to sleep); no
# capture_control (compaction frees a block, the allocation then takes one); a pin is
# a per-page count that blocks migration and splitting and does not outlive the folio.

from libc.stdlib cimport realloc
import numpy as np


cdef inline bint mm_folio_pinned(MMCore m, pfn_t head) noexcept nogil:
    cdef pfn_t i
    for i in range(head, head + ((<pfn_t>1) << m.z.frame[head].order)):
        if m.pincount[i]:
            return True
    return False


cdef void mm_push_piece(MMCore m, pfn_t pfn) noexcept nogil:
    cdef pfn_t *n
    cdef int64_t cap
    if m.split_left_len == m.split_left_cap:
        cap = 512 if m.split_left_cap == 0 else 2 * m.split_left_cap
        n = <pfn_t *>realloc(m.split_left, <size_t>cap * sizeof(pfn_t))
        if n == NULL:
            return          # the piece stays allocated and unmapped; check() would name it
        m.split_left = n
        m.split_left_cap = cap
    m.split_left[m.split_left_len] = pfn
    m.split_left_len += 1


# ---------------------------------------------------------------------------
# The mover
# ---------------------------------------------------------------------------

cdef void move_folio_state(MMCore self, pfn_t src, pfn_t dst) noexcept nogil:
    # migrate_folio() + remove_migration_ptes(): the owner's half of a migration.
    # Content, mapcounts, rmap, folio flags and deferred-split queue membership move
    # from the anon folio at src to dst; every PTE / PMD of every mm of the fork
    # family that maps src is rewritten through the rmap (a "migrate" event each).
    # The buddy state of src and dst is the caller's (migrate_folio_c, or
    # compaction's core per the mover contract).
    cdef int order = self.z.frame[src].order
    cdef int64_t nr = (<int64_t>1) << order, i, vpn, pi
    cdef int m
    cdef MMStruct *mm
    cdef uint64_t *p
    cdef int32_t fam = self.rmap_fam[src]
    cdef bint queued = (self.pflags[src] & PF_DEFERRED) != 0
    for i in range(nr):
        self.content[dst + i] = self.content[src + i]
        self.pmapcount[dst + i] = self.pmapcount[src + i]
        self.rmap_fam[dst + i] = self.rmap_fam[src + i]
        self.rmap_vpn[dst + i] = self.rmap_vpn[src + i]
        self.pincount[dst + i] = 0
    if self.lru != NULL:
        lru_replace(self.lru, src, dst)         # reclaim: the new folio takes the old one's LRU place
    self.fmap[dst] = self.fmap[src]
    self.emap[dst] = self.emap[src]
    dq_del(self, src)
    self.pflags[dst] = self.pflags[src] & ~(<uint8_t>PF_DEFERRED)
    if queued:
        dq_add(self, dst)
    for m in range(self.mm_hi):
        mm = &self.mms[m]
        if not mm.alive or mm.family != fam:
            continue
        if self.emap[src] > 0:
            pi = self.rmap_vpn[src] >> 9
            if 0 <= pi < mm.nr_pmds and (mm.pmd[pi] & E_HUGE) and not (mm.pmd[pi] & E_ZERO) \
                    and ent_payload(mm.pmd[pi]) == src:
                mm.pmd[pi] = mk_ent(dst, mm.pmd[pi] & 0xff)
                self.log(EV_MIGRATE, m, pi * HPAGE_PMD_NR, HPAGE_PMD_NR)
        for i in range(nr):
            if self.pmapcount[src + i] == 0:
                continue
            vpn = self.rmap_vpn[src + i]
            if vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
                continue
            p = self.pte_ptr(mm, vpn)
            if p != NULL and (p[0] & E_PRESENT) and not (p[0] & E_ZERO) and ent_payload(p[0]) == src + i:
                p[0] = mk_ent(dst + i, p[0] & 0xff)
                self.log(EV_MIGRATE, m, vpn, 1)
    for i in range(nr):
        self.pmapcount[src + i] = 0
        self.content[src + i] = 0
    self.fmap[src] = 0
    self.emap[src] = 0
    self.pflags[src] = 0


cdef int migrate_folio_c(MMCore self, pfn_t src, pfn_t dst) noexcept nogil:
    # migrate_pages() of one folio to the allocated, unowned block at dst (same
    # order): move the owner's state, then free the old block
    cdef int order = self.z.frame[src].order
    cdef int64_t nr = (<int64_t>1) << order
    move_folio_state(self, src, dst)
    zone_free(self.z, src, order)
    self.stat[S_PGMIGRATE_SUCCESS] += nr
    if order == HPAGE_PMD_ORDER:
        self.stat[S_THP_MIGRATION_SUCCESS] += 1
    return 0



cdef int mm_migrate_one(MMCore m, pfn_t src, pfn_t dst, int order) noexcept nogil:
    # migrate_folio_unmap() + migrate_folio_move() for an anon folio or a page-cache
    # page: refuse what cannot move (slab, a page table, the huge zero folio, an extra
    # reference), else move the owner's state; the caller (compaction's core) moves the
    # buddy state
    cdef uint8_t fl = m.pflags[src]
    if (fl & PF_FILE) and order == 0 and not mm_folio_pinned(m, src):
        # a page-cache page (reclaim's page cache): its data, mapping entry and LRU place
        # move (folio_migrate_mapping + folio_migrate_flags); 0 or -1
        return 0 if migrate_file_page_c(m, src, dst) == 0 else 1
    if not (fl & PF_ANON) or (fl & (PF_PGTABLE | PF_HUGE_ZERO)) or mm_folio_pinned(m, src):
        if order == HPAGE_PMD_ORDER:
            m.stat[S_THP_MIGRATION_FAIL] += 1
        return 1
    move_folio_state(m, src, dst)
    if fl & PF_SPLIT_PIECE:
        # "Folio was freed from under us": an unmapped piece of a split folio, freed
        # once compaction returns (mm_free_split_pieces)
        mm_push_piece(m, dst)
    if order == HPAGE_PMD_ORDER:
        m.stat[S_THP_MIGRATION_SUCCESS] += 1
    return 0


cdef int mm_split_for_migration(MMCore m, pfn_t head, int order) noexcept nogil:
    # try_split_folio() -> split_folio_to_list(): the owner's half of __folio_split to
    # order 0 (the core splits the buddy block).  PMD mappings are split first through
    # the rmap; no zero-page remapping (that is the deferred-split shrinker's).
    cdef int64_t nr = (<int64_t>1) << order, pi
    cdef pfn_t i
    cdef int mi
    cdef int32_t fam
    cdef MMStruct *mm
    cdef uint8_t fl = m.pflags[head]
    if not (fl & PF_ANON) or (fl & (PF_PGTABLE | PF_HUGE_ZERO)):
        return 1
    if mm_folio_pinned(m, head):
        # can_split_folio() fails: -EAGAIN, the folio stays whole (and unmoved)
        if order == HPAGE_PMD_ORDER:
            m.stat[S_THP_SPLIT_PAGE_FAILED] += 1
            m.stat[S_THP_MIGRATION_FAIL] += 1
        return 1
    if m.emap[head] > 0:
        fam = m.rmap_fam[head]
        pi = m.rmap_vpn[head] >> 9
        for mi in range(m.mm_hi):
            mm = &m.mms[mi]
            if mm.alive and mm.family == fam and 0 <= pi < mm.nr_pmds:
                if (mm.pmd[pi] & E_HUGE) and not (mm.pmd[pi] & E_ZERO) and ent_payload(mm.pmd[pi]) == head:
                    split_huge_pmd_c(m, mi, pi)
        if m.emap[head] != 0:
            return 1
    dq_del(m, head)
    for i in range(head, head + nr):
        m.fmap[i] = m.pmapcount[i]
        m.emap[i] = 0
        m.pflags[i] = PF_ANON
        if m.fmap[i] == 0:
            m.pflags[i] |= PF_SPLIT_PIECE
            mm_push_piece(m, i)
    if m.lru != NULL:
        lru_split(m.lru, head, nr, 1)       # reclaim: lru_add_split_folio(), order-0 pieces
    m.stat[S_MIGRATION_SPLIT] += 1
    if order == HPAGE_PMD_ORDER:
        m.stat[S_THP_MIGRATION_SPLIT] += 1
        m.stat[S_THP_SPLIT_PAGE] += 1
    return 0


cdef int mm_mover_migrate(void *ctx, pfn_t src, pfn_t dst, int order) noexcept nogil:
    """migrate_folio_t of the mover contract: ctx is the MMCore (borrowed)."""
    return mm_migrate_one(<MMCore>ctx, src, dst, order)


cdef int mm_mover_split(void *ctx, pfn_t head, int order) noexcept nogil:
    """split_folio_t of the mover contract."""
    return mm_split_for_migration(<MMCore>ctx, head, order)


cdef void mm_free_split_pieces(MMCore m) noexcept nogil:
    # after compaction: free the unmapped pieces of split folios (their last reference
    # was the isolation's), wherever they ended up
    cdef int64_t k
    cdef pfn_t p
    for k in range(m.split_left_len):
        p = m.split_left[k]
        if not (m.pflags[p] & PF_SPLIT_PIECE):
            continue
        m.pflags[p] &= ~(<uint8_t>PF_SPLIT_PIECE)
        if (m.pflags[p] & PF_ANON) and m.fmap[p] == 0 and (m.z.frame[p].flags & FRAME_ALLOC):
            free_folio(m, p)
    m.split_left_len = 0


cdef void mm_set_mover(compact_control *cc, MMCore m) noexcept nogil:
    cc.migrate_folio = mm_mover_migrate
    cc.split_folio = mm_mover_split
    cc.mover_ctx = <void *>m


# ---------------------------------------------------------------------------
# The Python face (thpbench/kernel/ calls these; it validates the arguments)
# ---------------------------------------------------------------------------

def _mm_attach_compaction(MMCore core, CompactionState state, bint on, int extfrag_threshold, int64_t wmark_low):
    """Give the core the zone's compaction fields and counters, CONFIG_COMPACTION,
    vm.extfrag_threshold and the low watermark."""
    if state.nr_pages != core.nr_frames:
        raise ValueError("the CompactionState belongs to another zone")
    core.compaction_state = state
    core.czs = &state.zs
    core.cstats = &state.stats
    core.compaction_on = on
    core.extfrag_threshold = extfrag_threshold
    core.wmark_low = wmark_low


def _mm_pin(MMCore core, int mmid, const int64_t[::1] vpns, int delta):
    """pin_user_pages() (delta +1) / unpin_user_pages() (-1) of the pages mapped at
    vpns; returns the index of the first page that is not present (or not pinned, for
    an unpin), or -1 when all were done."""
    cdef MMStruct *mm = &core.mms[mmid]
    cdef Py_ssize_t i
    cdef uint64_t pmd, ent
    cdef pfn_t pfn
    cdef int64_t vpn
    for i in range(vpns.shape[0]):
        vpn = vpns[i]
        if vpn < 0 or vpn >= mm.nr_pmds * HPAGE_PMD_NR:
            return i
        pmd = mm.pmd[vpn >> 9]
        pfn = -1
        if (pmd & E_HUGE) and not (pmd & E_ZERO):
            pfn = ent_payload(pmd) + (vpn & 511)
        elif pmd & E_TABLE:
            ent = core.pt[ent_payload(pmd) * HPAGE_PMD_NR + (vpn & 511)]
            if (ent & E_PRESENT) and not (ent & E_ZERO):
                pfn = ent_payload(ent)
        if pfn < 0 or (delta < 0 and core.pincount[pfn] == 0):
            return i
        core.pincount[pfn] += delta
    return -1


def _mm_frame_pins(MMCore core):
    """Per-frame pin counts (a copy, int32)."""
    return np.asarray(<int32_t[:core.nr_frames]>core.pincount).copy()


def _mm_check_compaction(MMCore core):
    """Pins only on pages of allocated anon folios; no split piece left behind."""
    cdef Zone *z = core.z
    cdef pfn_t pfn, head
    for pfn in range(core.nr_frames):
        if core.pflags[pfn] & PF_SPLIT_PIECE:
            raise InvariantError(f"pfn {pfn} is still marked as an unmapped piece of a split folio")
        if core.pincount[pfn]:
            head = find_head(z, pfn)
            if head < 0 or not (z.frame[head].flags & FRAME_ALLOC) or not (core.pflags[head] & PF_ANON):
                raise InvariantError(f"pfn {pfn} is pinned ({core.pincount[pfn]}) but not a page of an anon folio")
    return True
