"""tools/testing/selftests/mm/khugepaged.c, anonymous memory, on the simulated kernel.

One test per selftest case, in each collapse context the selftest runs it in
(khugepaged: the daemon, limits enforced; madvise: MADV_COLLAPSE with thp=never).
Same setups, same assertions (check_huge via smaps AnonHugePages, validate_memory's
i + 0xdead0000 per page, check_swap); kernel.check() runs after every step.
"""
import pytest

from mm_selftest_harness import (BASE_ADDR, KHUGEPAGED, MADVISE, AnonOps, __madvise_collapse, alloc_hpage,
                                 alloc_mapping, check_swap, hpage_pmd_nr, hpage_pmd_size, madvise, new_kernel,
                                 page_size, push_settings, validate_memory)

ops = AnonOps
BOTH = pytest.mark.parametrize("c", [KHUGEPAGED, MADVISE], ids=["khugepaged", "madvise"])


@pytest.fixture
def k():
    kernel = new_kernel()
    yield kernel
    kernel.check()


def test_alloc_at_fault(k):
    p = k.spawn()
    with push_settings(k, enabled="always"):
        addr = alloc_mapping(p, 1)
        p.touch(addr, value=1)                      # *p = 1
        k.check()
        assert p.check_huge(addr, 1), "Allocate huge page on fault"
    madvise(p, addr, page_size, "MADV_DONTNEED")
    assert p.check_huge(addr, 0), "Split huge PMD on MADV_DONTNEED"
    assert k.vmstat()["thp_fault_alloc"] == 1 and k.vmstat()["thp_split_pmd"] == 1
    p.munmap(addr, hpage_pmd_size)


@BOTH
def test_collapse_full(k, c):
    p = k.spawn()
    nr_hpages = 4
    size = nr_hpages * hpage_pmd_size
    addr = ops.setup_area(p, nr_hpages)
    ops.fault(p, addr, 0, size)
    c.collapse(p, addr, nr_hpages, ops, True)
    validate_memory(p, addr, 0, size)
    ops.cleanup_area(p, addr, size)
    assert k.vmstat()["thp_collapse_alloc"] == 4
    assert k.pages_collapsed == (4 if c is KHUGEPAGED else 0)


@BOTH
def test_collapse_empty(k, c):
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    c.collapse(p, addr, 1, ops, False)
    ops.cleanup_area(p, addr, hpage_pmd_size)
    assert k.vmstat()["thp_collapse_alloc"] == 0


