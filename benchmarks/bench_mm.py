"""Benchmark the simulated fault path and khugepaged against this machine's kernel.

Prints, in one run:

* simulated first-touch faults per second through the bulk path
  (``Process.touch_range``: one write per 4 KiB page, in the core without Python per
  page) with THP off (4 KiB faults) and on (2 MiB faults), and through
  ``touch_pages`` (an address array);
* khugepaged: PTEs scanned per second by hpage_collapse_scan_pmd (pages that are never
  collapsed because none is young, so every pass rescans them) and collapses per second;
* the real kernel's first-touch rate on this machine: an anonymous mmap with
  MADV_NOHUGEPAGE or MADV_HUGEPAGE, one byte written per 4 KiB page by numpy (a C
  loop, so Python does not slow the real side down);
* the ratios simulated / real;
* compaction through the simulated kernel's mover (``Kernel.compact_memory`` on an
  aged machine: every migrated page's PTEs rewritten through the rmap, a "migrate"
  event each): pages migrated and pfns scanned per second, and the ratio to the same
  compaction of an identically aged zone with no owner to tell (buddy state only).

Usage: python benchmarks/bench_mm.py [--mib 512] [--repeat 3]   (THPBENCH_SCALE scales --mib)
"""
import argparse
import os
import time

import numpy as np

from thpbench.costs import first_touch_ns
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel


def best(fn, repeat):
    out = None
    for _ in range(repeat):
        r = fn()
        if out is None or r[0] < out[0]:
            out = r
    return out


