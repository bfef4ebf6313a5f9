"""The helpers of tools/testing/selftests/mm/khugepaged.c and vm_util.c, over a
simulated kernel.  Every helper that changes state calls kernel.check() afterwards."""
from contextlib import contextmanager

import numpy as np

from thpbench.units import HPAGE_PMD_NR, HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel

BASE_ADDR = 1 << 30
page_size = PAGE_SIZE
hpage_pmd_size = HPAGE_PMD_SIZE
hpage_pmd_nr = HPAGE_PMD_NR

# khugepaged.c main(): default_settings
DEFAULT_SETTINGS = {
    "enabled": "madvise", "defrag": "always", "use_zero_page": 0,
    "khugepaged/defrag": 1, "khugepaged/alloc_sleep_millisecs": 10, "khugepaged/scan_sleep_millisecs": 10,
    "khugepaged/max_ptes_none": hpage_pmd_nr - 1, "khugepaged/max_ptes_swap": hpage_pmd_nr // 8,
    "khugepaged/max_ptes_shared": hpage_pmd_nr // 2, "khugepaged/pages_to_scan": hpage_pmd_nr * 8,
}


def new_kernel(mem_bytes=256 << 20):
    k = Kernel(mem_bytes, thp=DEFAULT_SETTINGS)
    k.check()
    return k


@contextmanager
def push_settings(k, **changes):
    """thp_push_settings() / thp_pop_settings()."""
    saved = {key: val for key, val in k.sysfs.values().items() if key in DEFAULT_SETTINGS}
    try:
        for key, val in changes.items():
            k.sysfs[key.replace("__", "/")] = val
        yield
    finally:
        for key, val in saved.items():
            k.sysfs[key] = val


def checked(k, result=None):
    k.check()
    return result


def alloc_mapping(p, nr):
    addr = p.mmap(nr * hpage_pmd_size, addr=BASE_ADDR)
    assert addr == BASE_ADDR
    return checked(p.kernel, addr)


def fill_memory(p, base, start, end):
    """p[i * page_size / sizeof(int)] = i + 0xdead0000 for each page i of [start, end)."""
    i = np.arange(start // page_size, end // page_size, dtype=np.int64)
    p.touch_pages(base + i * page_size, write=True, values=(i + 0xdead0000).astype(np.uint64))
    p.kernel.check()


def validate_memory(p, base, start, end):
    i = np.arange(start // page_size, end // page_size, dtype=np.int64)
    vals, kinds = p.peek(base + i * page_size)
    bad = np.nonzero(vals != (i + 0xdead0000).astype(np.uint64))[0]
    assert bad.size == 0, f"Page {int(i[bad[0]])} is corrupted: {int(vals[bad[0]]):#x} (kind {int(kinds[bad[0]])})"


def check_swap(p, addr, size):
    return p.smaps_vma(addr)["Swap"] == size // 1024


def madvise(p, addr, length, advice):
    r = p.madvise(addr, length, advice)
    p.kernel.check()
    return r


def madvise_collapse_retry(p, addr, size):
    ret = madvise(p, addr, size, "MADV_COLLAPSE")
    if ret == -11:    # EAGAIN: retry once
        ret = madvise(p, addr, size, "MADV_COLLAPSE")
    return ret


class AnonOps:
    """__anon_ops."""
    name = "anon"

    @staticmethod
    def setup_area(p, nr_hpages):
        return alloc_mapping(p, nr_hpages)

    @staticmethod
    def cleanup_area(p, addr, size):
        p.munmap(addr, size)
        p.kernel.check()

    @staticmethod
    def fault(p, addr, start, end):
        fill_memory(p, addr, start, end)

    @staticmethod
    def check_huge(p, addr, nr_hpages):
        return p.check_huge(addr, nr_hpages)


def alloc_hpage(p, ops=AnonOps):
    addr = ops.setup_area(p, 1)
    ops.fault(p, addr, 0, hpage_pmd_size)
    assert madvise_collapse_retry(p, addr, hpage_pmd_size) == 0
    assert ops.check_huge(p, addr, 1)
    assert madvise(p, addr, hpage_pmd_size, "MADV_HUGEPAGE") == 0
    return addr


def __madvise_collapse(p, addr, nr_hpages, ops, expect):
    k = p.kernel
    with push_settings(k, enabled="never"):   # also tests that MADV_COLLAPSE ignores "enabled"
        madvise(p, addr, nr_hpages * hpage_pmd_size, "MADV_HUGEPAGE")
        ret = madvise_collapse_retry(p, addr, nr_hpages * hpage_pmd_size)
        assert bool(ret) != expect, f"Fail: Bad return value {ret}"
        assert ops.check_huge(p, addr, nr_hpages if expect else 0), "Fail: check_huge()"


def madvise_collapse(p, addr, nr_hpages, ops, expect):
    assert ops.check_huge(p, addr, 0), "Unexpected huge page"
    __madvise_collapse(p, addr, nr_hpages, ops, expect)


TICK_NS = 500_000_000


def wait_for_scan(p, addr, nr_hpages, ops):
    """Wait (simulated) up to 3 s or two full scans; True on timeout."""
    k = p.kernel
    assert ops.check_huge(p, addr, 0), "Unexpected huge page"
    madvise(p, addr, nr_hpages * hpage_pmd_size, "MADV_HUGEPAGE")
    full_scans = k.full_scans + 2
    timeout = 6
    while True:
        t = timeout
        timeout -= 1           # while (timeout--)
        if t == 0:
            break
        if ops.check_huge(p, addr, nr_hpages):
            break
        if k.full_scans >= full_scans:
            break
        k.advance(TICK_NS)
        k.check()
    madvise(p, addr, nr_hpages * hpage_pmd_size, "MADV_NOHUGEPAGE")
    return timeout == -1


def khugepaged_collapse(p, addr, nr_hpages, ops, expect):
    if wait_for_scan(p, addr, nr_hpages, ops):
        assert not expect, "Timeout"
        return
    assert ops.check_huge(p, addr, nr_hpages if expect else 0), "Fail"


class Context:
    def __init__(self, name, collapse, enforce_pte_scan_limits):
        self.name, self.collapse, self.enforce_pte_scan_limits = name, collapse, enforce_pte_scan_limits

    def __repr__(self):
        return self.name


KHUGEPAGED = Context("khugepaged", khugepaged_collapse, True)
MADVISE = Context("madvise", madvise_collapse, False)