@BOTH
def test_collapse_single_pte_entry(k, c):
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, page_size)
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, page_size)      # (the selftest does not; the data must survive)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_max_ptes_none(k, c):
    max_ptes_none = hpage_pmd_nr // 2
    p = k.spawn()
    with push_settings(k, khugepaged__max_ptes_none=max_ptes_none):
        addr = ops.setup_area(p, 1)
        ops.fault(p, addr, 0, (hpage_pmd_nr - max_ptes_none - 1) * page_size)
        c.collapse(p, addr, 1, ops, not c.enforce_pte_scan_limits)
        validate_memory(p, addr, 0, (hpage_pmd_nr - max_ptes_none - 1) * page_size)
        if c.enforce_pte_scan_limits:
            assert k.vmstat()["thp_scan_exceed_none_pte"] > 0
            ops.fault(p, addr, 0, (hpage_pmd_nr - max_ptes_none) * page_size)
            c.collapse(p, addr, 1, ops, True)
            validate_memory(p, addr, 0, (hpage_pmd_nr - max_ptes_none) * page_size)
        ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_swapin_single_pte(k, c):
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, hpage_pmd_size)
    madvise(p, addr, page_size, "MADV_PAGEOUT")
    assert check_swap(p, addr, page_size), "Swapout one page"
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, hpage_pmd_size)
    assert k.vmstat()["pswpin"] == 1
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_max_ptes_swap(k, c):
    max_ptes_swap = int(k.sysfs["khugepaged/max_ptes_swap"])
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, hpage_pmd_size)
    madvise(p, addr, (max_ptes_swap + 1) * page_size, "MADV_PAGEOUT")
    assert check_swap(p, addr, (max_ptes_swap + 1) * page_size)
    c.collapse(p, addr, 1, ops, not c.enforce_pte_scan_limits)
    validate_memory(p, addr, 0, hpage_pmd_size)
    if c.enforce_pte_scan_limits:
        assert k.vmstat()["thp_scan_exceed_swap_pte"] > 0
        ops.fault(p, addr, 0, hpage_pmd_size)
        madvise(p, addr, max_ptes_swap * page_size, "MADV_PAGEOUT")
        assert check_swap(p, addr, max_ptes_swap * page_size)
        c.collapse(p, addr, 1, ops, True)
        validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_single_pte_entry_compound(k, c):
    p = k.spawn()
    addr = alloc_hpage(p)
    madvise(p, addr, hpage_pmd_size, "MADV_NOHUGEPAGE")
    madvise(p, addr + page_size, hpage_pmd_size - page_size, "MADV_DONTNEED")
    assert ops.check_huge(p, addr, 0), "Split huge page leaving single PTE mapping compound page"
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, page_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_full_of_compound(k, c):
    p = k.spawn()
    addr = alloc_hpage(p)
    madvise(p, addr, page_size, "MADV_NOHUGEPAGE")
    madvise(p, addr, hpage_pmd_size, "MADV_NOHUGEPAGE")
    assert ops.check_huge(p, addr, 0), "Split huge page leaving single PTE page table full of compound pages"
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_compound_extreme(c):
    # Each round leaves one page of its THP mapped, so every 2 MiB block keeps one
    # used frame; the kernel would compact (defrag=always) to find the next order-9
    # block.  The model has no compaction: give it room for 512 such blocks instead.
    k = new_kernel(1152 << 20)
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    for i in range(hpage_pmd_nr):
        madvise(p, BASE_ADDR, hpage_pmd_size, "MADV_HUGEPAGE")
        ops.fault(p, BASE_ADDR, 0, hpage_pmd_size)
        assert ops.check_huge(p, BASE_ADDR, 1), "Failed to allocate huge page"
        madvise(p, BASE_ADDR, hpage_pmd_size, "MADV_NOHUGEPAGE")
        addr = p.mremap(BASE_ADDR - i * page_size, i * page_size + hpage_pmd_size, (i + 1) * page_size,
                        BASE_ADDR + 2 * hpage_pmd_size)
        k.check()
        addr = p.mremap(BASE_ADDR + 2 * hpage_pmd_size, (i + 1) * page_size,
                        (i + 1) * page_size + hpage_pmd_size, BASE_ADDR - (i + 1) * page_size)
        k.check()
    ops.cleanup_area(p, BASE_ADDR, hpage_pmd_size)
    ops.fault(p, addr, 0, hpage_pmd_size)
    assert not ops.check_huge(p, addr, 1)
    # every PTE maps a page of a different THP
    pfns, orders = p.folio_orders(addr, hpage_pmd_size)
    assert (orders == 9).sum() > 0
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)
    k.check()


