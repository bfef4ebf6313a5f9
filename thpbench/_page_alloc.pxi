# The buddy allocator (mm/page_alloc.c, Linux 6.18), included by _core.pyx.
#
# State is a Zone struct (see _core.pxd) of flat per-frame arrays, handled by nogil
# free functions; BuddyAllocator is the thin validating class on top.  Free lists are
# doubly linked through the per-frame `link` array, so removing any block (a buddy
# being merged) is O(1), as list_del() on page->buddy_list is.
#
# Simplifications, also stated in BuddyAllocator's docstring:
# * one zone, no holes; no per-cpu page lists (every alloc/free goes to the buddy
#   lists, as with pcp->high = 0);
# * no watermark boosting, CMA, or MIGRATE_HIGHATOMIC reservation: HighAtomic and
#   Isolate exist as pageblock types (set_pageblock_migratetype) but are never
#   requested;
# * no free-page shuffling (CONFIG_SHUFFLE_PAGE_ALLOCATOR off) and no guard pages.

from libc.stdlib cimport free as c_free
from libc.string cimport memset
from libc.stdint cimport int8_t, uint8_t, int32_t, int64_t, uint64_t
import numpy as np

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from *:
    void __builtin_prefetch(const void *addr) noexcept nogil

cdef extern from "sys/mman.h" nogil:
    int madvise(void *addr, size_t length, int advice)
    int MADV_HUGEPAGE

MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
_MT_BY_NAME = {n.lower(): i for i, n in enumerate(MIGRATETYPE_NAMES)}

# Operation codes of BuddyAllocator.run(), the bulk path.
OP_ALLOC = K_OP_ALLOC                 # allocate orders[i] of migratetypes[i]; result pfn or -1; args[i] >= 0 stores it in slots[args[i]]
OP_FREE = K_OP_FREE                   # free pfn args[i] of order orders[i] (orders[i] < 0: the order it was allocated with)
OP_FREE_SLOT = K_OP_FREE_SLOT         # free the block whose pfn is in slots[args[i]] (empty slot -1: skipped, result -1); slot emptied
OP_REPLACE_SLOT = K_OP_REPLACE_SLOT   # OP_FREE_SLOT then OP_ALLOC into the same slot: one step of steady-state churn (counts 2 ops)

# fallbacks[] in mm/page_alloc.c: the types tried, in order, when a type's lists are empty.
cdef int FALLBACKS[MIGRATE_PCPTYPES][MIGRATE_PCPTYPES - 1]
FALLBACKS[MIGRATE_UNMOVABLE][0] = MIGRATE_RECLAIMABLE
FALLBACKS[MIGRATE_UNMOVABLE][1] = MIGRATE_MOVABLE
FALLBACKS[MIGRATE_MOVABLE][0] = MIGRATE_RECLAIMABLE
FALLBACKS[MIGRATE_MOVABLE][1] = MIGRATE_UNMOVABLE
FALLBACKS[MIGRATE_RECLAIMABLE][0] = MIGRATE_UNMOVABLE
FALLBACKS[MIGRATE_RECLAIMABLE][1] = MIGRATE_MOVABLE


class InvariantError(AssertionError):
    """check() found the state inconsistent; the message names the first broken invariant."""


class BulkOpError(ValueError):
    """An operation of BuddyAllocator.run() was invalid.

    Operations before ``index`` were applied (their results are in ``results``); the
    failing one and those after it were not.
    """

    def __init__(self, message, index, results):
        super().__init__(message)
        self.index = index
        self.results = results


# ---------------------------------------------------------------------------
# Free lists (include/linux/mmzone.h free_area; mm/page_alloc.c __add_to_free_list)
# ---------------------------------------------------------------------------

cdef inline int frame_mt(const Zone *z, pfn_t pfn) noexcept nogil:
    return (z.frame[pfn].flags >> FRAME_MT_SHIFT) & 7

cdef inline int pageblock_mt(const Zone *z, pfn_t pfn) noexcept nogil:
    # get_pfnblock_migratetype()
    return z.pb_mt[pfn >> z.pageblock_order]

cdef inline int mt_for_pageblock(const Zone *z, int mt) noexcept nogil:
    # set_pageblock_migratetype(): with grouping off every PCP type becomes UNMOVABLE
    if not z.grouping and mt < MIGRATE_PCPTYPES:
        return MIGRATE_UNMOVABLE
    return mt

cdef inline void add_to_free_list(Zone *z, pfn_t pfn, int order, int mt, bint to_tail) noexcept nogil:
    cdef int32_t p = <int32_t>pfn
    z.frame[pfn].flags = FRAME_BUDDY | (mt << FRAME_MT_SHIFT)
    z.frame[pfn].order = order
    if z.head[order][mt] < 0:
        z.link[2 * p] = -1
        z.link[2 * p + 1] = -1
        z.head[order][mt] = p
        z.tail[order][mt] = p
    elif to_tail:
        z.link[2 * p] = z.tail[order][mt]
        z.link[2 * p + 1] = -1
        z.link[2 * z.tail[order][mt] + 1] = p
        z.tail[order][mt] = p
    else:
        z.link[2 * p] = -1
        z.link[2 * p + 1] = z.head[order][mt]
        z.link[2 * z.head[order][mt]] = p
        z.head[order][mt] = p
    z.nr_free[order][mt] += 1

cdef inline void del_from_free_list(Zone *z, pfn_t pfn, int order, int mt) noexcept nogil:
    cdef int32_t prev = z.link[2 * pfn], nxt = z.link[2 * pfn + 1]
    if prev >= 0:
        z.link[2 * prev + 1] = nxt
    else:
        z.head[order][mt] = nxt
    if nxt >= 0:
        z.link[2 * nxt] = prev
    else:
        z.tail[order][mt] = prev
    z.frame[pfn].flags = 0
    z.nr_free[order][mt] -= 1

cdef inline void move_to_free_list(Zone *z, pfn_t pfn, int order, int old_mt, int new_mt) noexcept nogil:
    # move_to_free_list(): list_move_tail onto the new type's list
    del_from_free_list(z, pfn, order, old_mt)
    add_to_free_list(z, pfn, order, new_mt, True)

cdef inline bint page_is_buddy(const Zone *z, pfn_t buddy, int order) noexcept nogil:
    # page_is_buddy(): PageBuddy(buddy) && buddy_order(buddy) == order, same zone
    if buddy >= z.nr_pages:
        return False
    return (z.frame[buddy].flags & FRAME_BUDDY) != 0 and z.frame[buddy].order == order

cdef inline bint mt_is_mergeable(int mt) noexcept nogil:
    # migratetype_is_mergeable()
    return mt < MIGRATE_PCPTYPES


