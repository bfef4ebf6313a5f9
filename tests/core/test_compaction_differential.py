"""Differential tests: the Cython compaction core against the pure-Python ReferenceCompaction.

Hypothesis builds random small zones (any geometry, allocations of all three mobilities
and several orders, some pages pinned), then runs compact_zone twice with one state
(so the second run starts from the cached scanner positions) through both.  The moved
pairs (src, dst, order, rc), the result, the counters, every free list in list order,
the pageblock types, the allocated blocks and the cached positions must be identical.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from thpbench import BuddyAllocator
from thpbench.kernel.compaction import (COMPACT_RESULT_NAMES, MODES, PRIORITIES, CompactionState, PageBook, compact_zone,
                                 try_to_compact_pages)
from thpbench._reference.buddy import reference_from
from thpbench._reference.compaction import STAT_NAMES, ReferenceCompaction, ReferenceZoneState
from thpbench._reference.compaction import try_to_compact_pages as ref_try_to_compact_pages

pytestmark = pytest.mark.differential


@st.composite
def zones(draw):
    max_order = draw(st.integers(1, 6))
    pbo = draw(st.integers(1, max_order))
    nr_pages = draw(st.integers(2 << pbo, min(6 << max_order, 700)))
    # fill with mixed allocations, then free a random share: a fragmented zone
    return (nr_pages, max_order, pbo, draw(st.integers(0, 2**32 - 1)), draw(st.floats(0.1, 0.7)),
            draw(st.floats(0.0, 0.3)), draw(st.floats(0.0, 0.1)), draw(st.integers(0, 2)),
            draw(st.sampled_from([True, True, True, False])))


@st.composite
def controls(draw, max_order):
    order = draw(st.sampled_from([-1, -1] + list(range(1, max_order + 1))))
    return dict(order=order, mode=draw(st.sampled_from(sorted(MODES))), direct=draw(st.booleans()),
                whole_zone=draw(st.booleans()), ignore_skip_hint=draw(st.booleans()),
                ignore_block_suitable=draw(st.booleans()), proactive=draw(st.booleans()) and order < 0,
                proactiveness=draw(st.integers(0, 100)), wmark_min=draw(st.sampled_from([0, 0, 0, 4, 12])), wmark_extra=draw(st.sampled_from([0, 0, 8])),
                alloc_extra=draw(st.sampled_from([0, 0, 3])),
                migratetype=draw(st.integers(0, 2)), extfrag_threshold=draw(st.sampled_from([0, 0, 500, 1000])))


def build(nr_pages, max_order, pbo, seed, free_share, kernel_share, pin_share, top_order, grouping):
    """Allocate until the zone is full (orders 0..top_order, a kernel_share of them
    unmovable or reclaimable), free free_share of the blocks, pin pin_share of the rest."""
    rng = np.random.default_rng(seed)
    a = BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=pbo, grouping=grouping)
    live = []
    failures = 0
    while failures < 4:
        order = int(rng.integers(0, min(top_order, max_order) + 1))
        mt = int(rng.choice([0, 2])) if rng.random() < kernel_share else 1
        p = a.alloc(order, mt)
        if p is None:
            failures += 1
        else:
            live.append((p, order))
    rng.shuffle(live)
    nfree = int(free_share * len(live))
    for p, order in live[:nfree]:
        a.free(p, order)
    pinned = set()
    for p, order in live[nfree:]:
        if rng.random() < pin_share:
            pinned.update(range(p, p + (1 << order)))
    a.check()
    return a, pinned


def same(a, ref, st_core, zs):
    assert a.nr_free_pages == ref.nr_free_pages
    for o in range(a.max_order + 1):
        for m in range(5):
            assert a.free_list(o, m).tolist() == ref.free_area[o][m], (o, m)
    assert a.pageblock_migratetypes().tolist() == ref.pb_mt
    assert sorted((int(p), int(o), int(m)) for p, o, m in a.allocated_blocks()) == \
        sorted((p, o, m) for p, (o, m) in ref.allocated.items())
    zf = st_core.zone_fields()
    assert zf["compact_cached_free_pfn"] == zs.cached_free
    assert list(zf["compact_cached_migrate_pfn"]) == zs.cached_migrate
    assert zf["compact_blockskip_flush"] == zs.blockskip_flush
    assert (zf["compact_init_migrate_pfn"], zf["compact_init_free_pfn"]) == (zs.init_migrate, zs.init_free)
    assert (zf["compact_considered"], zf["compact_defer_shift"], zf["compact_order_failed"]) == \
        (zs.considered, zs.defer_shift, zs.order_failed)
    assert st_core.pageblock_skip.tolist() == zs.skip
    a.check()
    ref.check()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(zones(), st.data())
def test_core_matches_reference(zone, data):
    nr_pages, max_order, pbo = zone[:3]
    a, pinned = build(*zone)
    ref = reference_from(a)
    book = PageBook(a)
    book.pinned[list(pinned)] = 1
    st_core = CompactionState(a)
    zs = ReferenceZoneState(ref)

    def mover(src, dst, order):
        return 1 if any(p in pinned for p in range(src, src + (1 << order))) else 0

    def splitter(head, order):
        return mover(head, head, order)

    for _ in range(3):
        step = data.draw(st.sampled_from(["compact", "compact", "try", "try", "kswapd"]))
        if step == "kswapd":
            assert st_core.reset_isolation_suitable(a) == zs.reset_isolation_suitable()
            same(a, ref, st_core, zs)
            continue
        c = data.draw(controls(max_order))
        if step == "try":
            order = max(c["order"], 1)
            prio = data.draw(st.sampled_from(sorted(PRIORITIES)))
            if data.draw(st.booleans()):
                # make the deferral and restart paths reachable in a few steps
                for _ in range(data.draw(st.integers(1, 7))):
                    st_core._defer(order)
                    zs.defer(order)
                for _ in range(data.draw(st.integers(0, 70))):
                    assert st_core._deferred(order) == zs.deferred(order)
                st_core._set_blockskip_flush(True)
                zs.blockskip_flush = True
            r = try_to_compact_pages(a, order, priority=prio, migratetype=c["migratetype"], state=st_core, book=book,
                                     wmark_min_pages=c["wmark_min"], wmark_low_pages=c["wmark_min"] + c["wmark_extra"],
                                     alloc_wmark_pages=c["wmark_min"] + c["alloc_extra"],
                                     extfrag_threshold=c["extfrag_threshold"], trace=True)
            ret, rc = ref_try_to_compact_pages(ref, zs, order, PRIORITIES[prio],
                                               migratetype=c["migratetype"] if a.grouping else 0, mover=mover,
                                               splitter=splitter, wmark_min=c["wmark_min"],
                                               wmark_low=c["wmark_min"] + c["wmark_extra"],
                                               alloc_wmark=c["wmark_min"] + c["alloc_extra"],
                                               extfrag_threshold=c["extfrag_threshold"])
            event(f"try: {COMPACT_RESULT_NAMES[ret]}")
            assert r["result"] == COMPACT_RESULT_NAMES[ret]
            if rc is None:
                assert "moves" not in r
                same(a, ref, st_core, zs)
                continue
            assert [tuple(m) for m in r["moves"].tolist()] == rc.moves
            assert r["total_migrate_scanned"] == rc.total_migrate_scanned
        else:
            wl = 100 - c["proactiveness"]
            r = compact_zone(a, c["order"], c["mode"], book, state=st_core, migratetype=c["migratetype"],
                             direct=c["direct"], whole_zone=c["whole_zone"], ignore_skip_hint=c["ignore_skip_hint"],
                             ignore_block_suitable=c["ignore_block_suitable"], proactive=c["proactive"],
                             compaction_proactiveness=c["proactiveness"], wmark_min_pages=c["wmark_min"],
                             wmark_low_pages=c["wmark_min"] + c["wmark_extra"],
                             alloc_wmark_pages=c["wmark_min"] + c["alloc_extra"],
                             extfrag_threshold=c["extfrag_threshold"], trace=True)
            rc = ReferenceCompaction(ref, zs, order=c["order"], mode=MODES[c["mode"]],
                                     migratetype=c["migratetype"] if a.grouping else 0,
                                     whole_zone=c["whole_zone"], direct=c["direct"], proactive=c["proactive"],
                                     ignore_skip_hint=c["ignore_skip_hint"],
                                     ignore_block_suitable=c["ignore_block_suitable"], wmark_min=c["wmark_min"],
                                     wmark_low=c["wmark_min"] + c["wmark_extra"],
                                     alloc_wmark=c["wmark_min"] + c["alloc_extra"],
                                     extfrag_threshold=c["extfrag_threshold"], proactive_wmark_low=wl,
                                     mover=mover, splitter=splitter)
            ret = rc.run()
            event(f"moves: {'some' if rc.moves else 'none'}, result {COMPACT_RESULT_NAMES[ret]}")
            event("a pinned page refused" if any(m[3] for m in rc.moves) else "no refusal")
            event("a large folio moved" if any(m[2] for m in rc.moves) else "no large folio moved")
            assert [tuple(m) for m in r["moves"].tolist()] == rc.moves
            assert r["result"] == COMPACT_RESULT_NAMES[ret]
            assert r["total_migrate_scanned"] == rc.total_migrate_scanned
            assert r["total_free_scanned"] == rc.total_free_scanned
        event("skip bits set" if any(zs.skip) else "no skip bit")
        counters = st_core.counters()
        for k in STAT_NAMES:
            assert counters[k] == zs.stats[k], k
        same(a, ref, st_core, zs)
        book.check()
        # pinned pages stayed where they were, allocated
        fm = a.frame_migratetypes()
        assert all(fm[p] >= 0 for p in pinned)
        moved_src = {s for s, d, o, rc in rc.moves if rc == 0}
        assert not moved_src & pinned


def test_differential_on_aged_zones():
    from thpbench.workloads import aged_allocator
    moved = []
    for seed, order, mode in ((0, -1, "sync"), (1, 9, "async"), (2, 9, "sync_light"), (3, 4, "async")):
        a, _ = aged_allocator(1 << 13, seed=seed)
        ref = reference_from(a)
        st_core, zs = CompactionState(a), ReferenceZoneState(ref)
        r = compact_zone(a, order, mode, state=st_core, trace=True)
        rc = ReferenceCompaction(ref, zs, order=order, mode=MODES[mode], whole_zone=order < 0,
                                 direct=mode == "async", ignore_skip_hint=order < 0)
        ret = rc.run()
        moved.append(r["pgmigrate_success"])
        assert [tuple(m) for m in r["moves"].tolist()] == rc.moves
        assert r["result"] == COMPACT_RESULT_NAMES[ret]
        same(a, ref, st_core, zs)
    assert min(moved[:3]) > 0, moved
