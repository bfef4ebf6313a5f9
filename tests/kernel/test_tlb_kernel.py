"""Issue 5, item 4: translating a trace through a simulated process's page tables, as the
simulated kernel maps them, following khugepaged's collapses and the kernel's splits."""
import numpy as np
import pytest

import thpbench
from thpbench import tlb, workloads

MiB = 1 << 20


def kernel_with_small_pages(region_mib=16):
    """A process whose region was faulted in 4 KiB pages (THP madvise mode, region not
    madvised yet), every page written."""
    k = thpbench.Kernel(256 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 10,
                                        "khugepaged/alloc_sleep_millisecs": 10})
    p = k.spawn()
    addr = p.mmap(region_mib * MiB)
    p.touch_range(addr, region_mib * MiB)
    k.check()
    return k, p, addr


def test_attach_follows_khugepaged_collapse_and_flushes():
    k, p, addr = kernel_with_small_pages()
    n = 16 * MiB
    mmu = tlb.MMU("skylake").attach(p, addr, addr + n)
    trace = workloads.uniform(200_000, n, base=addr, seed=1)
    small = mmu.run(trace)
    assert small["dtlb_load_misses.walk_completed_4k"] > 0
    assert small["dtlb_load_misses.walk_completed_2m_4m"] == 0
    flushes_before = mmu.counters()["nr_tlb_local_flush_all"]
    p.madvise(addr, n, "MADV_HUGEPAGE")
    k.advance(2_000_000_000)                      # khugepaged: 2 simulated seconds
    k.check()
    collapsed = int(p.pmd_mapped(addr, addr + n).sum())
    assert collapsed == n // (2 * MiB)
    assert k.vmstat()["thp_collapse_alloc"] == collapsed
    # each collapse flushed 2 MiB at PAGE_SHIFT stride: a full flush on x86
    assert mmu.counters()["nr_tlb_local_flush_all"] - flushes_before == collapsed
    huge = mmu.run(trace)
    assert huge["dtlb_load_misses.walk_completed_4k"] == 0
    assert huge["dtlb_load_misses.walk_completed"] < small["dtlb_load_misses.walk_completed"] / 10


def test_split_makes_the_region_small_again():
    k, p, addr = kernel_with_small_pages(4)
    p.madvise(addr, 4 * MiB, "MADV_COLLAPSE")
    assert p.pmd_mapped(addr, addr + 4 * MiB).all()
    mmu = tlb.MMU("skylake").attach(p, addr, addr + 4 * MiB)
    before = mmu.counters()
    p.madvise(addr + 4096, 4096, "MADV_DONTNEED")  # split_huge_pmd of the first region
    k.check()
    after = mmu.counters()
    assert after["nr_tlb_local_flush_one"] > before["nr_tlb_local_flush_one"]   # PMD-stride flush
    assert after["mmu_pte_write"] - before["mmu_pte_write"] >= 513
    trace = workloads.uniform(50_000, 2 * MiB, base=addr, seed=2)
    c = mmu.run(trace)
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 0 and c["dtlb_load_misses.walk_completed_4k"] > 0
    trace2 = workloads.uniform(50_000, 2 * MiB, base=addr + 2 * MiB, seed=3)
    c2 = mmu.run(trace2)
    assert c2["dtlb_load_misses.walk_completed_4k"] == 0


def test_shadow_paging_counts_an_exit_per_guest_page_table_write():
    k, p, addr = kernel_with_small_pages(4)
    mmu = tlb.MMU("nehalem", mode="shadow").attach(p, addr, addr + 4 * MiB, default_host_huge=True)
    p.madvise(addr, 4 * MiB, "MADV_COLLAPSE")
    c = mmu.counters()
    assert c["exits"] == c["mmu_pte_write"] == 2       # one PMD written per collapse


