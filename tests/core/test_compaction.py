"""Memory compaction (thpbench.kernel.compaction, thpbench/_compaction.pxi): behaviour, known answers, bad input.

check() runs on the allocator and on the book after every step that changes them.
"""
import numpy as np
import pytest

from thpbench import BuddyAllocator, InvariantError
from thpbench.kernel.compaction import (
    COMPACT_RESULT_NAMES,
    CompactionState,
    Kcompactd,
    PageBook,
    compact_memory,
    compact_zone,
    compaction_cost_ns,
    compaction_suitable,
    direct_compact,
    extfrag_for_order,
    fragmentation_index,
    fragmentation_score,
    fragmentation_score_wmark,
    try_to_compact_pages,
)
from thpbench.workloads import AllocationChurn, aged_allocator, churn_readout

MOVABLE = 1


def checked(a, book=None):
    a.check()
    if book is not None:
        book.check()


def layout(nr_pages, keep, *, max_order=3, pageblock_order=3, migratetype="movable"):
    """An allocator with order-0 blocks of ``migratetype`` allocated at exactly the pfns ``keep``."""
    a = BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=pageblock_order)
    got = [a.alloc(0, migratetype) for _ in range(nr_pages)]
    assert got == list(range(nr_pages))
    for p in range(nr_pages):
        if p not in keep:
            a.free(p)
    checked(a)
    return a


def non_movable(a):
    ab = a.allocated_blocks()
    return sorted((int(p), int(o), int(m)) for p, o, m in ab if m != MOVABLE)


def pages_by_type(a):
    ab = a.allocated_blocks()
    return np.bincount(ab["migratetype"], weights=1 << ab["order"].astype(np.int64), minlength=3).tolist()


# -- known answers on hand-built layouts ------------------------------------------------------

def test_known_answer_low_pageblock_becomes_free():
    # 4 pageblocks of 8 frames; movable pages at 1, 3, 6 (block 0) and 31 (block 3).
    a = layout(32, {1, 3, 6, 31})
    book = PageBook(a)
    for p in (1, 3, 6, 31):
        book.owner[p] = 100 + p
        book.write(p, 1000 + p)
    checked(a, book)
    r = compact_memory(a, book, trace=True)
    checked(a, book)
    # The free scanner isolates the order-2 block at 24; the migrate list runs last-isolated
    # first; compaction_alloc splits 24 into 24 (used), 25 and 26 (order 1, then split again).
    assert [tuple(m) for m in r["moves"].tolist()] == [(6, 24, 0, 0), (3, 25, 0, 0), (1, 26, 0, 0)]
    assert r["result"] == "COMPACT_COMPLETE"
    assert r["pgmigrate_success"] == 3 and r["pgmigrate_fail"] == 0
    fb = {(int(p), int(o)) for p, o, m in a.free_blocks()}
    assert (0, 3) in fb                      # the low pageblock is free whole
    assert sorted(a.allocated_blocks()["pfn"].tolist()) == [24, 25, 26, 31]
    for old, new in ((6, 24), (3, 25), (1, 26), (31, 31)):
        assert book.owner[new] == 100 + old and book.read(new) == 1000 + old
    assert a.nr_free_pages == 28


def test_known_answer_pinned_page_keeps_its_target_until_the_batch_ends():
    a = layout(32, {1, 3, 6, 31})
    book = PageBook(a)
    book.pinned[3] = 1
    r = compact_memory(a, book, trace=True)
    checked(a, book)
    # migrate_pages_batch(): targets are taken for all three first (24, 25, 26), then the
    # moves; the pinned page's target 25 goes back only after the batch
    assert [tuple(m) for m in r["moves"].tolist()] == [(6, 24, 0, 0), (3, 25, 0, 1), (1, 26, 0, 0)]
    assert (r["pgmigrate_success"], r["pgmigrate_fail"]) == (2, 1)
    assert sorted(a.allocated_blocks()["pfn"].tolist()) == [3, 24, 26, 31]
    assert book.pinned[3] == 1