# ---------------------------------------------------------------------------
# Allocation (__rmqueue and its helpers)
# ---------------------------------------------------------------------------

cdef inline void expand(Zone *z, pfn_t pfn, int low, int high, int mt) noexcept nogil:
    # expand(): keep the lower half, put the upper halves on the free lists (at the head)
    cdef pfn_t size = (<pfn_t>1) << high
    while high > low:
        high -= 1
        size >>= 1
        add_to_free_list(z, pfn + size, high, mt, False)

cdef inline void set_pageblock_range(Zone *z, pfn_t pfn, int order, int mt) noexcept nogil:
    # change_pageblock_range(); also used for a single pageblock (order <= pageblock_order)
    cdef pfn_t first = pfn >> z.pageblock_order
    cdef pfn_t last = first
    cdef pfn_t b
    if order > z.pageblock_order:
        last = first + ((<pfn_t>1) << (order - z.pageblock_order)) - 1
    for b in range(first, last + 1):
        z.pb_mt[b] = mt_for_pageblock(z, mt)

cdef inline pfn_t rmqueue_smallest(Zone *z, int order, int mt) noexcept nogil:
    # __rmqueue_smallest(): first non-empty list of this type from `order` up
    cdef int cur
    cdef pfn_t pfn
    for cur in range(order, z.max_order + 1):
        pfn = z.head[cur][mt]
        if pfn < 0:
            continue
        del_from_free_list(z, pfn, cur, mt)
        expand(z, pfn, order, cur, mt)
        return pfn
    return -1

cdef inline bint should_try_claim_block(const Zone *z, int order, int start_mt) noexcept nogil:
    # should_try_claim_block(); `order` is the order of the free block considered
    if order >= z.pageblock_order:
        return True
    if order >= z.pageblock_order // 2:
        return True
    if start_mt == MIGRATE_RECLAIMABLE or start_mt == MIGRATE_UNMOVABLE:
        return True
    if not z.grouping:
        return True
    return False

cdef inline int find_suitable_fallback(const Zone *z, int order, int mt, bint claimable) noexcept nogil:
    # find_suitable_fallback(): -2 = orders too low to claim, -1 = none at this order
    cdef int i, total = 0, fmt
    if claimable and not should_try_claim_block(z, order, mt):
        return -2
    for i in range(NR_MIGRATETYPES):
        total += z.nr_free[order][i]
    if total == 0:
        return -1
    for i in range(MIGRATE_PCPTYPES - 1):
        fmt = FALLBACKS[mt][i]
        if z.head[order][fmt] >= 0:
            return fmt
    return -1

cdef inline int64_t move_freepages_block(Zone *z, pfn_t start, int old_mt, int new_mt) noexcept nogil:
    # __move_freepages_block(): every free block in the pageblock onto new_mt's lists
    cdef pfn_t pfn = start
    cdef pfn_t end = start + ((<pfn_t>1) << z.pageblock_order)
    cdef int64_t moved = 0
    cdef int o
    if end > z.nr_pages:
        end = z.nr_pages
    while pfn < end:
        if z.frame[pfn].flags & FRAME_BUDDY:
            o = z.frame[pfn].order
            move_to_free_list(z, pfn, o, old_mt, new_mt)
            pfn += (<pfn_t>1) << o
            moved += (<pfn_t>1) << o
        elif z.frame[pfn].flags & FRAME_ALLOC:
            pfn += (<pfn_t>1) << z.frame[pfn].order
        else:
            pfn += 1
    return moved

cdef inline pfn_t try_to_claim_block(Zone *z, pfn_t page, int current_order, int order,
                                     int start_type, int block_type) noexcept nogil:
    # try_to_claim_block()
    cdef pfn_t start, end, pfn
    cdef int64_t free_pages = 0, movable_pages = 0, alike_pages, n
    if current_order >= z.pageblock_order:
        # Take ownership of every pageblock of the block
        del_from_free_list(z, page, current_order, block_type)
        set_pageblock_range(z, page, current_order, start_type)
        expand(z, page, order, current_order, start_type)
        z.nr_claim += (<int64_t>1) << (current_order - z.pageblock_order)
        return page
    # prep_move_freepages_block(): a pageblock straddling the zone end cannot move
    start = (page >> z.pageblock_order) << z.pageblock_order
    end = start + ((<pfn_t>1) << z.pageblock_order)
    if end > z.nr_pages:
        return -1
    pfn = start
    while pfn < end:
        if z.frame[pfn].flags & FRAME_BUDDY:
            n = (<int64_t>1) << z.frame[pfn].order
            free_pages += n
            pfn += n
        elif z.frame[pfn].flags & FRAME_ALLOC:
            # PageLRU / movable_ops: the whole compound page counts as movable
            n = (<int64_t>1) << z.frame[pfn].order
            if frame_mt(z, pfn) == MIGRATE_MOVABLE:
                movable_pages += n
            pfn += n
        else:
            pfn += 1
    if start_type == MIGRATE_MOVABLE:
        alike_pages = movable_pages
    elif block_type == MIGRATE_MOVABLE:
        alike_pages = ((<int64_t>1) << z.pageblock_order) - (free_pages + movable_pages)
    else:
        alike_pages = 0
    if free_pages + alike_pages >= ((<int64_t>1) << (z.pageblock_order - 1)) or not z.grouping:
        move_freepages_block(z, start, block_type, start_type)
        z.pb_mt[start >> z.pageblock_order] = mt_for_pageblock(z, start_type)
        z.nr_claim += 1
        return rmqueue_smallest(z, order, start_type)
    return -1

cdef inline pfn_t rmqueue_claim(Zone *z, int order, int start_mt) noexcept nogil:
    # __rmqueue_claim(): the largest fallback block first (ALLOC_NOFRAGMENT not modelled)
    cdef int cur, fmt
    cdef pfn_t page
    cur = z.max_order
    while cur >= order:
        fmt = find_suitable_fallback(z, cur, start_mt, True)
        if fmt == -2:
            break
        if fmt >= 0:
            page = try_to_claim_block(z, z.head[cur][fmt], cur, order, start_mt, fmt)
            if page >= 0:
                z.nr_extfrag += 1
                return page
        cur -= 1
    return -1

cdef inline pfn_t rmqueue_steal(Zone *z, int order, int start_mt) noexcept nogil:
    # __rmqueue_steal(): the smallest fallback block; the pageblock keeps its type
    cdef int cur, fmt
    cdef pfn_t page
    for cur in range(order, z.max_order + 1):
        fmt = find_suitable_fallback(z, cur, start_mt, False)
        if fmt < 0:
            continue
        page = z.head[cur][fmt]
        del_from_free_list(z, page, cur, fmt)
        expand(z, page, order, cur, fmt)
        z.nr_extfrag += 1
        z.nr_steal += 1
        return page
    return -1