def test_guest_thp_on_small_host_pages_is_splintered():
    k, p, addr = kernel_with_small_pages(4)
    p.madvise(addr, 4 * MiB, "MADV_COLLAPSE")
    trace = workloads.uniform(50_000, 4 * MiB, base=addr, seed=4)
    both = tlb.MMU("skylake", mode="nested").attach(p, addr, addr + 4 * MiB, default_host_huge=True).run(trace)
    splint = tlb.MMU("skylake", mode="nested").attach(p, addr, addr + 4 * MiB, default_host_huge=False).run(trace)
    assert both["dtlb_load_misses.walk_completed_4k"] == 0
    assert splint["dtlb_load_misses.walk_completed_2m_4m"] == 0


def test_detach_and_other_processes_are_ignored():
    k, p, addr = kernel_with_small_pages(4)
    q = k.spawn()
    b = q.mmap(4 * MiB)
    q.touch_range(b, 4 * MiB)
    mmu = tlb.MMU("skylake").attach(p, addr, addr + 4 * MiB)
    before = mmu.counters()
    q.madvise(b, 4 * MiB, "MADV_COLLAPSE")           # another process: not ours
    assert mmu.counters() == before
    mmu.detach()
    assert mmu._kernel_event not in k.tlb_flush_hooks
    p.madvise(addr, 4 * MiB, "MADV_COLLAPSE")
    assert mmu.counters() == before
    with pytest.raises(ValueError, match="empty range"):
        mmu.attach(p, addr, addr)


def test_attach_of_an_exited_process_raises_and_keeps_the_mmu():
    """Issue 9, item 6 (TLB part): MMU.attach of an exited process read the page tables
    of a destroyed mm (or, once its pid was reused, another process's)."""
    k, p, addr = kernel_with_small_pages(4)
    q = k.spawn()
    b = q.mmap(4 * MiB)
    q.touch_range(b, 4 * MiB)
    mmu = tlb.MMU("skylake").attach(q, b, b + 4 * MiB)
    p.exit()
    with pytest.raises(ValueError, match=f"process {p.pid} has exited"):
        mmu.attach(p, addr, addr + 4 * MiB)
    # the failed attach left the MMU following q
    before = mmu.counters()["mmu_pte_write"]
    q.madvise(b, 4 * MiB, "MADV_COLLAPSE")
    assert mmu.counters()["mmu_pte_write"] > before
    with pytest.raises(TypeError, match="Process"):
        mmu.attach("not a process", 0, 4 * MiB)
    with pytest.raises(TypeError, match="start"):
        mmu.attach(q, float(b), b + 4 * MiB)
    with pytest.raises(ValueError, match="window"):
        mmu.attach(q, b, b + (1 << 50))
    assert mmu._kernel_event in k.tlb_flush_hooks      # still following q


def test_mmu_stops_following_a_process_that_exits():
    """After exit_mmap the MMU detaches: a new process given the same pid must not
    drive its flushes."""
    k, p, addr = kernel_with_small_pages(4)
    mmu = tlb.MMU("skylake").attach(p, addr, addr + 4 * MiB)
    p.exit()
    assert mmu._kernel_event not in k.tlb_flush_hooks
    after_exit = mmu.counters()
    q = k.spawn()
    b = q.mmap(4 * MiB)
    q.touch_range(b, 4 * MiB)
    q.madvise(b, 4 * MiB, "MADV_COLLAPSE")   # (pids are reused: q.pid may equal pid)
    assert mmu.counters() == after_exit


def test_attach_to_an_exited_process_raises_and_a_reused_pid_is_not_followed():
    """Issue 9 item 6: MMU.attach on an exited process read a NULL page directory."""
    k, p, addr = kernel_with_small_pages(4)
    p.exit()
    with pytest.raises(ValueError, match="exited"):
        tlb.MMU("skylake").attach(p, addr, addr + 4 * MiB)
    q = k.spawn()                                  # takes the old pid
    assert q.pid == p.pid
    with pytest.raises(ValueError, match="exited"):
        tlb.MMU("skylake").attach(p, addr, addr + 4 * MiB)
