# The TLB and page-walk simulation loop, included by _core.pyx.
#
# State is a TlbState struct (see _core.pxd) of TlbCache structures -- each one a
# set-associative LRU array of tags -- and the current mappings; nogil free functions
# do the work, TlbSim is the thin validating class on top.  thpbench/tlb.py builds
# TlbSim from CPU presets; thpbench/_reference/tlb.py is the slow twin the
# differential tests compare against.
#
# Model (stated again in tlb.py, where users read it):
# * L1 TLBs per page size (4 KiB, 2 MiB), or one L1 shared by both; a second level per
#   size or shared; geometry (entries, ways), any number of sets (indexed by modulo unless
#   a power of two); true LRU within a set.  Levels are neither inclusive nor exclusive: an L2 hit
#   fills L1, a walk fills both, an eviction does not touch the other level.
# * A TLB entry is tagged by virtual page number at its size.  The lookup probes the
#   size the page is mapped with (the simulator knows it); stale entries of the other
#   size cannot exist as long as mapping changes are followed by a flush, as the kernel
#   does (mm/khugepaged.c: collapse_huge_page -> pmdp_collapse_flush;
#   mm/huge_memory.c: __split_huge_pmd -> pmdp_invalidate).
# * Page-walk caches per level (Intel's PML4E/PDPTE/PDE caches, keyed by the virtual
#   address bits above that level) or unified (AMD's page walk cache), probed deepest
#   first: a hit at level l leaves l - leaf references.
# * Nested (2D) walk: each guest page-table page sits at a guest-physical address that
#   the walker translates with the nested TLB, else a host walk with the host's walk
#   caches; the final guest-physical address is translated the same way.  Without any
#   cache that is g*(h+1) + h = (g+1)(h+1) - 1 references.
# * Shadow paging: a 1D walk of the shadow table, whose pages are min(guest, host).
# * Two loops: tlb_run_tlb_only when a walk needs no model (walk_model off, or a 1D walk
#   with no walk cache and no page-table lines: levels - class references), with its
#   counters in locals; tlb_run_trace's general loop otherwise.  Both give the same
#   counts (the differential and fuzz tests hold them to the reference).

from libc.stdlib cimport calloc, free as c_free
from libc.string cimport memset, memmove
import numpy as np


# Guest page-table pages live in a guest-physical area above any guest memory, one
# sub-area of 2^48 bytes per level, so that the nested walker has addresses to translate.
# Tables of one level are adjacent (page-table pages allocated in order).
cdef uint64_t PT_GPA_BASE = (<uint64_t>1) << 51
cdef int PT_GPA_LEVEL_SHIFT = 48
# The host's own tables (nested mode) in a host-physical area of the same shape.
cdef uint64_t HPT_BASE = (<uint64_t>1) << 53
cdef uint64_t REGION_MASK = ((<uint64_t>1) << 21) - 1

# The x86 kernel turns a range flush of more than this many strides into a full flush
# (arch/x86/mm/tlb.c: tlb_single_page_flush_ceiling).
TLB_SINGLE_PAGE_FLUSH_CEILING = 33

TLB_MODES = {"native": TLB_MODE_NATIVE, "nested": TLB_MODE_NESTED, "shadow": TLB_MODE_SHADOW}


# ---------------------------------------------------------------------------
# One set-associative LRU cache
# ---------------------------------------------------------------------------

cdef inline uint64_t tlb_tag(uint64_t key, int sub) noexcept nogil:
    # Bit 0 marks a valid tag (0 = empty way); bits 1..3 hold the page-size class or
    # the walk level, so a shared or unified structure keeps them apart.
    return (key << 4) | (<uint64_t>sub << 1) | 1

cdef inline int64_t tc_set_base(const TlbCache *c, uint64_t key) noexcept nogil:
    if c.set_mask >= 0:
        return <int64_t>(key & <uint64_t>c.set_mask) * c.n_ways
    return <int64_t>(key % <uint64_t>c.n_sets) * c.n_ways

cdef inline int64_t tc_lookup(TlbCache *c, uint64_t key, uint64_t tag) noexcept nogil:
    """-1 on a hit (the way moves to the front: most recent); else the index of the
    set's first way, where tc_fill puts the new tag; -2 when the cache is absent.

    Each set is kept in recency order, most recent first, with empty ways (tag 0) at
    the end: the victim of a fill is the last way -- an empty one if any, else the
    least recently used.  This is exact LRU without per-way stamps."""
    cdef int64_t base, w
    cdef uint64_t *tags
    cdef uint64_t t
    if c.n_sets == 0:
        return -2
    base = tc_set_base(c, key)
    tags = c.tags + base
    for w in range(c.n_ways):
        t = tags[w]
        if t == tag:
            c.hits += 1
            while w > 0:                 # (a loop, not memmove: sets are a few ways)
                tags[w] = tags[w - 1]
                w -= 1
            tags[0] = tag
            return -1
        if t == 0:                       # empty ways only follow
            break
    c.misses += 1
    return base

