"""tools/testing/selftests/mm/split_huge_page_test.c (anonymous cases) on the
simulated kernel, through the debugfs split_huge_pages interface
("<pid>,0x<start>,0x<end>,<order>"); kernel.check() after every step."""
import numpy as np
import pytest

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel

pmd_pagesize = HPAGE_PMD_SIZE
pagesize = PAGE_SIZE


@pytest.fixture
def k():
    kernel = Kernel(256 << 20)          # enabled=madvise, the kernel default
    yield kernel
    kernel.check()


def write_debugfs(k, pid, start, end, order):
    n = k.write_debugfs_split(f"{pid},{start:#x},{end:#x},{order}")
    k.check()
    return n


def fill(p, addr, length, values):
    p.touch_pages(np.arange(addr, addr + length, pagesize), write=True, values=values)
    p.kernel.check()


def page_pattern(nr):
    # the selftest writes (char)i to byte i; a page's 64-bit word here is a nonzero
    # function of its index, so a page moved or dropped shows up
    return (np.arange(nr, dtype=np.uint64) * 4096 + 0x5a5a)


def test_split_pmd_zero_pages(k):
    p = k.spawn()
    nr_hpages = 4
    length = nr_hpages * pmd_pagesize
    one_page = p.mmap(length)                                # memalign(pmd_pagesize, len)
    p.madvise(one_page, length, "MADV_HUGEPAGE")
    fill(p, one_page, length, np.zeros(length // pagesize, dtype=np.uint64))   # result[i] = 0
    assert p.check_huge(one_page, 4), "No THP is allocated"
    rss_anon_before = p.status()["RssAnon"]
    assert rss_anon_before, "No RssAnon is allocated before split"
    write_debugfs(k, p.pid, one_page, one_page + length, 0)
    vals, kinds = p.peek(np.arange(one_page, one_page + length, pagesize))
    assert (vals == 0).all(), "byte corrupted"
    assert p.check_huge(one_page, 0), "Still AnonHugePages not split"
    rss_anon_after = p.status()["RssAnon"]
    assert rss_anon_after < rss_anon_before, f"Incorrect RssAnon value. Before: {rss_anon_before} After: {rss_anon_after}"
    # the zero-filled subpages now map the shared zero page
    assert (kinds == 2).all() and rss_anon_after == 0
    assert k.vmstat()["thp_split_page"] == 4
    assert k.meminfo()["AnonPages"] == 0
    p.munmap(one_page, length)


@pytest.mark.parametrize("order", [0, 2, 3, 4, 5, 6, 7, 8])
def test_split_pmd_thp_to_order(k, order):
    p = k.spawn()
    length = 4 * pmd_pagesize
    one_page = p.mmap(length)
    p.madvise(one_page, length, "MADV_HUGEPAGE")
    pattern = page_pattern(length // pagesize)
    fill(p, one_page, length, pattern)
    assert p.check_huge(one_page, 4), "No THP is allocated"
    write_debugfs(k, p.pid, one_page, one_page + length, order)
    vals, _ = p.peek(np.arange(one_page, one_page + length, pagesize))
    assert (vals == pattern).all(), "byte corrupted"
    assert p.check_huge(one_page, 0), "Still AnonHugePages not split"
    pfns, orders = p.folio_orders(one_page, length)
    assert (orders == order).all()
    heads = np.unique(pfns >> order)
    assert len(heads) == 4 << (9 - order)          # 4 << (9 - n) folios of order n
    assert k.vmstat()["thp_split_page"] == 4 and k.vmstat()["thp_split_pmd"] == 4
    p.munmap(one_page, length)


def test_split_to_order_1_is_refused_for_anon(k):
    p = k.spawn()
    a = p.mmap(pmd_pagesize)
    p.madvise(a, pmd_pagesize, "MADV_HUGEPAGE")
    fill(p, a, pmd_pagesize, page_pattern(512))
    assert write_debugfs(k, p.pid, a, a + pmd_pagesize, 1) == 0
    assert p.check_huge(a, 1)


def test_split_pte_mapped_thp(k):
    p = k.spawn()
    length = 4 * pmd_pagesize
    one_page = p.mmap(length, addr=1 << 30)
    p.madvise(one_page, length, "MADV_HUGEPAGE")
    pattern = page_pattern(length // pagesize)
    fill(p, one_page, length, pattern)
    assert p.check_huge(one_page, 4), "No THP is allocated"
    # remap the first pagesize of first THP
    pte_mapped = p.mremap(one_page, pagesize, pagesize)
    k.check()
    # remap the Nth pagesize of Nth THP
    for i in range(1, 4):
        p.mremap(one_page + pmd_pagesize * i + pagesize * i, pagesize, pagesize, pte_mapped + pagesize * i)
        k.check()
    pfns, orders = p.folio_orders(pte_mapped, 4 * pagesize)
    thp_size = int((orders == 9).sum())               # is_backed_by_thp() via kpageflags
    assert thp_size == 4, "Some THPs are missing during mremap"
    write_debugfs(k, p.pid, pte_mapped, pte_mapped + pagesize * 4, 0)
    vals, _ = p.peek(np.arange(pte_mapped, pte_mapped + 4 * pagesize, pagesize))
    expect = pattern[[i * 512 + i for i in range(4)]]
    assert (vals == expect).all(), "byte corrupted"
    pfns, orders = p.folio_orders(pte_mapped, 4 * pagesize)
    assert int((orders == 9).sum()) == 0, "THPs not split"
    # the rest of each THP, still mapped in place, kept its data too
    vals, _ = p.peek(np.arange(one_page + pmd_pagesize, one_page + pmd_pagesize + 8 * pagesize, pagesize))
    assert vals[0] == pattern[512] and vals[2] == pattern[514]
    p.munmap(one_page, length)          # holes included, as munmap(2) allows
    k.check()
    p.munmap(pte_mapped, 4 * pagesize)
    assert k.meminfo()["AnonPages"] == 0


def test_deferred_split_and_underused_shrinker():
    """The deferred split queue's shrinker (deferred_split_scan): partially mapped THPs
    are split; with max_ptes_none < 511 fully mapped THPs whose zero-filled subpages
    exceed it are split as underused (thp_underused_split_page) and those subpages
    become the zero page."""
    k = Kernel(256 << 20, thp={"enabled": "always", "khugepaged/max_ptes_none": 64})
    p = k.spawn()
    a = p.mmap(4 * pmd_pagesize)
    p.touch(a, value=1)                                   # THP 0: one page written (511 zero)
    fill(p, a + pmd_pagesize, pmd_pagesize, page_pattern(512) + 1)   # THP 1: full
    fill(p, a + 2 * pmd_pagesize, pmd_pagesize, page_pattern(512) + 1)
    p.madvise(a + 2 * pmd_pagesize, pagesize, "MADV_DONTNEED")       # THP 2: partially mapped
    k.check()
    assert k.core.deferred_split_queue_len == 3
    rss = p.status()["RssAnon"]
    assert k.shrink() == 2
    k.check()
    vs = k.vmstat()
    assert vs["thp_underused_split_page"] == 1 and vs["thp_split_page"] == 2
    assert list(p.pmd_kinds(a, a + 3 * pmd_pagesize)) == [1, 2, 1]
    assert p.status()["RssAnon"] == rss - 511 * 4
    assert p.peek([a])[0][0] == 1
    assert k.core.deferred_split_queue_len == 0           # the full THP left the queue unsplit


def test_shrink_underused_off_keeps_new_thps_off_the_queue():
    k = Kernel(128 << 20, thp={"enabled": "always", "shrink_underused": 0, "khugepaged/max_ptes_none": 64})
    p = k.spawn()
    a = p.mmap(pmd_pagesize)
    p.touch(a)
    assert k.core.deferred_split_queue_len == 0
    assert k.shrink() == 0
    k.check()
