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


# --- item 11: the core objects a public Kernel reaches (k.core, k.reclaim.core) -------

def _kernel():
    from thpbench.kernel import Kernel
    k = Kernel(64 << 20, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(8 << 20)
    p.touch(a)
    p.touch(a + (4 << 20) + 4096, value=7)
    return k, p


def _state(k):
    c = k.core
    return (c.stats(), c.deferred_split_queue_len, c.nr_swap_free, k.buddy.nr_free_pages,
            np.asarray(k.buddy.free_blocks()).tolist(), k.reclaim.core.stats(), k.reclaim.core.lru_sizes())


def _bad_core_calls(k, p):
    """(description, call) pairs: each must raise ValueError / TypeError / OverflowError."""
    c, r = k.core, k.reclaim.core
    top = 1 << 40
    pid, dead, far = p.pid, k.max_processes - 1, 10**6
    v = np.array([0, top], dtype=np.int64)
    return [
        ("rss of an mm id beyond max", lambda: c.rss(far)),
        ("rss of a negative mm id", lambda: c.rss(-1)),
        ("rss of an mm never created", lambda: c.rss(dead)),
        ("pmd_kinds of an mm never created", lambda: c.pmd_kinds(dead, 0, 4)),
        ("pmd_kinds beyond the PMDs", lambda: c.pmd_kinds(pid, 0, top)),
        ("pmd_kinds reversed", lambda: c.pmd_kinds(pid, 4, 0)),
        ("peek beyond the address space", lambda: c.peek(pid, v)),
        ("peek of a negative page", lambda: c.peek(pid, np.array([-1], dtype=np.int64))),
        ("frame_info beyond the address space", lambda: c.frame_info(v, pid)),
        ("entries beyond the address space", lambda: c.entries(pid, 0, top)),
        ("entries reversed", lambda: c.entries(pid, 10, 5)),
        ("touch beyond the address space", lambda: c.touch(pid, v, True, None, True)),
        ("touch with values None", lambda: c.touch(pid, np.array([0], dtype=np.int64), True, None, False)),
        ("touch with too few values", lambda: c.touch(pid, np.array([0, 1], dtype=np.int64), True,
                                                       np.zeros(1, dtype=np.uint64), False)),
        ("touch_range with stride 0", lambda: c.touch_range(pid, 0, 10, True, 0)),
        ("touch_range beyond", lambda: c.touch_range(pid, 0, top, True, 1)),
        ("zap beyond", lambda: c.zap(pid, 0, top, True)),
        ("zap of a dead mm", lambda: c.zap(dead, 0, 512, True)),
        ("protect beyond", lambda: c.protect(pid, -5, 10, False)),
        ("clear_young beyond", lambda: c.clear_young(pid, 0, top)),
        ("split_huge_pmd beyond", lambda: c.split_huge_pmd(pid, top)),
        ("scan_pmd beyond", lambda: c.scan_pmd(pid, top, True)),
        ("collapse beyond", lambda: c.collapse(pid, -512, 0, True)),
        ("split_folio of a pfn beyond the zone", lambda: c.split_folio(top, 0)),
        ("split_folio of a negative pfn", lambda: c.split_folio(-1, 0)),
        ("split_range with a negative order", lambda: c.split_range(pid, 0, 512, -1)),
        ("pageout beyond", lambda: c.pageout(pid, 0, top)),
        ("move with a negative length", lambda: c.move(pid, 0, 1024, -1)),
        ("move beyond", lambda: c.move(pid, 0, top, 512)),
        ("move overlapping", lambda: c.move(pid, 0, 256, 512)),
        ("fork into itself", lambda: c.fork(pid, pid)),
        ("fork into an mm never created", lambda: c.fork(pid, dead)),
        ("fork from a dead mm", lambda: c.fork(dead, pid)),
        ("mm_create of an existing mm", lambda: c.mm_create(pid, 0)),
        ("mm_create beyond max", lambda: c.mm_create(far, 0)),
        ("mm_destroy of a dead mm", lambda: c.mm_destroy(dead)),
        ("set_vmas of unequal lengths", lambda: c.set_vmas(pid, [0, 5], [4], [3, 3])),
        ("set_vmas beyond", lambda: c.set_vmas(pid, [0], [top], [3])),
        ("set_vmas overlapping", lambda: c.set_vmas(pid, [0, 2], [4, 6], [3, 3])),
        ("set_policy with enabled 7", lambda: c.set_policy(7, 0, 1, 1, 511, 64, 256, 1, 0)),
        ("set_policy with max_ptes_none 512", lambda: c.set_policy(2, 0, 1, 1, 512, 64, 256, 1, 0)),
        ("deferred_split_scan negative", lambda: c.deferred_split_scan(-1)),
        ("MMCore without an allocator", lambda: type(c)(None, 4, 4, 0)),
        ("MMCore with max_mms 0", lambda: type(c)(k.buddy, 0, 4, 0)),
        ("MMCore with negative swap", lambda: type(c)(k.buddy, 4, 4, -1)),
        ("folio_young of a pfn beyond", lambda: r.folio_young(top)),
        ("folio_young of a free frame", lambda: r.folio_young(int(np.asarray(k.buddy.free_blocks())[-1][0]))),
        ("set_referenced of a negative pfn", lambda: r.set_referenced(-1, True)),
        ("lru_list 9", lambda: r.lru_list(9)),
        ("file_read of no inode", lambda: r.file_read(99, 0, 1)),
        ("writeback negative", lambda: r.writeback(-1)),
        ("shrink_list negative", lambda: r.shrink_list(0, -1)),
        ("shrink_lruvec priority 13", lambda: r.shrink_lruvec(13, 32)),
        ("set_policy swappiness 500", lambda: r.set_policy(0, 0, 500, 0)),
        ("ReclaimCore without an MMCore", lambda: type(r)(None)),
    ]


def test_core_methods_reached_from_a_kernel_refuse_bad_arguments():
    """k.core and k.reclaim.core are typed in _core.pyi: each call below segfaulted or
    corrupted memory.  Every one raises, names the value, and changes nothing."""
    k, p = _kernel()
    before = _state(k)
    calls = _bad_core_calls(k, p)
    assert len(calls) >= 50
    for what, call in calls:
        with pytest.raises((ValueError, TypeError, OverflowError)) as e:
            call()
        assert str(e.value), what
        assert _state(k) == before, f"{what} changed the state"
        k.check()
    assert p.read(p.vmas[0].start + (4 << 20) + 4096) == 7


def test_handles_of_an_exited_process_raise():
    """pmd_kinds / pmd_mapped on an exited process read a NULL page directory."""
    k, p = _kernel()
    pid = p.pid
    p.exit()
    for call in (lambda: k.core.pmd_kinds(pid, 0, 4), lambda: k.core.peek(pid, np.zeros(1, dtype=np.int64)),
                 lambda: k.core.rss(pid), lambda: k.core.touch_range(pid, 0, 4, True, 1)):
        with pytest.raises(ValueError, match=f"mm {pid} does not exist"):
            call()
    k.check()
