"""A slow, plain-Python twin of the compaction core (``_compaction.pxi``), for differential tests.

It runs ``compact_zone()`` on a :class:`thpbench._reference.ReferenceBuddy` with the
same simplifications as the core (linear scanners, no skip bits, no LRU, one
migration attempt per folio, split on -ENOMEM when the owner agrees) and records every
migration as (src, dst, order, rc).  The mover is a Python callable
``mover(src, dst, order) -> int`` (0 = moved) and ``splitter(head, order) -> int`` (0 =
split); both None: everything moves and splits.

Follows mm/compaction.c of Linux 6.18: isolate_migratepages(_block),
isolate_freepages(_block), compaction_alloc/compaction_free with per-order lists,
__compact_finished, compaction_suitable, deferral handled by the caller.
"""
from collections import deque

from thpbench._reference import MIGRATE_PCPTYPES, NR_MIGRATETYPES

MOVABLE = 1
ISOLATE = 4
COMPACT_CLUSTER_MAX = 32
PAGE_ALLOC_COSTLY_ORDER = 3
(COMPACT_NOT_SUITABLE_ZONE, COMPACT_SKIPPED, COMPACT_DEFERRED, COMPACT_NO_SUITABLE_PAGE, COMPACT_CONTINUE,
 COMPACT_COMPLETE, COMPACT_PARTIAL_SKIPPED, COMPACT_CONTENDED, COMPACT_SUCCESS) = range(9)
ASYNC, SYNC_LIGHT, SYNC = 0, 1, 2
ENOMEM = 12
STAT_NAMES = ("compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "pgmigrate_success",
              "pgmigrate_fail")


class ReferenceZoneState:
    """struct zone's compaction fields."""

    def __init__(self, ref):
        self.cached_migrate = [0, 0]
        self.cached_free = (ref.nr_pages - 1) >> ref.pageblock_order << ref.pageblock_order
        self.init_migrate = 0
        self.blockskip_flush = False
        self.stats = {k: 0 for k in STAT_NAMES}