def test_nothing_to_do_on_a_fresh_zone():
    a = BuddyAllocator(4096)
    r = compact_memory(a)
    assert r["result"] == "COMPACT_COMPLETE" and r["pgmigrate_success"] == 0
    assert r["compact_isolated"] == 0
    checked(a)
    # a request that can already be satisfied succeeds at once, without scanning
    r = compact_zone(a, 9, "sync")
    assert r["result"] == "COMPACT_SUCCESS" and r["total_migrate_scanned"] == 0


def test_async_direct_skips_non_movable_source_pageblocks_sync_does_not():
    keep = {1, 3, 6, 9, 12, 17, 31}

    def build():
        a = layout(32, keep)
        a.set_pageblock_migratetype(0, "unmovable")   # movable pages stranded in an Unmovable block
        checked(a)
        return a

    a = build()
    r = compact_zone(a, 3, "async", trace=True)       # async implies direct
    checked(a)
    srcs = set(r["moves"][:, 0].tolist())
    assert srcs and all(s >= 8 for s in srcs)           # nothing taken from pageblock 0
    assert r["result"] == "COMPACT_SUCCESS"
    assert sorted(p for p in a.allocated_blocks()["pfn"] if p < 8) == [1, 3, 6]

    a = build()
    r = compact_zone(a, 3, "sync_light", direct=True, trace=True)
    checked(a)
    assert {1, 3, 6} <= set(r["moves"][:, 0].tolist())
    assert r["result"] == "COMPACT_SUCCESS"


def test_unmovable_reclaimable_and_pinned_pages_never_move():
    a, w = aged_allocator(1 << 14, seed=3)
    book = PageBook(a, w.slots)
    w.book = book
    rng = np.random.default_rng(0)
    movable_heads = a.allocated_blocks()
    movable_heads = movable_heads[movable_heads["migratetype"] == MOVABLE]["pfn"]
    pinned = rng.choice(movable_heads, size=50, replace=False)
    book.pinned[pinned] = 1
    before_fixed = non_movable(a)
    before_types = pages_by_type(a)
    free_before = a.nr_free_pages
    checked(a, book)
    r = compact_memory(a, book, trace=True)
    checked(a, book)
    assert non_movable(a) == before_fixed
    assert pages_by_type(a) == before_types
    assert a.nr_free_pages == free_before
    moved_src = set(r["moves"][r["moves"][:, 3] == 0][:, 0].tolist())
    assert not moved_src & set(pinned.tolist())
    for p in pinned:                                      # still allocated in place, still pinned
        assert book.pinned[p] == 1 and p in set(a.allocated_blocks()["pfn"].tolist())
    assert r["pgmigrate_success"] > 0
    failed = r["moves"][r["moves"][:, 3] != 0]
    assert r["pgmigrate_fail"] == int((1 << failed[:, 2]).sum())
    assert set(failed[:, 0].tolist()) <= set(pinned.tolist())


def test_content_follows_every_moved_page_through_the_slot_map():
    a, w = aged_allocator(1 << 14, seed=4)
    book = PageBook(a, w.slots)
    w.book = book
    # write a value per page: slot * 4096 + offset within the block, as validate_memory does
    orders = dict(zip(a.allocated_blocks()["pfn"].tolist(), a.allocated_blocks()["order"].tolist()))
    for s, p in enumerate(w.slots):
        if p >= 0:
            n = 1 << orders[int(p)]
            book.content[p:p + n] = s * 4096 + np.arange(n, dtype=np.uint64)
    old_slots = w.slots.copy()
    r = compact_memory(a, book, trace=True)
    checked(a, book)
    assert r["pgmigrate_success"] > 0
    moved = old_slots != w.slots
    assert moved.sum() == (r["moves"][:, 3] == 0).sum()
    orders = dict(zip(a.allocated_blocks()["pfn"].tolist(), a.allocated_blocks()["order"].tolist()))
    for s, p in enumerate(w.slots):
        if p >= 0:
            n = 1 << orders[int(p)]
            assert (book.content[p:p + n] == s * 4096 + np.arange(n, dtype=np.uint64)).all(), s
            assert (book.owner[p:p + n] == s).all()
    # the churn goes on from the rewritten slots, with its book kept right
    w.run(0.2, steps=2)
    checked(a, book)


