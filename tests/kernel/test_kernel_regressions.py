"""Regression tests for the kernel items of issue 9 (each failed before its fix):
2 mremap all-or-nothing, 6 stale process handles, 9 scan_sleep_millisecs = 0, 10 bad
advance() times, 17 bounded logs, 18 invalid Kernel settings; and issue 8 item 3
(lru_reclaim=False entry points).  Only names that existed before the fixes are imported,
so the file runs against the old code too."""
import math

import numpy as np
import pytest

from thpbench.kernel import Kernel, OutOfMemory
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE

MiB = 1 << 20
SEC = 1_000_000_000


def _kernel_with_work(**thp):
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 100, **thp})
    p = k.spawn()
    a = p.mmap(4 * MiB)
    p.touch_range(a, 4 * MiB, stride=8 * PAGE_SIZE)
    p.madvise(a, 4 * MiB, "MADV_HUGEPAGE")
    return k, p, a


# -- item 2: mremap is all or nothing ------------------------------------------------------------

def test_mremap_that_runs_out_of_memory_part_way_leaves_the_old_mapping_intact():
    """mm/mremap.c: move_vma() moves the entries back when move_page_tables() could not
    allocate a page table part-way, and returns -ENOMEM with the old mapping intact."""
    k = Kernel(32 * MiB, swap_bytes=0, thp={"enabled": "never"}, lru_reclaim=False, compaction=False)
    p = k.spawn()
    src = p.mmap(6 * MiB)
    addrs = np.arange(src, src + 6 * MiB, PAGE_SIZE)
    vals = np.arange(1, len(addrs) + 1, dtype=np.uint64)
    p.touch_pages(addrs, values=vals)
    filler = p.mmap(64 * MiB)
    with pytest.raises(OutOfMemory):
        p.touch_range(filler, 64 * MiB)            # memory is full
    p.munmap(filler, PAGE_SIZE)                    # one page: a page table for the first PMD only
    vmas_before = [(v.start, v.end, v.prot, v.hugepage) for v in p.vmas]
    free_before = k.buddy.nr_free_pages
    with pytest.raises(OutOfMemory):
        p.mremap(src, 6 * MiB, 6 * MiB)
    got, kinds = p.peek(addrs)
    assert (got == vals).all() and (kinds == 1).all()         # every page still at its old address
    assert [(v.start, v.end, v.prot, v.hugepage) for v in p.vmas] == vmas_before
    assert k.buddy.nr_free_pages == free_before               # the new range's page table freed
    k.check()
    assert p.read(src + 5 * MiB) == vals[5 * MiB // PAGE_SIZE]


# -- item 6: handles of exited processes ------------------------------------------------------------

def test_an_old_handle_cannot_read_the_process_that_reuses_its_pid():
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    old = k.spawn()
    pid = old.pid
    old.exit()
    new = k.spawn()
    assert new.pid == pid
    a = new.mmap(4 * MiB)
    new.touch_range(a, 4 * MiB)
    for call in (lambda: old.pmd_kinds(a, a + 4 * MiB), lambda: old.pmd_mapped(a, a + 4 * MiB),
                 lambda: old.peek([a]), lambda: old.status(), lambda: old.rss_anon_kb,
                 lambda: old.touch(a), lambda: old.read(a), lambda: old.folio_orders(a, PAGE_SIZE)):
        with pytest.raises(ValueError, match="exited"):
            call()
    assert new.pmd_kinds(a, a + 4 * MiB).tolist() == [2, 2]
    k.check()


def test_every_method_of_an_exited_process_raises():
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(4 * MiB)
    p.touch_range(a, 4 * MiB)
    p.exit()
    p.exit()                                       # exiting twice is harmless
    calls = {
        "pmd_kinds": lambda: p.pmd_kinds(a, a + 4 * MiB), "pmd_mapped": lambda: p.pmd_mapped(a, a + 4 * MiB),
        "peek": lambda: p.peek([a]), "mmap": lambda: p.mmap(4096), "munmap": lambda: p.munmap(a, 4096),
        "mprotect": lambda: p.mprotect(a, 4096, 1), "madvise": lambda: p.madvise(a, 4096, "MADV_DONTNEED"),
        "mremap": lambda: p.mremap(a, 4096, 8192), "fork": lambda: p.fork(), "touch": lambda: p.touch(a),
        "touch_pages": lambda: p.touch_pages([a]), "touch_range": lambda: p.touch_range(a, 4096),
        "read": lambda: p.read(a), "dontneed_pages": lambda: p.dontneed_pages([a]),
        "pin_pages": lambda: p.pin_pages([a]), "unpin_pages": lambda: p.unpin_pages([a]),
        "pageout": lambda: p.pageout(a, 4096), "age": lambda: p.age(a, 4096),
        "folio_orders": lambda: p.folio_orders(a, 4096), "rss_anon_kb": lambda: p.rss_anon_kb,
        "status": lambda: p.status(), "smaps": lambda: p.smaps(), "smaps_vma": lambda: p.smaps_vma(a),
        "check_huge": lambda: p.check_huge(a, 1), "find_vma": lambda: p.find_vma(a),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="exited"):
            call()
            pytest.fail(f"{name} on an exited process did not raise")
    k.check()


# -- items 9 and 10: advance() is bounded and validated ------------------------------------------

def test_scan_sleep_zero_does_not_spin_and_bounds_the_samples():
    """khugepaged/scan_sleep_millisecs = 0 is valid (mm/khugepaged.c: khugepaged_wait_work
    returns at once); the model takes at least 1 ms per pass, so 100 us of simulated time
    holds at most one pass and one second at most ~1,000 (and as many samples)."""
    k, p, a = _kernel_with_work(**{"khugepaged/scan_sleep_millisecs": 0})
    k.advance(100_000)
    assert len(k.result().df) <= 2
    k.advance(SEC)
    assert len(k.result().df) <= 1003
    assert k.pages_collapsed == 2
    k.check()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -1, -0.5, "1000", None, True,
                                 np.float64("nan"), complex(1, 0)])
