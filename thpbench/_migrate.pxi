# Compaction in the simulated kernel (mm/migrate.c, mm/page_alloc.c, mm/compaction.c),
# included by _core.pyx after _mm.pxi and _compaction.pxi.
#
# * The MMCore mover: compaction's core (_compaction.pxi) moves buddy state; these
#   functions move what an anonymous folio means to its owner (the contract in
#   _core.pxd): content, mapcounts, rmap, folio flags, deferred-split queue membership,
#   and every PTE / PMD of every mm of the fork family, found through the rmap
#   (MMCore.move_folio_state, shared with Kernel.migrate_folio).  Page-table pages, the
#   huge zero folio and pinned folios never move: compaction does not isolate the first
#   two (they are Unmovable allocations) and the mover refuses all three.
# * The allocator slow path (__alloc_pages_slowpath) for MMCore.alloc_pages: wake
#   kswapd, direct compaction (__alloc_pages_direct_compact, async first), direct
#   reclaim, as far as the gfp bits allow.
# * The THP fault log: one row per THP allocation at fault, with the direct compaction
#   work it waited for (its latency is computed in mm.py from the CostModel).
#
# Simplifications: one zone; kswapd is not simulated here (a wakeup is recorded and
# the kernel in mm.py wakes kcompactd, as kswapd would when it goes to sleep); no
# capture_control (compaction frees a block, the allocation then takes one); a pin is
# a per-page count that blocks migration and splitting and does not outlive the folio.


cdef inline bint mm_folio_pinned(MMCore m, pfn_t head) noexcept nogil:
    cdef pfn_t i
    for i in range(head, head + ((<pfn_t>1) << m.z.frame[head].order)):
        if m.pincount[i]:
            return True
    return False


cdef pfn_t mm_get_page_from_freelist(MMCore m, int order, int mt, int64_t mark) noexcept nogil:
    # get_page_from_freelist(): the zone's free pages above the watermark (min in the
    # slow path, low in the fast path) after this allocation, then rmqueue
    if m.z.nr_free_pages - ((<int64_t>1) << order) + 1 > mark:
        return zone_alloc(m.z, order, mt)
    return -1


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
    m.move_folio_state(src, dst)
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
                    m.split_huge_pmd_c(mi, pi)
        if m.emap[head] != 0:
            return 1
    m.dq_del(head)
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
            m.free_folio(p)
    m.split_left_len = 0


cdef void mm_set_mover(compact_control *cc, MMCore m) noexcept nogil:
    cc.migrate_folio = mm_mover_migrate
    cc.split_folio = mm_mover_split
    cc.mover_ctx = <void *>m


# ---------------------------------------------------------------------------
# The allocator slow path
# ---------------------------------------------------------------------------

cdef pfn_t mm_direct_compact(MMCore m, int order, int mt, int prio, int *result) noexcept nogil:
    # __alloc_pages_direct_compact() -> try_to_compact_pages() for the one zone
    cdef compact_control cc
    cdef int status, mode
    cdef bint full
    cdef int64_t s0, f0, scanned
    cdef pfn_t pfn
    if order == 0 or not m.compaction_on or m.czs == NULL:
        result[0] = COMPACT_SKIPPED
        return -1
    if prio > MM_COMPACT_PRIO_SYNC_FULL and compaction_deferred(m.czs, order):
        status = COMPACT_DEFERRED
    else:
        mode = K_MIGRATE_ASYNC if prio == MM_COMPACT_PRIO_ASYNC else K_MIGRATE_SYNC_LIGHT
        # gfp_migratetype(): everything is Unmovable with grouping by mobility off
        if compact_control_init(&cc, m.z, m.czs, m.cstats, order, mode,
                                mt if m.z.grouping else MIGRATE_UNMOVABLE) != 0:
            result[0] = COMPACT_SKIPPED
            return -1
        full = prio == MM_COMPACT_PRIO_SYNC_FULL
        cc.direct_compaction = 1
        cc.whole_zone = full
        cc.ignore_skip_hint = full
        cc.ignore_block_suitable = full
        cc.wmark_min = m.wmark_min
        cc.wmark_low = m.wmark_low
        cc.alloc_wmark = m.wmark_min
        cc.extfrag_threshold = m.extfrag_threshold
        mm_set_mover(&cc, m)
        s0 = m.cstats.pgmigrate_success
        f0 = m.cstats.pgmigrate_fail
        status = compact_zone_c(&cc)
        scanned = cc.total_migrate_scanned + cc.total_free_scanned
        compact_control_release(&cc)
        mm_free_split_pieces(m)
        m.ac_scanned += scanned
        m.ac_migrated += m.cstats.pgmigrate_success - s0
        m.ac_failed += m.cstats.pgmigrate_fail - f0
        m.stat[S_DIRECT_COMPACT_SCANNED] += scanned
        m.stat[S_DIRECT_COMPACT_MIGRATED] += m.cstats.pgmigrate_success - s0
        m.stat[S_DIRECT_COMPACT_FAILED] += m.cstats.pgmigrate_fail - f0
        if status == COMPACT_SUCCESS:
            compaction_defer_reset(m.czs, order, False)
        elif prio != MM_COMPACT_PRIO_ASYNC and (status == COMPACT_COMPLETE or status == COMPACT_PARTIAL_SKIPPED):
            # "We think that allocation won't succeed in this zone so we defer compaction there"
            defer_compaction(m.czs, order)
    result[0] = status
    m.ac_result = status
    if status == COMPACT_SKIPPED:
        return -1
    m.cstats.compact_stall += 1
    m.ac_stalls += 1
    pfn = mm_get_page_from_freelist(m, order, mt, m.wmark_min)
    if pfn >= 0:
        m.czs.compact_blockskip_flush = 0
        compaction_defer_reset(m.czs, order, True)
        m.cstats.compact_success += 1
    else:
        m.cstats.compact_fail += 1
    return pfn