cdef inline void tc_fill(TlbCache *c, int64_t base, uint64_t tag) noexcept nogil:
    # Put tag in front of the set at base; the others move one way back, up to the first
    # empty way, or the last (least recently used) one falls out.
    cdef int64_t w
    cdef uint64_t *tags
    cdef uint64_t prev = tag, cur
    if base < 0:
        return
    tags = c.tags + base
    c.fills += 1
    for w in range(c.n_ways):
        cur = tags[w]
        tags[w] = prev
        if cur == 0:
            return
        prev = cur
    c.evictions += 1

cdef inline void tc_insert(TlbCache *c, uint64_t key, uint64_t tag) noexcept nogil:
    # Fill without a lookup (the caller knows the tag is absent).
    if c.n_sets == 0:
        return
    tc_fill(c, tc_set_base(c, key), tag)

cdef inline void tc_drop_way(TlbCache *c, int64_t base, int64_t w) noexcept nogil:
    # Invalidate way w of the set at base: later ways move up, the empty one goes last.
    cdef uint64_t *tags = c.tags + base
    memmove(tags + w, tags + w + 1, (c.n_ways - 1 - w) * sizeof(uint64_t))
    tags[c.n_ways - 1] = 0

cdef inline int tc_invalidate(TlbCache *c, uint64_t key, uint64_t tag) noexcept nogil:
    cdef int64_t base, w
    if c.n_sets == 0:
        return 0
    base = tc_set_base(c, key)
    for w in range(c.n_ways):
        if c.tags[base + w] == tag:
            tc_drop_way(c, base, w)
            return 1
    return 0

cdef int64_t tc_invalidate_all(TlbCache *c) noexcept nogil:
    cdef int64_t i, n = 0
    for i in range(c.n_sets * c.n_ways):
        if c.tags[i] != 0:
            n += 1
        c.tags[i] = 0
    return n

cdef int64_t tc_invalidate_keys(TlbCache *c, int sub, uint64_t first, uint64_t last, bint any_sub) noexcept nogil:
    # Invalidate every valid entry whose key lies in [first, last] (and whose sub field is
    # `sub`, unless any_sub): a scan of the whole cache, for big ranges and walk caches.
    cdef int64_t st, w, n = 0
    cdef uint64_t t, k
    for st in range(c.n_sets):
        w = 0
        while w < c.n_ways:
            t = c.tags[st * c.n_ways + w]
            k = t >> 4
            if t != 0 and (any_sub or <int>((t >> 1) & 7) == sub) and first <= k <= last:
                tc_drop_way(c, st * c.n_ways, w)    # the next way moved into w
                n += 1
            else:
                w += 1
    return n

cdef int tc_init(TlbCache *c, int64_t n_sets, int64_t n_ways) except -1:
    # The caller (TlbSim.__init__) has checked 1 <= n_sets * n_ways <= TLB_MAX_ENTRIES
    # in Python integers, so the product below cannot overflow.
    c.n_sets = n_sets
    c.n_ways = n_ways
    c.set_mask = n_sets - 1 if (n_sets & (n_sets - 1)) == 0 else -1
    c.tags = <uint64_t *>calloc(n_sets * n_ways, sizeof(uint64_t))
    if c.tags == NULL:
        raise MemoryError(f"could not allocate a TLB of {n_sets} x {n_ways} entries")
    return 0


cdef inline int tc_touch(TlbCache *c, uint64_t key, uint64_t tag) noexcept nogil:
    """One LRU access of a present cache, in a single pass: 0 on a hit (the tag moves
    to the front), 1 on a miss that filled an empty way, 2 on a miss that evicted the
    least recently used way.  Counters are the caller's (the hot loops keep them in
    locals).

    Each way the pass walks over moves one step back, so a hit at way w ends with the
    tag in front and ways 0..w-1 behind it, and a miss ends with the tag in front and
    the last way pushed out: the same recency-ordered sets as tc_lookup + tc_fill."""
    cdef uint64_t *tags
    cdef uint64_t prev = tag, cur
    cdef int64_t w, nw = c.n_ways
    if c.set_mask >= 0:
        tags = c.tags + <int64_t>(key & <uint64_t>c.set_mask) * nw
    else:
        tags = c.tags + <int64_t>(key % <uint64_t>c.n_sets) * nw
    for w in range(nw):
        cur = tags[w]
        tags[w] = prev
        if cur == tag:
            return 0
        if cur == 0:                 # empty ways only follow: nothing is evicted
            return 1
        prev = cur
    return 2


cdef inline bint tc_access(TlbCache *c, uint64_t key, uint64_t tag) noexcept nogil:
    # tc_touch with the cache's own counters: True on a hit.  An absent cache misses
    # uncounted.
    cdef int r
    if c.n_sets == 0:
        return False
    r = tc_touch(c, key, tag)
    if r == 0:
        c.hits += 1
        return True
    c.misses += 1
    c.fills += 1
    c.evictions += r >> 1
    return False


# ---------------------------------------------------------------------------
# Walks
# ---------------------------------------------------------------------------