@pytest.mark.parametrize("with_book", [False, True])
def test_aged_zone_gains_free_pageblocks_up_to_the_bound(with_book):
    a, w = aged_allocator(1 << 15, seed=1)
    w.release("page_cache", fraction=0.5)
    book = None
    if with_book:
        # owners per frame, no slots attached, so large folios may split; with the churn's
        # slots attached the book refuses splits and compaction stops early (-ENOMEM)
        book = PageBook(a)
        for s, p in enumerate(w.slots):
            if p >= 0:
                book.owner[p:p + (1 << int(a.allocated_blocks()["order"][np.searchsorted(a.allocated_blocks()["pfn"], p)]))] = s
        checked(a, book)
    before = churn_readout(a)
    bound = min(a.nr_pageblocks - before["nr_polluted_pageblocks"], a.nr_free_pages >> a.pageblock_order)
    r = compact_memory(a, book)
    checked(a, book)
    after = churn_readout(a)
    assert r["result"] == "COMPACT_COMPLETE"
    assert after["nr_free_pageblocks"] > before["nr_free_pageblocks"]
    assert after["nr_free_pageblocks"] <= bound
    # compaction reaches a good share of what is reachable at all
    assert after["nr_free_pageblocks"] >= 0.5 * bound
    assert after["nr_polluted_pageblocks"] == before["nr_polluted_pageblocks"]


def test_cached_positions_and_counters_accumulate_in_the_state():
    a, _ = aged_allocator(1 << 14, seed=2)
    st = CompactionState(a)
    r1 = compact_zone(a, 9, "sync_light", state=st)
    checked(a)
    c = st.counters()
    assert c["compact_migrate_scanned"] == r1["compact_migrate_scanned"] == r1["total_migrate_scanned"]
    assert c["compact_free_scanned"] == r1["total_free_scanned"]
    zf = st.zone_fields()
    if r1["result"] == "COMPACT_SUCCESS":
        # the scanners stopped part-way: the next attempt resumes there
        assert zf["compact_cached_migrate_pfn"][1] > 0 or zf["compact_cached_free_pfn"] < a.nr_pages - 512
    r2 = compact_zone(a, 9, "sync_light", state=st)
    checked(a)
    assert st.counters()["compact_migrate_scanned"] == c["compact_migrate_scanned"] + r2["total_migrate_scanned"]


# -- suitability and deferral --------------------------------------------------------------------

def fragmented_unmovable(nr_pages=1 << 12):
    """Every 4th frame holds an unmovable page: no order-2+ block can ever form."""
    a = BuddyAllocator(nr_pages)
    got = [a.alloc(0, "unmovable") for _ in range(nr_pages)]
    for p in got:
        if p % 4:
            a.free(p)
    checked(a)
    return a


def test_deferral_sequence_doubles_up_to_64():
    a = fragmented_unmovable()
    st = CompactionState(a)
    runs = []          # how many attempts were considered between real compactions
    results = []
    considered = 0
    for _ in range(1 + 2 + 4 + 8 + 16 + 32 + 64 + 64):
        r = try_to_compact_pages(a, 3, priority="sync_light", state=st)
        considered += 1
        if r["result"] != "COMPACT_DEFERRED":
            results.append(r["result"])
            runs.append(considered)
            considered = 0
    checked(a)
    assert runs == [1, 2, 4, 8, 16, 32, 64, 64]
    # after 64 considered attempts compaction_restarting() runs __reset_isolation_suitable():
    # no block here is worth a scanner, so the scanners restart where they met
    # ("leave no distance"), and the pass is no longer a whole-zone one
    assert results[:6] == ["COMPACT_COMPLETE"] * 6
    assert results[6:] == ["COMPACT_PARTIAL_SKIPPED"] * 2
    assert st.zone_fields()["compact_defer_shift"] == 6
    # "sync_full" (MIN_COMPACT_PRIORITY) ignores deferral
    assert try_to_compact_pages(a, 3, priority="sync_full", state=st)["result"] == "COMPACT_COMPLETE"
    # async failures do not defer
    st2 = CompactionState(a)
    for _ in range(5):
        assert try_to_compact_pages(a, 3, priority="async", state=st2)["result"] == "COMPACT_COMPLETE"
    assert st2.zone_fields()["compact_defer_shift"] == 0


