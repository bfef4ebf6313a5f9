"""Compaction in the simulated kernel: the MMCore mover, direct compaction on the THP
fault path per ``defrag``, kcompactd on the clock, deferral, /proc/sys/vm.

Every test writes a value per page, compacts, and reads every page back; check()
runs after every step (page tables vs rmap and mapcounts, page conservation, pins).
"""
import numpy as np
import pytest

from thpbench import mm_scenarios as S
from thpbench.kernel.compaction import fragmentation_score
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel

MiB = 1 << 20


def aged(mem_mib=128, touched=0.85, keep=0.25, seed=1, thp=None, vm=None, compaction=True, fork=False):
    """A machine whose memory is fragmented but compactable: one process wrote a value
    into ``touched`` of memory with 4 KiB pages, then gave back a random ``1 - keep``
    of them (MADV_DONTNEED).  Returns (kernel, process, addresses kept, their values)."""
    t = {"enabled": "never"}
    k = Kernel(mem_mib * MiB, thp=t, vm=vm, compaction=compaction)
    p = k.spawn()
    n = int(mem_mib * MiB * touched) // HPAGE_PMD_SIZE * HPAGE_PMD_SIZE
    a = p.mmap(n)
    pages = np.arange(a, a + n, PAGE_SIZE, dtype=np.int64)
    values = np.arange(1, len(pages) + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    p.touch_pages(pages, values=values)
    k.check()
    rng = np.random.default_rng(seed)
    kept = rng.random(len(pages)) < keep
    p.dontneed_pages(pages[~kept])
    k.check()
    for key, v in (thp or {}).items():
        k.sysfs[key] = v
    return k, p, pages[kept], values[kept]


def read_back(p, addrs, values):
    got, kinds = p.peek(addrs)
    # mapped (a page or in a THP), or swapped out by kswapd (peek reads the swap slot)
    assert np.isin(kinds, (1, 3, 4)).all(), "a page the test wrote is neither mapped nor in swap"
    np.testing.assert_array_equal(got, values)


def pfns(p, addrs):
    out = []
    for a in addrs:
        pfn, _ = p.folio_orders(int(a), PAGE_SIZE)
        out.append(int(pfn[0]))
    return np.array(out)


def unmovable_blocks(k):
    b = k.buddy.allocated_blocks()
    return {(int(r["pfn"]), int(r["order"])) for r in b if r["migratetype"] != 1}


# -- the mover ---------------------------------------------------------------------------

def test_compact_memory_moves_data_and_rewrites_every_page_table():
    k, p, addrs, values = aged()
    child = p.fork()                      # every kept page is mapped by both mms
    k.check()
    seen = []
    k.tlb_flush_hooks.append(lambda pid, start, n, kind: seen.append((pid, kind)))
    before_pfns = pfns(p, addrs)
    frag_before = fragmentation_score(k.buddy)
    out = k.compact_memory()
    k.check()
    assert out["pgmigrate_success"] > 0 and fragmentation_score(k.buddy) < frag_before
    after_pfns = pfns(p, addrs)
    assert (after_pfns != before_pfns).sum() > 0
    # parent and child both read the data at the new frames
    read_back(p, addrs, values)
    read_back(child, addrs, values)
    np.testing.assert_array_equal(pfns(child, addrs), after_pfns)
    moved = {pid for pid, kind in seen if kind == "migrate"}
    assert moved == {p.pid, child.pid}
    vs = k.vmstat()
    assert vs["pgmigrate_success"] == out["pgmigrate_success"] and vs["compact_isolated"] > 0
    # a write after the move breaks CoW on the new frame, the other mm keeps the value
    child.touch(int(addrs[0]), value=7)
    k.check()
    assert child.read(int(addrs[0])) == 7 and p.read(int(addrs[0])) == int(values[0])


def test_unmovable_pages_never_move():
    k, p, addrs, values = aged(thp={"enabled": "always"})
    q = k.spawn()
    z = q.mmap(8 * MiB)
    q.touch_range(z, 8 * MiB, write=False)            # the huge zero page
    hzp = k.core.huge_zero_pfn
    assert hzp >= 0
    pinned = addrs[::7]
    p.pin_pages(pinned)
    k.check()
    pinned_pfns = pfns(p, pinned)
    fixed = unmovable_blocks(k)                        # page tables, the huge zero page
    assert any(o == 9 for _, o in fixed) and sum(1 for _, o in fixed if o == 0) > 10
    out = k.compact_memory()
    k.check()
    assert out["pgmigrate_success"] > 0
    assert unmovable_blocks(k) == fixed and k.core.huge_zero_pfn == hzp
    np.testing.assert_array_equal(pfns(p, pinned), pinned_pfns)
    read_back(p, addrs, values)
    # pinned pages fail to migrate (an extra reference) ...
    assert k.vmstat()["pgmigrate_fail"] > 0
    with pytest.raises(ValueError):
        k.migrate_folio(int(pinned_pfns[0]))
    # ... until unpinned
    p.unpin_pages(pinned)
    k.check()
    k.compact_memory()
    k.check()
    assert (pfns(p, pinned) != pinned_pfns).any()
    read_back(p, addrs, values)


def test_pin_validation():
    k = Kernel(64 * MiB)
    p = k.spawn()
    a = p.mmap(4 * MiB)
    p.touch(a, value=1)
    with pytest.raises(ValueError, match="not present"):
        p.pin_pages([a + PAGE_SIZE])
    with pytest.raises(ValueError, match="not pinned"):
        p.unpin_pages([a])
    p.pin_pages([a])
    p.munmap(a, 4 * MiB)                # the pin does not outlive the folio (model)
    k.check()


def test_large_folios_migrate_whole_or_split():
    # a THP split to order-4 folios (debugfs split_huge_pages) is a large folio that
    # compaction isolates; with targets of its order it migrates whole, else it is split
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(16 * MiB)
    pages = np.arange(a, a + 16 * MiB, PAGE_SIZE, dtype=np.int64)
    vals = np.arange(len(pages), dtype=np.uint64) + 11
    p.touch_pages(pages, values=vals)
    assert k.split_huge_pages(p.pid, a, a + 16 * MiB, 4) == 8
    k.check()
    # fill the rest with 4 KiB pages; give back 3 of every 4 pages in the lower half
    # (order-0/1 holes) and 3 of every 4 aligned 64 KiB chunks in the upper half
    # (order-4 targets, which the free scanner meets first, from the top)
    k.sysfs["enabled"] = "never"
    q = k.spawn()
    n = 40 * MiB
    b = q.mmap(n)
    qp = np.arange(b, b + n, PAGE_SIZE, dtype=np.int64)
    q.touch_pages(qp, values=qp.astype(np.uint64))
    idx = np.arange(len(qp))
    hi = idx >= len(qp) // 2
    freed = (~hi & (idx % 4 != 0)) | (hi & ((idx // 16) % 4 != 0))
    q.dontneed_pages(qp[freed])
    k.check()
    before = pfns(p, pages[::16])
    out = k.compact_memory()
    k.check()
    read_back(p, pages, vals)
    read_back(q, qp[~freed], qp[~freed].astype(np.uint64))
    after = pfns(p, pages[::16])
    vs = k.core.stats()
    moved_whole = 0
    for i, pf in enumerate(after):
        pfn, orders = p.folio_orders(int(pages[16 * i]), 16 * PAGE_SIZE)
        if orders[0] == 4:
            assert (np.diff(pfn) == 1).all()          # still one order-4 folio
            moved_whole += int(pf != before[i])
        else:
            assert (orders == 0).all()                 # split for migration
    # targets of order 4 ran out: the first folios moved whole, the rest were split
    assert moved_whole > 0 and vs["x_migration_split"] > 0
    assert out["pgmigrate_success"] > 0
    # thp_migration_* count PMD-sized folios only (folio_test_pmd_mappable), as the kernel
    assert vs["thp_migration_split"] == vs["thp_migration_success"] == 0


# -- direct compaction on the THP fault path ----------------------------------------------

def fault_thps(k, mib=32, madvise=True):
    q = k.spawn()
    b = q.mmap(mib * MiB)
    if madvise:
        q.madvise(b, mib * MiB, "MADV_HUGEPAGE")
    q.touch_range(b, mib * MiB)
    k.check()
    return q, b


def test_defrag_always_stalls_and_succeeds_where_never_falls_back():
    res = {}
    for defrag in ("always", "never"):
        k, p, addrs, values = aged(thp={"enabled": "madvise", "defrag": defrag},
                                   vm={"compaction_proactiveness": 0})
        before = k.vmstat()
        fault_thps(k)
        vs = k.vmstat()
        res[defrag] = {c: vs[c] - before[c] for c in ("thp_fault_alloc", "thp_fault_fallback", "compact_stall",
                                                      "compact_success", "compact_fail", "pgmigrate_success")}
        read_back(p, addrs, values)
        lat = k.thp_fault_latencies()
        assert len(lat) == 16 and lat["thp"].sum() == res[defrag]["thp_fault_alloc"]
        res[defrag]["worst_ns"] = lat["latency_ns"].max()
        fault_2m = k.costs.fault_2m_ns
    a, n = res["always"], res["never"]
    assert a["compact_stall"] > 0 and a["compact_success"] > 0 and a["pgmigrate_success"] > 0
    assert a["compact_stall"] == a["compact_success"] + a["compact_fail"]
    assert a["thp_fault_alloc"] > n["thp_fault_alloc"] and n["thp_fault_fallback"] > a["thp_fault_fallback"]
    assert n["compact_stall"] == 0 and n["pgmigrate_success"] == 0
    # the stall shows in the fault's latency (and on the faulting task's clock)
    assert n["worst_ns"] == pytest.approx(fault_2m) and a["worst_ns"] > 1.5 * fault_2m


def test_defer_wakes_kcompactd_instead_of_stalling():
    k, p, addrs, values = aged(thp={"enabled": "madvise", "defrag": "defer"}, vm={"compaction_proactiveness": 0})
    before = k.vmstat()
    fault_thps(k)
    vs = k.vmstat()
    assert vs["compact_stall"] == before["compact_stall"] == 0
    assert vs["thp_fault_fallback"] > 0
    assert vs["compact_daemon_wake"] >= 1 and vs["compact_daemon_migrate_scanned"] > 0
    assert k.kcompactd_cpu_ns > 0
    assert (k.thp_fault_latencies()["compact_stall"] == 0).all()
    read_back(p, addrs, values)
    # what kcompactd freed serves a later fault without a stall
    alloc = vs["thp_fault_alloc"]
    fault_thps(k, mib=2)
    assert k.vmstat()["thp_fault_alloc"] == alloc + 1 and k.vmstat()["compact_stall"] == 0


def test_noretry_thp_fault_gives_up_when_compaction_is_skipped():
    # memory (not fragmentation) is short: compaction_suitable() says skip.  A fault in
    # a VMA that was not madvised under defrag=always carries __GFP_NORETRY and gives
    # up without reclaim; the madvised one reclaims (the deferred-split shrinker).
    on = S.compare_fault_modes(compaction=True).set_index(["enabled", "defrag"])
    off = S.compare_fault_modes(compaction=False).set_index(["enabled", "defrag"])
    assert on.loc[("always", "always"), "huge MiB (madvised)"] == 24
    assert off.loc[("always", "always"), "huge MiB (not madvised)"] == 24
    assert on.loc[("always", "always"), "huge MiB (not madvised)"] < 24


def test_deferral_after_failures():
    # pin a page in every pageblock: compaction can free no order-9 block
    k, p, addrs, values = aged(vm={"compaction_proactiveness": 0})
    pb = (pfns(p, addrs) >> 9)
    _, first = np.unique(pb, return_index=True)
    p.pin_pages(addrs[first])
    k.check()
    k.sysfs["enabled"] = "always"
    k.sysfs["defrag"] = "defer"
    q, b = fault_thps(k, mib=32, madvise=False)         # wakes kcompactd, which fails and defers
    st = k.compaction_state.zone_fields()
    assert k.vmstat()["compact_daemon_wake"] >= 1 and st["compact_defer_shift"] >= 1
    assert st["compact_order_failed"] <= 9
    # now a NORETRY fault (defrag=always, not madvised) finds the zone deferred: a stall
    # that scans nothing and fails, and no reclaim
    k.sysfs["defrag"] = "always"
    before = k.vmstat()
    k.clear_thp_fault_latencies()
    q2, _ = fault_thps(k, mib=2, madvise=False)
    vs = k.vmstat()
    lat = k.thp_fault_latencies()
    assert list(lat["compact_result"]) == ["COMPACT_DEFERRED"]
    assert lat["pages_scanned"].iloc[0] == 0 and not lat["thp"].iloc[0]
    assert vs["compact_stall"] - before["compact_stall"] == 1
    assert vs["compact_fail"] - before["compact_fail"] == 1
    assert vs["compact_migrate_scanned"] == before["compact_migrate_scanned"]
    read_back(p, addrs, values)


def test_kcompactd_proactive_runs_on_the_clock():
    k, p, addrs, values = aged(vm={"compaction_proactiveness": 50})
    s0 = fragmentation_score(k.buddy)
    assert s0 > 60                                      # above the high mark for 50
    k.advance(400_000_000)
    assert k.vmstat()["compact_daemon_migrate_scanned"] == 0
    k.advance(200_000_000)                              # the 500 ms check
    k.check()
    ev = k.kcompactd.history
    assert list(ev["event"])[:1] == ["proactive"] and ev["time_ns"].iloc[0] == 500_000_000
    assert k.vmstat()["compact_daemon_migrate_scanned"] > 0 and k.vmstat()["pgmigrate_success"] > 0
    assert fragmentation_score(k.buddy) < s0
    assert k.kcompactd_cpu_ns > 0
    read_back(p, addrs, values)
    # proactiveness 0: never
    k2, p2, a2, v2 = aged(vm={"compaction_proactiveness": 0})
    k2.advance(5_000_000_000)
    assert k2.vmstat()["compact_daemon_migrate_scanned"] == 0 and k2.kcompactd.events == []


def test_fault_latency_percentiles_always_vs_defer():
    from thpbench.experiments import defrag_fault_latency
    df = defrag_fault_latency(modes=("always", "defer"), mem_mib=128, fault_mib=32, seed=1)
    assert set(df["defrag"]) == {"always", "defer"}
    d = df.set_index(["defrag", "percentile"])["latency_us"]
    # defer never stalls: its worst fault is a plain 2 MiB fault
    assert d[("defer", 100.0)] < d[("always", 100.0)]
    assert d[("always", 100.0)] > 2 * d[("always", 50.0)]


def test_compaction_off_is_a_kernel_without_it():
    k, p, addrs, values = aged(compaction=False, thp={"enabled": "madvise", "defrag": "always"})
    fault_thps(k)
    vs = k.vmstat()
    assert vs["compact_stall"] == 0 and vs["pgmigrate_success"] == 0 and vs["thp_fault_fallback"] > 0
    assert k.compact_memory()["result"] == "COMPACT_SKIPPED"
    k.advance(2_000_000_000)
    assert k.kcompactd.events == []


def test_vm_sysctl():
    k = Kernel(64 * MiB)
    assert k.vm_sysctl["compaction_proactiveness"] == "20"
    assert k.vm_sysctl["/proc/sys/vm/extfrag_threshold"] == "500"
    k.vm_sysctl["compaction_proactiveness"] = 0
    assert k.kcompactd.compaction_proactiveness == 0
    k.vm_sysctl["vm.extfrag_threshold"] = "700"
    assert k.kcompactd.extfrag_threshold == 700
    with pytest.raises(ValueError, match="out of range"):
        k.vm_sysctl["compaction_proactiveness"] = 101
    with pytest.raises(ValueError, match="not an integer"):
        k.vm_sysctl["extfrag_threshold"] = "lots"
    with pytest.raises(KeyError, match="no such vm sysctl"):
        k.vm_sysctl["swappiness_typo"]
    with pytest.raises(PermissionError):
        k.vm_sysctl["compact_memory"]
    with pytest.raises(ValueError):
        Kernel(64 * MiB, vm={"compact_memory": 1})
    with pytest.raises(TypeError):
        Kernel(64 * MiB, compaction="yes")
    k.vm_sysctl["compact_memory"] = 1
    assert "compact_stall" in k.vmstat() and "compact_daemon_wake" in k.vmstat()
    k.check()


def test_gorman_shaped_table_compaction_on_beats_off():
    from thpbench.experiments import gorman_hugepage_allocation
    df = gorman_hugepage_allocation(mem_mib=128, target=0.9, defrag="defer", interval_ms=100, seed=2)
    off, on = df.set_index("compaction").loc[False], df.set_index("compaction").loc[True]
    assert off["attempts"] == on["attempts"] == 57
    assert on["huge_pages"] > off["huge_pages"] > 0
    assert off["pgmigrate_success"] == 0 and on["pgmigrate_success"] > 0
    assert 0 < on["success_rate"] <= 1
    # fallback pages are given back and the aged process fits: no memory pressure, so
    # kswapd and direct reclaim steal nothing (THP allocations compact, they do not
    # reclaim: the kernel lost lumpy reclaim in 3.5)
    assert (df["pages_reclaimed"] == 0).all()
    # direct compaction (defrag=always) also gains over no compaction
    da = gorman_hugepage_allocation(mem_mib=128, seed=2).set_index("compaction")
    assert da.loc[True, "huge_pages"] > da.loc[False, "huge_pages"] and da.loc[True, "compact_stall"] > 0
    with pytest.raises(ValueError):
        gorman_hugepage_allocation(target=1.5)


def test_khugepaged_collapse_allocation_compacts_with_khugepaged_defrag():
    res = {}
    for kd in (1, 0):
        k, p, addrs, values = aged(vm={"compaction_proactiveness": 0})
        q = k.spawn()
        b = q.mmap(24 * MiB)
        q.touch_range(b, 24 * MiB)                      # 4 KiB pages (THP was off)
        k.check()
        # use up the free pageblocks so that collapse needs compaction
        k.sysfs["enabled"] = "always"
        k.sysfs["defrag"] = "never"
        r = k.spawn()
        c = r.mmap(64 * MiB)
        r.touch_range(c, 64 * MiB, stride=HPAGE_PMD_SIZE)
        k.sysfs["enabled"] = "madvise"
        k.sysfs["khugepaged/defrag"] = kd
        before, clock, cpu = k.vmstat(), k.now_ns, k.khugepaged_cpu_ns
        q.madvise(b, 24 * MiB, "MADV_HUGEPAGE")
        k.khugepaged_scan_now()
        k.check()
        vs = k.vmstat()
        res[kd] = {n: vs[n] - before[n] for n in ("thp_collapse_alloc", "thp_collapse_alloc_failed", "compact_stall")}
        res[kd]["cpu"] = k.khugepaged_cpu_ns - cpu
        read_back(p, addrs, values)
        got, _ = q.peek(np.arange(b, b + 24 * MiB, PAGE_SIZE))
        np.testing.assert_array_equal(got, np.arange(b, b + 24 * MiB, PAGE_SIZE).astype(np.uint64))
    assert res[1]["compact_stall"] > 0 and res[1]["thp_collapse_alloc"] > res[0]["thp_collapse_alloc"]
    assert res[0]["compact_stall"] == 0 and res[0]["thp_collapse_alloc_failed"] > 0
    assert res[1]["cpu"] > res[0]["cpu"]        # khugepaged's own CPU pays the compaction


def test_kswapd_wakeup_resets_skip_bits_and_wakes_kcompactd():
    k, p, addrs, values = aged(thp={"enabled": "madvise", "defrag": "always"}, vm={"compaction_proactiveness": 0})
    st = k.compaction_state
    for _ in range(12):                             # direct compaction until its scanners meet
        fault_thps(k, mib=8)
        if st.zone_fields()["compact_blockskip_flush"]:
            break
    assert st.zone_fields()["compact_blockskip_flush"] and st.pageblock_skip.sum() > 0
    wakes = k.core.stats()["x_kswapd_wake"]
    # order-0 faults below the low watermark wake kswapd (GFP_HIGHUSER_MOVABLE)
    free_above_low = k.buddy.nr_free_pages - k.watermarks["low"]
    r = k.spawn()
    c = r.mmap((free_above_low + 64) * PAGE_SIZE)
    r.touch_range(c, (free_above_low + 64) * PAGE_SIZE)
    k.check()
    assert k.core.stats()["x_kswapd_wake"] > wakes
    assert not st.zone_fields()["compact_blockskip_flush"]     # reset_isolation_suitable() ran
    read_back(p, addrs, values)


def test_extfrag_threshold_gates_direct_compaction():
    # compaction_suitable(): for costly orders a fragmentation index at or below
    # vm.extfrag_threshold means "lack of memory", and compaction is skipped (no stall)
    res = {}
    for thr in (500, 1000):
        k, p, addrs, values = aged(thp={"enabled": "madvise", "defrag": "always"},
                                   vm={"compaction_proactiveness": 0, "extfrag_threshold": thr})
        fault_thps(k)
        vs = k.vmstat()
        res[thr] = (vs["compact_stall"], vs["thp_fault_alloc"])
        read_back(p, addrs, values)
    assert res[500][0] > 0 and res[1000][0] == 0 and res[500][1] > res[1000][1]


def test_experiment_figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from thpbench.experiments import (defrag_fault_latency, gorman_hugepage_allocation, plot_defrag_latency,
                                      plot_gorman)
    fig, (a, b) = plt.subplots(1, 2)
    lat = defrag_fault_latency(mem_mib=64, fault_mib=16)
    plot_defrag_latency(lat, a)
    assert len(a.patches) == len(lat) and a.get_yscale() == "log"
    g = gorman_hugepage_allocation(mem_mib=64)
    plot_gorman(g, b)
    heights = [p.get_height() for p in b.patches]
    np.testing.assert_allclose(heights, 100 * g["success_rate"].to_numpy())
    plt.close(fig)


def test_direct_reclaim_hook_is_called_and_its_errors_surface():
    from thpbench._core import _mm_set_reclaim_hook
    # without LRU reclaim (lru_reclaim=False) the slow path's reclaim step is this hook
    # alone: kswapd would otherwise keep the zone above min and the hook never runs
    k = Kernel(64 * MiB, thp={"enabled": "never"}, lru_reclaim=False)
    calls = []

    def hook(order):
        calls.append(order)
        if len(calls) == 1:
            raise RuntimeError("reclaim failed")
        return 0
    _mm_set_reclaim_hook(k.core, hook)
    p = k.spawn()
    a = p.mmap(64 * MiB)
    with pytest.raises(RuntimeError, match="reclaim failed"):
        p.touch_range(a, 64 * MiB)          # below the min watermark: direct reclaim
    assert calls == [0]
    k.check()