def sim_first_touch(mib, enabled, repeat, bulk="range"):
    size = mib << 20

    def run():
        k = Kernel(2 * size + (64 << 20), thp={"enabled": enabled})
        p = k.spawn()
        a = p.mmap(size)
        t = time.perf_counter()
        if bulk == "range":
            p.touch_range(a, size)
        else:
            p.touch_pages(np.arange(a, a + size, PAGE_SIZE))
        dt = time.perf_counter() - t
        st = k.core.stats()
        faults = st["pgfault"]
        k.check()
        return dt, faults
    dt, faults = best(run, repeat)
    return {"pages_per_s": size // PAGE_SIZE / dt, "faults_per_s": faults / dt, "faults": faults, "seconds": dt}


def real_first_touch(mib, huge, repeat):
    """This machine's kernel (thpbench.costs.first_touch_ns: mmap + MADV_HUGEPAGE or
    MADV_NOHUGEPAGE, one byte per 4 KiB page written by numpy, best of ``repeat``)."""
    r = first_touch_ns(mib << 20, huge=huge, repeat=repeat)
    return {"pages_per_s": 1e9 / r["ns_per_page"], "huge_share": r["huge_share"]}


def khugepaged_scan_rate(mib, repeat):
    size = mib << 20

    def run():
        k = Kernel(size + (128 << 20), thp={"enabled": "madvise", "khugepaged/pages_to_scan": 1 << 20,
                                            "khugepaged/scan_sleep_millisecs": 10})
        p = k.spawn()
        a = p.mmap(size)
        p.touch_range(a, size)                 # 4 KiB pages (VMA not yet madvised)
        p.age(a, size)                         # nothing young: SCAN_LACK_REFERENCED_PAGE, never collapsed
        p.madvise(a, size, "MADV_HUGEPAGE")
        s0 = k.core.stats()["x_ptes_scanned"]      # (madvise already woke khugepaged once)
        t = time.perf_counter()
        for _ in range(5):
            k.khugepaged_scan_now()
        dt = time.perf_counter() - t
        return dt, k.core.stats()["x_ptes_scanned"] - s0

    dt, scanned = best(run, repeat)

    def run_collapse():
        k = Kernel(2 * size + (128 << 20), thp={"enabled": "madvise", "khugepaged/pages_to_scan": 1 << 20})
        p = k.spawn()
        a = p.mmap(size)
        p.touch_range(a, size)
        t = time.perf_counter()
        p.madvise(a, size, "MADV_HUGEPAGE")    # khugepaged wakes on the new mm_slot and collapses
        k.khugepaged_scan_now()
        dt = time.perf_counter() - t
        k.check()
        return dt, k.pages_collapsed

    dtc, collapsed = best(run_collapse, repeat)
    return {"ptes_scanned_per_s": scanned / dt, "collapses_per_s": collapsed / dtc, "collapsed": collapsed}


def compaction_rate(mib, repeat):
    from thpbench.kernel.compaction import compact_memory
    from thpbench.experiments import aged_kernel

    def run(mover):
        k, p, addrs, values = aged_kernel(mib, touched=0.9, keep=0.25, seed=0, vm={"compaction_proactiveness": 0})
        k._events.clear()
        t = time.perf_counter()
        # compact_memory in the core: with the kernel's mover, or with no owner to tell
        out = compact_memory(k.buddy, k.core if mover else None, state=k.compaction_state)
        dt = time.perf_counter() - t
        k._after_op()                  # the kernel's side: "migrate" events to the log and TLB hooks
        dt_all = time.perf_counter() - t
        if mover:
            k.check()
            got, _ = p.peek(addrs)
            assert (got == values).all()
        return dt, out["pgmigrate_success"], out["total_migrate_scanned"] + out["total_free_scanned"], dt_all

    dt, moved, scanned, dt_all = best(lambda: run(True), repeat)
    dt0, moved0, _, _ = best(lambda: run(False), repeat)
    return {"migrated_per_s": moved / dt, "scanned_per_s": scanned / dt, "migrated": moved,
            "end_to_end_per_s": moved / dt_all, "bare_migrated_per_s": moved0 / dt0, "bare_migrated": moved0}


def reclaim_scan_rate(mib):
    """kswapd reclaim through the core: a file twice the size of memory streamed through
    the page cache (read(2)); pages scanned per wall-clock second, end to end."""
    k = Kernel(mib << 20, thp={"enabled": "never"})
    f = k.page_cache.create("stream", 2 * (mib << 20))
    t = time.perf_counter()
    f.read()
    dt = time.perf_counter() - t
    vs = k.vmstat()
    k.check()
    scanned = vs["pgscan_kswapd"] + vs["pgscan_direct"]
    return {"scanned_per_s": scanned / dt, "scanned": scanned, "stolen": vs["pgsteal_kswapd"] + vs["pgsteal_direct"]}


def kbuild_minute(gib=64, seed=0):
    """Issue 4's figure: a ``gib`` GiB machine, aged (a dd-filled page cache up to 32 MiB
    above the high watermark, then 100 kernel-build jobs), runs one simulated minute of
    the kernel-build mix (thpbench.kernel.reclaim.kernel_build_mix, 50 ms per job, 16-128 MiB
    of anon each) with khugepaged, kswapd and kcompactd on the clock (THP always,
    defrag=defer).  Returns wall-clock seconds of each phase and what the daemons did."""
    from thpbench.kernel.reclaim import kernel_build_mix
    t0 = time.perf_counter()
    k = Kernel(gib << 30, thp={"enabled": "always", "defrag": "defer"})
    t1 = time.perf_counter()
    nbytes = (k.buddy.nr_free_pages - k.watermarks["high"] - (32 << 20) // PAGE_SIZE) * PAGE_SIZE
    f = k.page_cache.create("dd.out", nbytes)
    chunk = 256 << 20
    for off in range(0, nbytes, chunk):
        n = min(chunk, nbytes - off)
        f.write(off, np.arange(off // PAGE_SIZE, (off + n) // PAGE_SIZE, dtype=np.uint64) + 1)
    f.fsync()
    kernel_build_mix(k, jobs=100, seed=seed)
    t2 = time.perf_counter()
    start_ns, jobs, before = k.now_ns, 0, k.vmstat()
    runs0, checks0 = k.kswapd.runs, len(k.kcompactd.history)
    while k.now_ns - start_ns < 60e9:
        kernel_build_mix(k, jobs=50, seed=seed + 1 + jobs, anon_mib=(16, 128))
        jobs += 50
    t3 = time.perf_counter()
    k.check()
    vs = k.vmstat()
    d = {c: vs[c] - before[c] for c in ("thp_fault_alloc", "thp_fault_fallback", "pgscan_kswapd", "pgsteal_kswapd",
                                        "compact_daemon_wake", "pgmigrate_success")}
    return {"create_s": t1 - t0, "age_s": t2 - t1, "minute_s": t3 - t2, "jobs": jobs,
            "simulated_s": (k.now_ns - start_ns) / 1e9, "kswapd_runs": k.kswapd.runs - runs0,
            "kcompactd_rows": len(k.kcompactd.history) - checks0, "full_scans": k.full_scans, **d}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scale = float(os.environ.get("THPBENCH_SCALE", "1"))
    ap.add_argument("--mib", type=int, default=int(512 * scale))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kbuild-gib", type=int, default=int(64 * scale), help="machine of the kernel-build minute")
    args = ap.parse_args()
    mib, rep = args.mib, args.repeat
    print(f"bench_mm: {mib} MiB first touch, best of {rep}; host THP: "
          f"{open('/sys/kernel/mm/transparent_hugepage/enabled').read().strip()}")
    s4 = sim_first_touch(mib, "never", rep)
    s2 = sim_first_touch(mib, "always", rep)
    sb = sim_first_touch(mib, "never", rep, bulk="pages")
    r4 = real_first_touch(mib, False, rep)
    r2 = real_first_touch(mib, True, rep)
    kh = khugepaged_scan_rate(min(mib, 256), rep)
    cm = compaction_rate(max(mib // 2, 64), rep)
    rows = [
        ("simulated 4 KiB first touch (touch_range)", s4["faults_per_s"], "faults/s"),
        ("simulated 4 KiB first touch (touch_pages)", sb["faults_per_s"], "faults/s"),
        ("simulated THP first touch (touch_range)", s2["faults_per_s"], "2 MiB faults/s"),
        ("simulated THP first touch, per 4 KiB page", s2["pages_per_s"], "pages/s"),
        ("real kernel 4 KiB first touch (MADV_NOHUGEPAGE)", r4["pages_per_s"], "faults/s"),
        ("real kernel first touch (MADV_HUGEPAGE), per 4 KiB page", r2["pages_per_s"], "pages/s"),
        ("simulated khugepaged scan", kh["ptes_scanned_per_s"], "PTEs/s"),
        ("simulated khugepaged collapse", kh["collapses_per_s"], "collapses/s"),
        (f"simulated compact_memory, MMCore mover ({max(mib // 2, 64)} MiB aged)", cm["migrated_per_s"],
         "pages migrated/s"),
        ("simulated compact_memory, MMCore mover, scanners", cm["scanned_per_s"], "pfns scanned/s"),
        ("  ... with Kernel's event drain (Kernel.compact_memory)", cm["end_to_end_per_s"], "pages migrated/s"),
        ("same compaction without an owner (buddy state only)", cm["bare_migrated_per_s"], "pages migrated/s"),
    ]
    for name, val, unit in rows:
        print(f"  {name:<58s} {val:>14,.0f} {unit}")
    print(f"  real MADV_HUGEPAGE run: {r2['huge_share']:.0%} of the mapping was in THPs (smaps AnonHugePages)")
    print(f"ratio simulated / real, 4 KiB first touch: {s4['faults_per_s'] / r4['pages_per_s']:.1f}x "
          f"(touch_pages: {sb['faults_per_s'] / r4['pages_per_s']:.1f}x)")
    print(f"ratio simulated / real, THP first touch per page: {s2['pages_per_s'] / r2['pages_per_s']:.1f}x")
    print(f"real kernel THP vs 4 KiB first touch per page: {r2['pages_per_s'] / r4['pages_per_s']:.2f}x")
    print(f"compaction: {cm['migrated']:,} pages migrated through the mover ({cm['bare_migrated']:,} without an "
          f"owner); mover / bare rate: {cm['migrated_per_s'] / cm['bare_migrated_per_s']:.2f}x")
    rc = reclaim_scan_rate(mib * 2)
    print(f"  {'simulated reclaim, a file streamed through the page cache':<58s} {rc['scanned_per_s']:>14,.0f} "
          f"pages scanned/s ({rc['scanned']:,} scanned, {rc['stolen']:,} reclaimed; per-list rates: "
          f"benchmarks/bench_reclaim.py)")
    kb = kbuild_minute(args.kbuild_gib)
    print(f"{args.kbuild_gib} GiB aged machine, one simulated minute of the kernel-build mix "
          f"({kb['jobs']} jobs, {kb['simulated_s']:.1f} simulated s): {kb['minute_s']:.2f} s "
          f"(machine built in {kb['create_s']:.2f} s, aged in {kb['age_s']:.2f} s)")
    print(f"  daemons during the minute: kswapd ran {kb['kswapd_runs']} times (pgscan_kswapd "
          f"{kb['pgscan_kswapd']:,}, pgsteal_kswapd {kb['pgsteal_kswapd']:,}), khugepaged full_scans "
          f"{kb['full_scans']}, kcompactd {kb['compact_daemon_wake']} wakes, {kb['pgmigrate_success']:,} pages "
          f"migrated; thp_fault_alloc {kb['thp_fault_alloc']:,}, thp_fault_fallback {kb['thp_fault_fallback']:,}")


if __name__ == "__main__":
    main()