def test_direct_compact_counts_stall_success_fail_and_resets_deferral():
    a = fragmented_unmovable()
    st = CompactionState(a)
    r = direct_compact(a, 3, priority="sync_light", state=st)
    assert r["pfn"] is None
    c = st.counters()
    assert (c["compact_stall"], c["compact_success"], c["compact_fail"]) == (1, 0, 1)
    # a deferred attempt still counts a stall and a failure, as in the kernel
    r = direct_compact(a, 3, priority="sync_light", state=st)
    assert r["result"] == "COMPACT_DEFERRED"
    c = st.counters()
    assert (c["compact_stall"], c["compact_fail"]) == (2, 2)
    # a compactable zone: success, and the deferral is fully reset
    b = layout(32, {1, 3, 6, 9, 12, 17, 31})
    st = CompactionState(b)
    st._defer(3)
    st._defer(3)
    r = direct_compact(b, 3, priority="sync_full", state=st)
    checked(b)
    assert r["pfn"] is not None and r["result"] == "COMPACT_SUCCESS"
    c = st.counters()
    assert (c["compact_stall"], c["compact_success"], c["compact_fail"]) == (1, 1, 0)
    assert st.zone_fields()["compact_defer_shift"] == 0


def test_extfrag_threshold_and_watermark_decide_suitability():
    a, _ = aged_allocator(1 << 14, seed=5)
    order = 9
    fi = fragmentation_index(a, order)
    assert 0 < fi <= 1000                   # this aged zone has no free order-9 block
    assert compaction_suitable(a, order, extfrag_threshold=max(fi - 1, 0)) == (fi > 0)
    assert not compaction_suitable(a, order, extfrag_threshold=fi)
    r = try_to_compact_pages(a, order, priority="sync_light", extfrag_threshold=fi)
    assert r["result"] == "COMPACT_SKIPPED" and r["total_migrate_scanned"] == 0
    st = CompactionState(a)
    r = direct_compact(a, order, state=st, extfrag_threshold=fi)
    assert r["result"] == "COMPACT_SKIPPED" and st.counters()["compact_stall"] == 0
    # non-costly orders ignore the index; the watermark plus compact_gap decides
    free = a.nr_free_pages
    assert compaction_suitable(a, 3, wmark_min_pages=free - (2 << 3) - 1)
    assert not compaction_suitable(a, 3, wmark_min_pages=free - (2 << 3))
    # the caller's watermark is the base (compact_zone passes the allocation's)
    assert not compaction_suitable(a, 3, watermark_pages=free - (2 << 3))
    assert compaction_suitable(a, 3, watermark_pages=free - (2 << 3) - 1, wmark_min_pages=free)
    # costly orders test the low watermark
    assert not compaction_suitable(a, order, wmark_min_pages=0, wmark_low_pages=free, extfrag_threshold=0)
    assert compaction_suitable(a, order, wmark_min_pages=0, wmark_low_pages=free - (2 << order) - 1, extfrag_threshold=0)
    checked(a)


