"""The allocation-churn workload that ages memory (thpbench.workloads, section "Allocation churn")."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from thpbench import BuddyAllocator
from thpbench.workloads import (
    KERNEL_BUILD,
    AllocationChurn,
    ChurnClass,
    age,
    aged_allocator,
    churn_readout,
)

N = 1 << 15   # 128 MiB


def conserved(w):
    """Every allocated frame belongs to a live slot: live pages + free pages = nr_pages."""
    a = w.allocator
    live = w.slots[w.slots >= 0]
    ab = a.allocated_blocks()
    assert len(ab) == live.size
    assert np.array_equal(np.sort(live), ab["pfn"])
    # each slot's block carries its class's migratetype
    pos = np.searchsorted(ab["pfn"], w.slots[w.slots >= 0])
    assert np.array_equal(ab["migratetype"][pos], w._mts[w.slot_class[w.slots >= 0]])
    assert sum(w.live_pages().values()) + a.nr_free_pages == a.nr_pages


def test_fill_run_release_keep_invariants():
    a = BuddyAllocator(N)
    w = AllocationChurn(a, seed=5)
    w.fill()
    a.check()
    conserved(w)
    steps = w.run(turnover=2.0, steps=4)
    a.check()
    conserved(w)
    assert len(steps) == 4 and list(steps["phase"]) == ["churn"] * 4
    before = w.live_pages()["anon"]
    assert before > 0
    freed = w.release("anon")
    a.check()
    conserved(w)
    assert freed == before and w.live_pages()["anon"] == 0
    h = w.history
    assert list(h["phase"]) == ["fill"] + ["churn"] * 4 + ["release anon"]
    assert list(h["step"]) == list(range(6))
    assert h["turnover"].is_monotonic_increasing and h["ops"].is_monotonic_increasing
    # the requested turnover was allocated (within the rounding of the op count)
    assert h["turnover"].iloc[4] - h["turnover"].iloc[0] == pytest.approx(2.0, rel=0.05)
    # ops count as run() counts them: an alloc 1, a replace 2
    c = a.counters()
    assert c["alloc"] + c["alloc_fail"] + c["free"] == w.ops


def test_same_seed_same_history_other_seed_differs():
    h1 = aged_allocator(N, seed=11)[1].history
    a2, w2 = aged_allocator(N, seed=11)
    a3, w3 = aged_allocator(N, seed=12)
    pd.testing.assert_frame_equal(h1, w2.history)
    assert not w2.history.equals(w3.history)


def test_class_shares_after_fill():
    a = BuddyAllocator(N)
    w = AllocationChurn(a, fill=0.9, seed=1)
    w.fill()
    live = w.live_pages()
    shares = {c.name: c.share for c in KERNEL_BUILD}
    total = sum(shares.values())
    for name, pages in live.items():
        assert pages == pytest.approx(0.9 * N * shares[name] / total, rel=0.15), name


def test_lifetimes_long_lived_classes_turn_over_less():
    a = BuddyAllocator(N)
    w = AllocationChurn(a, seed=2)
    w.fill()
    filled = w.allocs_by_class.copy()
    assert filled.tolist() == w.nr_slots.tolist()          # fill: one allocation per slot
    w.run(turnover=12.0, steps=1)
    per_slot = (w.allocs_by_class - filled) / w.nr_slots   # replacements per slot = 1 / lifetime
    rel = {c.name: per_slot[i] * c.lifetime for i, c in enumerate(w.classes)}
    for name, value in rel.items():
        assert value == pytest.approx(rel["anon"], rel=0.2), name
    assert w.history.iloc[-1]["allocs_anon"] == w.allocs_by_class[3]


def test_unmovable_share_rescales_kernel_memory():
    for share in (0.0, 0.3):
        a = BuddyAllocator(N)
        w = AllocationChurn(a, unmovable_share=share, fill=0.9, seed=3)
        w.fill()
        live = w.live_pages()
        kernel = sum(v for c, v in zip(w.classes, live.values()) if c.migratetype != "movable")
        assert kernel == pytest.approx(share * sum(live.values()), abs=0.02 * N)
        if share == 0.0:
            assert churn_readout(a)["nr_polluted_pageblocks"] == 0


def test_grouping_by_mobility_keeps_hugepages_available():
    # Gorman's claim for 2.6.24 (anchors A8): after the workload, with the movable
    # memory gone, far more of memory can be taken as huge pages with grouping on
    out = {}
    for grouping in (True, False):
        a, w = aged_allocator(1 << 16, grouping=grouping, turnover=4.0, seed=7)
        w.release("page_cache")
        a.check()
        out[grouping] = churn_readout(a)
    on, off = out[True], out[False]
    assert on["nr_free_pageblocks"] > 4 * max(off["nr_free_pageblocks"], 1)
    assert on["nr_polluted_pageblocks"] * 4 < off["nr_polluted_pageblocks"]
    assert off["nr_pageblocks_unmovable"] == (1 << 16) >> 9     # grouping off: all one type


def test_aged_differs_from_fresh():
    fresh = churn_readout(BuddyAllocator(N))
    assert fresh["nr_free_pageblocks"] == N >> 9 and fresh["unusable_index"] == 0.0
    assert fresh["nr_mixed_pageblocks"] == 0 and fresh["nr_polluted_pageblocks"] == 0
    a, w = aged_allocator(N, seed=4)
    aged = churn_readout(a)
    assert aged["unusable_index"] > 0.5
    assert aged["nr_free_pageblocks"] < 0.25 * (N >> 9)
    # at fill 0.97 kernel allocations under pressure fall back into other pageblocks
    assert aged["extfrag"] > 0 and aged["nr_mixed_pageblocks"] > 0
    # the default release: the compiler processes have exited
    assert w.live_pages()["anon"] == 0 and w.live_pages()["pagetables_stacks"] == 0
    assert w.live_pages()["page_cache"] > 0


def test_readout_columns_are_named_like_the_kernel():
    row = churn_readout(BuddyAllocator(3000))
    for k in range(11):
        assert f"free_blocks_order_{k}" in row
    for name in ("unmovable", "movable", "reclaimable", "highatomic", "isolate"):
        assert f"nr_pageblocks_{name}" in row
    assert {"nr_free_pages", "alloc_fail", "extfrag", "claim", "steal"} <= set(row)
    assert row["nr_free_pageblocks"] == 5   # 3000 frames: 2 order-10 blocks + 1 order-9 block


def test_bad_inputs_raise_and_leave_the_allocator_intact():
    a = BuddyAllocator(4096)
    with pytest.raises(TypeError):
        AllocationChurn("not an allocator")
    with pytest.raises(ValueError, match="fill"):
        AllocationChurn(a, fill=1.5)
    with pytest.raises(ValueError, match="unmovable_share"):
        AllocationChurn(a, unmovable_share=-0.1)
    with pytest.raises(ValueError, match="migratetype"):
        ChurnClass("x", "highatomic", 1.0, 1.0, (1.0,))
    with pytest.raises(ValueError, match="orders"):
        ChurnClass("x", "movable", 1.0, 1.0, (-1.0,))
    with pytest.raises(ValueError, match="lifetime"):
        ChurnClass("x", "movable", 1.0, 0.0, (1.0,))
    with pytest.raises(ValueError, match="unique"):
        AllocationChurn(a, classes=(KERNEL_BUILD[0], KERNEL_BUILD[0]))
    with pytest.raises(ValueError, match="above max_order"):
        AllocationChurn(BuddyAllocator(4096, max_order=2, pageblock_order=1))
    with pytest.raises(TypeError):
        AllocationChurn(a, classes=("slab",))
    w = AllocationChurn(a, seed=0)
    with pytest.raises(ValueError, match="steps"):
        w.run(1.0, steps=0)
    with pytest.raises(ValueError, match="turnover"):
        w.run(-1.0)
    with pytest.raises(ValueError, match="unknown churn classes"):
        w.release("nope")
    assert a.nr_free_pages == 4096
    a.check()
    w.fill()
    with pytest.raises(RuntimeError):
        w.fill()
    a.check()
    conserved(w)


def test_custom_classes_page_cache_machine():
    # a file server: almost all page cache, a little slab
    classes = (ChurnClass("slab", "unmovable", 0.03, 50.0, (1.0,)),
               ChurnClass("page_cache", "movable", 0.97, 5.0, (0.5, 0.0, 0.5)))
    a = BuddyAllocator(1 << 14)
    w = age(a, 3.0, classes=classes, steps=3, seed=9)
    a.check()
    conserved(w)
    assert list(w.history["phase"]) == ["fill", "churn", "churn", "churn"]   # no class to release
    assert set(w.live_pages()) == {"slab", "page_cache"}


@settings(max_examples=40, deadline=None)
@given(nr_pages=st.integers(16, 6000), max_order=st.integers(4, 10), pb=st.integers(0, 10),
       grouping=st.booleans(), fill=st.floats(0.3, 1.0), turnover=st.floats(0.0, 3.0),
       share=st.one_of(st.none(), st.floats(0.0, 1.0)), seed=st.integers(0, 2**32 - 1))
def test_random_configurations(nr_pages, max_order, pb, grouping, fill, turnover, share, seed):
    a = BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=min(pb, max_order), grouping=grouping)
    w = age(a, turnover, steps=2, fill=fill, unmovable_share=share, seed=seed)
    a.check()
    conserved(w)
    w.release(*[c.name for c in w.classes])
    a.check()
    assert a.nr_free_pages == nr_pages
    # everything freed: memory is back in maximal blocks
    assert a.buddyinfo().tolist() == BuddyAllocator(nr_pages, max_order=max_order,
                                                    pageblock_order=min(pb, max_order)).buddyinfo().tolist()