cdef void mm_wake_all_kswapds(MMCore m, int order) noexcept nogil:
    # wake_all_kswapds() -> wakeup_kswapd(): recorded; the kernel (mm.py) acts on it
    # after the operation (Kernel._wake_kswapd)
    m.stat[S_KSWAPD_WAKE] += 1
    if order > m.kswapd_wake_order:
        m.kswapd_wake_order = order


cdef int64_t mm_shrink_for(MMCore m, int order) noexcept nogil:
    # the model's reclaim so far: shrink_slab() of the deferred-split shrinker, one
    # folio at a time, until an allocation of order would pass the min watermark and
    # find a block; returns the pages freed
    cdef int64_t before = m.z.nr_free_pages
    while m.dq_len > 0:
        m.deferred_split_scan_c(1)
        if zone_watermark_ok(m.z, order, m.wmark_min + 1):
            break
    return m.z.nr_free_pages - before


cdef pfn_t mm_direct_reclaim(MMCore m, int order, int mt) noexcept nogil:
    # __alloc_pages_direct_reclaim(): __perform_reclaim() (Kernel._direct_reclaim when
    # the kernel installed it, else the shrinker above), then get_page_from_freelist()
    if m.reclaim_hooked:
        with gil:
            try:
                m.reclaim_hook(order)
            except BaseException as e:
                if m.hook_exc is None:
                    m.hook_exc = e
    else:
        mm_shrink_for(m, order)
    return mm_get_page_from_freelist(m, order, mt, m.wmark_min)


cdef pfn_t mm_alloc_slowpath(MMCore m, int order, int mt, int gfp) noexcept nogil:
    # __alloc_pages_slowpath() for one zone and the gfp bits the model has
    cdef bint costly = order > PAGE_ALLOC_COSTLY_ORDER
    cdef int result = -1
    cdef pfn_t pfn
    if gfp & GFP_KSWAPD_RECLAIM:
        mm_wake_all_kswapds(m, order)
    # "The adjusted alloc_flags might result in immediate success, so try that first"
    # (ALLOC_WMARK_MIN)
    pfn = mm_get_page_from_freelist(m, order, mt, m.wmark_min)
    if pfn >= 0:
        return pfn
    if not (gfp & GFP_DIRECT_RECLAIM):
        return -1
    # "For costly allocations, try direct compaction first, as it's likely that we
    # have enough base pages and don't need to reclaim"
    if m.compaction_on and (costly or (order > 0 and mt != MIGRATE_MOVABLE)):
        pfn = mm_direct_compact(m, order, mt, MM_COMPACT_PRIO_ASYNC, &result)
        if pfn >= 0:
            return pfn
        # "Checks for costly allocations with __GFP_NORETRY, which includes some THP
        # page fault allocations"
        if costly and (gfp & GFP_NORETRY) and (result == COMPACT_SKIPPED or result == COMPACT_DEFERRED):
            return -1
    # retry: direct reclaim, then direct compaction (at COMPACT_PRIO_ASYNC still: a
    # costly order without __GFP_RETRY_MAYFAIL never loops to raise the priority)
    pfn = mm_direct_reclaim(m, order, mt)
    if pfn >= 0:
        return pfn
    pfn = mm_direct_compact(m, order, mt, MM_COMPACT_PRIO_ASYNC, &result)
    if pfn >= 0:
        return pfn
    # __GFP_NORETRY, or a costly order: nopage; order 0: the model's OOM
    return -1


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


# ---------------------------------------------------------------------------
# The Python face (thpbench/mm.py calls these; it validates the arguments)
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


def _mm_set_reclaim_hook(MMCore core, hook):
    """Direct reclaim calls hook(order) (None: the built-in deferred-split shrinker)."""
    core.reclaim_hook = hook
    core.reclaim_hooked = hook is not None


def _mm_take_hook_exc(MMCore core):
    e = core.hook_exc
    core.hook_exc = None
    return e


def _mm_take_kswapd_wake(MMCore core):
    """The highest order a wakeup_kswapd() asked for since the last call, or -1."""
    o = core.kswapd_wake_order
    core.kswapd_wake_order = -1
    return o


def _mm_drain_thp_fault_log(MMCore core):
    """THP allocations at fault since the last call: int64 [n, FLOG_FIELDS]
    (mm, vpn, ok, compact_stalls, scanned, migrated, failed, last compact_result or -1)."""
    out = np.empty((core.flog_len, FLOG_FIELDS), dtype=np.int64)
    if core.flog_len:
        out[:] = np.asarray(<int64_t[:core.flog_len * FLOG_FIELDS]>core.flog).reshape(core.flog_len, FLOG_FIELDS)
    core.flog_len = 0
    return out


def _mm_shrink_for(MMCore core, int order):
    """The built-in direct reclaim (deferred-split shrinker) for an allocation of order."""
    return mm_shrink_for(core, order)


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