cdef inline uint64_t pt_entry_addr(uint64_t base, uint64_t addr, int level) noexcept nogil:
    # Address of the level-`level` entry translating addr: its table page (tables of a
    # level adjacent, one 2^48-byte area per level) plus the index bits times 8 bytes.
    return (base + (<uint64_t>(level - 1) << PT_GPA_LEVEL_SHIFT)
            + ((addr >> (12 + 9 * level)) << 12)
            + (((addr >> (12 + 9 * (level - 1))) & 511) << 3))

cdef inline void pt_ref(TlbCache *ptc, uint64_t entry_addr) noexcept nogil:
    # One walk reference through the data caches: a 64-byte line holds 8 entries.
    cdef uint64_t key = entry_addr >> 6
    tc_access(ptc, key, tlb_tag(key, 0))

cdef inline int64_t walk_1d(TlbCache **pwc, TlbCache *ptc, uint64_t tbase, uint64_t addr,
                            int levels, int leaf) noexcept nogil:
    """References of a one-dimensional walk of `addr` down to `leaf` (1: a PTE maps
    4 KiB, 2: a PMD maps 2 MiB), after the walk caches of levels leaf+1..levels; each
    reference goes through `ptc`, the data-cache lines of tables based at `tbase`."""
    cdef int l, hit_level = levels + 1
    cdef uint64_t key
    cdef int64_t slot[TLB_MAX_LEVELS]
    for l in range(leaf + 1, levels + 1):           # deepest first
        key = addr >> (12 + 9 * (l - 1))
        slot[l] = tc_lookup(pwc[l], key, tlb_tag(key, l))
        if slot[l] == -1:
            hit_level = l
            break
    # The walker reads the entries of levels hit_level-1 .. leaf; the non-leaf ones are
    # then cached (the leaf goes to the TLB).  A miss returned the set to fill: the
    # recency-ordered sets make that right even when a unified cache fills twice.
    if ptc.n_sets != 0:
        for l in range(hit_level - 1, leaf - 1, -1):
            pt_ref(ptc, pt_entry_addr(tbase, addr, l))
    for l in range(leaf + 1, hit_level):
        tc_fill(pwc[l], slot[l], tlb_tag(addr >> (12 + 9 * (l - 1)), l))
    return hit_level - leaf

cdef inline int64_t host_translate(TlbState *s, uint64_t gpa, int hh) noexcept nogil:
    """Host references to translate guest-physical `gpa` (host page 2 MiB when hh)."""
    cdef uint64_t key = gpa >> (12 + 9 * hh)
    cdef uint64_t tag = tlb_tag(key, hh)
    cdef int64_t slot = tc_lookup(s.ntlb, key, tag), refs
    if slot == -1:
        return 0
    refs = walk_1d(s.hpwc, s.ptcache, HPT_BASE, gpa, s.host_levels, 1 + hh)
    tc_fill(s.ntlb, slot, tag)
    return refs

cdef inline uint64_t pt_gpa(uint64_t va, int level) noexcept nogil:
    # Guest-physical address of the level-`level` table page used to translate va.
    return (PT_GPA_BASE + (<uint64_t>(level - 1) << PT_GPA_LEVEL_SHIFT)
            + ((va >> (12 + 9 * level)) << 12))

cdef inline void nested_walk(TlbState *s, uint64_t va, uint64_t gpa, int gh, int hh) noexcept nogil:
    cdef int gleaf = 1 + gh, l, hit_level = s.levels + 1
    cdef uint64_t key
    cdef int64_t host = 0, guest = 0
    for l in range(gleaf + 1, s.levels + 1):        # guest walk caches, deepest first
        key = va >> (12 + 9 * (l - 1))
        if tc_lookup(s.pwc[l], key, tlb_tag(key, l)) == -1:
            hit_level = l
            break
    l = hit_level - 1
    while l >= gleaf:
        # the guest table page is at a guest-physical address: translate it, then read
        host += host_translate(s, pt_gpa(va, l), s.host_pt_huge)
        if s.ptcache.n_sets != 0:
            pt_ref(s.ptcache, pt_entry_addr(PT_GPA_BASE, va, l))
        guest += 1
        l -= 1
    for l in range(gleaf + 1, hit_level):
        key = va >> (12 + 9 * (l - 1))
        tc_insert(s.pwc[l], key, tlb_tag(key, l))
    host += host_translate(s, gpa, hh)              # the data page itself
    s.cnt.guest_refs += guest
    s.cnt.host_refs += host
    s.cnt.walk_refs += guest + host

cdef inline int tlb_classify(const TlbState *s, uint64_t va, uint64_t *gpa_out,
                             int *gh_out, int *hh_out) noexcept nogil:
    """The page-size class of va's TLB entry (0: 4 KiB, 1: 2 MiB) under the installed
    mappings; also its guest-physical address and the guest and host page sizes."""
    cdef int64_t r
    cdef uint64_t gpa = va, hr
    cdef int gh = s.default_guest_huge, hh = 0
    if va >= s.base_va:
        r = <int64_t>((va - s.base_va) >> 21)
        if r < s.n_guest:
            gh = s.guest_huge[r]
            if s.gpa_region != NULL:
                gpa = (<uint64_t>s.gpa_region[r] << 21) | (va & REGION_MASK)
            else:
                gpa = (<uint64_t>r << 21) | (va & REGION_MASK)
    gpa_out[0] = gpa
    gh_out[0] = gh
    if s.mode == TLB_MODE_NATIVE:
        hh_out[0] = 0
        return gh
    hh = s.default_host_huge
    hr = gpa >> 21
    if hr < <uint64_t>s.n_host:
        hh = s.host_huge[hr]
    hh_out[0] = hh
    return gh & hh        # a guest huge page on host 4 KiB pages is splintered


