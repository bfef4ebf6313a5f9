"""Core behaviour of thpbench.Kernel: VMAs, the fault path, splitting, fork, swap, sysfs."""
import errno

import numpy as np
import pytest

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE, PROT_READ, PROT_WRITE
from thpbench.kernel import Kernel, OutOfMemory, SegmentationFault

MiB = 1 << 20


@pytest.fixture
def kernel():
    k = Kernel(128 * MiB, thp={"enabled": "always"})
    yield k
    k.check()


def test_write_fault_allocates_thp_and_read_fault_maps_huge_zero(kernel):
    p = kernel.spawn()
    a = p.mmap(4 * HPAGE_PMD_SIZE)
    p.touch(a, write=True, value=42)
    kernel.check()
    p.touch(a + HPAGE_PMD_SIZE, write=False)
    kernel.check()
    assert list(p.pmd_kinds(a, a + 4 * HPAGE_PMD_SIZE)) == [2, 3, 0, 0]
    vs = kernel.vmstat()
    assert vs["thp_fault_alloc"] == 1 and vs["thp_zero_page_alloc"] == 1
    assert p.status()["RssAnon"] == 2048          # the huge zero page is not RSS
    assert kernel.meminfo()["AnonHugePages"] == 2048
    assert p.peek([a])[0][0] == 42


def test_write_to_huge_zero_page_replaces_it_with_a_thp(kernel):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch(a, write=False)
    p.touch(a + PAGE_SIZE, value=9)
    kernel.check()
    assert list(p.pmd_kinds(a, a + HPAGE_PMD_SIZE)) == [2]
    assert kernel.vmstat()["thp_fault_alloc"] == 1


