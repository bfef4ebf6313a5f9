"""Deliberately slow, obviously correct pure-Python twins of the core's state machines.

Used by the differential tests (hypothesis drives random operation sequences through the
Cython core and through these, and requires identical results after every operation) and
as readable documentation of what the core does.  Nothing here is tuned for speed.

``ReferenceBuddy`` follows mm/page_alloc.c (Linux 6.18) function by function; the names of
its methods are the kernel's.  Free lists are Python lists with the head at index 0.
"""
from __future__ import annotations

UNMOVABLE, MOVABLE, RECLAIMABLE, HIGHATOMIC, ISOLATE = range(5)
NR_MIGRATETYPES = 5
MIGRATE_PCPTYPES = 3
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

# fallbacks[] (mm/page_alloc.c)
FALLBACKS = {
    UNMOVABLE: (RECLAIMABLE, MOVABLE),
    MOVABLE: (RECLAIMABLE, UNMOVABLE),
    RECLAIMABLE: (UNMOVABLE, MOVABLE),
}


class ReferenceBuddy:
    """The buddy allocator of one zone, written for clarity.

    Same parameters and semantics as ``thpbench.BuddyAllocator``; see its docstring for
    what is modelled and what is simplified.
    """

    def __init__(self, nr_pages, *, max_order=10, pageblock_order=9, grouping=True):
        if not 0 <= pageblock_order <= max_order:
            raise ValueError("pageblock_order out of range")
        if nr_pages < 1:
            raise ValueError("nr_pages must be >= 1")
        self.nr_pages = nr_pages
        self.max_order = max_order
        self.pageblock_order = pageblock_order
        self.grouping = grouping
        self.nr_pageblocks = -(-nr_pages // (1 << pageblock_order))
        self.free_area = [[[] for _ in range(NR_MIGRATETYPES)] for _ in range(max_order + 1)]
        self.buddy = {}       # pfn -> (order, migratetype) of each free block (PageBuddy)
        self.allocated = {}   # pfn -> (order, requested migratetype) of each allocated block
        self.pb_mt = [self._pageblock_type(MOVABLE)] * self.nr_pageblocks
        self.nr_free_pages = 0
        self.events = dict(alloc=0, alloc_fail=0, free=0, extfrag=0, claim=0, steal=0)
        # memblock_free_all(): the largest aligned chunks, queued at the tail
        start = 0
        while start < nr_pages:
            order = max_order
            while start % (1 << order):
                order -= 1
            while start + (1 << order) > nr_pages:
                order -= 1
            self._free_one_page(start, order, self._get_pageblock_mt(start), to_tail=True)
            start += 1 << order

    # -- helpers -------------------------------------------------------------------
    def _pageblock_type(self, mt):
        # set_pageblock_migratetype() with page_group_by_mobility_disabled
        if not self.grouping and mt < MIGRATE_PCPTYPES:
            return UNMOVABLE
        return mt

    def _get_pageblock_mt(self, pfn):
        return self.pb_mt[pfn >> self.pageblock_order]

    def _set_pageblock_range(self, pfn, order, mt):
        first = pfn >> self.pageblock_order
        count = 1 << (order - self.pageblock_order) if order > self.pageblock_order else 1
        for b in range(first, first + count):
            self.pb_mt[b] = self._pageblock_type(mt)

    def _add_to_free_list(self, pfn, order, mt, to_tail):
        self.buddy[pfn] = (order, mt)
        if to_tail:
            self.free_area[order][mt].append(pfn)
        else:
            self.free_area[order][mt].insert(0, pfn)

    def _del_from_free_list(self, pfn, order, mt):
        self.free_area[order][mt].remove(pfn)
        del self.buddy[pfn]

    def _page_is_buddy(self, pfn, order):
        return pfn < self.nr_pages and self.buddy.get(pfn, (None,))[0] == order

    # -- allocation ------------------------------------------------------------------
    def _expand(self, pfn, low, high, mt):
        while high > low:
            high -= 1
            self._add_to_free_list(pfn + (1 << high), high, mt, to_tail=False)

    def _rmqueue_smallest(self, order, mt):
        for current in range(order, self.max_order + 1):
            lst = self.free_area[current][mt]
            if lst:
                pfn = lst[0]
                self._del_from_free_list(pfn, current, mt)
                self._expand(pfn, order, current, mt)
                return pfn
        return None

    def _should_try_claim_block(self, order, start_mt):
        if order >= self.pageblock_order:
            return True
        if order >= self.pageblock_order // 2:
            return True
        if start_mt in (RECLAIMABLE, UNMOVABLE):
            return True
        return not self.grouping

    def _find_suitable_fallback(self, order, mt, claimable):
        if claimable and not self._should_try_claim_block(order, mt):
            return -2
        if not any(self.free_area[order]):
            return -1
        for fallback in FALLBACKS[mt]:
            if self.free_area[order][fallback]:
                return fallback
        return -1

    def _try_to_claim_block(self, pfn, current_order, order, start_type, block_type):
        if current_order >= self.pageblock_order:
            self._del_from_free_list(pfn, current_order, block_type)
            self._set_pageblock_range(pfn, current_order, start_type)
            self._expand(pfn, order, current_order, start_type)
            self.events["claim"] += 1 << (current_order - self.pageblock_order)
            return pfn
        size = 1 << self.pageblock_order
        start = pfn // size * size
        if start + size > self.nr_pages:
            return None
        free_pages = sum(1 << o for p, (o, _) in self.buddy.items() if start <= p < start + size)
        movable_pages = sum(1 << o for p, (o, mt) in self.allocated.items()
                            if start <= p < start + size and mt == MOVABLE)
        if start_type == MOVABLE:
            alike = movable_pages
        elif block_type == MOVABLE:
            alike = size - (free_pages + movable_pages)
        else:
            alike = 0
        if free_pages + alike >= size // 2 or not self.grouping:
            self._move_freepages_block(start, block_type, start_type)
            self.pb_mt[start >> self.pageblock_order] = self._pageblock_type(start_type)
            self.events["claim"] += 1
            return self._rmqueue_smallest(order, start_type)
        return None

    def _move_freepages_block(self, start, old_mt, new_mt):
        end = min(start + (1 << self.pageblock_order), self.nr_pages)
        for pfn in sorted(p for p in self.buddy if start <= p < end):
            order, mt = self.buddy[pfn]
            self._del_from_free_list(pfn, order, old_mt)
            self._add_to_free_list(pfn, order, new_mt, to_tail=True)

    def _rmqueue_claim(self, order, start_mt):
        for current in range(self.max_order, order - 1, -1):
            fallback = self._find_suitable_fallback(current, start_mt, claimable=True)
            if fallback == -2:
                break
            if fallback == -1:
                continue
            page = self._try_to_claim_block(self.free_area[current][fallback][0], current, order,
                                            start_mt, fallback)
            if page is not None:
                self.events["extfrag"] += 1
                return page
        return None

    def _rmqueue_steal(self, order, start_mt):
        for current in range(order, self.max_order + 1):
            fallback = self._find_suitable_fallback(current, start_mt, claimable=False)
            if fallback < 0:
                continue
            pfn = self.free_area[current][fallback][0]
            self._del_from_free_list(pfn, current, fallback)
            self._expand(pfn, order, current, fallback)
            self.events["extfrag"] += 1
            self.events["steal"] += 1
            return pfn
        return None

    def alloc(self, order=0, migratetype=MOVABLE):
        list_mt = migratetype if self.grouping else UNMOVABLE
        page = self._rmqueue_smallest(order, list_mt)
        if page is None and self.grouping:
            page = self._rmqueue_claim(order, list_mt)
            if page is None:
                page = self._rmqueue_steal(order, list_mt)
        if page is None:
            self.events["alloc_fail"] += 1
            return None
        self.allocated[page] = (order, migratetype)
        self.nr_free_pages -= 1 << order
        self.events["alloc"] += 1
        return page

    # -- freeing ---------------------------------------------------------------------
    def _buddy_merge_likely(self, pfn, buddy_pfn, order):
        if order >= self.max_order - 1:
            return False
        higher = buddy_pfn & pfn
        return self._page_is_buddy(higher ^ (1 << (order + 1)), order + 1)

    def _free_one_page(self, pfn, order, mt, to_tail=False):
        self.nr_free_pages += 1 << order
        buddy_pfn = 0
        while order < self.max_order:
            buddy_mt = mt
            buddy_pfn = pfn ^ (1 << order)
            if not self._page_is_buddy(buddy_pfn, order):
                break
            if order >= self.pageblock_order:
                buddy_mt = self._get_pageblock_mt(buddy_pfn)
                if mt != buddy_mt and (mt >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES):
                    break
            self._del_from_free_list(buddy_pfn, order, self.buddy[buddy_pfn][1])
            if buddy_mt != mt:
                self._set_pageblock_range(buddy_pfn, order, mt)
            pfn &= buddy_pfn
            order += 1
        if not to_tail:
            to_tail = self._buddy_merge_likely(pfn, buddy_pfn, order)
        self._add_to_free_list(pfn, order, mt, to_tail)

    def free(self, pfn, order=0):
        if not 0 <= pfn < self.nr_pages:
            raise ValueError(f"pfn {pfn} out of range")
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order {order} out of range")
        if pfn % (1 << order):
            raise ValueError(f"pfn {pfn} misaligned")
        if self.allocated.get(pfn, (None,))[0] != order:
            raise ValueError(f"pfn {pfn} is not an allocated order-{order} block")
        del self.allocated[pfn]
        self.events["free"] += 1
        self._free_one_page(pfn, order, self._get_pageblock_mt(pfn))

    def split(self, pfn, order):
        if self.allocated.get(pfn, (None,))[0] != order:
            raise ValueError(f"pfn {pfn} is not an allocated order-{order} block")
        mt = self.allocated[pfn][1]
        for p in range(pfn, pfn + (1 << order)):
            self.allocated[p] = (0, mt)
        self.events["alloc"] += (1 << order) - 1

    def set_pageblock_migratetype(self, pfn, migratetype):
        new_mt = self._pageblock_type(migratetype)
        start = pfn >> self.pageblock_order << self.pageblock_order
        old_mt = self._get_pageblock_mt(pfn)
        if old_mt == new_mt:
            return
        head = self._head_of(start)
        if self._order_of(head) > self.pageblock_order:
            order = self._order_of(head)
            if head in self.buddy:
                self._del_from_free_list(head, order, old_mt)
                self._set_pageblock_range(head, order, new_mt)
                self.nr_free_pages -= 1 << order
                self._free_one_page(head, order, new_mt)
            else:
                self._set_pageblock_range(head, order, new_mt)
            return
        self._move_freepages_block(start, old_mt, new_mt)
        self.pb_mt[start >> self.pageblock_order] = new_mt
        if old_mt >= MIGRATE_PCPTYPES and new_mt < MIGRATE_PCPTYPES:
            for p in sorted(self.buddy):
                if start <= p < start + (1 << self.pageblock_order) and self.buddy[p][0] >= self.pageblock_order:
                    order = self.buddy[p][0]
                    self._del_from_free_list(p, order, new_mt)
                    self.nr_free_pages -= 1 << order
                    self._free_one_page(p, order, new_mt)
                    break

    def _order_of(self, pfn):
        return (self.buddy.get(pfn) or self.allocated[pfn])[0]

    def _head_of(self, pfn):
        for k in range(self.max_order + 1):
            h = pfn >> k << k
            block = self.buddy.get(h) or self.allocated.get(h)
            if block is not None and block[0] >= k:
                return h
        raise AssertionError(f"no block covers pfn {pfn}")

    # -- read-outs ---------------------------------------------------------------------
    def buddyinfo(self):
        return [sum(len(self.free_area[o][m]) for m in range(NR_MIGRATETYPES)) for o in range(self.max_order + 1)]

    def pagetypeinfo(self):
        free = [[len(self.free_area[o][m]) for o in range(self.max_order + 1)] for m in range(NR_MIGRATETYPES)]
        blocks = [self.pb_mt.count(m) for m in range(NR_MIGRATETYPES)]
        return {"free": free, "pageblocks": blocks}

    def free_list(self, order, migratetype):
        return list(self.free_area[order][migratetype])

    def free_blocks(self):
        return [(p, o, mt) for p, (o, mt) in sorted(self.buddy.items())]

    def allocated_blocks(self):
        return [(p, o, mt) for p, (o, mt) in sorted(self.allocated.items())]

    def _contig(self, order):
        info = self.buddyinfo()
        total = sum(info)
        free_pages = sum(n << k for k, n in enumerate(info))
        suitable = sum(n << (k - order) for k, n in enumerate(info) if k >= order)
        return total, free_pages, suitable

    def unusable_index(self, order):
        # unusable_free_index() (mm/vmstat.c), divided by 1000
        total, free_pages, suitable = self._contig(order)
        if free_pages == 0:
            return 1.0
        return ((free_pages - (suitable << order)) * 1000 // free_pages) / 1000

    def fragmentation_index(self, order):
        # __fragmentation_index() (mm/vmstat.c), divided by 1000
        total, free_pages, suitable = self._contig(order)
        if total == 0:
            return 0.0
        if suitable:
            return -1.0
        return (1000 - (1000 + free_pages * 1000 // (1 << order)) // total) / 1000

    def check(self):
        covered = 0
        for pfn, (order, mt) in sorted(list(self.buddy.items()) + list(self.allocated.items())):
            assert pfn == covered, f"gap or overlap at pfn {covered}"
            assert pfn % (1 << order) == 0
            covered = pfn + (1 << order)
        assert covered == self.nr_pages
        assert self.nr_free_pages == sum(1 << o for o, _ in self.buddy.values())
        for pfn, (order, mt) in self.buddy.items():
            assert pfn in self.free_area[order][mt]
            assert self.pb_mt[pfn >> self.pageblock_order] == mt
        return True


def reference_from(core):
    """A ReferenceBuddy in exactly the state of a ``thpbench.BuddyAllocator``.

    Copies the free lists in list order, the allocated blocks, the pageblock types and
    the event counters, so the two can be driven on from the same (e.g. aged) state.
    """
    ref = ReferenceBuddy.__new__(ReferenceBuddy)
    ref.nr_pages = core.nr_pages
    ref.max_order = core.max_order
    ref.pageblock_order = core.pageblock_order
    ref.grouping = core.grouping
    ref.nr_pageblocks = core.nr_pageblocks
    ref.free_area = [[core.free_list(o, m).tolist() for m in range(NR_MIGRATETYPES)]
                     for o in range(core.max_order + 1)]
    ref.buddy = {int(p): (int(o), int(m)) for p, o, m in core.free_blocks()}
    ref.allocated = {int(p): (int(o), int(m)) for p, o, m in core.allocated_blocks()}
    ref.pb_mt = core.pageblock_migratetypes().tolist()
    ref.nr_free_pages = core.nr_free_pages
    ref.events = dict(core.counters())
    return ref