def test_advance_rejects_bad_times_and_leaves_the_clock(bad):
    k = Kernel(64 * MiB, compaction=False)
    k.advance(1000)
    before = k.now_ns
    with pytest.raises((TypeError, ValueError), match="ns"):
        k.advance(bad)
    assert k.now_ns == before and math.isfinite(k.now_ns)
    k.check()
    k.advance(500)
    assert k.now_ns == before + 500


# -- item 3 (issue 8): lru_reclaim=False ------------------------------------------------------------

def test_reclaim_entry_points_raise_a_clear_error_without_lru_reclaim():
    k = Kernel(64 * MiB, lru_reclaim=False)
    assert k.reclaim is not None
    for call in (lambda: k.drop_caches(1), lambda: k.shrink_node(32), lambda: k.shrink_all_memory(100),
                 lambda: k.page_cache.create("f", 4096), lambda: k.slab["dentry"].alloc(1),
                 lambda: k.kswapd.wakeup(0), lambda: k.reclaim.flush()):
        with pytest.raises(ValueError, match="lru_reclaim=False"):
            call()
    # the rest of the kernel works, and reports no reclaim counters
    p = k.spawn()
    a = p.mmap(8 * MiB)
    p.touch_range(a, 8 * MiB)
    assert "pgscan_kswapd" not in k.vmstat() and "Cached" not in k.meminfo()
    k.check()


# -- item 17: bounded logs ----------------------------------------------------------------------------

def test_logs_keep_only_the_most_recent_log_limit_entries():
    k = Kernel(64 * MiB, thp={"enabled": "always", "defrag": "never"}, log_limit=500)
    seen = []
    k.tlb_flush_hooks.append(lambda *ev: seen.append(ev))
    p = k.spawn()
    a = p.mmap(8 * MiB)
    for i in range(1500):
        addr = a + (i % 4) * HPAGE_PMD_SIZE
        p.touch(addr)                               # a THP fault
        p.madvise(addr, HPAGE_PMD_SIZE, "MADV_DONTNEED")
        k.sample()
    ev = k.events()
    assert len(ev) == 500 and len(seen) >= 3000     # the hooks still see every event
    assert tuple(ev.iloc[-1][["kind", "start"]]) == (seen[-1][3], seen[-1][1])
    assert len(k.thp_fault_latencies()) <= 500 + 1 and len(k.result().df) == 500
    assert k.thp_fault_latencies()["t_ns"].iloc[-1] == max(k.thp_fault_latencies()["t_ns"])
    k.check()


def test_log_limit_zero_keeps_nothing_and_none_keeps_everything():
    for limit, expect in ((0, 0), (None, 200)):
        k = Kernel(64 * MiB, thp={"enabled": "always"}, log_limit=limit)
        p = k.spawn()
        a = p.mmap(4 * MiB)
        for _ in range(100):
            p.touch(a)
            p.madvise(a, HPAGE_PMD_SIZE, "MADV_DONTNEED")
        assert len(k.events()) == expect and len(k.thp_fault_latencies()) == expect // 2


def test_the_default_log_is_bounded():
    k = Kernel(64 * MiB)
    assert k.log_limit is not None and 0 < k.log_limit <= 1_000_000


# -- item 18: invalid settings -----------------------------------------------------------------------

@pytest.mark.parametrize("kw, exc, name", [
    ({"max_order": 8}, ValueError, "max_order 8 is below HPAGE_PMD_ORDER"),
    ({"max_order": 8, "pageblock_order": 8, "thp": {"enabled": "always"}}, ValueError, "max_order 8 is below"),
    ({"max_order": 11}, ValueError, "max_order"),
    ({"max_processes": 0}, ValueError, "max_processes"),
    ({"max_processes": 10 ** 6}, ValueError, "max_processes"),
    ({"costs": "fast"}, TypeError, "costs"),
    ({"thp": "always"}, TypeError, "thp"),
    ({"vm": [("extfrag_threshold", 500)]}, TypeError, "vm"),
    ({"lru_reclaim": "no"}, TypeError, "lru_reclaim"),
    ({"grouping": "yes"}, TypeError, "grouping"),
    ({"compaction": 1}, TypeError, "compaction"),
    ({"min_free_kbytes": -5}, ValueError, "min_free_kbytes"),
    ({"log_limit": -1}, ValueError, "log_limit"),
    ({"pageblock_order": 11}, ValueError, "pageblock_order"),
])
def test_invalid_kernel_settings_raise_naming_the_setting(kw, exc, name):
    with pytest.raises(exc, match=name):
        Kernel(64 * MiB, **kw)