def test_enabled_never_and_madvise_modes():
    for enabled, madv, huge in [("never", True, False), ("madvise", False, False), ("madvise", True, True),
                                ("always", False, True)]:
        k = Kernel(64 * MiB, thp={"enabled": enabled})
        p = k.spawn()
        a = p.mmap(HPAGE_PMD_SIZE)
        if madv:
            p.madvise(a, HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
        p.touch(a)
        k.check()
        assert bool(p.pmd_mapped(a, a + HPAGE_PMD_SIZE)[0]) == huge, (enabled, madv)
        assert p.status()["RssAnon"] == (2048 if huge else 4)


def test_nohugepage_vma_and_unaligned_vma_fall_back_to_small_pages(kernel):
    p = kernel.spawn()
    a = p.mmap(2 * HPAGE_PMD_SIZE)
    p.madvise(a, 2 * HPAGE_PMD_SIZE, "MADV_NOHUGEPAGE")
    p.touch(a)
    b = p.mmap(HPAGE_PMD_SIZE + PAGE_SIZE)          # not PMD aligned: no aligned 2 MiB inside
    p.touch(b)
    assert not p.pmd_mapped(a, a + 2 * HPAGE_PMD_SIZE).any()
    assert p.status()["RssAnon"] == 8
    assert kernel.vmstat()["thp_fault_alloc"] == 0


def test_thp_fault_fallback_when_no_order9_block():
    k = Kernel(64 * MiB, thp={"enabled": "always", "defrag": "never", "shrink_underused": 0})
    p = k.spawn()
    # fragment memory: small pages spread so that no order-9 block stays free
    a = p.mmap(40 * MiB)
    p.madvise(a, 40 * MiB, "MADV_NOHUGEPAGE")
    p.touch_range(a, 40 * MiB)
    # free every other page: holes everywhere, none of order 9
    addrs = np.arange(a, a + 40 * MiB, 2 * PAGE_SIZE)
    for x in addrs[:2000]:
        p.madvise(int(x), PAGE_SIZE, "MADV_DONTNEED")
    k.check()
    b = p.mmap(HPAGE_PMD_SIZE * 16)
    before = k.vmstat()
    try:
        p.touch_range(b, HPAGE_PMD_SIZE * 16, stride=HPAGE_PMD_SIZE)
    except OutOfMemory:
        pass
    k.check()
    vs = k.vmstat()
    assert vs["thp_fault_fallback"] > before["thp_fault_fallback"]


def test_dontneed_splits_pmd_and_queues_partially_mapped_thp(kernel):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_range(a, HPAGE_PMD_SIZE)
    p.madvise(a, PAGE_SIZE, "MADV_DONTNEED")
    kernel.check()
    vs = kernel.vmstat()
    assert vs["thp_split_pmd"] == 1 and vs["thp_deferred_split_page"] == 1
    assert kernel.core.deferred_split_queue_len == 1
    assert p.status()["RssAnon"] == 2044
    free_before = kernel.buddy.nr_free_pages
    assert kernel.shrink() == 1
    kernel.check()
    assert kernel.vmstat()["thp_split_page"] == 1
    assert kernel.buddy.nr_free_pages == free_before + 1     # the unmapped subpage
    vals, kinds = p.peek(np.arange(a, a + HPAGE_PMD_SIZE, PAGE_SIZE))
    assert kinds[0] == 0 and (kinds[1:] == 1).all()
    assert (vals[1:] == np.arange(a + PAGE_SIZE, a + HPAGE_PMD_SIZE, PAGE_SIZE)).all()


def test_mprotect_partial_splits_pmd_and_write_faults_segv(kernel):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_range(a, HPAGE_PMD_SIZE)
    p.mprotect(a, PAGE_SIZE, PROT_READ)
    kernel.check()
    assert len(p.vmas) == 2 and kernel.vmstat()["thp_split_pmd"] == 1
    with pytest.raises(SegmentationFault) as ei:
        p.touch(a, write=True)
    assert ei.value.code == "SEGV_ACCERR"
    kernel.check()
    p.touch(a, write=False)
    p.mprotect(a, PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert len(p.vmas) == 1                               # merged back
    p.touch(a, write=True, value=3)
    assert p.peek([a])[0][0] == 3


def test_fork_cow_keeps_both_sides_data(kernel):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_range(a, HPAGE_PMD_SIZE)
    c = p.fork()
    kernel.check()
    assert c.check_huge(a, 1) and p.check_huge(a, 1)
    c.touch(a + PAGE_SIZE, value=1234)       # CoW on a shared THP: the child's PMD is split
    kernel.check()
    assert p.check_huge(a, 1) and c.check_huge(a, 0)
    assert c.peek([a + PAGE_SIZE])[0][0] == 1234
    assert p.peek([a + PAGE_SIZE])[0][0] == a + PAGE_SIZE
    p.touch(a + PAGE_SIZE, value=99)          # the parent's folio is still mapped by the child: split too
    kernel.check()
    assert p.peek([a + PAGE_SIZE])[0][0] == 99 and c.peek([a + PAGE_SIZE])[0][0] == 1234
    c.exit()
    kernel.check()
    p.touch(a + 2 * PAGE_SIZE, value=5)       # now exclusive again: reused in place
    kernel.check()
    p.exit()
    kernel.check()
    assert kernel.meminfo()["AnonPages"] == 0 and kernel.meminfo()["PageTables"] == 0


def test_small_page_cow_after_fork(kernel):
    kernel.sysfs["enabled"] = "never"
    p = kernel.spawn()
    a = p.mmap(16 * PAGE_SIZE)
    p.touch_range(a, 16 * PAGE_SIZE)
    c = p.fork()
    c.touch(a, value=1)
    p.touch(a + PAGE_SIZE, value=2)
    kernel.check()
    assert kernel.core.stats()["x_cow_copies"] == 2
    assert p.peek([a])[0][0] == a and c.peek([a])[0][0] == 1
    assert c.peek([a + PAGE_SIZE])[0][0] == a + PAGE_SIZE and p.peek([a + PAGE_SIZE])[0][0] == 2


def test_pageout_and_swapin_preserve_data(kernel):
    kernel.sysfs["enabled"] = "never"
    p = kernel.spawn()
    a = p.mmap(64 * PAGE_SIZE)
    p.touch_pages(np.arange(a, a + 64 * PAGE_SIZE, PAGE_SIZE), values=np.arange(64) + 0xdead0000)
    assert p.pageout(a, 10 * PAGE_SIZE) == 10
    kernel.check()
    assert p.status()["VmSwap"] == 40 and p.smaps_vma(a)["Swap"] == 40
    _, kinds = p.peek([a, a + 10 * PAGE_SIZE])
    assert list(kinds) == [3, 1]
    assert p.read(a + 3 * PAGE_SIZE) == 0xdead0003
    kernel.check()
    vs = kernel.vmstat()
    assert vs["pswpout"] == 10 and vs["pswpin"] == 1


def test_mremap_moves_pages_with_content(kernel):
    p = kernel.spawn()
    a = p.mmap(4 * HPAGE_PMD_SIZE)
    p.touch_range(a, 4 * HPAGE_PMD_SIZE)
    new = p.mremap(a, PAGE_SIZE, PAGE_SIZE)
    kernel.check()
    assert p.peek([new])[0][0] == a
    assert kernel.vmstat()["thp_split_pmd"] == 1
    pfn, order = p.folio_orders(new, PAGE_SIZE)
    assert order[0] == 9                  # still a page of the THP
    # a whole aligned PMD moves as a PMD
    dst = p.mremap(a + HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, new_addr=8 * HPAGE_PMD_SIZE)
    kernel.check()
    assert p.check_huge(dst, 1) and p.peek([dst])[0][0] == a + HPAGE_PMD_SIZE


def test_bulk_touch_stops_at_segv_and_state_stays_consistent(kernel):
    p = kernel.spawn()
    a = p.mmap(8 * PAGE_SIZE)
    addrs = np.array([a, a + PAGE_SIZE, a - 100 * HPAGE_PMD_SIZE, a + 2 * PAGE_SIZE])
    with pytest.raises(SegmentationFault) as ei:
        p.touch_pages(addrs)
    assert ei.value.done == 2 and ei.value.code == "SEGV_MAPERR"
    kernel.check()
    assert p.status()["RssAnon"] == 8


def test_oom_is_an_exception_and_consistent():
    k = Kernel(32 * MiB, thp={"enabled": "never"}, swap_bytes=0)
    p = k.spawn()
    a = p.mmap(64 * MiB)
    with pytest.raises(OutOfMemory) as ei:
        p.touch_range(a, 64 * MiB)
    k.check()
    assert ei.value.done > 0
    assert k.buddy.nr_free_pages <= k.watermarks["min"] + 1
    assert k.vmstat()["oom_kill"] == 1
    p.exit()
    k.check()
    assert k.buddy.nr_free_pages == k.nr_pages


@pytest.mark.parametrize("call", [
    lambda p, a: p.munmap(a + 1, PAGE_SIZE),
    lambda p, a: p.munmap(a + 64 * HPAGE_PMD_SIZE, PAGE_SIZE),
    lambda p, a: p.munmap(a - 8 * HPAGE_PMD_SIZE, PAGE_SIZE),
    lambda p, a: p.mprotect(a - PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ),
    lambda p, a: p.mprotect(a, PAGE_SIZE, 0x4),
    lambda p, a: p.madvise(a, PAGE_SIZE, "MADV_FREE_ME"),
    lambda p, a: p.madvise(a, PAGE_SIZE, 999),
    lambda p, a: p.madvise(a - HPAGE_PMD_SIZE, PAGE_SIZE, "MADV_DONTNEED"),
    lambda p, a: p.mmap(0),
    lambda p, a: p.mmap(PAGE_SIZE, addr=a),
    lambda p, a: p.munmap(-PAGE_SIZE, PAGE_SIZE),
    lambda p, a: p.touch_range(a, PAGE_SIZE, stride=100),
    lambda p, a: p.kernel.split_huge_pages(p.pid, a, a + PAGE_SIZE, 9),
])
def test_bad_input_raises_value_error_and_changes_nothing(kernel, call):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_range(a, HPAGE_PMD_SIZE)
    before = (kernel.vmstat(), [(v.start, v.end, v.prot, v.hugepage) for v in p.vmas], kernel.buddy.nr_free_pages)
    with pytest.raises(ValueError):
        call(p, a)
    kernel.check()
    assert before == (kernel.vmstat(), [(v.start, v.end, v.prot, v.hugepage) for v in p.vmas],
                      kernel.buddy.nr_free_pages)


def test_bad_types_and_touching_outside(kernel):
    p = kernel.spawn()
    with pytest.raises(TypeError):
        p.mmap(1.5)
    with pytest.raises(SegmentationFault):
        p.touch(12345 * PAGE_SIZE)
    with pytest.raises(SegmentationFault):
        p.touch(-1)
    with pytest.raises(SegmentationFault):
        p.touch_pages([kernel.virtual_bytes])
    kernel.check()


def test_sysfs_read_write_and_validation(kernel):
    s = kernel.sysfs
    assert s["enabled"] == "[always] madvise never"
    assert s["defrag"] == "always defer defer+madvise [madvise] never"
    assert s["khugepaged/max_ptes_none"] == "511"
    assert s["/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan"] == "4096"
    assert s["khugepaged/scan_sleep_millisecs"] == "10000" and s["khugepaged/alloc_sleep_millisecs"] == "60000"
    assert s["khugepaged/max_ptes_swap"] == "64" and s["khugepaged/max_ptes_shared"] == "256"
    assert s["use_zero_page"] == "1" and s["shrink_underused"] == "1" and s["khugepaged/defrag"] == "1"
    s["defrag"] = "defer+madvise"
    assert s["defrag"] == "always defer [defer+madvise] madvise never"
    for key, bad in [("enabled", "sometimes"), ("khugepaged/max_ptes_none", "512"), ("use_zero_page", "2"),
                     ("khugepaged/pages_to_scan", "x"), ("khugepaged/pages_to_scan", "0")]:
        with pytest.raises(ValueError):
            s[key] = bad
    with pytest.raises(KeyError):
        s["nonexistent"] = 1
    with pytest.raises(PermissionError):
        s["khugepaged/full_scans"] = 3
    text = s.text()
    k2 = Kernel(64 * MiB)
    k2.sysfs.write_text(text)
    assert k2.sysfs.values() == s.values()


def test_debugfs_split_text_and_tlb_hooks(kernel):
    seen = []
    kernel.tlb_flush_hooks.append(lambda pid, start, n, kind: seen.append((pid, start, n, kind)))
    p = kernel.spawn()
    a = p.mmap(2 * HPAGE_PMD_SIZE)
    p.touch_range(a, 2 * HPAGE_PMD_SIZE)
    # THP faults install PMDs: hooks see them, nothing is flushed
    assert {s[3] for s in seen} == {"thp_fault"} and len(seen) == 2
    n = kernel.write_debugfs_split(f"{p.pid},{a:#x},{a + 2 * HPAGE_PMD_SIZE:#x},0")
    kernel.check()
    assert n == 2
    assert (p.pid, a, HPAGE_PMD_SIZE, "split_pmd") in seen
    assert (p.pid, a + HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "split_pmd") in seen
    ev = kernel.events()
    assert set(ev.kind) >= {"thp_fault", "split_pmd"}


def test_result_dataframe_over_time(kernel):
    kernel.sysfs["khugepaged/scan_sleep_millisecs"] = 10
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.madvise(a, HPAGE_PMD_SIZE, "MADV_NOHUGEPAGE")
    p.touch_range(a, HPAGE_PMD_SIZE)
    p.madvise(a, HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
    kernel.advance(100_000_000)
    r = kernel.result()
    assert len(r.df) >= 2 and r.df.t_ns.is_monotonic_increasing
    assert r.df.pages_collapsed.iloc[-1] == 1
    assert {"t_ns", "metric", "value"} == set(r.timeseries().columns)


def test_watermarks_follow_min_free_kbytes():
    k = Kernel(1 << 30, thp={"enabled": "never"})
    assert k.min_free_kbytes == 4096                       # sqrt(16 * 1048576 kB)
    k.sysfs["enabled"] = "madvise"                         # khugepaged: set_recommended_min_free_kbytes
    assert k.min_free_kbytes == 512 * 2 * 11 * 4           # x86-64: two populated zones, DMA and DMA32
    wm = k.watermarks                                      # (tests/kernel/test_procfs_watermarks.py)
    assert 512 * 2 * 11 <= wm["min"] < wm["low"] < wm["high"]
    small = Kernel(64 * MiB)
    assert small.min_free_kbytes == (16000 // 20) * 4       # capped at 5% of nr_free_buffer_pages()


def test_khugepaged_alloc_failure_sleeps_alloc_sleep_millisecs():
    # without LRU reclaim: kswapd would free the filler's memory and kcompactd assemble
    # the huge pages, and the collapse would not keep failing (that is tested elsewhere)
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/defrag": 0,
                              "khugepaged/scan_sleep_millisecs": 100}, lru_reclaim=False)
    p = k.spawn()
    a = p.mmap(2 * HPAGE_PMD_SIZE)
    p.touch_range(a, 2 * HPAGE_PMD_SIZE)
    filler = k.spawn()
    n = k.buddy.nr_free_pages - k.watermarks["min"] - 300
    f = filler.mmap(n * PAGE_SIZE)
    filler.madvise(f, n * PAGE_SIZE, "MADV_NOHUGEPAGE")
    filler.touch_range(f, n * PAGE_SIZE)
    k.check()
    p.madvise(a, 2 * HPAGE_PMD_SIZE, "MADV_HUGEPAGE")        # khugepaged wakes at once and fails
    t0 = k.now_ns
    assert k.vmstat()["thp_collapse_alloc_failed"] == 1 and k.pages_collapsed == 0
    k.advance(59_000_000_000)                               # alloc_sleep_millisecs = 60000
    assert k.vmstat()["thp_collapse_alloc_failed"] == 1
    # at 60 s the pass resumes and fails again: a second failure ends the pass; the
    # next pass starts scan_sleep_millisecs (100 ms) later and fails once more
    k.advance(2_000_000_000)
    assert k.vmstat()["thp_collapse_alloc_failed"] == 3
    fails = k.result().df.thp_collapse_alloc_failed.diff().fillna(0)
    assert list((k.result().df.t_ns[fails > 0] - t0) // 1_000_000) == [60_000, 60_100]
    filler.exit()
    k.advance(61_000_000_000)
    k.check()
    assert k.pages_collapsed == 2 and p.check_huge(a, 2)
    assert k.vmstat()["thp_collapse_alloc"] == 2


def test_migrate_folio_moves_content_and_mappings(kernel):
    seen = []
    kernel.tlb_flush_hooks.append(lambda pid, start, n, kind: seen.append((pid, start, n, kind)))
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_pages(np.arange(a, a + HPAGE_PMD_SIZE, PAGE_SIZE), values=np.arange(512) + 7)
    c = p.fork()
    (pfn,), _ = p.folio_orders(a, PAGE_SIZE)
    free = kernel.buddy.free_blocks()
    target = int(free[free["order"] >= 9]["pfn"][-1])
    new = kernel.migrate_folio(pfn, target)
    kernel.check()
    assert new == target
    for q in (p, c):
        (qpfn,), (order,) = q.folio_orders(a, PAGE_SIZE)
        assert qpfn == target and order == 9 and q.check_huge(a, 1)
        assert list(q.peek(np.arange(a, a + HPAGE_PMD_SIZE, PAGE_SIZE))[0]) == list(range(7, 519))
    assert (p.pid, a, HPAGE_PMD_SIZE, "migrate") in seen and (c.pid, a, HPAGE_PMD_SIZE, "migrate") in seen
    # small pages, to wherever the allocator puts them
    kernel.sysfs["enabled"] = "never"
    b = p.mmap(4 * PAGE_SIZE)
    p.touch(b, value=99)
    (spfn,), _ = p.folio_orders(b, PAGE_SIZE)
    n2 = kernel.migrate_folio(spfn)
    kernel.check()
    assert n2 != spfn and p.peek([b])[0][0] == 99
    with pytest.raises(ValueError):
        kernel.migrate_folio(spfn)          # freed by the migration
    with pytest.raises(ValueError):
        kernel.migrate_folio(n2, target_pfn=target)     # not free


def test_advance_samples_on_a_grid():
    k = Kernel(64 * MiB, thp={"enabled": "never"})
    k.advance(1_000_000_000, sample_every_ns=250_000_000)
    assert list(k.result().df.t_ns) == [250_000_000, 500_000_000, 750_000_000, 1_000_000_000]
    with pytest.raises(ValueError):
        k.advance(-1)
    with pytest.raises(ValueError):
        k.advance(10, sample_every_ns=0)


def test_proc_text_formats(kernel):
    p = kernel.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch(a)
    assert "thp_fault_alloc 1\n" in kernel.vmstat_text()
    assert "AnonHugePages:      2048 kB\n" in kernel.meminfo_text()
    assert kernel.meminfo_text().startswith("MemTotal:         131072 kB\n")


def test_khugepaged_stops_with_enabled_never_and_restarts():
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 10})
    p = k.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    p.touch_range(a, 16 * PAGE_SIZE)
    k.sysfs["enabled"] = "never"
    p.madvise(a, HPAGE_PMD_SIZE, "MADV_HUGEPAGE")      # not registered: THP is off
    k.advance(1_000_000_000)
    assert k.pages_collapsed == 0
    k.sysfs["enabled"] = "madvise"
    p.touch(a)                                          # khugepaged_enter_vma() on the next fault
    k.advance(100_000_000)
    assert k.pages_collapsed == 1
    k.sysfs["enabled"] = "never"
    k.advance(100_000_000)                              # khugepaged goes idle with its mm still listed
    p.madvise(a, PAGE_SIZE, "MADV_DONTNEED")
    k.sysfs["enabled"] = "madvise"                      # start_stop_khugepaged() wakes it
    k.advance(100_000_000)
    k.check()
    assert k.pages_collapsed == 2 and p.check_huge(a, 1)


def test_madvise_collapse_stops_at_an_error_and_reports_errno():
    k = Kernel(64 * MiB, thp={"enabled": "never"})
    p = k.spawn()
    a = p.mmap(3 * HPAGE_PMD_SIZE)
    p.touch_range(a, HPAGE_PMD_SIZE)                    # PMD 0 full, PMD 1 empty, PMD 2 full
    p.touch_range(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE)
    assert p.madvise(a, 3 * HPAGE_PMD_SIZE, "MADV_COLLAPSE") == -errno.EINVAL    # SCAN_PMD_NONE
    k.check()
    assert list(p.pmd_kinds(a, a + 3 * HPAGE_PMD_SIZE)) == [2, 0, 1]             # PMD 2 not tried
    p.madvise(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "MADV_NOHUGEPAGE")
    assert p.madvise(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "MADV_COLLAPSE") == -errno.EINVAL
    p.madvise(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
    assert p.madvise(a + 2 * HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, "MADV_COLLAPSE") == 0
    k.check()


def test_khugepaged_collapse_succeeds_once_kswapd_and_kcompactd_made_room():
    """The scenario above with LRU reclaim: the filler's allocations wake kswapd, which
    reclaims past the high watermark (swapping out cold pages, some of them the
    collapse candidate's; they come back when the process touches them again), so
    khugepaged's collapse finds its huge pages."""
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/defrag": 0,
                              "khugepaged/scan_sleep_millisecs": 100})
    p = k.spawn()
    a = p.mmap(2 * HPAGE_PMD_SIZE)
    p.touch_pages(np.arange(a, a + 2 * HPAGE_PMD_SIZE, PAGE_SIZE), values=np.arange(1024) + 3)
    filler = k.spawn()
    n = k.buddy.nr_free_pages - k.watermarks["low"] + 64          # below low: kswapd wakes
    f = filler.mmap(n * PAGE_SIZE)
    filler.madvise(f, n * PAGE_SIZE, "MADV_NOHUGEPAGE")
    filler.touch_range(f, n * PAGE_SIZE)
    k.check()
    assert k.kswapd.runs > 0 and k.vmstat()["pgsteal_kswapd"] > 0
    # swap the cold pages back in, writing them (a read fault on a swap entry maps the
    # page read-only, and khugepaged needs a writable PTE: SCAN_PAGE_RO)
    p.touch_pages(np.arange(a, a + 2 * HPAGE_PMD_SIZE, PAGE_SIZE), values=np.arange(1024) + 3)
    p.madvise(a, 2 * HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
    k.advance(61_000_000_000)
    k.check()
    assert k.pages_collapsed == 2 and p.check_huge(a, 2)
    assert list(p.peek(np.arange(a, a + 2 * HPAGE_PMD_SIZE, PAGE_SIZE))[0]) == list(range(3, 1027))