cdef int tlb_walk_is_fixed(const TlbState *s) noexcept nogil:
    """True when a walk's references do not depend on any state: a 1D walk (native or
    shadow) with no walk cache and no page-table data cache makes levels - class
    references, so the loop needs no walk model to count them."""
    cdef int l
    if not s.walk_model:
        return True
    if s.mode == TLB_MODE_NESTED or s.ptcache.n_sets != 0:
        return False
    for l in range(2, s.levels + 1):
        if s.pwc[l].n_sets != 0:
            return False
    return True


cdef void tlb_run_tlb_only(TlbState *s, const uint64_t *trace, int64_t n) noexcept nogil:
    """The loop for runs whose walks need no model (walk_model off, or a fixed walk):
    L1, then L2, then a walk counted by class.  Counters live in locals and are added
    to the structures at the end; when no mapping array can change an access's class
    (the common pure-TLB case) the class is computed once."""
    cdef int64_t i, look1[TLB_NR_SIZES], miss1[TLB_NR_SIZES], ev1[TLB_NR_SIZES], look2[TLB_NR_SIZES], miss2[TLB_NR_SIZES], ev2[TLB_NR_SIZES], walks[TLB_NR_SIZES]
    cdef int cls, gh, hh, r, has1[TLB_NR_SIZES], has2[TLB_NR_SIZES], fixed_cls = -1
    cdef uint64_t va, key, tag, gpa
    cdef TlbCache *c1
    cdef TlbCache *c2
    for cls in range(TLB_NR_SIZES):
        look1[cls] = miss1[cls] = ev1[cls] = look2[cls] = miss2[cls] = ev2[cls] = walks[cls] = 0
        has1[cls] = s.l1[cls].n_sets != 0
        has2[cls] = s.l2[cls].n_sets != 0
    if s.n_guest == 0 and (s.mode == TLB_MODE_NATIVE or s.n_host == 0):
        fixed_cls = tlb_classify(s, 0, &gpa, &gh, &hh)
    if fixed_cls >= 0:
        cls = fixed_cls
        c1 = s.l1[cls]
        c2 = s.l2[cls]
        if has1[cls] and has2[cls]:
            for i in range(n):
                key = trace[i] >> (12 + 9 * cls)
                tag = tlb_tag(key, cls)
                r = tc_touch(c1, key, tag)
                if r == 0:
                    continue
                miss1[cls] += 1
                ev1[cls] += r >> 1
                r = tc_touch(c2, key, tag)
                if r == 0:
                    continue
                miss2[cls] += 1
                ev2[cls] += r >> 1
            look1[cls] = n
            look2[cls] = miss1[cls]
            walks[cls] = miss2[cls]
        elif has1[cls] or has2[cls]:
            c1 = c1 if has1[cls] else c2
            for i in range(n):
                key = trace[i] >> (12 + 9 * cls)
                r = tc_touch(c1, key, tlb_tag(key, cls))
                if r == 0:
                    continue
                miss1[cls] += 1
                ev1[cls] += r >> 1
            look1[cls] = n
            walks[cls] = miss1[cls]
            if not has1[cls]:       # the one level present is the second
                look2[cls], miss2[cls], ev2[cls] = look1[cls], miss1[cls], ev1[cls]
                look1[cls] = miss1[cls] = ev1[cls] = 0
        else:
            walks[cls] = n
    else:
        for i in range(n):
            va = trace[i]
            cls = tlb_classify(s, va, &gpa, &gh, &hh)
            key = va >> (12 + 9 * cls)
            tag = tlb_tag(key, cls)
            if has1[cls]:
                look1[cls] += 1
                r = tc_touch(s.l1[cls], key, tag)
                if r == 0:
                    continue
                miss1[cls] += 1
                ev1[cls] += r >> 1
            if has2[cls]:
                look2[cls] += 1
                r = tc_touch(s.l2[cls], key, tag)
                if r == 0:
                    continue
                miss2[cls] += 1
                ev2[cls] += r >> 1
            walks[cls] += 1
    for cls in range(TLB_NR_SIZES):
        # (a shared level is one structure behind both classes: both add to it)
        c1 = s.l1[cls]
        c1.hits += look1[cls] - miss1[cls]
        c1.misses += miss1[cls]
        c1.fills += miss1[cls]
        c1.evictions += ev1[cls]
        c2 = s.l2[cls]
        c2.hits += look2[cls] - miss2[cls]
        c2.misses += miss2[cls]
        c2.fills += miss2[cls]
        c2.evictions += ev2[cls]
        s.cnt.walks[cls] += walks[cls]
        if s.walk_model:
            # a 1D walk without caches reads every level from the top to the leaf
            s.cnt.guest_refs += walks[cls] * (s.levels - cls)
            s.cnt.walk_refs += walks[cls] * (s.levels - cls)
    s.cnt.accesses += n