def test_indices_match_the_allocators_own():
    a, _ = aged_allocator(1 << 14, seed=6)
    for o in range(a.max_order + 1):
        assert fragmentation_index(a, o) == round(a.fragmentation_index(o) * 1000)
        assert extfrag_for_order(a, o) == int(a.unusable_index(o) * 100 + 1e-9) or \
            abs(extfrag_for_order(a, o) - a.unusable_index(o) * 100) < 1
    n = a.nr_pages
    assert fragmentation_score(a) == n * extfrag_for_order(a, a.pageblock_order) // (n + 1)


def test_fragmentation_score_wmark():
    assert fragmentation_score_wmark(20, True) == 80 and fragmentation_score_wmark(20, False) == 90
    assert fragmentation_score_wmark(90, True) == 10 and fragmentation_score_wmark(90, False) == 15
    assert fragmentation_score_wmark(100, True) == 0 and fragmentation_score_wmark(100, False) == 0
    assert fragmentation_score_wmark(0, False) == 100


# -- kcompactd ---------------------------------------------------------------------------------

def test_kcompactd_wakeup_does_work_once():
    a, w = aged_allocator(1 << 14, seed=7)
    k = Kcompactd(a, compaction_proactiveness=0)
    assert not k.wakeup(0)
    assert k.wakeup(9)                       # no order-9 block, and compaction is suitable
    assert not k.wakeup(9)                   # already woken
    rows = k.run(100_000_000)
    checked(a)
    c = k.state.counters()
    assert len(rows) == 1 and rows[0]["event"] == "wake" and c["compact_daemon_wake"] == 1
    assert rows[0]["result"] == "COMPACT_SUCCESS" and rows[0]["pgmigrate_success"] > 0
    assert c["compact_daemon_migrate_scanned"] == c["compact_migrate_scanned"] > 0
    assert k.kcompactd_max_order == 0
    # proactiveness 0: no timer work however long it runs
    assert k.run(10_000_000_000) == []


def test_kcompactd_proactive_every_500ms_until_the_low_mark():
    a, w = aged_allocator(1 << 14, seed=8)
    score0 = fragmentation_score(a)
    assert score0 > 10
    k = Kcompactd(a, compaction_proactiveness=100)       # low mark 0, high mark 0
    assert k.run(499_000_000) == []
    rows = k.run(500_000_000)
    checked(a)
    assert len(rows) == 1 and rows[0]["event"] == "proactive" and rows[0]["time_ns"] == 500_000_000
    assert rows[0]["score_before"] == score0 and rows[0]["score_after"] < score0
    assert rows[0]["pgmigrate_success"] > 0
    # the next check is 500 ms later, or 64 x 500 ms if the score did not fall
    t = 500_000_000
    for _ in range(6):
        last = k.events[-1]
        fell = last["score_after"] < last["score_before"]
        expect = t + (500_000_000 if fell else 64 * 500_000_000)
        assert k.next_check_ns == expect
        rows = k.run(expect)
        checked(a)
        assert [r["time_ns"] for r in rows] == [expect]
        t = expect
    assert any(r["score_after"] >= r["score_before"] for r in k.events)   # the back-off was exercised
    k.kswapd_running = True
    assert not k.should_proactive_compact()
    h = k.history
    assert set(h["event"]) == {"proactive"} and h["time_ns"].is_monotonic_increasing


def test_kcompactd_default_proactiveness_leaves_a_low_score_alone():
    a = BuddyAllocator(1 << 12)
    k = Kcompactd(a)
    assert fragmentation_score(a) == 0
    assert k.run(5_000_000_000) == []
    assert k.state.counters()["compact_daemon_wake"] == 0


# -- the book -------------------------------------------------------------------------------------

