"""Figures for reclaim (thpbench.kernel.reclaim): LRU pages scanned per second.

Fills a kernel with page cache (clean, referenced, dirty, mapped pages) and anon
memory, then runs shrink_list() over the inactive file and inactive anon lists in the
Cython core, and the same decisions on a snapshot in the pure-Python reference
(thpbench/_reference/reclaim.py), in this process.  Prints pages scanned per second
and the ratio core / reference, then a whole kswapd-driven run (a file streamed through
a page cache half its size).  No assertions: figures.

    python benchmarks/bench_reclaim.py [mem_mib]        (default 1024)
"""
import sys
import time

import numpy as np

from thpbench._reference.reclaim import RefLru
from thpbench.units import PAGE_SIZE
from thpbench.kernel import Kernel

MiB = 1 << 20


def filled(mem_mib, seed=0):
    rng = np.random.default_rng(seed)
    k = Kernel(mem_mib * MiB, thp={"enabled": "never"})
    n = mem_mib * MiB // PAGE_SIZE
    f = k.page_cache.create("data", (n // 2) * PAGE_SIZE)
    f.read()
    idx = rng.choice(n // 2, size=n // 8, replace=False)
    for i in idx[: n // 32]:
        f.read(int(i) * PAGE_SIZE, PAGE_SIZE)              # referenced
    p = k.spawn()
    a = p.mmap((n // 4) * PAGE_SIZE)
    p.touch_range(a, (n // 4) * PAGE_SIZE)
    p.age(a, (n // 8) * PAGE_SIZE)                         # half the anon is old
    return k


def snapshot(rc):
    out = []
    for L in range(4):
        out.append([{"pfn": pfn, "file": L >= 2, "referenced": bool(pg & 1), "dirty": bool(pg & 4),
                     "reclaim": bool(pg & 8), "young": rc.folio_young(pfn)} for pfn, pg in rc.lru_list(L)])
    return out


def main():
    mem = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    for L, name in ((2, "inactive_file"), (0, "inactive_anon")):
        k = filled(mem)
        rc = k.reclaim.core
        size = rc.lru_sizes()["nr_" + name]
        t = time.perf_counter()
        rc.shrink_list(L, size)
        dt = time.perf_counter() - t
        core_rate = size / dt
        small = filled(64)
        rcs = small.reclaim.core
        snap = snapshot(rcs)
        ref = RefLru(snap, small.core.nr_swap_free)
        nsmall = len(snap[L])
        t = time.perf_counter()
        ref.shrink_list(L, nsmall)
        dref = time.perf_counter() - t
        ref_rate = nsmall / dref
        print(f"shrink_list({name}): core {core_rate:,.0f} pages scanned/s ({size} pages, {mem} MiB); "
              f"reference {ref_rate:,.0f} pages/s ({nsmall} pages); ratio {core_rate / ref_rate:,.0f}x")
    k = Kernel(mem * MiB, thp={"enabled": "never"})
    f = k.page_cache.create("stream", 2 * mem * MiB)
    t = time.perf_counter()
    f.read()
    dt = time.perf_counter() - t
    vs = k.vmstat()
    print(f"streaming {2 * mem} MiB through {mem} MiB: {dt:.2f} s wall, pgscan_kswapd {vs['pgscan_kswapd']}, "
          f"pgsteal_kswapd {vs['pgsteal_kswapd']}, pgscan_direct {vs['pgscan_direct']}: "
          f"{(vs['pgscan_kswapd'] + vs['pgscan_direct']) / dt:,.0f} pages scanned/s end to end")


if __name__ == "__main__":
    main()
