"""Known-answer and bad-input tests of the Cython BuddyAllocator."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import thpbench
from thpbench import BuddyAllocator


def blocks(b):
    return [(int(p), int(o)) for p, o, _ in b.free_blocks()]


def test_boot_frees_largest_aligned_chunks_like_memblock():
    b = BuddyAllocator(1000)
    assert blocks(b) == [(0, 9), (512, 8), (768, 7), (896, 6), (960, 5), (992, 3)]
    assert b.nr_free_pages == 1000
    assert b.buddyinfo().tolist() == [0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    b.check()


def test_any_size_including_one_page_and_non_power_of_two():
    for n in (1, 2, 3, 511, 513, 1023, 1025, 5 * 1024 + 7):
        b = BuddyAllocator(n)
        assert b.nr_free_pages == n
        assert sum(1 << o for _, o in blocks(b)) == n
        b.check()
        got = []
        while (p := b.alloc(0)) is not None:
            got.append(p)
        assert sorted(got) == list(range(n))
        for p in got:
            b.free(p, 0)
        b.check()
        assert b.nr_free_pages == n


def test_expand_keeps_lower_half():
    b = BuddyAllocator(1024)
    assert b.alloc(0) == 0
    # the upper halves go back: pfn 1 (order 0), 2 (order 1), 4, ..., 512 (order 9)
    assert blocks(b) == [(1 << k, k) for k in range(10)]
    assert b.buddyinfo().tolist() == [1] * 10 + [0]


def test_free_merges_buddies_back_to_max_order():
    b = BuddyAllocator(2048)
    pfns = [b.alloc(0) for _ in range(8)]
    assert pfns == list(range(8))
    for p in pfns[::-1]:
        b.free(p, 0)
    assert blocks(b) == [(0, 10), (1024, 10)]
    b.check()


def test_lifo_free_lists_and_merge_likely_tail_placement():
    b = BuddyAllocator(1024, max_order=10)
    p = [b.alloc(0) for _ in range(4)]          # 0, 1, 2, 3
    b.free(p[0], 0)                              # buddy 1 busy: its higher buddy (2,order 1) is busy too
    assert b.free_list(0, "movable").tolist() == [0]
    q = b.alloc(2)                               # 4..7, from the order-2 block
    b.free(q, 2)
    b.free(p[2], 0)                              # buddy 3 busy; order-1 buddy at 0 is not a free order-1
    assert b.free_list(0, "movable").tolist() == [2, 0]  # head insertion
    b.free(p[3], 0)                              # merges with 2 -> order 1 at 2; buddy 0 (order 1) not free
    b.check()
    # pfn 2 order 1: is the order-2 block at 0's buddy (4, order 2) free? yes -> queued at the tail
    assert 2 in b.free_list(1, "movable").tolist()


def test_unmovable_request_claims_whole_movable_block():
    b = BuddyAllocator(2048)
    p = b.alloc(0, "unmovable")
    # __rmqueue_claim scans from the top order: the first order-10 block is claimed whole
    assert p == 0
    assert b.pageblock_migratetypes().tolist() == [0, 0, 1, 1]
    assert b.counters()["claim"] == 2 and b.counters()["extfrag"] == 1
    b.free(p, 0)
    b.check()


def test_grouping_off_puts_everything_on_one_type():
    b = BuddyAllocator(4096, grouping=False)
    assert set(b.pageblock_migratetypes().tolist()) == {0}
    for mt in ("unmovable", "movable", "reclaimable"):
        b.alloc(3, mt)
    assert b.counters()["extfrag"] == 0
    info = b.pagetypeinfo()
    assert info["free"][1].sum() == 0 and info["pageblocks"].tolist() == [8, 0, 0, 0, 0]
    # the allocation still remembers what was asked for
    assert sorted(set(b.frame_migratetypes().tolist())) == [-1, 0, 1, 2]
    b.check()


def test_indices_known_values():
    b = BuddyAllocator(1024)
    assert b.unusable_index(10) == 0.0
    assert b.fragmentation_index(10) == -1.0
    pfns = [b.alloc(0) for _ in range(1024)]
    assert b.unusable_index(0) == 1.0       # no free memory at all
    assert b.fragmentation_index(0) == 0.0  # no free blocks: the kernel returns 0
    for p in pfns[::2]:
        b.free(p, 0)
    # 512 free order-0 blocks: nothing of order 1 can be served
    assert b.unusable_index(0) == 0.0
    assert b.unusable_index(1) == 1.0
    # 1000 - (1000 + 512*1000/2) / 512 = 1000 - 501 = 499 (integer arithmetic)
    assert b.fragmentation_index(1) == 0.499
    assert b.fragmentation_index(0) == -1.0


def test_split_page_then_free_each():
    b = BuddyAllocator(1024)
    p = b.alloc(9, "reclaimable")
    b.split(p, 9)
    for q in range(p, p + 512):
        b.free(q, 0)
        b.check()
    assert b.nr_free_pages == 1024
    assert blocks(b) == [(0, 10)]


def test_set_pageblock_isolate_blocks_merging_and_back():
    b = BuddyAllocator(1024)
    p = b.alloc(9)                          # pfn 0..511; 512 stays a free order-9 block
    b.set_pageblock_migratetype(512, "isolate")
    b.free(p, 9)
    # an Isolate pageblock does not merge with a Movable one (migratetype_is_mergeable)
    assert blocks(b) == [(0, 9), (512, 9)]
    b.check()
    b.set_pageblock_migratetype(512, "movable")
    assert blocks(b) == [(0, 10)]
    b.check()


def test_state_bytes_per_frame_within_budget():
    b = BuddyAllocator(1 << 20)
    assert b.state_bytes / b.nr_pages <= 16


# --- bad input -------------------------------------------------------------------------

BAD_INTS = [-1, 2**31, 2**64, 10**30]
WRONG_TYPES = ["3", 1.0, None, True, [1], object()]


def snapshot(b):
    return (b.nr_free_pages, blocks(b), [tuple(r) for r in b.allocated_blocks()],
            b.pageblock_migratetypes().tolist(), b.counters())


@pytest.fixture
def busy():
    b = BuddyAllocator(3000)
    live = [(b.alloc(o, mt), o) for o, mt in [(0, 0), (3, 1), (9, 2), (1, 1), (0, 1)]]
    return b, live


@pytest.mark.parametrize("args,kw", [((0,), {}), ((-1,), {}), ((2**31,), {}), ((1.5,), {}), (("a",), {}),
                                     ((None,), {}), ((True,), {}), ((100,), {"max_order": 16}),
                                     ((100,), {"max_order": -1}), ((100,), {"pageblock_order": 11}),
                                     ((100,), {"max_order": 5, "pageblock_order": 6}),
                                     ((100,), {"max_order": "10"})])
def test_constructor_rejects_bad_arguments(args, kw):
    with pytest.raises((ValueError, TypeError)) as e:
        BuddyAllocator(*args, **kw)
    assert str(e.value)


@pytest.mark.parametrize("order", BAD_INTS + [11] + WRONG_TYPES)
def test_alloc_bad_order(busy, order):
    b, _ = busy
    before = snapshot(b)
    with pytest.raises((ValueError, TypeError), match="order"):
        b.alloc(order)
    assert snapshot(b) == before
    b.check()


@pytest.mark.parametrize("mt", ["highatomic", "isolate", "bogus", "", 3, 4, -1, 2**70, 1.0, None, True])
def test_alloc_bad_migratetype(busy, mt):
    b, _ = busy
    before = snapshot(b)
    with pytest.raises((ValueError, TypeError), match="migratetype"):
        b.alloc(0, mt)
    assert snapshot(b) == before
    b.check()


def test_migratetype_names_are_case_insensitive():
    b = BuddyAllocator(100)
    assert b.alloc(0, "Unmovable") is not None
    assert b.alloc(0, "RECLAIMABLE") is not None


@pytest.mark.parametrize("case", ["double", "double_inside", "misaligned", "wrong_order", "tail",
                                  "range_neg", "range_big", "huge", "order_big", "order_neg",
                                  "type_pfn", "type_order", "never_allocated"])
def test_free_errors_leave_allocator_unchanged(busy, case):
    b, live = busy
    (p0, _), (p3, _), (p9, _), (p1, _), _ = live
    b.free(p1, 1)
    before = snapshot(b)
    call, match = {
        "double": ((p1, 1), "double free"),
        "double_inside": ((p1 + 1, 0), "double free|not the start"),
        "misaligned": ((p3 + 1, 3), "misaligned"),
        "wrong_order": ((p9, 8), "allocated with order 9"),
        "tail": ((p9 + 8, 0), "not the start of an allocated block"),
        "range_neg": ((-1, 0), "out of range"),
        "range_big": ((3000, 0), "out of range"),
        "huge": ((2**80, 0), "out of range"),
        "order_big": ((p0, 11), "order"),
        "order_neg": ((p0, -1), "order"),
        "type_pfn": (("12", 0), "pfn must be an integer"),
        "type_order": ((p0, 0.0), "order must be an integer"),
        "never_allocated": ((2999, 0), "double free|not the start"),
    }[case]
    with pytest.raises((ValueError, TypeError), match=match):
        b.free(*call)
    assert snapshot(b) == before
    b.check()


def test_split_and_pageblock_bad_input(busy):
    b, live = busy
    before = snapshot(b)
    p9 = live[2][0]
    for call in [lambda: b.split(p9, 8), lambda: b.split(p9 + 1, 0), lambda: b.split(-5, 0),
                 lambda: b.set_pageblock_migratetype(5000, 0), lambda: b.set_pageblock_migratetype(0, "nope"),
                 lambda: b.set_pageblock_migratetype(0, 7), lambda: b.free_list(11, 0),
                 lambda: b.free_list(0, 9), lambda: b.unusable_index(11), lambda: b.fragmentation_index(-1),
                 lambda: b.unusable_index("1")]:
        with pytest.raises((ValueError, TypeError)):
            call()
        assert snapshot(b) == before
        b.check()


def test_bulk_bad_input_reports_index_and_keeps_earlier_ops():
    b = BuddyAllocator(1024)
    ops = [thpbench.OP_ALLOC, thpbench.OP_ALLOC, thpbench.OP_FREE, thpbench.OP_FREE]
    with pytest.raises(thpbench.BulkOpError, match="op 3.*double free") as e:
        b.run(ops, [0, 0, 0, 0], [-1, -1, 0, 0], [1, 1, 1, 1])
    assert e.value.index == 3
    assert e.value.results.tolist() == [0, 1, 0]
    assert b.nr_free_pages == 1023
    b.check()


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(ops=[9], orders=[0], args=[-1]), ValueError, "unknown op code"),
    (dict(ops=[0], orders=[11], args=[-1]), ValueError, "order 11"),
    (dict(ops=[0], orders=[300], args=[-1]), ValueError, r"orders\[0\] = 300"),
    (dict(ops=[0], orders=[0], args=[-1], migratetypes=[3]), ValueError, "migratetype"),
    (dict(ops=[0, 0], orders=[0], args=[-1]), ValueError, "same length"),
    (dict(ops=[0], orders=[0.5], args=[-1]), TypeError, "integers"),
    (dict(ops=[[0]], orders=[[0]], args=[[-1]]), ValueError, "one-dimensional"),
    (dict(ops=[2], orders=[0], args=[5]), ValueError, "slot"),
    (dict(ops=[0], orders=[0], args=[5]), ValueError, "slot"),
    (dict(ops=[1], orders=[0], args=[2**40]), ValueError, "out of range"),
    (dict(ops=[0], orders=[0], args=[0], slots=np.zeros(2, dtype=np.int32)), TypeError, "int64"),
])
def test_bulk_rejects_bad_arrays(kwargs, exc, match):
    b = BuddyAllocator(512)
    before = snapshot(b)
    with pytest.raises(exc, match=match):
        b.run(**kwargs)
    assert snapshot(b) == before
    b.check()


def test_bulk_free_slot_of_a_slot_freed_elsewhere_is_caught():
    b = BuddyAllocator(512)
    slots = np.full(1, -1, dtype=np.int64)
    b.run([thpbench.OP_ALLOC], [2], [0], [1], slots)
    b.free(int(slots[0]), 2)  # freed behind the slot's back
    with pytest.raises(thpbench.BulkOpError, match="not the start|double free"):
        b.run([thpbench.OP_FREE_SLOT], [0], [0], [1], slots)
    b.check()


def test_not_picklable():
    import pickle
    with pytest.raises(TypeError):
        pickle.dumps(BuddyAllocator(10))


anything = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                     st.booleans(), st.lists(st.integers(-300, 300), max_size=4), st.binary(max_size=4))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["alloc", "free", "split", "set_pageblock_migratetype", "free_list", "unusable_index",
                        "fragmentation_index", "run"]), st.lists(anything, min_size=0, max_size=5))
def test_no_input_crashes_or_corrupts(method, args):
    """Arbitrary arguments to any public method: a result or a ValueError/TypeError, and
    the allocator stays consistent."""
    b = BuddyAllocator(777, pageblock_order=4)
    b.alloc(2, "unmovable")
    before = snapshot(b)
    try:
        getattr(b, method)(*args)
    except (ValueError, TypeError):
        assert snapshot(b) == before or method == "run"
    b.check()