def test_pagebook_track_and_check():
    a = BuddyAllocator(64, max_order=3, pageblock_order=3)
    slots = np.full(4, -1, dtype=np.int64)
    slots[0] = a.alloc(2)
    slots[2] = a.alloc(0, "unmovable")
    book = PageBook(a, slots)
    checked(a, book)
    assert book.owner[:4].tolist() == [0, 0, 0, 0] and book.owner[slots[2]] == 2
    book.owner[40] = 3                      # a free frame cannot have an owner
    with pytest.raises(InvariantError, match="free pfn 40 has owner 3"):
        book.check()
    book.owner[40] = -1
    book.owner[1] = 5                       # frames of one block have one owner
    with pytest.raises(InvariantError, match="owners"):
        book.check()
    book.track(slots)
    checked(a, book)
    bad = slots.copy()
    bad[1] = 1                              # a tail frame is not a block head
    with pytest.raises(ValueError, match="not the head of an allocated block"):
        book.track(bad)
    dup = slots.copy()
    dup[3] = dup[0]
    with pytest.raises(ValueError, match="already held by slot 0"):
        book.track(dup)
    with pytest.raises(TypeError, match="int64"):
        book.track(slots.astype(np.int32))


def test_churn_keeps_its_book_right():
    a = BuddyAllocator(1 << 13)
    book = PageBook(a)
    w = AllocationChurn(a, seed=1, book=book)
    w.fill()
    checked(a, book)
    w.run(0.5, steps=2)
    checked(a, book)
    assert (book.owner >= 0).sum() == a.nr_pages - a.nr_free_pages
    compact_memory(a, book)
    checked(a, book)
    w.release("anon")
    checked(a, book)


# -- bad input ----------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    a = BuddyAllocator(1024)
    other = BuddyAllocator(2048)
    with pytest.raises(ValueError, match=r"order 11 out of range -1\.\.10"):
        compact_zone(a, 11)
    with pytest.raises(ValueError, match=r"order -2 out of range"):
        compact_zone(a, -2)
    with pytest.raises(TypeError, match="order must be an integer"):
        compact_zone(a, 2.0)
    with pytest.raises(ValueError, match="unknown mode 'fast'; allowed: async, sync_light, sync"):
        compact_zone(a, 3, "fast")
    with pytest.raises(ValueError, match="book covers 2048 frames, the allocator has 1024"):
        compact_zone(a, book=PageBook(other))
    with pytest.raises(ValueError, match="another allocator"):
        compact_zone(a, book=PageBook(BuddyAllocator(1024)))
    with pytest.raises(TypeError, match="book must be a PageBook"):
        compact_zone(a, book=np.zeros(1024))
    with pytest.raises(ValueError, match="state belongs to a zone of 2048 pages"):
        compact_zone(a, state=CompactionState(other))
    with pytest.raises(TypeError, match="allocator must be a BuddyAllocator"):
        compact_zone("zone")
    with pytest.raises(ValueError, match="unknown priority 'hard'"):
        try_to_compact_pages(a, 3, priority="hard")
    with pytest.raises(ValueError, match=r"order 0 out of range 1\.\.10"):
        try_to_compact_pages(a, 0)
    with pytest.raises(ValueError, match="extfrag_threshold 1001 out of range 0..1000"):
        compaction_suitable(a, 9, extfrag_threshold=1001)
    with pytest.raises(ValueError, match="wmark_low_pages 1 is below wmark_min_pages 2"):
        compact_zone(a, 3, wmark_min_pages=2, wmark_low_pages=1)
    with pytest.raises(ValueError, match="unknown migratetype"):
        compact_zone(a, 3, migratetype="sticky")
    with pytest.raises(ValueError, match="compaction_proactiveness 101 out of range 0..100"):
        Kcompactd(a, compaction_proactiveness=101)
    with pytest.raises(TypeError, match="allocator must be a BuddyAllocator"):
        PageBook(None)
    k = Kcompactd(a)
    k.run(10)
    with pytest.raises(ValueError, match="before the daemon's clock"):
        k.run(5)
    with pytest.raises(ValueError, match="order 11 out of range"):
        k.wakeup(11)
    assert COMPACT_RESULT_NAMES[8] == "COMPACT_SUCCESS"