cdef void tlb_run_trace(TlbState *s, const uint64_t *trace, int64_t n) noexcept nogil:
    cdef int64_t i, refs
    cdef uint64_t va, gpa, key, tag
    cdef int gh, hh, cls
    cdef int mode = s.mode
    if tlb_walk_is_fixed(s):
        tlb_run_tlb_only(s, trace, n)
        return
    for i in range(n):
        va = trace[i]
        cls = tlb_classify(s, va, &gpa, &gh, &hh)
        key = va >> (12 + 9 * cls)
        tag = tlb_tag(key, cls)
        # An L1 miss fills L1 at once: the L2 and the walk touch other structures, so
        # the order of fills does not change any state (levels are not inclusive).
        if tc_access(s.l1[cls], key, tag):
            continue
        if tc_access(s.l2[cls], key, tag):
            continue
        if mode == TLB_MODE_NESTED:
            nested_walk(s, va, gpa, gh, hh)
        else:
            refs = walk_1d(s.pwc, s.ptcache, PT_GPA_BASE, va, s.levels, 1 + cls)
            s.cnt.guest_refs += refs
            s.cnt.walk_refs += refs
        s.cnt.walks[cls] += 1
    s.cnt.accesses += n


# ---------------------------------------------------------------------------
# The Python face
# ---------------------------------------------------------------------------