class ReferenceCompaction:
    """One compact_zone() run (a compact_control) on a ReferenceBuddy."""

    def __init__(self, ref, zs, *, order=-1, mode=SYNC, migratetype=MOVABLE, whole_zone=True, direct=False,
                 proactive=False, ignore_skip_hint=True, ignore_block_suitable=False, wmark_min=0, wmark_low=0,
                 alloc_wmark=0, extfrag_threshold=500, proactive_wmark_low=80, mover=None, splitter=None):
        self.ref, self.zs = ref, zs
        self.order, self.mode, self.migratetype = order, mode, migratetype
        self.whole_zone, self.direct, self.proactive = whole_zone, direct, proactive
        self.ignore_skip_hint, self.ignore_block_suitable = ignore_skip_hint, ignore_block_suitable
        self.wmark_min, self.wmark_low, self.alloc_wmark = wmark_min, wmark_low, alloc_wmark
        self.extfrag_threshold, self.proactive_wmark_low = extfrag_threshold, proactive_wmark_low
        self.mover, self.splitter = mover, splitter
        self.pbo = ref.pageblock_order
        self.pbn = 1 << ref.pageblock_order
        self.freepages = [deque() for _ in range(ref.max_order + 1)]
        self.migratepages = []
        self.nr_migratepages = self.nr_freepages = 0
        self.total_migrate_scanned = self.total_free_scanned = 0
        self.finish_pageblock = False
        self.moves = []

    # -- helpers ---------------------------------------------------------------------------
    def pb_start(self, pfn):
        return pfn >> self.pbo << self.pbo

    def pb_end(self, pfn):
        return ((pfn >> self.pbo) + 1) << self.pbo

    def scanners_met(self):
        return self.free_pfn >> self.pbo <= self.migrate_pfn >> self.pbo

    def watermark_ok(self, order, mark):
        r = self.ref
        free = r.nr_free_pages - ((1 << order) - 1)
        if free <= mark:
            return False
        if order == 0:
            return True
        return any(r.free_area[o][m] for o in range(order, r.max_order + 1) for m in range(MIGRATE_PCPTYPES))

    def contig(self, order):
        r = self.ref
        total = free = suitable = 0
        for o in range(r.max_order + 1):
            n = sum(len(r.free_area[o][m]) for m in range(NR_MIGRATETYPES))
            total += n
            free += n << o
            if o >= order:
                suitable += n << (o - order)
        return total, free, suitable

    def fragmentation_index(self, order):
        total, free, suitable = self.contig(order)
        if total == 0:
            return 0
        if suitable:
            return -1000
        return 1000 - (1000 + free * 1000 // (1 << order)) // total

    def extfrag(self, order):
        total, free, suitable = self.contig(order)
        return 0 if free == 0 else (free - (suitable << order)) * 100 // free

    def suitable(self, order):
        wm = self.alloc_wmark + (2 << order)
        if order > PAGE_ALLOC_COSTLY_ORDER:
            wm += self.wmark_low - self.wmark_min
        if not self.watermark_ok(0, wm):
            return False
        if order > PAGE_ALLOC_COSTLY_ORDER:
            fi = self.fragmentation_index(order)
            if 0 <= fi <= self.extfrag_threshold:
                return False
        return True

    def update_cached_migrate(self, pfn):
        pfn = self.pb_end(pfn)
        if pfn > self.zs.cached_migrate[0]:
            self.zs.cached_migrate[0] = pfn
        if self.mode != ASYNC and pfn > self.zs.cached_migrate[1]:
            self.zs.cached_migrate[1] = pfn

    # -- free scanner ---------------------------------------------------------------------------
    def isolate_free_page(self, pfn, order):
        r = self.ref
        mt = r.buddy[pfn][1]
        if mt != ISOLATE and not self.watermark_ok(0, self.wmark_min + (1 << order)):
            return 0
        r._del_from_free_list(pfn, order, mt)
        r.nr_free_pages -= 1 << order
        if order >= self.pbo - 1 and r.grouping:
            p, end = pfn, pfn + (1 << order) - 1
            while p < end:
                pmt = r.pb_mt[p >> self.pbo]
                if pmt < MIGRATE_PCPTYPES and pmt != MOVABLE:
                    r._move_freepages_block(self.pb_start(p), pmt, MOVABLE)
                    r.pb_mt[p >> self.pbo] = MOVABLE
                p += self.pbn
        return 1 << order

    def isolate_freepages_block(self, start, end, stride):
        r = self.ref
        scanned = total = 0
        pfn = start
        while pfn < end:
            scanned += 1
            if pfn in r.allocated:
                o = r.allocated[pfn][0]
                if o > 0:
                    pfn += (1 << o) - 1
                    scanned += (1 << o) - 1
            elif pfn in r.buddy:
                o = r.buddy[pfn][0]
                n = self.isolate_free_page(pfn, o)
                if not n:
                    break
                scanned += n - 1
                total += n
                self.nr_freepages += n
                self.freepages[o].append(pfn)
                if self.nr_migratepages <= self.nr_freepages:
                    pfn += n
                    break
                pfn += n - 1
            pfn += stride
        pfn = min(pfn, end)
        self.total_free_scanned += scanned
        self.zs.stats["compact_isolated"] += total
        return total, pfn

    def target_ok(self, block_start):
        r = self.ref
        b = r.buddy.get(block_start)
        if b is not None and b[0] >= (self.order if self.order > 0 else self.pbo):
            return False
        return self.ignore_block_suitable or r.pb_mt[block_start >> self.pbo] == MOVABLE

    def isolate_freepages(self):
        r = self.ref
        isolate_start = self.free_pfn
        block_start = self.pb_start(isolate_start)
        block_end = min(block_start + self.pbn, r.nr_pages)
        low_pfn = self.pb_end(self.migrate_pfn)
        stride = COMPACT_CLUSTER_MAX if self.mode == ASYNC else 1
        while block_start >= low_pfn:
            if self.target_ok(block_start):
                n, isolate_start = self.isolate_freepages_block(isolate_start, block_end, stride)
                if isolate_start == block_end and block_start - self.pbn < self.zs.cached_free:
                    self.zs.cached_free = block_start - self.pbn
                if self.nr_freepages >= self.nr_migratepages:
                    if isolate_start >= block_end:
                        isolate_start = block_start - self.pbn
                    break
                elif isolate_start < block_end:
                    break
                stride = 1 if n else min(COMPACT_CLUSTER_MAX, stride << 1)
            block_end = block_start
            block_start -= self.pbn
            isolate_start = block_start
        self.free_pfn = isolate_start

    # -- migrate scanner --------------------------------------------------------------------------
    def skip_on_order(self, o):
        if self.order >= 0 and o >= self.order:
            return True
        return o >= self.pbo

    def isolate_migratepages_block(self, low_pfn, end_pfn):
        r = self.ref
        scanned = isolated = 0
        self.migrate_pfn = low_pfn
        skip_on_failure = self.direct and self.mode == ASYNC and self.order >= 0
        next_skip = ((low_pfn >> self.order) + 1) << self.order if skip_on_failure else 0
        while low_pfn < end_pfn:
            if skip_on_failure and low_pfn >= next_skip:
                if isolated:
                    break
                next_skip = ((low_pfn >> self.order) + 1) << self.order
            scanned += 1
            fail = False
            if low_pfn in r.buddy:
                o = r.buddy[low_pfn][0]
                low_pfn += (1 << o) - 1
                scanned += (1 << o) - 1
            elif low_pfn in r.allocated:
                o, mt = r.allocated[low_pfn]
                if o > 0 and self.skip_on_order(o):
                    low_pfn += (1 << o) - 1
                    scanned += (1 << o) - 1
                    fail = True
                elif mt != MOVABLE:
                    fail = True
                else:
                    self.migratepages.append(low_pfn)
                    self.nr_migratepages += 1 << o
                    isolated += 1 << o
                    scanned += (1 << o) - 1
                    low_pfn += (1 << o) - 1
                    if self.nr_migratepages >= COMPACT_CLUSTER_MAX and not self.finish_pageblock:
                        low_pfn += 1
                        break
            else:
                fail = True
            if fail and skip_on_failure:
                if isolated:
                    self.nr_migratepages = 0
                    self.migratepages = []
                    isolated = 0
                if low_pfn < next_skip:
                    low_pfn = next_skip - 1
                    next_skip += 1 << self.order
            low_pfn += 1
        low_pfn = min(low_pfn, end_pfn)
        if low_pfn == end_pfn and (not isolated or self.finish_pageblock):
            self.update_cached_migrate(low_pfn)
        self.total_migrate_scanned += scanned
        self.zs.stats["compact_isolated"] += isolated
        self.migrate_pfn = low_pfn

    def source_ok(self, block_start):
        r = self.ref
        h = block_start if (block_start in r.allocated or block_start in r.buddy) else r._head_of(block_start)
        if h in r.allocated and r.allocated[h][0] >= self.pbo:
            return False
        if self.mode != ASYNC or not self.direct:
            return True
        return r.pb_mt[block_start >> self.pbo] == self.migratetype

    def isolate_migratepages(self):
        low_pfn = self.migrate_pfn
        block_start, block_end = self.pb_start(low_pfn), self.pb_end(low_pfn)
        while block_end <= self.free_pfn:
            if not self.source_ok(block_start):
                self.update_cached_migrate(block_end)
            else:
                self.isolate_migratepages_block(low_pfn, block_end)
                break
            low_pfn = self.migrate_pfn = block_end
            block_start = block_end
            block_end += self.pbn
        return bool(self.nr_migratepages)

    # -- migration ----------------------------------------------------------------------------------
    def compaction_alloc(self, order):
        has_isolated = False
        while True:
            so = next((o for o in range(order, self.ref.max_order + 1) if self.freepages[o]), None)
            if so is None:
                if has_isolated:
                    return -1
                self.isolate_freepages()
                has_isolated = True
                continue
            break
        page = self.freepages[so].popleft()
        size = 1 << so
        while so > order:
            so -= 1
            size >>= 1
            self.freepages[so].appendleft(page + size)
        self.nr_freepages -= 1 << order
        self.nr_migratepages -= 1 << order
        return page

    def migrate_one(self, src, o):
        r = self.ref
        mt = r.allocated[src][1]
        dst = self.compaction_alloc(o)
        if dst < 0:
            return -1
        rc = 0 if self.mover is None else self.mover(src, dst, o)
        self.moves.append((src, dst, o, rc))
        if rc == 0:
            r.allocated[dst] = (o, mt)
            r.events["alloc"] += 1
            r.free(src, o)
            self.zs.stats["pgmigrate_success"] += 1 << o
            return 0
        self.freepages[o].appendleft(dst)
        self.nr_freepages += 1 << o
        self.nr_migratepages += 1 << o
        self.zs.stats["pgmigrate_fail"] += 1 << o
        return 1

    def try_split(self, src, o):
        if self.splitter is not None:
            if self.splitter(src, o) != 0:
                return False
        elif self.mover is not None:
            return False
        self.ref.split(src, o)
        self.split_folios.extend(range(src, src + (1 << o)))
        return True

    def migrate_pages(self):
        err = 0
        self.split_folios = []
        for src in reversed(self.migratepages):
            o = self.ref.allocated[src][0]
            rc = self.migrate_one(src, o)
            if rc < 0:
                if o > 0 and self.try_split(src, o):
                    err = 1
                    continue
                err = ENOMEM
                break
            if rc > 0:
                err = 1
        if err != ENOMEM:
            for src in self.split_folios:
                rc = self.migrate_one(src, 0)
                if rc < 0:
                    err = ENOMEM
                    break
                if rc > 0:
                    err = 1
        self.migratepages = []
        return err

    # -- compact_zone ---------------------------------------------------------------------------------
    def finished(self):
        r = self.ref
        if self.scanners_met():
            self.zs.cached_migrate = [0, 0]
            self.zs.cached_free = self.pb_start(r.nr_pages - 1)
            if self.direct:
                self.zs.blockskip_flush = True
            return COMPACT_COMPLETE if self.whole_zone else COMPACT_PARTIAL_SKIPPED
        if self.proactive:
            return COMPACT_CONTINUE if self.extfrag(self.pbo) > self.proactive_wmark_low else COMPACT_SUCCESS
        if self.order < 0:
            return COMPACT_CONTINUE
        if self.migrate_pfn % self.pbn:
            return COMPACT_CONTINUE
        for o in range(self.order, r.max_order + 1):
            if r.free_area[o][self.migratetype]:
                return COMPACT_SUCCESS
            if r._find_suitable_fallback(o, self.migratetype, True) >= 0:
                return COMPACT_SUCCESS
        return COMPACT_CONTINUE

    def run(self):
        r, zs = self.ref, self.zs
        end_pfn = r.nr_pages
        if self.order >= 0:
            if self.watermark_ok(self.order, self.alloc_wmark):
                return COMPACT_SUCCESS
            if not self.suitable(self.order):
                return COMPACT_SKIPPED
        sync = self.mode != ASYNC
        if self.whole_zone:
            self.migrate_pfn, self.free_pfn = 0, self.pb_start(end_pfn - 1)
        else:
            self.migrate_pfn = zs.cached_migrate[1 if sync else 0]
            self.free_pfn = zs.cached_free
            if not 0 <= self.free_pfn < end_pfn:
                self.free_pfn = zs.cached_free = self.pb_start(end_pfn - 1)
            if not 0 <= self.migrate_pfn < end_pfn:
                self.migrate_pfn = 0
                zs.cached_migrate = [0, 0]
            if self.migrate_pfn <= zs.init_migrate:
                self.whole_zone = True
        last_migrated = -1
        update_cached = not sync and zs.cached_migrate[0] == zs.cached_migrate[1]
        aborted = False
        while True:
            ret = self.finished()
            if ret != COMPACT_CONTINUE:
                break
            self.finish_pageblock = last_migrated >= 0 and self.pb_start(last_migrated) == self.pb_start(self.migrate_pfn)
            while True:
                if not self.isolate_migratepages():
                    if update_cached:
                        zs.cached_migrate[1] = zs.cached_migrate[0]
                    break
                update_cached = False
                last_migrated = self.pb_start(self.migrate_pfn - 1)
                err = self.migrate_pages()
                self.nr_migratepages = 0
                if err:
                    if err == ENOMEM and not self.scanners_met():
                        ret = COMPACT_CONTENDED
                        aborted = True
                        break
                    if (self.migrate_pfn % self.pbn and not self.ignore_skip_hint and not self.finish_pageblock
                            and self.mode < SYNC):
                        self.finish_pageblock = True
                        if self.order == self.pbo:
                            last_migrated = -1
                        continue
                break
            if aborted:
                break
            if self.order > 0 and last_migrated >= 0 and last_migrated < (self.migrate_pfn >> self.order << self.order):
                last_migrated = -1
        high = -1
        for o in range(r.max_order + 1):
            while self.freepages[o]:
                pfn = self.freepages[o].popleft()
                r._free_one_page(pfn, o, r.pb_mt[pfn >> self.pbo])
                high = max(high, pfn)
        self.nr_freepages = 0
        if high >= 0 and self.pb_start(high) > zs.cached_free:
            zs.cached_free = self.pb_start(high)
        zs.stats["compact_migrate_scanned"] += self.total_migrate_scanned
        zs.stats["compact_free_scanned"] += self.total_free_scanned
        return ret