def test_grouping_off_finds_no_target_pageblock_unless_sync_full():
    # every pageblock is Unmovable without grouping by mobility: no MOVABLE target block
    a = BuddyAllocator(32, max_order=3, pageblock_order=3, grouping=False)
    got = [a.alloc(0) for _ in range(32)]
    for p in got:
        if p not in (1, 3, 6, 9, 12, 17, 31):
            a.free(p)
    checked(a)
    r = compact_memory(a, trace=True)
    checked(a)
    assert r["pgmigrate_success"] == 0 and len(r["moves"]) == 0
    assert try_to_compact_pages(a, 3, priority="sync_light")["pgmigrate_success"] == 0
    r = try_to_compact_pages(a, 3, priority="sync_full", trace=True)
    checked(a)
    assert r["result"] == "COMPACT_SUCCESS" and r["pgmigrate_success"] > 0
    assert any(o == 3 for _, o, _ in a.free_blocks())


def test_pageblock_skip_bits_spare_rescans_until_reset():
    # movable pages on every 4th frame, every 64th of them pinned: no order-9 block can form
    def run(ignore):
        n = 1 << 14
        a = BuddyAllocator(n)
        assert [a.alloc(0) for _ in range(n)] == list(range(n))
        for p in range(n):
            if p % 4:
                a.free(p)
        book = PageBook(a)
        book.pinned[::64] = 1
        st = CompactionState(a)
        first = compact_zone(a, 9, "sync_light", book, state=st, direct=True)
        checked(a, book)
        skipped = int(st.pageblock_skip.sum())
        second = compact_zone(a, 9, "sync_light", book, state=st, direct=True, ignore_skip_hint=ignore)
        checked(a, book)
        return a, st, first, skipped, second

    a, st, first, skipped, honoured = run(False)
    assert first["result"] == "COMPACT_COMPLETE" and first["pgmigrate_fail"] > 0
    assert first["total_migrate_scanned"] > 0 and 0 < skipped <= a.nr_pageblocks
    _, _, _, _, ignored = run(True)
    assert honoured["total_migrate_scanned"] < ignored["total_migrate_scanned"]
    # kswapd's reset_isolation_suitable() runs only after a direct compaction's scanners met
    st._set_blockskip_flush(False)
    assert not st.reset_isolation_suitable(a)
    st._set_blockskip_flush(True)
    before = int(st.pageblock_skip.sum())
    assert st.reset_isolation_suitable(a)
    assert int(st.pageblock_skip.sum()) < before          # blocks with LRU or free pages are cleared
    assert not st.zone_fields()["compact_blockskip_flush"]


def test_kcompactd_runs_timer_checks_and_wakeups_in_time_order():
    a, _ = aged_allocator(1 << 14, seed=9)
    k = Kcompactd(a, compaction_proactiveness=100)
    assert k.wakeup(9, now_ns=1_200_000_000)
    rows = k.run(1_300_000_000)
    checked(a)
    # the timer checks at 0.5 s and 1.0 s come before the wakeup's work at 1.2 s
    assert [(r["time_ns"], r["event"]) for r in rows] == [
        (500_000_000, "proactive"), (1_000_000_000, "proactive"), (1_200_000_000, "wake")]
    assert k.next_check_ns == 1_700_000_000          # the timeout restarts after the work
    # by then proactive compaction made an order-9 block: kcompactd_do_work has nothing to do
    assert rows[2]["result"] is None and k.state.counters()["compact_daemon_wake"] == 1


def test_compaction_cost_in_simulated_time():
    from thpbench.costs import CostModel
    c = CostModel(scan_pfn_ns=2.0, copy_page_ns=300.0, migrate_overhead_ns=700.0)
    a = layout(32, {1, 3, 6, 31})
    book = PageBook(a)
    book.pinned[3] = 1
    r = compact_memory(a, book)
    scanned = r["total_migrate_scanned"] + r["total_free_scanned"]
    assert scanned > 0
    assert compaction_cost_ns(r, c) == scanned * 2.0 + 2 * 1000.0 + 1 * 700.0
    assert compaction_cost_ns(r) > 0
