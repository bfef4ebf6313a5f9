"""Regression tests for the core's entry points (issue 9, core items 3, 5, 7, 14):
bad input raises ValueError / TypeError naming the value and what is allowed, before any
C memory is touched, and leaves the state as it was."""
import subprocess
import sys

import numpy as np
import pytest

from thpbench import BuddyAllocator
from thpbench._core import (NR_PAGES_MAX, OP_ALLOC, OP_FREE, OP_FREE_SLOT, OP_REPLACE_SLOT, BulkOpError,
                            CompactionState)
from thpbench.kernel import compaction


def _snapshot(a):
    return (a.nr_free_pages, np.asarray(a.buddyinfo()).tolist(), np.asarray(a.allocated_blocks()).tolist(),
            np.asarray(a.free_blocks()).tolist(), a.counters())


# --- item 5: OP_FREE_SLOT whose slot holds a pfn beyond the zone ------------------------

@pytest.mark.parametrize("bad", [1024, 1025, 4096, 1 << 40])
@pytest.mark.parametrize("op", [OP_FREE_SLOT, OP_REPLACE_SLOT])
def test_slot_holding_a_pfn_beyond_the_zone_is_a_range_error(op, bad):
    """The error path read the frame array at the slot's pfn unchecked (a segfault far
    out; just past the end, find_head() rounded down into the zone and reported a bogus
    "double free")."""
    a = BuddyAllocator(1024, max_order=4, pageblock_order=4)
    slots = np.array([bad, 3], dtype=np.int64)
    before = _snapshot(a)
    with pytest.raises(BulkOpError, match=rf"slot 0: pfn {bad} out of range 0\.\.1023") as e:
        a.run([op], [0], [0], slots=slots)
    assert "double free" not in str(e.value)
    assert e.value.index == 0
    assert slots.tolist() == [bad, 3]
    assert _snapshot(a) == before
    a.check()


# --- item 14: bulk operations are all-or-nothing per operation ------------------------

@pytest.mark.parametrize("order, mt, match", [(99, 1, "order 99 out of range 0..4"),
                                              (-3, 1, "order -3 out of range 0..4"),
                                              (0, 7, "migratetype out of range")])
def test_replace_slot_with_a_bad_order_changes_nothing(order, mt, match):
    """OP_REPLACE_SLOT freed the slot's block before it checked the order of the new
    allocation, while BulkOpError says the failing op was not applied."""
    a = BuddyAllocator(1024, max_order=4, pageblock_order=4)
    slots = np.full(2, -1, dtype=np.int64)
    res = a.run([OP_ALLOC, OP_ALLOC], [2, 0], [0, 1], slots=slots)
    assert slots.tolist() == res.tolist()
    before = _snapshot(a)
    with pytest.raises(BulkOpError, match=match) as e:
        a.run([OP_REPLACE_SLOT], [order], [0], [mt], slots=slots)
    assert e.value.index == 0 and len(e.value.results) == 0
    assert slots.tolist() == res.tolist(), "the slot still holds its block"
    assert _snapshot(a) == before
    a.free(int(slots[0]), 2)            # still allocated, with its order
    a.check()


def test_failed_op_in_a_batch_leaves_the_earlier_ops_applied_and_nothing_else():
    a = BuddyAllocator(1024, max_order=4, pageblock_order=4)
    slots = np.full(3, -1, dtype=np.int64)
    a.run([OP_ALLOC, OP_ALLOC], [0, 1], [0, 1], slots=slots)
    held = slots.copy()
    with pytest.raises(BulkOpError) as e:
        a.run([OP_FREE_SLOT, OP_REPLACE_SLOT, OP_FREE], [0, 50, 0], [0, 1, 0], slots=slots)
    assert e.value.index == 1
    assert slots[0] == -1 and slots[1] == held[1]
    a.free(int(held[1]), 1)
    a.check()
    assert a.nr_free_pages == 1024


# --- item 7: nr_pages beyond what the core can index -----------------------------------