cdef inline pfn_t zone_alloc(Zone *z, int order, int mt) noexcept nogil:
    # __rmqueue(): the requested type, then claim a fallback pageblock, then steal
    cdef int list_mt = mt
    cdef pfn_t page
    if not z.grouping:
        list_mt = MIGRATE_UNMOVABLE   # gfp_migratetype() with grouping disabled
    page = rmqueue_smallest(z, order, list_mt)
    if page < 0 and z.grouping:
        page = rmqueue_claim(z, order, list_mt)
        if page < 0:
            page = rmqueue_steal(z, order, list_mt)
    if page < 0:
        z.nr_alloc_fail += 1
        return -1
    z.frame[page].flags = FRAME_ALLOC | (mt << FRAME_MT_SHIFT)
    z.frame[page].order = order
    z.nr_free_pages -= (<pfn_t>1) << order
    z.nr_alloc += 1
    return page


# ---------------------------------------------------------------------------
# Freeing (__free_one_page)
# ---------------------------------------------------------------------------

cdef inline bint buddy_merge_likely(const Zone *z, pfn_t pfn, pfn_t buddy_pfn, int order) noexcept nogil:
    # buddy_merge_likely(): is the next-higher buddy free, so this block may merge soon?
    cdef pfn_t higher
    if order >= z.max_order - 1:
        return False
    higher = buddy_pfn & pfn
    return page_is_buddy(z, higher ^ ((<pfn_t>1) << (order + 1)), order + 1)

cdef inline void free_one_page(Zone *z, pfn_t pfn, int order, int mt, bint to_tail) noexcept nogil:
    cdef pfn_t buddy_pfn = 0
    cdef int buddy_mt
    z.nr_free_pages += (<pfn_t>1) << order
    while order < z.max_order:
        buddy_mt = mt
        buddy_pfn = pfn ^ ((<pfn_t>1) << order)      # __find_buddy_pfn()
        if not page_is_buddy(z, buddy_pfn, order):
            break
        if order >= z.pageblock_order:
            # no merging across pageblocks whose types do not fall back to each other
            buddy_mt = pageblock_mt(z, buddy_pfn)
            if mt != buddy_mt and (not mt_is_mergeable(mt) or not mt_is_mergeable(buddy_mt)):
                break
        del_from_free_list(z, buddy_pfn, order, frame_mt(z, buddy_pfn))
        if buddy_mt != mt:
            # "Match buddy type": expand() later puts the halves on the right lists
            set_pageblock_range(z, buddy_pfn, order, mt)
        pfn = buddy_pfn & pfn
        order += 1
    if not to_tail:
        to_tail = buddy_merge_likely(z, pfn, buddy_pfn, order)
    add_to_free_list(z, pfn, order, mt, to_tail)

cdef inline int validate_free(const Zone *z, pfn_t pfn, int order) noexcept nogil:
    if pfn < 0 or pfn >= z.nr_pages:
        return E_RANGE
    if order < 0 or order > z.max_order:
        return E_ORDER
    if pfn & (((<pfn_t>1) << order) - 1):
        return E_ALIGN
    if z.frame[pfn].flags & FRAME_BUDDY:
        return E_DOUBLE_FREE
    if not (z.frame[pfn].flags & FRAME_ALLOC):
        return E_NOT_HEAD
    if z.frame[pfn].order != order:
        return E_ORDER_MISMATCH
    return E_OK

cdef inline void zone_free(Zone *z, pfn_t pfn, int order) noexcept nogil:
    # free_one_page() with the pageblock's migratetype, as __free_pages_ok() passes it
    z.frame[pfn].flags = 0
    z.nr_free_calls += 1
    free_one_page(z, pfn, order, pageblock_mt(z, pfn), False)

cdef pfn_t find_head(const Zone *z, pfn_t pfn) noexcept nogil:
    """The first frame of the block (free or allocated) that contains pfn."""
    cdef int k
    cdef pfn_t h
    for k in range(z.max_order + 1):
        h = pfn & ~(((<pfn_t>1) << k) - 1)
        if (z.frame[h].flags & (FRAME_BUDDY | FRAME_ALLOC)) and z.frame[h].order >= k:
            return h
    return -1


cdef enum:
    PREFETCH_DISTANCE = 8

cdef int64_t run_ops(Zone *z, const int8_t[::1] ops, const int8_t[::1] orders, const int64_t[::1] args,
                     const int8_t[::1] mts, int64_t[::1] slots, int64_t[::1] results,
                     int *err) noexcept nogil:
    """The bulk loop: returns the number of ops done; err is set on an invalid op."""
    cdef Py_ssize_t i, n = ops.shape[0]
    cdef Py_ssize_t nslots = slots.shape[0]
    cdef int op, order, rc, mt
    cdef pfn_t pfn, slot, ahead
    cdef Py_ssize_t j
    for i in range(n):
        # The frames an op touches are random: prefetch those of an op a few steps
        # ahead, so that their cache misses overlap with this op's work.
        j = i + PREFETCH_DISTANCE
        if j < n:
            ahead = args[j]
            if ops[j] != K_OP_FREE:
                ahead = slots[ahead] if 0 <= ahead < nslots else -1
            if 0 <= ahead < z.nr_pages:
                __builtin_prefetch(&z.frame[ahead])
                __builtin_prefetch(&z.link[2 * ahead])
        op = ops[i]
        if op == K_OP_ALLOC:
            order = orders[i]
            mt = mts[i]
            if order < 0 or order > z.max_order:
                err[0] = E_ORDER
                return i
            if mt < 0 or mt >= MIGRATE_PCPTYPES:
                err[0] = E_MIGRATETYPE
                return i
            slot = args[i]
            if slot >= nslots:
                err[0] = E_SLOT
                return i
            pfn = zone_alloc(z, order, mt)
            results[i] = pfn
            if slot >= 0:
                slots[slot] = pfn
        elif op == K_OP_FREE:
            pfn = args[i]
            order = orders[i]
            if order < 0 and 0 <= pfn < z.nr_pages and (z.frame[pfn].flags & FRAME_ALLOC):
                order = z.frame[pfn].order
            rc = validate_free(z, pfn, order)
            if rc != E_OK:
                err[0] = rc
                return i
            zone_free(z, pfn, order)
            results[i] = pfn
        elif op == K_OP_FREE_SLOT or op == K_OP_REPLACE_SLOT:
            slot = args[i]
            if slot < 0 or slot >= nslots:
                err[0] = E_SLOT
                return i
            pfn = slots[slot]
            results[i] = -1
            if pfn >= 0:
                if pfn >= z.nr_pages or not (z.frame[pfn].flags & FRAME_ALLOC):
                    err[0] = E_NOT_HEAD
                    return i
                zone_free(z, pfn, z.frame[pfn].order)
                slots[slot] = -1
                results[i] = pfn
            if op == K_OP_REPLACE_SLOT:
                order = orders[i]
                mt = mts[i]
                if order < 0 or order > z.max_order:
                    err[0] = E_ORDER
                    return i
                if mt < 0 or mt >= MIGRATE_PCPTYPES:
                    err[0] = E_MIGRATETYPE
                    return i
                pfn = zone_alloc(z, order, mt)
                slots[slot] = pfn
                results[i] = pfn
        else:
            err[0] = E_OPCODE
            return i
    return n


