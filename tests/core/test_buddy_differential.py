"""Differential tests: the Cython BuddyAllocator against the pure-Python ReferenceBuddy.

Hypothesis drives random operation sequences through both; after every operation the
results, every free list (in list order), the pageblock types, the read-outs and the
event counters must be identical, and check() must pass on both.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import thpbench
from thpbench._reference.buddy import ReferenceBuddy

pytestmark = pytest.mark.differential

NR_MT = 5


@st.composite
def geometries(draw):
    max_order = draw(st.integers(0, 10))
    pageblock_order = draw(st.integers(0, max_order))
    # any size, mostly not a power of two, up to a few max-order blocks
    nr_pages = draw(st.integers(1, min(4 << max_order, 5000)))
    grouping = draw(st.booleans())
    return nr_pages, max_order, pageblock_order, grouping


operations = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, 10), st.integers(0, 2)),
        st.tuples(st.just("alloc_small"), st.integers(0, 3), st.integers(0, 2)),
        st.tuples(st.just("free"), st.integers(0, 10**6)),
        st.tuples(st.just("split"), st.integers(0, 10**6)),
        st.tuples(st.just("pageblock"), st.integers(0, 10**6), st.integers(0, 4)),
    ),
    max_size=60,
)


def assert_same(core, ref):
    assert core.nr_free_pages == ref.nr_free_pages
    assert core.buddyinfo().tolist() == ref.buddyinfo()
    pti = core.pagetypeinfo()
    rpti = ref.pagetypeinfo()
    assert pti["free"].tolist() == rpti["free"]
    assert pti["pageblocks"].tolist() == rpti["pageblocks"]
    assert core.pageblock_migratetypes().tolist() == ref.pb_mt
    for order in range(core.max_order + 1):
        for mt in range(NR_MT):
            assert core.free_list(order, mt).tolist() == ref.free_list(order, mt), (order, mt)
    assert [tuple(int(x) for x in r) for r in core.free_blocks()] == ref.free_blocks()
    assert [tuple(int(x) for x in r) for r in core.allocated_blocks()] == ref.allocated_blocks()
    assert core.counters() == ref.events
    for order in range(core.max_order + 1):
        assert core.unusable_index(order) == ref.unusable_index(order)
        assert core.fragmentation_index(order) == ref.fragmentation_index(order)
    assert core.check()
    assert ref.check()


def apply(core, ref, op, live):
    kind = op[0]
    if kind in ("alloc", "alloc_small"):
        order = min(op[1], core.max_order)
        a = core.alloc(order, op[2])
        b = ref.alloc(order, op[2])
        assert a == b
        if a is not None:
            live.append((a, order))
    elif kind == "free" and live:
        pfn, order = live.pop(op[1] % len(live))
        core.free(pfn, order)
        ref.free(pfn, order)
    elif kind == "split" and live:
        i = op[1] % len(live)
        pfn, order = live[i]
        core.split(pfn, order)
        ref.split(pfn, order)
        live[i:i + 1] = [(p, 0) for p in range(pfn, pfn + (1 << order))]
    elif kind == "pageblock":
        pfn = op[1] % core.nr_pages
        core.set_pageblock_migratetype(pfn, op[2])
        ref.set_pageblock_migratetype(pfn, op[2])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometries(), operations, st.randoms(use_true_random=False))
def test_core_matches_reference(geometry, ops, rnd):
    nr_pages, max_order, pageblock_order, grouping = geometry
    core = thpbench.BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=pageblock_order,
                                   grouping=grouping)
    ref = ReferenceBuddy(nr_pages, max_order=max_order, pageblock_order=pageblock_order, grouping=grouping)
    fresh = [tuple(int(x) for x in r)[:2] for r in core.free_blocks()]
    assert_same(core, ref)
    live = []
    for op in ops:
        apply(core, ref, op, live)
        assert_same(core, ref)
    # Free everything (in random order), with every pageblock back to a mergeable type:
    # memory must be back in maximal blocks, exactly as at boot.
    for b in range(core.nr_pageblocks):
        pfn = b << pageblock_order
        if core.pageblock_migratetypes()[b] >= 3:
            core.set_pageblock_migratetype(pfn, "movable")
            ref.set_pageblock_migratetype(pfn, 1)
            assert_same(core, ref)
    rnd.shuffle(live)
    for pfn, order in live:
        core.free(pfn, order)
        ref.free(pfn, order)
        assert_same(core, ref)
    assert core.nr_free_pages == nr_pages
    assert [tuple(int(x) for x in r)[:2] for r in core.free_blocks()] == fresh


@settings(max_examples=100, deadline=None)
@given(geometries(), st.integers(0, 2**32 - 1), st.integers(1, 400))
def test_bulk_path_matches_per_call_path(geometry, seed, n):
    """run() gives the same pfns and the same final state as the same ops one call at a time."""
    nr_pages, max_order, pageblock_order, grouping = geometry
    kw = dict(max_order=max_order, pageblock_order=pageblock_order, grouping=grouping)
    bulk = thpbench.BuddyAllocator(nr_pages, **kw)
    ref = ReferenceBuddy(nr_pages, **kw)
    rng = np.random.default_rng(seed)
    nslots = 16
    ops = rng.choice([thpbench.OP_ALLOC, thpbench.OP_FREE_SLOT, thpbench.OP_REPLACE_SLOT], size=n)
    orders = rng.integers(0, max_order + 1, size=n)
    mts = rng.integers(0, 3, size=n)
    args = rng.integers(0, nslots, size=n)
    slots = np.full(nslots, -1, dtype=np.int64)
    results = bulk.run(ops, orders, args, mts, slots)
    ref_slots = [None] * nslots
    for i in range(n):
        expected = -1
        s = int(args[i])
        if ops[i] in (thpbench.OP_FREE_SLOT, thpbench.OP_REPLACE_SLOT) and ref_slots[s] is not None:
            pfn, order = ref_slots[s]
            ref.free(pfn, order)
            ref_slots[s] = None
            expected = pfn
        if ops[i] in (thpbench.OP_ALLOC, thpbench.OP_REPLACE_SLOT):
            if ops[i] == thpbench.OP_ALLOC and ref_slots[s] is not None:
                # OP_ALLOC overwrites the slot: the old block stays allocated, untracked
                pass
            pfn = ref.alloc(int(orders[i]), int(mts[i]))
            expected = -1 if pfn is None else pfn
            ref_slots[s] = None if pfn is None else (pfn, int(orders[i]))
        assert results[i] == expected, i
    assert slots.tolist() == [-1 if x is None else x[0] for x in ref_slots]
    assert_same(bulk, ref)


@pytest.mark.parametrize("grouping", [True, False])
def test_free_by_pfn_in_bulk_with_recorded_order(grouping):
    core = thpbench.BuddyAllocator(3000, grouping=grouping)
    pfns = [core.alloc(o, o % 3) for o in (0, 3, 5, 9, 1)]
    res = core.run(np.full(5, thpbench.OP_FREE), np.full(5, -1), pfns, np.zeros(5, dtype=np.int8))
    assert res.tolist() == pfns
    assert core.nr_free_pages == 3000
    core.check()


@pytest.mark.parametrize("seed,grouping,pageblock_order", [(1, True, 9), (2, True, 4), (3, False, 9), (4, True, 2)])
def test_long_churn_matches_reference(seed, grouping, pageblock_order):
    """Thousands of mixed operations at ~95% occupancy, where fallbacks, claims and
    steals all happen; full comparison every 25 operations."""
    rng = np.random.default_rng(seed)
    nr_pages = 4096 + 512 + 37
    kw = dict(max_order=10, pageblock_order=pageblock_order, grouping=grouping)
    core = thpbench.BuddyAllocator(nr_pages, **kw)
    ref = ReferenceBuddy(nr_pages, **kw)
    live = []
    for step in range(4000):
        used = nr_pages - core.nr_free_pages
        if live and (used > 0.95 * nr_pages or rng.random() < 0.2):
            pfn, order = live.pop(int(rng.integers(len(live))))
            core.free(pfn, order)
            ref.free(pfn, order)
        else:
            order = int(min(rng.geometric(0.5) - 1, 10))
            mt = int(rng.choice(3, p=[0.3, 0.4, 0.3]))
            a, b = core.alloc(order, mt), ref.alloc(order, mt)
            assert a == b
            if a is not None:
                live.append((a, order))
        if step % 25 == 0:
            assert_same(core, ref)
    assert_same(core, ref)
    events = core.counters()
    if grouping:
        assert events["claim"] > 0 and events["extfrag"] > 0, events
    if grouping and pageblock_order == 9:
        # small movable requests find no claimable block and steal (orders < pageblock_order/2)
        assert events["steal"] > 0, events