@pytest.mark.parametrize("nr_pages", [NR_PAGES_MAX + 1, 2**31 - 2, 2**31, 2**40, 2**70])
def test_nr_pages_beyond_the_limit_is_refused_before_allocating(nr_pages):
    """nr_pages above 2**30 overflowed the int32 free-list index arithmetic (2 * pfn):
    the limit is enforced before any memory is allocated."""
    assert NR_PAGES_MAX == 2**30
    with pytest.raises(ValueError, match=rf"nr_pages {nr_pages} out of range 1\.\.{2**30}"):
        BuddyAllocator(nr_pages)


@pytest.mark.parametrize("nr_pages", [0, -1])
def test_nr_pages_below_one_is_refused(nr_pages):
    with pytest.raises(ValueError, match=rf"nr_pages {nr_pages} out of range"):
        BuddyAllocator(nr_pages)


def test_buddyinfo_of_a_machine_with_terabytes_free_is_a_clean_error():
    """procfs.allocator_from_buddyinfo (what allocator_from_snapshot calls) of a zone with
    more than 4 TiB free: a ValueError naming nr_pages, before anything big is built."""
    from thpbench import procfs
    row = np.zeros(11, dtype=np.int64)
    row[10] = 2**20 + 1                  # 4 TiB + 4 MiB of free order-10 blocks
    with pytest.raises(ValueError, match="nr_pages .* out of range"):
        procfs.allocator_from_buddyinfo(row)


def test_cli_buddyinfo_of_4_tib_is_a_clean_error():
    """`thpbench buddyinfo --mib 4200000` segfaulted."""
    p = subprocess.run([sys.executable, "-c", "import sys; from thpbench.cli import main; "
                        "sys.exit(main(['buddyinfo', '--mib', '4200000']))"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode not in (0, -11, 139), (p.returncode, p.stderr[-2000:])
    assert "nr_pages 1075200000 out of range 1..1073741824" in p.stderr


# --- item 3: a CompactionState used with another zone's allocator ----------------------

def test_compaction_state_of_another_zone_geometry_is_refused():
    """Same page count, smaller pageblock_order: only the page counts were compared, and
    the skip bits (one byte a pageblock) overflowed the heap."""
    a = BuddyAllocator(1 << 14, max_order=10, pageblock_order=9)
    b = BuddyAllocator(1 << 14, max_order=10, pageblock_order=2)
    st = CompactionState(a)
    skip = st.pageblock_skip.copy()
    before = _snapshot(b)
    with pytest.raises(ValueError, match="pageblock_order 9.*pageblock_order 2"):
        compaction.compact_zone(b, state=st)
    with pytest.raises(ValueError, match="pageblock_order 9.*pageblock_order 2"):
        st.reset_isolation_suitable(b)
    assert _snapshot(b) == before and (st.pageblock_skip == skip).all()
    assert (st.nr_pages, st.pageblock_order, st.nr_pageblocks) == (1 << 14, 9, 32)
    compaction.compact_zone(a, state=st)          # its own zone is fine
    with pytest.raises(TypeError, match="BuddyAllocator"):
        st.reset_isolation_suitable("zone")


def test_core_compact_zone_checks_what_indexes_its_arrays():
    from thpbench._core import _compact_zone, _zone_metrics, PageBook
    a = BuddyAllocator(1 << 12, max_order=10)
    other = BuddyAllocator(1 << 12, max_order=10)
    st = CompactionState(a)
    rest = (False, False, False, False, False, 0, 0, 0, 500, 0, False)
    for order, mode, mt, match in [(11, 2, 1, "order 11"), (-2, 2, 1, "order -2"), (3, 5, 1, "mode 5"),
                                   (3, 2, 3, "migratetype 3")]:
        with pytest.raises(ValueError, match=match):
            _compact_zone(a, st, None, order, mode, mt, *rest)
    with pytest.raises(ValueError, match="another allocator"):
        _compact_zone(a, st, PageBook(other), -1, 2, 1, *rest)
    with pytest.raises(ValueError, match="order 12 out of range 0..10"):
        _zone_metrics(a, 12, 0, 0, 500, 0)
    a.check()