# ---------------------------------------------------------------------------
# The Python face
# ---------------------------------------------------------------------------

cdef inline int _as_index(object value, str what) except? -1:
    """An int (numpy integers too), never a bool or float."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return 0


cdef int64_t _int_arg(object value, str what, int64_t lo, int64_t hi) except? -1:
    """Validate an integer argument in lo..hi (plain ints take the fast path)."""
    cdef int64_t v
    if type(value) is not int:
        _as_index(value, what)
        value = value.__index__()
    try:
        v = value
    except OverflowError:
        raise ValueError(f"{what} {value} out of range {lo}..{hi}") from None
    if v < lo or v > hi:
        raise ValueError(f"{what} {v} out of range {lo}..{hi}")
    return v


def _int_array(values, str name, dtype):
    """A contiguous 1-D array of ``dtype`` from integer input, refusing values it cannot hold."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and arr.dtype != dtype:
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            bad = int(np.flatnonzero((arr < info.min) | (arr > info.max))[0])
            raise ValueError(f"{name}[{bad}] = {arr[bad]} out of range {info.min}..{info.max}")
    return np.ascontiguousarray(arr, dtype=dtype)


cpdef int _migratetype(object value, bint allocatable=True) except -1:
    """Map a migratetype name ("movable") or number to its number, validating it."""
    cdef int top = MIGRATE_PCPTYPES if allocatable else NR_MIGRATETYPES
    if type(value) is int and 0 <= value < top:
        return value
    if isinstance(value, str):
        mt = _MT_BY_NAME.get(value)
        if mt is None:
            mt = _MT_BY_NAME.get(value.lower())
        if mt is not None and mt < top:
            return mt
        raise ValueError(f"unknown migratetype {value!r}; allowed: {', '.join(MIGRATETYPE_NAMES[:top])}")
    _as_index(value, "migratetype")
    v = value.__index__()
    if v < 0 or v >= top:
        raise ValueError(f"migratetype {v} out of range; allowed 0..{top - 1} "
                         f"({', '.join(MIGRATETYPE_NAMES[:top])})")
    return v