def _tlb_flags(a, what):
    # One bool per 2 MiB region, as a contiguous uint8 array (None stays None).
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.dtype.kind not in "biu" and arr.size:
        raise TypeError(f"{what} must be an array of booleans, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] > (1 << 40):
        raise ValueError(f"{what} has {arr.shape[0]} regions, more than 2**40")
    return np.ascontiguousarray(arr.astype(bool).view(np.uint8))


_GEOM_SLOTS = {"l1_4k": CACHE_L1_4K, "l1_2m": CACHE_L1_2M, "l1": CACHE_L1_4K,
               "l2_4k": CACHE_L2_4K, "l2_2m": CACHE_L2_2M, "l2": CACHE_L2_4K,
               "pwc": CACHE_PWC0, "hpwc": CACHE_HPWC0, "ntlb": CACHE_NTLB,
               "ptcache": CACHE_PTCACHE}
for _l in range(2, 6):
    _GEOM_SLOTS[f"pwc{_l}"] = CACHE_PWC0 + _l
    _GEOM_SLOTS[f"hpwc{_l}"] = CACHE_HPWC0 + _l
del _l


#: Largest number of entries of one structure (TlbSim validates before allocating:
#: 2**24 tags are 128 MiB).
TLB_MAX_ENTRIES = 1 << 24


def _tlb_int(value, what):
    # An integer argument (bool, float and str refused), as a Python int.
    if not isinstance(value, bool) and hasattr(value, "__index__"):
        try:
            return value.__index__()
        except TypeError:               # e.g. an array of more than one element
            pass
    raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")


def tlb_check_geometry(name, g):
    """(entries, ways) of structure `name` as Python ints, or ValueError / TypeError
    naming the structure, the value and what is allowed."""
    if hasattr(g, "entries") and hasattr(g, "ways"):          # a thpbench.tlb.Geometry
        g = (g.entries, g.ways)
    if not isinstance(g, (tuple, list, np.ndarray)) or len(g) != 2:
        raise TypeError(f"geometry[{name!r}] = {g!r}: expected (entries, ways)")
    entries = _tlb_int(g[0], f"geometry[{name!r}] entries")
    ways = _tlb_int(g[1], f"geometry[{name!r}] ways")
    if not (1 <= ways <= entries <= TLB_MAX_ENTRIES) or entries % ways:
        raise ValueError(f"geometry[{name!r}] = ({entries}, {ways}): need 1 <= ways <= entries "
                         f"<= {TLB_MAX_ENTRIES} (2**24) and entries a multiple of ways "
                         f"(entries // ways sets)")
    return entries, ways


cdef class TlbSim:
    """Low-level TLB hierarchy + page-walk simulator (use thpbench.tlb.MMU instead).

    ``geometry`` maps structure names to ``(entries, ways)`` (``entries // ways`` sets;
    ``ways == entries``: fully associative), the convention of ``thpbench.tlb.Geometry``:
    ``l1_4k``/``l1_2m`` or a shared ``l1``; ``l2_4k``/``l2_2m`` or a shared ``l2``;
    ``pwc2``..``pwc5`` or a unified ``pwc``; ``hpwc2``..``hpwc5`` or ``hpwc`` (host walk
    caches); ``ntlb``; ``ptcache``, the data-cache lines (64 B, 8 entries) that walk
    references go through.  A missing name is an absent structure.  ``mode`` is
    "native", "nested" or "shadow"; ``levels`` and ``host_levels`` are 4 or 5.

    ``walk_model=False`` makes a pure-TLB run: a miss in the last TLB level counts a
    completed walk (``dtlb_load_misses.walk_completed*``) but no walk is modelled (no
    walk references, walk caches, nested TLB or page-table lines are touched).
    """

    def __cinit__(self):
        self._keep = ()

    def __init__(self, geometry, mode="native", levels=4, host_levels=4, walk_model=True):
        cdef int slot, l
        cdef TlbState *s
        for l in range(CACHE_NR_SLOTS):
            if self.caches[l].tags != NULL:
                raise TypeError("this TlbSim is already initialised: build a new one")
        if not isinstance(mode, str) or mode not in TLB_MODES:
            raise ValueError(f"mode {mode!r} is not one of {sorted(TLB_MODES)}")
        if _tlb_int(levels, "levels") not in (4, 5):
            raise ValueError(f"levels={levels} is not allowed: x86-64 paging has 4 or 5 levels")
        if _tlb_int(host_levels, "host_levels") not in (4, 5):
            raise ValueError(f"host_levels={host_levels} is not allowed: 4 or 5")
        if not isinstance(walk_model, (bool, np.bool_)):
            raise TypeError(f"walk_model must be True or False, got {walk_model!r}")
        if not hasattr(geometry, "items"):
            raise TypeError(f"geometry must be a mapping of structure name to (entries, ways), "
                            f"got {type(geometry).__name__}")
        for name in geometry:
            if name not in _GEOM_SLOTS:
                raise ValueError(f"unknown TLB structure {name!r}; allowed: {sorted(_GEOM_SLOTS)}")
        for a, b in (("l1", "l1_4k"), ("l1", "l1_2m"), ("l2", "l2_4k"), ("l2", "l2_2m")):
            if a in geometry and b in geometry:
                raise ValueError(f"give either a shared {a!r} or per-size {b!r}, not both")
        for a in ("pwc", "hpwc"):
            if a in geometry and any(f"{a}{l}" in geometry for l in range(2, 6)):
                raise ValueError(f"give either a unified {a!r} or per-level {a}2..{a}5, not both")
        # Every geometry is checked, in Python integers, before any allocation: a product
        # that overflows int64 could otherwise allocate nothing and be written to.
        checked = {name: tlb_check_geometry(name, g) for name, g in geometry.items()}
        for name, (entries, ways) in checked.items():
            slot = _GEOM_SLOTS[name]
            tc_init(&self.caches[slot], entries // ways, ways)
        s = &self.s
        s.mode = TLB_MODES[mode]
        s.levels = levels
        s.host_levels = host_levels
        s.walk_model = bool(walk_model)
        s.l1[0] = &self.caches[CACHE_L1_4K]
        s.l1[1] = &self.caches[CACHE_L1_4K if "l1" in checked else CACHE_L1_2M]
        s.l2[0] = &self.caches[CACHE_L2_4K]
        s.l2[1] = &self.caches[CACHE_L2_4K if "l2" in checked else CACHE_L2_2M]
        s.pwc_unified = "pwc" in checked
        s.hpwc_unified = "hpwc" in checked
        for l in range(TLB_MAX_LEVELS):
            s.pwc[l] = &self.caches[CACHE_PWC0 if s.pwc_unified else CACHE_PWC0 + l]
            s.hpwc[l] = &self.caches[CACHE_HPWC0 if s.hpwc_unified else CACHE_HPWC0 + l]
        s.pwc[0] = s.pwc[1] = &self.caches[CACHE_ABSENT]
        s.hpwc[0] = s.hpwc[1] = &self.caches[CACHE_ABSENT]
        s.ntlb = &self.caches[CACHE_NTLB]
        s.ptcache = &self.caches[CACHE_PTCACHE]
        self.geometry = checked
        self.set_mapping()

    @property
    def walk_model(self):
        return bool(self.s.walk_model)

    def __dealloc__(self):
        cdef int i
        for i in range(CACHE_NR_SLOTS):
            c_free(self.caches[i].tags)

    @property
    def mode(self):
        return {v: k for k, v in TLB_MODES.items()}[self.s.mode]

    @property
    def levels(self):
        return self.s.levels

    @property
    def host_levels(self):
        return self.s.host_levels

    def set_mapping(self, guest_huge=None, base_va=0, default_guest_huge=False,
                    gpa_region=None, host_huge=None, default_host_huge=False,
                    host_pt_huge=None):
        """Install the mappings the walker sees (the contract is documented in tlb.MMU).
        Every argument is checked before anything changes: on an error the previous
        mapping stays installed."""
        cdef const uint8_t[::1] g
        cdef const uint8_t[::1] h
        cdef const int64_t[::1] m
        cdef TlbState *s = &self.s
        ga = _tlb_flags(guest_huge, "guest_huge")
        ha = _tlb_flags(host_huge, "host_huge")
        base_va = _tlb_int(base_va, "base_va")
        if not 0 <= base_va < (1 << 64):
            raise ValueError(f"base_va={base_va:#x} is outside the 64-bit address space")
        if base_va & REGION_MASK:
            raise ValueError(f"base_va={base_va:#x} is not 2 MiB aligned")
        n_guest = 0 if ga is None else ga.shape[0]
        ma = None
        if gpa_region is not None:
            try:
                ma = np.ascontiguousarray(np.asarray(gpa_region), dtype=np.int64)
            except (TypeError, ValueError, OverflowError):
                raise TypeError(f"gpa_region must be an integer array, got {gpa_region!r}") from None
            if np.asarray(gpa_region).dtype.kind not in "iub" and np.asarray(gpa_region).size:
                raise TypeError(f"gpa_region must be an integer array, got dtype "
                                f"{np.asarray(gpa_region).dtype}")
            if ma.ndim != 1 or ma.shape[0] != n_guest:
                raise ValueError(f"gpa_region must have one entry per guest region "
                                 f"({n_guest}), got shape {ma.shape}")
            if ma.shape[0] and (ma.min() < 0 or ma.max() >= (1 << 30)):
                raise ValueError("gpa_region values must be guest-physical 2 MiB region "
                                 "numbers in [0, 2**30)")
        for what, v in (("default_guest_huge", default_guest_huge),
                        ("default_host_huge", default_host_huge), ("host_pt_huge", host_pt_huge)):
            if v is not None and not isinstance(v, (bool, int, np.bool_, np.integer)):
                raise TypeError(f"{what} must be a bool, got {v!r}")
        # -- everything checked: install --
        keep = [x for x in (ga, ma, ha) if x is not None]
        if ga is None or ga.shape[0] == 0:
            s.guest_huge = NULL
            s.n_guest = 0
        else:
            g = ga
            s.n_guest = ga.shape[0]
            s.guest_huge = &g[0]
        s.base_va = base_va
        s.default_guest_huge = bool(default_guest_huge)
        if ma is None or ma.shape[0] == 0:
            s.gpa_region = NULL
        else:
            m = ma
            s.gpa_region = &m[0]
        if ha is None or ha.shape[0] == 0:
            s.host_huge = NULL
            s.n_host = 0
        else:
            h = ha
            s.n_host = ha.shape[0]
            s.host_huge = &h[0]
        s.default_host_huge = bool(default_host_huge)
        s.host_pt_huge = s.default_host_huge if host_pt_huge is None else bool(host_pt_huge)
        self._keep = tuple(keep)

    def run(self, trace):
        """Translate every virtual address of `trace` (uint64 array); counters accumulate."""
        cdef const uint64_t[::1] t
        arr = np.asarray(trace)
        if arr.ndim != 1:
            raise ValueError(f"trace must be one-dimensional, got shape {arr.shape}")
        if arr.dtype != np.uint64:
            if arr.dtype.kind not in "iu":
                raise TypeError(f"trace must be an integer array of virtual addresses, got {arr.dtype}")
            if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
                raise ValueError(f"trace holds negative addresses (first: {int(arr[arr < 0][0])})")
            arr = arr.astype(np.uint64)
        arr = np.ascontiguousarray(arr)
        if arr.shape[0] == 0:
            return
        t = arr
        with nogil:
            tlb_run_trace(&self.s, &t[0], t.shape[0])

    def flush_all(self):
        """flush_tlb_all(): every TLB, walk-cache and nested-TLB entry."""
        cdef int i
        cdef int64_t n = 0
        for i in range(CACHE_ABSENT):      # (not the data caches: a TLB flush keeps them)
            n += tc_invalidate_all(&self.caches[i])
        self.s.cnt.nr_tlb_local_flush_all += 1
        self.s.cnt.entries_flushed += n

    def flush_range(self, va, nbytes, stride_shift=12):
        """flush_tlb_mm_range(mm, va, va + nbytes, stride_shift): invalidate the TLB entries
        of either size and the walk-cache entries overlapping the range, or everything
        when the range spans more than tlb_single_page_flush_ceiling strides
        (arch/x86/mm/tlb.c).  Guest-physical (nested TLB) entries are untouched: a guest
        flush does not change the host's mapping."""
        cdef uint64_t end, nr, key, first, last
        cdef int cls, l, i
        cdef int64_t n = 0
        cdef TlbCache *c
        va = _tlb_int(va, "va")
        nbytes = _tlb_int(nbytes, "nbytes")
        stride_shift = _tlb_int(stride_shift, "stride_shift")
        if stride_shift not in (12, 21):
            raise ValueError(f"stride_shift={stride_shift}: allowed 12 (PAGE_SHIFT) or 21 (PMD_SHIFT)")
        if va < 0 or nbytes < 0 or va + nbytes > (1 << 64):
            raise ValueError(f"range va={va:#x} nbytes={nbytes:#x}: need va >= 0, nbytes >= 0 "
                             f"and va + nbytes <= 2**64")
        if nbytes == 0:
            return
        self.s.cnt.flush_range_calls += 1
        # (computed in Python integers: va + nbytes may be exactly 2**64)
        nr = (((va + nbytes - 1) >> stride_shift) - (va >> stride_shift) + 1)
        end = <uint64_t>((va + nbytes - 1) & ((1 << 64) - 1)) + 1
        if nr > TLB_SINGLE_PAGE_FLUSH_CEILING:
            for i in range(CACHE_NTLB):
                n += tc_invalidate_all(&self.caches[i])
            self.s.cnt.nr_tlb_local_flush_all += 1
            self.s.cnt.entries_flushed += n
            return
        self.s.cnt.nr_tlb_local_flush_one += nr
        for cls in range(TLB_NR_SIZES):
            first = va >> (12 + 9 * cls)
            last = (end - 1) >> (12 + 9 * cls)
            for i in range(2):
                c = self.s.l1[cls] if i == 0 else self.s.l2[cls]
                if c.n_sets == 0:
                    continue
                if last - first + 1 > <uint64_t>(c.n_sets * c.n_ways):
                    n += tc_invalidate_keys(c, cls, first, last, False)
                else:
                    key = first
                    while key <= last:
                        n += tc_invalidate(c, key, tlb_tag(key, cls))
                        key += 1
        # Walk caches: an entry of level l covers 2^(12+9l) bytes; drop those overlapping
        # (a collapse replaces a PMD that pointed to a PTE table: its PDE-cache entry goes).
        for l in range(2, TLB_MAX_LEVELS):
            c = self.s.pwc[l]
            if c.n_sets == 0:
                continue
            first = va >> (12 + 9 * (l - 1))
            last = (end - 1) >> (12 + 9 * (l - 1))
            n += tc_invalidate_keys(c, l, first, last, False)
        self.s.cnt.entries_flushed += n

    def counters(self):
        """Cumulative event counters (dict).  Names follow perf's dtlb_load_misses.* events
        where one exists, and the kernel's vmstat for flushes."""
        cdef TlbCounters c = self.s.cnt
        return {
            "accesses": c.accesses,
            "dtlb_load_misses.stlb_hit": self.s.l2[0].hits + (self.s.l2[1].hits if self.s.l2[1] != self.s.l2[0] else 0),
            "dtlb_load_misses.walk_completed": c.walks[0] + c.walks[1],
            "dtlb_load_misses.walk_completed_4k": c.walks[0],
            "dtlb_load_misses.walk_completed_2m_4m": c.walks[1],
            "walk_refs": c.walk_refs,
            "walk_refs_cached": self.s.ptcache.hits,
            "guest_walk_refs": c.guest_refs,
            "host_walk_refs": c.host_refs,
            "nr_tlb_local_flush_one": c.nr_tlb_local_flush_one,
            "nr_tlb_local_flush_all": c.nr_tlb_local_flush_all,
            "flush_range_calls": c.flush_range_calls,
            "entries_flushed": c.entries_flushed,
        }

    def cache_stats(self):
        """Per-structure hits, misses, fills and evictions (the names of `geometry`)."""
        cdef TlbCache *c
        out = {}
        for name in self.geometry:
            c = &self.caches[_GEOM_SLOTS[name]]
            out[name] = {"hits": c.hits, "misses": c.misses, "fills": c.fills,
                         "evictions": c.evictions}
        return out

    def occupancy(self, str name):
        """Number of valid entries in structure `name`."""
        if name not in self.geometry:
            raise ValueError(f"{name!r} is not a structure of this TLB: {sorted(self.geometry)}")
        cdef TlbCache *c = &self.caches[_GEOM_SLOTS[name]]
        cdef int64_t i, n = 0
        for i in range(c.n_sets * c.n_ways):
            if c.tags[i] != 0:
                n += 1
        return n

    def check(self):
        """Verify the invariants of every structure; raise InvariantError naming the first
        broken one: within a set no tag twice, empty ways only after the valid ones
        (recency order), TLB entries of a size class the structure may hold, counters
        consistent (fills - evictions <= capacity)."""
        cdef TlbCache *c
        cdef int64_t st, w, valid
        cdef uint64_t t
        for name in self.geometry:
            c = &self.caches[_GEOM_SLOTS[name]]
            valid = 0
            for st in range(c.n_sets):
                seen = set()
                empty = False
                for w in range(c.n_ways):
                    t = c.tags[st * c.n_ways + w]
                    if t == 0:
                        empty = True
                        continue
                    valid += 1
                    if empty:
                        raise InvariantError(f"{name}: set {st} has a valid way {w} after an empty one")
                    if t in seen:
                        raise InvariantError(f"{name}: set {st} holds tag {t:#x} twice")
                    seen.add(t)
                    sub = (t >> 1) & 7
                    if name in ("l1_4k", "l2_4k") and sub != 0 or name in ("l1_2m", "l2_2m") and sub != 1:
                        raise InvariantError(f"{name}: set {st} way {w} holds a page-size class {sub} entry")
                    if name.startswith(("pwc", "hpwc")) and not 2 <= sub <= 5:
                        raise InvariantError(f"{name}: set {st} way {w} holds a level-{sub} entry")
            if valid > c.n_sets * c.n_ways or valid > c.fills:
                raise InvariantError(f"{name}: {valid} valid entries but {c.fills} fills")

    def reset_counters(self):
        """Zero every counter; TLB contents are kept (warm caches)."""
        cdef int i
        memset(&self.s.cnt, 0, sizeof(TlbCounters))
        for i in range(CACHE_NR_SLOTS):
            self.caches[i].hits = self.caches[i].misses = 0
            self.caches[i].fills = self.caches[i].evictions = 0