@BOTH
def test_collapse_fork(k, c):
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, page_size)
    assert ops.check_huge(p, addr, 0), "Allocate small page"
    child = p.fork()
    k.check()
    assert ops.check_huge(child, addr, 0), "Share small page over fork()"
    ops.fault(child, addr, page_size, 2 * page_size)
    c.collapse(child, addr, 1, ops, True)
    validate_memory(child, addr, 0, page_size)
    ops.cleanup_area(child, addr, hpage_pmd_size)
    child.exit()
    k.check()
    assert ops.check_huge(p, addr, 0), "Check if parent still has small page"
    validate_memory(p, addr, 0, page_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_fork_compound(k, c):
    p = k.spawn()
    addr = alloc_hpage(p)
    child = p.fork()
    k.check()
    assert ops.check_huge(child, addr, 1), "Share huge page over fork()"
    madvise(child, addr, page_size, "MADV_NOHUGEPAGE")
    madvise(child, addr, hpage_pmd_size, "MADV_NOHUGEPAGE")
    assert ops.check_huge(child, addr, 0), "Split huge page PMD in child process"
    ops.fault(child, addr, 0, page_size)
    saved = k.sysfs["khugepaged/max_ptes_shared"]
    k.sysfs["khugepaged/max_ptes_shared"] = hpage_pmd_nr - 1
    c.collapse(child, addr, 1, ops, True)
    k.sysfs["khugepaged/max_ptes_shared"] = saved
    validate_memory(child, addr, 0, hpage_pmd_size)
    ops.cleanup_area(child, addr, hpage_pmd_size)
    child.exit()
    k.check()
    assert ops.check_huge(p, addr, 1), "Check if parent still has huge page"
    validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


@BOTH
def test_collapse_max_ptes_shared(k, c):
    max_ptes_shared = int(k.sysfs["khugepaged/max_ptes_shared"])
    p = k.spawn()
    addr = alloc_hpage(p)
    child = p.fork()
    k.check()
    assert ops.check_huge(child, addr, 1), "Share huge page over fork()"
    ops.fault(child, addr, 0, (hpage_pmd_nr - max_ptes_shared - 1) * page_size)
    assert ops.check_huge(child, addr, 0), f"Trigger CoW on page {hpage_pmd_nr - max_ptes_shared - 1}"
    c.collapse(child, addr, 1, ops, not c.enforce_pte_scan_limits)
    if c.enforce_pte_scan_limits:
        assert k.vmstat()["thp_scan_exceed_share_pte"] > 0
        ops.fault(child, addr, 0, (hpage_pmd_nr - max_ptes_shared) * page_size)
        assert ops.check_huge(child, addr, 0)
        c.collapse(child, addr, 1, ops, True)
    validate_memory(child, addr, 0, hpage_pmd_size)
    ops.cleanup_area(child, addr, hpage_pmd_size)
    child.exit()
    k.check()
    assert ops.check_huge(p, addr, 1), "Check if parent still has huge page"
    validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)


def test_madvise_collapse_existing_thps(k):
    c = MADVISE
    p = k.spawn()
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, hpage_pmd_size)
    c.collapse(p, addr, 1, ops, True)
    validate_memory(p, addr, 0, hpage_pmd_size)
    __madvise_collapse(p, addr, 1, ops, True)        # re-collapse a PMD-mapped THP
    validate_memory(p, addr, 0, hpage_pmd_size)
    ops.cleanup_area(p, addr, hpage_pmd_size)
    assert k.vmstat()["thp_collapse_alloc"] == 1     # the second call found it PMD-mapped


def test_khugepaged_sleeps_and_round_robin(k):
    """khugepaged_do_scan(): pages_to_scan per wake-up, scan_sleep_millisecs between."""
    k.sysfs["khugepaged/pages_to_scan"] = hpage_pmd_nr      # one PMD per pass
    k.sysfs["khugepaged/scan_sleep_millisecs"] = 100
    procs = [k.spawn() for _ in range(2)]
    addrs = []
    for p in procs:
        a = p.mmap(2 * hpage_pmd_size)
        p.touch_range(a, 2 * hpage_pmd_size)
        madvise(p, a, 2 * hpage_pmd_size, "MADV_HUGEPAGE")
        addrs.append(a)
    k.advance(50_000_000)     # the first pass ran at t=0 (khugepaged woke on the first mm)
    first = k.pages_collapsed
    assert first == 1
    k.advance(100_000_000)
    assert k.pages_collapsed == 2
    k.advance(1_000_000_000)
    assert k.pages_collapsed == 4 and k.full_scans >= 2
    for p, a in zip(procs, addrs):
        assert p.check_huge(a, 2)
    k.check()