cdef class BuddyAllocator:
    """Physical memory of one zone managed by the Linux buddy allocator.

    Follows ``mm/page_alloc.c`` of Linux 6.18: free lists per order and migratetype,
    ``expand()`` keeping the lower half, merging with ``pfn ^ (1 << order)`` and
    ``buddy_merge_likely()`` tail placement, the ``fallbacks[]`` table, pageblock
    claiming (``try_to_claim_block``) and stealing (``__rmqueue_steal``), and the
    6.9+ rule that a free page always sits on its pageblock's list.

    Parameters
    ----------
    nr_pages : int
        Frames of 4 KiB (any number >= 1; a tail smaller than a max-order block is
        freed in the largest aligned pieces, as ``memblock_free_all`` does at a zone end).
    max_order : int
        ``MAX_PAGE_ORDER`` (inclusive), default 10 (4 MiB blocks); at most 15.
    pageblock_order : int
        Default 9 (2 MiB pageblocks, as on x86-64); at most ``max_order``.
    grouping : bool
        Group pages by mobility (default).  False models the pre-2.6.24 allocator,
        ``page_group_by_mobility_disabled``: every pageblock and request is UNMOVABLE.

    Simplifications: one zone without holes; no per-cpu page lists; no watermark
    boosting, CMA, highatomic reserves or free-page shuffling; ``ALLOC_NOFRAGMENT``
    is not modelled (with one zone it only matters under ``vm.defrag_mode``).
    Watermarks belong to the simulated kernel (``thpbench.Kernel``), not to this class.
    """

    def __cinit__(self, nr_pages, *, max_order=10, pageblock_order=9, grouping=True):
        self._mem = NULL
        _as_index(nr_pages, "nr_pages")
        _as_index(max_order, "max_order")
        _as_index(pageblock_order, "pageblock_order")
        nr_pages = nr_pages.__index__()
        max_order = max_order.__index__()
        pageblock_order = pageblock_order.__index__()
        if not 0 <= max_order < NR_ORDERS_MAX:
            raise ValueError(f"max_order {max_order} out of range 0..{NR_ORDERS_MAX - 1}")
        if not 0 <= pageblock_order <= max_order:
            raise ValueError(f"pageblock_order {pageblock_order} out of range 0..max_order ({max_order})")
        if not 1 <= nr_pages < 2**31 - 1:
            raise ValueError(f"nr_pages {nr_pages} out of range 1..{2**31 - 2}")
        cdef Zone *z = &self.z
        cdef int64_t n = nr_pages
        memset(z, 0, sizeof(Zone))
        z.nr_pages = n
        z.max_order = max_order
        z.pageblock_order = pageblock_order
        z.grouping = 1 if grouping else 0
        z.nr_pageblocks = (n + (1 << pageblock_order) - 1) >> pageblock_order
        cdef size_t link_bytes = 8 * <size_t>n
        cdef size_t total = link_bytes + 2 * <size_t>n + <size_t>z.nr_pageblocks
        cdef size_t huge = 2 << 20
        total = (total + huge - 1) // huge * huge
        if posix_memalign(&self._mem, huge, total) != 0:
            self._mem = NULL
            raise MemoryError(f"could not allocate {total} bytes for {nr_pages} frames")
        self._mem_bytes = total
        # The arrays are touched at random: back them with huge pages where THP allows
        madvise(self._mem, total, MADV_HUGEPAGE)
        z.link = <int32_t *>self._mem
        z.frame = <FrameState *>(<uint8_t *>self._mem + link_bytes)
        z.pb_mt = <uint8_t *>self._mem + link_bytes + 2 * <size_t>n
        memset(z.frame, 0, 2 * <size_t>n)
        cdef int o, m
        for o in range(NR_ORDERS_MAX):
            for m in range(NR_MIGRATETYPES):
                z.head[o][m] = -1
                z.tail[o][m] = -1
        # memmap_init(): every pageblock starts MOVABLE (UNMOVABLE with grouping off)
        memset(z.pb_mt, mt_for_pageblock(z, MIGRATE_MOVABLE), <size_t>z.nr_pageblocks)
        # memblock_free_all() -> __free_pages_memory(): largest aligned chunks, FPI_TO_TAIL
        cdef pfn_t start = 0
        with nogil:
            while start < z.nr_pages:
                o = z.max_order
                while start & (((<pfn_t>1) << o) - 1):
                    o -= 1
                while start + ((<pfn_t>1) << o) > z.nr_pages:
                    o -= 1
                free_one_page(z, start, o, pageblock_mt(z, start), True)
                start += (<pfn_t>1) << o

    def __dealloc__(self):
        if self._mem != NULL:
            c_free(self._mem)
            self._mem = NULL

    def __reduce__(self):
        raise TypeError("BuddyAllocator cannot be pickled; rebuild it from its parameters and operations")

    def __repr__(self):
        return (f"BuddyAllocator(nr_pages={self.z.nr_pages}, max_order={self.z.max_order}, "
                f"pageblock_order={self.z.pageblock_order}, grouping={bool(self.z.grouping)}, "
                f"nr_free_pages={self.z.nr_free_pages})")

    # -- parameters -------------------------------------------------------------
    @property
    def nr_pages(self):
        return self.z.nr_pages

    @property
    def max_order(self):
        return self.z.max_order

    @property
    def pageblock_order(self):
        return self.z.pageblock_order

    @property
    def grouping(self):
        return bool(self.z.grouping)

    @property
    def nr_pageblocks(self):
        return self.z.nr_pageblocks

    @property
    def nr_free_pages(self):
        """Free frames (``NR_FREE_PAGES``)."""
        return self.z.nr_free_pages

    @property
    def state_bytes(self):
        """Bytes of allocator state: the per-frame and per-pageblock arrays plus the Zone."""
        return self._mem_bytes + sizeof(Zone)

    # -- errors -----------------------------------------------------------------
    cdef int _raise(self, int rc, pfn_t pfn, int order) except -1:
        cdef pfn_t h
        if rc == E_RANGE:
            raise ValueError(f"pfn {pfn} out of range 0..{self.z.nr_pages - 1}")
        if rc == E_ORDER:
            raise ValueError(f"order {order} out of range 0..{self.z.max_order}")
        if rc == E_ALIGN:
            raise ValueError(f"pfn {pfn} is misaligned for order {order} (must be a multiple of {1 << order})")
        if rc == E_DOUBLE_FREE:
            raise ValueError(f"double free: pfn {pfn} is already free (an order-{self.z.frame[pfn].order} free block)")
        if rc == E_NOT_HEAD:
            h = find_head(&self.z, pfn)
            if h >= 0 and (self.z.frame[h].flags & FRAME_BUDDY):
                raise ValueError(f"double free: pfn {pfn} lies in the free order-{self.z.frame[h].order} block at pfn {h}")
            if h >= 0:
                raise ValueError(f"pfn {pfn} is not the start of an allocated block: it lies in the "
                                 f"order-{self.z.frame[h].order} block allocated at pfn {h}")
            raise ValueError(f"pfn {pfn} is not the start of an allocated block")
        if rc == E_ORDER_MISMATCH:
            raise ValueError(f"pfn {pfn} was allocated with order {self.z.frame[pfn].order}, freed with order {order}")
        if rc == E_MIGRATETYPE:
            raise ValueError(f"migratetype out of range 0..{MIGRATE_PCPTYPES - 1} "
                             f"({', '.join(MIGRATETYPE_NAMES[:MIGRATE_PCPTYPES])})")
        if rc == E_OPCODE:
            raise ValueError("unknown op code; allowed OP_ALLOC=0, OP_FREE=1, OP_FREE_SLOT=2, OP_REPLACE_SLOT=3")
        if rc == E_SLOT:
            raise ValueError(f"slot {pfn} out of range of the slots array")
        raise RuntimeError(f"internal error code {rc}")

    def _check_order(self, order):
        return _int_arg(order, "order", 0, self.z.max_order)

    def _check_pfn(self, pfn):
        return _int_arg(pfn, "pfn", 0, self.z.nr_pages - 1)

    # -- per-call operations ----------------------------------------------------
    def alloc(self, order=0, migratetype="movable"):
        """Allocate a block of ``2**order`` frames; return its first pfn, or None.

        ``migratetype`` is "unmovable", "movable" or "reclaimable" (or 0, 1, 2), as
        ``gfp_migratetype()`` derives it from __GFP_MOVABLE / __GFP_RECLAIMABLE.
        """
        cdef int o = <int>_int_arg(order, "order", 0, self.z.max_order)
        cdef int mt = _migratetype(migratetype, True)
        cdef pfn_t pfn = zone_alloc(&self.z, o, mt)
        return None if pfn < 0 else pfn

    def free(self, pfn, order=0):
        """Free the block of ``2**order`` frames at ``pfn`` (``__free_pages``).

        Raises ValueError, leaving the allocator unchanged, for an out-of-range or
        misaligned pfn, a double free, a pfn that is not the start of an allocated
        block, or an order other than the one it was allocated with.
        """
        cdef pfn_t p = _int_arg(pfn, "pfn", 0, self.z.nr_pages - 1)
        cdef int o = <int>_int_arg(order, "order", 0, self.z.max_order)
        cdef int rc = validate_free(&self.z, p, o)
        if rc != E_OK:
            self._raise(rc, p, o)
        zone_free(&self.z, p, o)

    def split(self, pfn, order):
        """Split an allocated order-``order`` block into order-0 blocks (``split_page``).

        Each frame can then be freed on its own; each keeps the block's migratetype.
        """
        p = self._check_pfn(pfn)
        cdef int o = self._check_order(order)
        cdef int rc = validate_free(&self.z, p, o)
        if rc != E_OK:
            self._raise(rc, p, o)
        cdef uint8_t fl = self.z.frame[p].flags
        cdef pfn_t i
        for i in range(p, p + ((<pfn_t>1) << o)):
            self.z.frame[i].flags = fl
            self.z.frame[i].order = 0
        self.z.nr_alloc += ((<int64_t>1) << o) - 1

    def set_pageblock_migratetype(self, pfn, migratetype):
        """Change the type of the pageblock holding ``pfn``, moving its free pages.

        As ``move_freepages_block()`` + ``set_pageblock_migratetype()``.  Any type,
        Isolate included, may be set; leaving Isolate re-frees free blocks of
        pageblock order and above so that they merge (``unset_migratetype_isolate``).
        """
        cdef pfn_t p = self._check_pfn(pfn)
        cdef int new_mt = mt_for_pageblock(&self.z, _migratetype(migratetype, False))
        cdef pfn_t start = (p >> self.z.pageblock_order) << self.z.pageblock_order
        cdef int old_mt = self.z.pb_mt[p >> self.z.pageblock_order]
        cdef pfn_t h
        cdef int o
        if old_mt == new_mt:
            return
        h = find_head(&self.z, start)
        if self.z.frame[h].order > self.z.pageblock_order:
            # A free or allocated block larger than a pageblock: change all of its
            # pageblocks.  (Isolation in the kernel would split a free one instead,
            # split_large_buddy(); here the block keeps one type.)
            o = self.z.frame[h].order
            if self.z.frame[h].flags & FRAME_BUDDY:
                del_from_free_list(&self.z, h, o, old_mt)
                set_pageblock_range(&self.z, h, o, new_mt)
                self.z.nr_free_pages -= (<pfn_t>1) << o
                free_one_page(&self.z, h, o, new_mt, False)
            else:
                set_pageblock_range(&self.z, h, o, new_mt)
            return
        move_freepages_block(&self.z, start, old_mt, new_mt)
        self.z.pb_mt[p >> self.z.pageblock_order] = new_mt
        if not mt_is_mergeable(old_mt) and mt_is_mergeable(new_mt):
            h = start
            while h < min(start + (1 << self.z.pageblock_order), self.z.nr_pages):
                if (self.z.frame[h].flags & FRAME_BUDDY) and self.z.frame[h].order >= self.z.pageblock_order:
                    o = self.z.frame[h].order
                    del_from_free_list(&self.z, h, o, new_mt)
                    self.z.nr_free_pages -= (<pfn_t>1) << o
                    free_one_page(&self.z, h, o, new_mt, False)
                    break
                h += 1 if not (self.z.frame[h].flags & (FRAME_BUDDY | FRAME_ALLOC)) else (1 << self.z.frame[h].order)

    # -- the bulk path ----------------------------------------------------------
    def run(self, ops, orders, args, migratetypes=None, slots=None):
        """Run a whole array of operations in the core, without Python per operation.

        Parameters are equal-length integer arrays: ``ops`` (``OP_ALLOC``,
        ``OP_FREE``, ``OP_FREE_SLOT``, ``OP_REPLACE_SLOT``), ``orders``, ``args``
        (a pfn for OP_FREE, a slot index for the slot ops and for OP_ALLOC, -1 for
        none) and ``migratetypes`` (numbers, default Movable).  ``slots`` is an int64
        array owned by the caller that maps slot -> pfn (-1 empty) across calls,
        so a workload can free "whatever slot 7 holds" without knowing its pfn.

        Returns an int64 array: the pfn allocated or freed by each op, -1 when an
        allocation failed or a freed slot was empty.  An invalid op raises
        ``BulkOpError`` (a ValueError) with the ops before it applied.
        """
        cdef int8_t[::1] op_v = _int_array(ops, "ops", np.int8)
        cdef Py_ssize_t n = op_v.shape[0]
        cdef int8_t[::1] ord_v = _int_array(orders, "orders", np.int8)
        cdef int64_t[::1] arg_v = _int_array(args, "args", np.int64)
        if migratetypes is None:
            migratetypes = np.full(n, MIGRATE_MOVABLE, dtype=np.int8)
        cdef int8_t[::1] mt_v = _int_array(migratetypes, "migratetypes", np.int8)
        if not (ord_v.shape[0] == arg_v.shape[0] == mt_v.shape[0] == n):
            raise ValueError(f"ops, orders, args and migratetypes must have the same length "
                             f"({n}, {ord_v.shape[0]}, {arg_v.shape[0]}, {mt_v.shape[0]})")
        if slots is None:
            slots = np.empty(0, dtype=np.int64)
        if not (isinstance(slots, np.ndarray) and slots.dtype == np.int64 and slots.flags.c_contiguous
                and slots.flags.writeable):
            raise TypeError("slots must be a writeable contiguous int64 numpy array")
        cdef int64_t[::1] slot_v = slots
        results = np.full(n, -1, dtype=np.int64)
        cdef int64_t[::1] res_v = results
        cdef int err = E_OK
        cdef Py_ssize_t done
        cdef pfn_t where
        with nogil:
            done = run_ops(&self.z, op_v, ord_v, arg_v, mt_v, slot_v, res_v, &err)
        if err != E_OK:
            where = arg_v[done]
            if op_v[done] in (K_OP_FREE_SLOT, K_OP_REPLACE_SLOT) and err != E_SLOT:
                where = slot_v[where]          # name the slot's pfn, not the slot
            try:
                self._raise(err, where, ord_v[done])
            except ValueError as e:
                raise BulkOpError(f"op {done} (op code {op_v[done]}): {e}", done, results[:done]) from None
        return results

    # -- read-outs --------------------------------------------------------------
    def buddyinfo(self):
        """Free blocks per order, summed over migratetypes (a row of /proc/buddyinfo)."""
        out = np.zeros(self.z.max_order + 1, dtype=np.int64)
        cdef int o, m
        for o in range(self.z.max_order + 1):
            for m in range(NR_MIGRATETYPES):
                out[o] += self.z.nr_free[o][m]
        return out

    def pagetypeinfo(self):
        """Free blocks per migratetype per order, and pageblocks per migratetype.

        Returns a dict: ``free`` (int64 array [migratetype, order]), ``pageblocks``
        (int64 array [migratetype]) and ``migratetypes`` (the names, as
        /proc/pagetypeinfo prints them).
        """
        free = np.zeros((NR_MIGRATETYPES, self.z.max_order + 1), dtype=np.int64)
        cdef int o, m
        for m in range(NR_MIGRATETYPES):
            for o in range(self.z.max_order + 1):
                free[m, o] = self.z.nr_free[o][m]
        blocks = np.bincount(self.pageblock_migratetypes(), minlength=NR_MIGRATETYPES).astype(np.int64)
        return {"free": free, "pageblocks": blocks, "migratetypes": MIGRATETYPE_NAMES}

    def pageblock_migratetypes(self):
        """The migratetype of each pageblock (uint8 array)."""
        return np.asarray(<uint8_t[:self.z.nr_pageblocks]>self.z.pb_mt).copy()

    def free_list(self, order, migratetype):
        """The pfns on ``free_area[order].free_list[migratetype]``, head first."""
        cdef int o = self._check_order(order)
        cdef int mt = _migratetype(migratetype, False)
        out = np.empty(self.z.nr_free[o][mt], dtype=np.int64)
        cdef int64_t[::1] v = out
        cdef int32_t p = self.z.head[o][mt]
        cdef Py_ssize_t i = 0
        while p >= 0 and i < v.shape[0]:
            v[i] = p
            i += 1
            p = self.z.link[2 * p + 1]
        return out

    def free_blocks(self):
        """Every free block, by pfn: a structured array (pfn, order, migratetype)."""
        return self._blocks(FRAME_BUDDY)

    def allocated_blocks(self):
        """Every allocated block, by pfn: a structured array (pfn, order, migratetype requested)."""
        return self._blocks(FRAME_ALLOC)

    def _blocks(self, int which):
        cdef Zone *z = &self.z
        cdef pfn_t pfn = 0, n = 0
        while pfn < z.nr_pages:
            if z.frame[pfn].flags & which:
                n += 1
            pfn += 1 if not (z.frame[pfn].flags & (FRAME_BUDDY | FRAME_ALLOC)) else ((<pfn_t>1) << z.frame[pfn].order)
        out = np.zeros(n, dtype=[("pfn", np.int64), ("order", np.int8), ("migratetype", np.int8)])
        cdef int64_t[:] pv = out["pfn"]
        cdef int8_t[:] ov = out["order"]
        cdef int8_t[:] mv = out["migratetype"]
        cdef Py_ssize_t i = 0
        pfn = 0
        while pfn < z.nr_pages:
            if z.frame[pfn].flags & which:
                pv[i] = pfn
                ov[i] = z.frame[pfn].order
                mv[i] = frame_mt(z, pfn)
                i += 1
            pfn += 1 if not (z.frame[pfn].flags & (FRAME_BUDDY | FRAME_ALLOC)) else ((<pfn_t>1) << z.frame[pfn].order)
        return out

    def frame_migratetypes(self):
        """Per frame: the migratetype an allocated frame was requested with, -1 if free.

        With the pageblock types this draws the physical memory map.
        """
        out = np.full(self.z.nr_pages, -1, dtype=np.int8)
        cdef int8_t[::1] v = out
        cdef Zone *z = &self.z
        cdef pfn_t pfn = 0, i, end
        cdef int8_t mt
        with nogil:
            while pfn < z.nr_pages:
                if z.frame[pfn].flags & FRAME_ALLOC:
                    end = pfn + ((<pfn_t>1) << z.frame[pfn].order)
                    mt = frame_mt(z, pfn)
                    for i in range(pfn, end):
                        v[i] = mt
                    pfn = end
                elif z.frame[pfn].flags & FRAME_BUDDY:
                    pfn += (<pfn_t>1) << z.frame[pfn].order
                else:
                    pfn += 1
        return out

    def counters(self):
        """Event counts: alloc, alloc_fail, free, extfrag (fallbacks), claim, steal."""
        return {"alloc": self.z.nr_alloc, "alloc_fail": self.z.nr_alloc_fail, "free": self.z.nr_free_calls,
                "extfrag": self.z.nr_extfrag, "claim": self.z.nr_claim, "steal": self.z.nr_steal}

    def _contig_info(self, order):
        # fill_contig_page_info() (mm/vmstat.c)
        cdef int o = self._check_order(order)
        info = self.buddyinfo()
        total = int(info.sum())
        free_pages = 0
        suitable = 0
        for k in range(self.z.max_order + 1):
            free_pages += int(info[k]) << k
            if k >= o:
                suitable += int(info[k]) << (k - o)
        return o, total, free_pages, suitable

    def unusable_index(self, order):
        """The unusable free space index for ``order`` (``unusable_free_index()``) / 1000.

        The fraction of free memory that cannot serve an order-``order`` request:
        0.0 = all of it can, 1.0 = none of it (or no free memory at all).
        """
        o, total, free_pages, suitable = self._contig_info(order)
        if free_pages == 0:
            return 1.0
        return ((free_pages - (suitable << o)) * 1000 // free_pages) / 1000

    def fragmentation_index(self, order):
        """The external fragmentation index (``__fragmentation_index()``) / 1000.

        -1.0 when a free block of the order exists (the request would succeed); else
        near 0 the failure is due to lack of memory, near 1 due to fragmentation.
        """
        o, total, free_pages, suitable = self._contig_info(order)
        if total == 0:
            return 0.0
        if suitable:
            return -1.0
        return (1000 - (1000 + free_pages * 1000 // (1 << o)) // total) / 1000

    # -- invariants -------------------------------------------------------------
    def check(self):
        """Verify every invariant; raise InvariantError naming the first that fails."""
        cdef Zone *z = &self.z
        cdef pfn_t pfn = 0, p, q, end, b
        cdef int o, m, fm, bm
        cdef int64_t heads = 0, on_lists = 0, free_pages = 0, count
        cdef int64_t lists_pages = 0
        # 1. the frames tile into aligned blocks; interior frames carry no flags
        while pfn < z.nr_pages:
            if not (z.frame[pfn].flags & (FRAME_BUDDY | FRAME_ALLOC)):
                raise InvariantError(f"pfn {pfn} starts no block (no free or allocated block covers it)")
            if (z.frame[pfn].flags & FRAME_BUDDY) and (z.frame[pfn].flags & FRAME_ALLOC):
                raise InvariantError(f"pfn {pfn} is both free and allocated")
            o = z.frame[pfn].order
            if o > z.max_order:
                raise InvariantError(f"pfn {pfn} has order {o} > max_order {z.max_order}")
            if pfn & (((<pfn_t>1) << o) - 1):
                raise InvariantError(f"block at pfn {pfn} is misaligned for its order {o}")
            end = pfn + ((<pfn_t>1) << o)
            if end > z.nr_pages:
                raise InvariantError(f"order-{o} block at pfn {pfn} runs past the zone end {z.nr_pages}")
            for q in range(pfn + 1, end):
                if z.frame[q].flags:
                    raise InvariantError(f"pfn {q} inside the order-{o} block at pfn {pfn} carries flags {z.frame[q].flags:#x}")
            if z.frame[pfn].flags & FRAME_BUDDY:
                heads += 1
                free_pages += (<int64_t>1) << o
                fm = frame_mt(z, pfn)
                for b in range(pfn >> z.pageblock_order, ((end - 1) >> z.pageblock_order) + 1):
                    if z.pb_mt[b] != fm:
                        raise InvariantError(f"free order-{o} block at pfn {pfn} is on the {MIGRATETYPE_NAMES[fm]} "
                                             f"list but its pageblock {b} is {MIGRATETYPE_NAMES[z.pb_mt[b]]}")
                # 2. fully merged: the buddy is not a free block of the same order it could
                # merge with.  Across pageblocks the kernel decides at free time, so blocks
                # of an Isolate or HighAtomic pageblock may stay apart even once both
                # sides carry the same type (__free_one_page, migratetype_is_mergeable)
                if o < z.max_order:
                    q = pfn ^ ((<pfn_t>1) << o)
                    if page_is_buddy(z, q, o):
                        bm = frame_mt(z, q)
                        if o < z.pageblock_order or (mt_is_mergeable(fm) and mt_is_mergeable(bm)):
                            raise InvariantError(f"free order-{o} blocks at pfn {min(pfn, q)} and {max(pfn, q)} are "
                                                 f"buddies and should have merged")
            else:
                if frame_mt(z, pfn) >= MIGRATE_PCPTYPES:
                    raise InvariantError(f"allocated block at pfn {pfn} has migratetype {frame_mt(z, pfn)}")
            pfn = end
        if free_pages != z.nr_free_pages:
            raise InvariantError(f"free blocks hold {free_pages} pages but nr_free_pages is {z.nr_free_pages}")
        # 3. every list is consistent in both directions and holds what its counter says
        for o in range(NR_ORDERS_MAX):
            for m in range(NR_MIGRATETYPES):
                if o > z.max_order:
                    if z.head[o][m] != -1 or z.nr_free[o][m] != 0:
                        raise InvariantError(f"free list order {o} > max_order is not empty")
                    continue
                count = 0
                p = -1
                q = z.head[o][m]
                while q >= 0:
                    if q >= z.nr_pages:
                        raise InvariantError(f"free list (order {o}, {MIGRATETYPE_NAMES[m]}) links to pfn {q}")
                    if not (z.frame[q].flags & FRAME_BUDDY) or z.frame[q].order != o or frame_mt(z, q) != m:
                        raise InvariantError(f"pfn {q} on free list (order {o}, {MIGRATETYPE_NAMES[m]}) is not a "
                                             f"free block of that order and type")
                    if z.link[2 * q] != p:
                        raise InvariantError(f"pfn {q} on free list (order {o}, {MIGRATETYPE_NAMES[m]}) has prev "
                                             f"{z.link[2 * q]}, expected {p}")
                    count += 1
                    if count > z.nr_pages:
                        raise InvariantError(f"free list (order {o}, {MIGRATETYPE_NAMES[m]}) has a cycle")
                    p = q
                    q = z.link[2 * q + 1]
                if z.tail[o][m] != p:
                    raise InvariantError(f"free list (order {o}, {MIGRATETYPE_NAMES[m]}) tail is {z.tail[o][m]}, expected {p}")
                if count != z.nr_free[o][m]:
                    raise InvariantError(f"free list (order {o}, {MIGRATETYPE_NAMES[m]}) holds {count} blocks, "
                                         f"nr_free says {z.nr_free[o][m]}")
                on_lists += count
                lists_pages += count << o
        if on_lists != heads:
            raise InvariantError(f"{heads} free blocks exist but {on_lists} are on free lists")
        # 4. pageblock types are valid (all UNMOVABLE-or-special with grouping off)
        for b in range(z.nr_pageblocks):
            if z.pb_mt[b] >= NR_MIGRATETYPES:
                raise InvariantError(f"pageblock {b} has migratetype {z.pb_mt[b]}")
            if not z.grouping and z.pb_mt[b] < MIGRATE_PCPTYPES and z.pb_mt[b] != MIGRATE_UNMOVABLE:
                raise InvariantError(f"pageblock {b} is {MIGRATETYPE_NAMES[z.pb_mt[b]]} with grouping by mobility off")
        return True


# ---------------------------------------------------------------------------
# The simulated kernel's allocator (MMCore.alloc_pages): a block taken out of a
# free block, get_page_from_freelist() at a watermark, and __alloc_pages_slowpath()
# (wake kswapd, direct compaction, async first, direct reclaim, as far as the gfp
# bits allow).  Simplifications: one zone; kswapd is not simulated here (a wakeup is
# recorded and thpbench/kernel/ wakes it); no capture_control.
# ---------------------------------------------------------------------------

cdef int zone_take_block(Zone *z, pfn_t pfn, int order) noexcept nogil:
    """Take the order-``order`` block at pfn out of the free block that contains it
    (compaction's isolate_freepages_block + split_free_page): the rest of the free
    block goes back on the free lists.  A new primitive on the buddy Zone, kept here
    for the simulated kernel.  0, or -1 if no free block covers it."""
    cdef pfn_t h, cur, half
    cdef int o, co, mt
    if pfn < 0 or pfn >= z.nr_pages or order < 0 or order > z.max_order or (pfn & (((<pfn_t>1) << order) - 1)):
        return -1
    h = find_head(z, pfn)
    if h < 0 or not (z.frame[h].flags & FRAME_BUDDY) or z.frame[h].order < order:
        return -1
    o = z.frame[h].order
    mt = frame_mt(z, h)
    del_from_free_list(z, h, o, mt)
    cur = h
    co = o
    while co > order:
        co -= 1
        half = cur + ((<pfn_t>1) << co)
        if pfn >= half:
            add_to_free_list(z, cur, co, mt, False)
            cur = half
        else:
            add_to_free_list(z, half, co, mt, False)
    z.frame[cur].flags = FRAME_ALLOC | (MIGRATE_MOVABLE << FRAME_MT_SHIFT)
    z.frame[cur].order = order
    z.nr_free_pages -= (<pfn_t>1) << order
    z.nr_alloc += 1
    return 0


cdef pfn_t mm_get_page_from_freelist(MMCore m, int order, int mt, int64_t mark) noexcept nogil:
    # get_page_from_freelist(): the zone's free pages above the watermark (min in the
    # slow path, low in the fast path) after this allocation, then rmqueue
    if m.z.nr_free_pages - ((<int64_t>1) << order) + 1 > mark:
        return zone_alloc(m.z, order, mt)
    return -1


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
    # wake_all_kswapds() -> wakeup_kswapd(): recorded; the kernel (thpbench/kernel/) acts on it
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
        deferred_split_scan_c(m, 1)
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


# The Python face of the slow path (thpbench/kernel/ calls these)

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


def _mm_shrink_for(MMCore core, int order):
    """The built-in direct reclaim (deferred-split shrinker) for an allocation of order."""
    return mm_shrink_for(core, order)
