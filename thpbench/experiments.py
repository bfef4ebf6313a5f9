"""Named scenarios of the 2010 debate and of the papers: config -> run -> tidy DataFrame.

* :func:`aged_kernel` -- a simulated kernel whose memory a process filled with 4 KiB
  pages (each holding a value) and then gave back at random: fragmented, but
  compactable, since every page left is movable anonymous memory.
* :func:`defrag_fault_latency` -- THP fault latency percentiles per sysfs ``defrag``
  mode on such a machine (the direct compaction stall Ingens measured).
* :func:`kivity_coverage` -- Avi Kivity's April 2010 observation: huge pages of a
  sort's buffer while the page cache holds memory, then after dropping the caches.
* :func:`gorman_hugepage_allocation` -- the shape of Mel Gorman's April 2010 table
  (anchors A8): on an aged machine, try to allocate a large share of memory as huge
  pages with compaction on and off and report the success rate.

Simplified: aging is one process's random frees (no kernel build, no page cache or
slab; ``thpbench.kernel.reclaim.kernel_build_mix`` ages with those).  ``pages_reclaimed`` counts
what kswapd and direct reclaim stole (``pgsteal_kswapd + pgsteal_direct``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel

MiB = 1 << 20

__all__ = ["aged_kernel", "build_and_cache_kernel", "kivity_coverage", "plot_kivity", "defrag_fault_latency", "latency_percentiles", "gorman_hugepage_allocation",
           "plot_defrag_latency", "plot_gorman"]


def _fraction(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= 1:
        raise ValueError(f"{what} must be a number in (0, 1], got {x!r}")
    return float(x)


def aged_kernel(mem_mib=128, touched=0.85, keep=0.25, seed=0, *, thp=None, vm=None, compaction=True):
    """A kernel aged by one process: it writes a value into ``touched`` of memory with
    4 KiB pages (THP off while it does), then ``MADV_DONTNEED``s a random ``1 - keep``
    of them (seeded).  ``thp``/``vm`` are applied afterwards.  Returns
    ``(kernel, process, kept_addresses, kept_values)``."""
    touched, keep = _fraction(touched, "touched"), _fraction(keep, "keep")
    k = Kernel(int(mem_mib) * MiB, thp={"enabled": "never"}, vm=vm, compaction=compaction)
    p = k.spawn()
    n = int(mem_mib * MiB * touched) // HPAGE_PMD_SIZE * HPAGE_PMD_SIZE
    a = p.mmap(n)
    pages = np.arange(a, a + n, PAGE_SIZE, dtype=np.int64)
    values = np.arange(1, len(pages) + 1, dtype=np.uint64)
    p.touch_pages(pages, values=values)
    kept = np.random.default_rng(seed).random(len(pages)) < keep
    p.dontneed_pages(pages[~kept])
    for key, v in (thp or {}).items():
        k.sysfs[key] = v
    return k, p, pages[kept], values[kept]


def latency_percentiles(df, percentiles=(50, 90, 99, 100), by=None):
    """Percentiles of ``latency_ns`` (a :meth:`Kernel.thp_fault_latencies` frame), in
    microseconds: tidy rows (``by`` columns, percentile, latency_us)."""
    groups = [((), df)] if by is None else df.groupby(by)
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for q in percentiles:
            r = dict(zip([by] if isinstance(by, str) else (by or []), key))
            r.update({"percentile": float(q), "latency_us": float(np.percentile(g["latency_ns"], q)) / 1e3})
            rows.append(r)
    return pd.DataFrame(rows)


def defrag_fault_latency(modes=("always", "defer"), mem_mib=128, fault_mib=32, touched=0.85, keep=0.25, seed=0,
                         percentiles=(50, 90, 99, 100)) -> pd.DataFrame:
    """THP fault latency percentiles per ``defrag`` mode on an aged machine.

    For each mode a fresh :func:`aged_kernel` (same seed) gets a process that faults a
    madvised region of ``fault_mib``; each THP allocation attempt's latency is the
    fault's cost plus the direct compaction it waited for (``thp_fault_latencies``).
    Returns tidy rows: defrag, percentile, latency_us, thp_share (THPs / attempts),
    compact_stall (stalls of the mode).
    """
    rows = []
    for mode in modes:
        k, _, _, _ = aged_kernel(mem_mib, touched, keep, seed, thp={"enabled": "madvise", "defrag": mode},
                                 vm={"compaction_proactiveness": 0})
        q = k.spawn()
        b = q.mmap(int(fault_mib) * MiB)
        q.madvise(b, int(fault_mib) * MiB, "MADV_HUGEPAGE")
        q.touch_range(b, int(fault_mib) * MiB)
        lat = k.thp_fault_latencies()
        pc = latency_percentiles(lat, percentiles)
        pc.insert(0, "defrag", mode)
        pc["thp_share"] = float(lat["thp"].mean())
        pc["compact_stall"] = int(lat["compact_stall"].sum())
        rows.append(pc)
    return pd.concat(rows, ignore_index=True)


def build_and_cache_kernel(mem_mib=256, jobs=120, cached=0.6, seed=0, *, thp=None, vm=None, compaction=True):
    """A kernel aged as Gorman's stress test left his machines: kernel-build jobs
    (:func:`thpbench.kernel.reclaim.kernel_build_mix`: short-lived anon, page cache, dentries,
    inodes, long-lived kmalloc) and then a file of ``cached`` of memory written and
    synced, as ``dd`` leaves it in the page cache.  Returns ``(kernel, file)``."""
    from thpbench.kernel.reclaim import kernel_build_mix
    cached = _fraction(cached, "cached")
    k = Kernel(int(mem_mib) * MiB, thp={"enabled": "never"}, vm=vm, compaction=compaction)
    kernel_build_mix(k, jobs=int(jobs), seed=seed)
    nbytes = int(mem_mib * MiB * cached) // PAGE_SIZE * PAGE_SIZE
    f = k.page_cache.create("dd.out", nbytes)
    f.write(0, np.arange(1, nbytes // PAGE_SIZE + 1, dtype=np.uint64))
    f.fsync()
    for key, v in (thp or {}).items():
        k.sysfs[key] = v
    return k, f


def gorman_hugepage_allocation(mem_mib=256, target=0.9, touched=0.9, keep=0.25, seed=0,
                               compaction=(False, True), defrag="always", interval_ms=0,
                               aging="anon") -> pd.DataFrame:
    """The shape of Gorman's April 2010 compaction table (anchors A8).

    On an aged machine (``aging="anon"``: :func:`aged_kernel`, the aging process still
    holding its pages; ``"kernel_build"``: :func:`build_and_cache_kernel`, kernel builds
    and a dd-filled page cache that reclaim must make room in), a process tries to fault ``target`` of memory as huge pages (madvised; with
    ``defrag="always"`` each fault may compact directly, with ``"defer"`` it wakes
    kcompactd instead), one 2 MiB region at a time, ``interval_ms`` of simulated time
    apart; a fault that falls back gives its small page back.  Run once per
    ``compaction`` setting.  (Gorman allocated hugetlbfs pages, whose allocations retry
    compaction up to its synchronous priorities; a THP fault runs async compaction
    only, so the model's rates are a lower bound of his.)  Returns one row per setting:
    compaction, attempts (huge pages asked for), huge_pages (obtained), success_rate,
    compact_stall, compact_success, pgmigrate_success, pages_reclaimed (pgsteal_kswapd +
    pgsteal_direct), time_ms (the faulting task's simulated time).
    """
    target = _fraction(target, "target")
    if aging not in ("anon", "kernel_build"):
        raise ValueError(f"aging {aging!r}: allowed 'anon' (aged_kernel) or 'kernel_build' (build_and_cache_kernel)")
    rows = []
    for on in compaction:
        policy = dict(compaction=bool(on), thp={"enabled": "madvise", "defrag": defrag},
                      vm={"compaction_proactiveness": 0})
        if aging == "anon":
            k, p, addrs, values = aged_kernel(mem_mib, touched, keep, seed, **policy)
        else:
            k, f = build_and_cache_kernel(mem_mib, seed=seed, **policy)
            data = f.values()
        attempts = int(mem_mib * MiB * target) // HPAGE_PMD_SIZE
        q = k.spawn()
        b = q.mmap(attempts * HPAGE_PMD_SIZE)
        q.madvise(b, attempts * HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
        before = k.vmstat()
        t0 = k.now_ns
        got = 0
        for i in range(attempts):
            addr = b + i * HPAGE_PMD_SIZE
            if interval_ms and i:
                k.advance(int(interval_ms * 1_000_000))    # daemons (kcompactd) run meanwhile
            try:
                q.touch(addr)
            except MemoryError:
                break
            if not q.pmd_mapped(addr, addr + HPAGE_PMD_SIZE)[0]:
                q.munmap(addr, HPAGE_PMD_SIZE)          # give the fallback page back
                continue
            got += 1
        vs = k.vmstat()
        if aging == "anon":
            got_vals, _ = p.peek(addrs)
            if not np.array_equal(got_vals, values):
                raise AssertionError("the aged process's data changed under compaction")
        elif not np.array_equal(f.values(), data):
            raise AssertionError("the cached file's data changed under reclaim and compaction")
        k.check()
        rows.append({"compaction": bool(on), "attempts": attempts, "huge_pages": got,
                     "success_rate": got / attempts if attempts else 0.0,
                     "compact_stall": vs["compact_stall"] - before["compact_stall"],
                     "compact_success": vs["compact_success"] - before["compact_success"],
                     "pgmigrate_success": vs["pgmigrate_success"] - before["pgmigrate_success"],
                     # pages reclaimed to get them: what kswapd and direct reclaim stole
                     "pages_reclaimed": sum(vs[c] - before[c] for c in ("pgsteal_kswapd", "pgsteal_direct")),
                     "time_ms": (k.now_ns - t0) / 1e6})
    return pd.DataFrame(rows)


def kivity_coverage(scale=1.0, *, aged=True, settle_s=60, after_drop_s=60, step_s=10,
                    khugepaged_sleep_ms=(10000, 100), seed=0) -> pd.DataFrame:
    """Avi Kivity's April 2010 observation (anchors A0), as a time line.

    :func:`thpbench.kernel.reclaim.kivity_sort` (``sort -S 1200M`` of a 1 GB file on a 2 GB
    machine, times ``scale``; after a kernel-build aging when ``aged``) runs; then the
    machine idles ``settle_s`` seconds with the page cache still full, then
    ``drop_caches`` 1 (the page cache) and ``after_drop_s`` seconds, then
    ``drop_caches`` 2 (dentries and inodes) and ``after_drop_s`` more.  Run once per
    ``khugepaged/scan_sleep_millisecs`` in ``khugepaged_sleep_ms`` (10000 is the default;
    Kivity saw khugepaged collapse 50-100 pages a second).  Returns tidy rows: khugepaged
    sleep, t_s (simulated seconds), phase, anon_huge_mib (AnonHugePages), cached_mib,
    free_mib, thp_collapse_alloc.
    """
    from thpbench.kernel.reclaim import kivity_sort
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0.05 <= scale <= 4:
        raise ValueError(f"scale must be a number in [0.05, 4], got {scale!r}")
    rows = []
    for sleep_ms in khugepaged_sleep_ms:
        k, df = kivity_sort(mem_bytes=int(2048 * scale) * MiB, file_bytes=int(1024 * scale) * MiB,
                            sort_bytes=int(1200 * scale) * MiB, chunk_bytes=max(2, int(32 * scale)) * MiB,
                            aged=aged, aging_jobs=max(4, int(60 * scale)), seed=seed)
        k.sysfs["khugepaged/scan_sleep_millisecs"] = int(sleep_ms)

        def row(phase):
            mi, vs = k.meminfo(), k.vmstat()
            rows.append({"khugepaged_sleep_ms": int(sleep_ms), "t_s": k.now_ns / 1e9, "phase": phase,
                         "anon_huge_mib": mi["AnonHugePages"] / 1024, "cached_mib": mi["Cached"] / 1024,
                         "free_mib": k.buddy.nr_free_pages * PAGE_SIZE / MiB,
                         "thp_collapse_alloc": vs["thp_collapse_alloc"]})

        for r in df.itertuples():
            rows.append({"khugepaged_sleep_ms": int(sleep_ms), "t_s": r.t_ns / 1e9, "phase": r.phase,
                         "anon_huge_mib": r.anon_huge_mib, "cached_mib": r.cached_mib, "free_mib": r.free_mib,
                         "thp_collapse_alloc": np.nan})
        for phase, seconds, drop in (("page cache kept", settle_s, None), ("after drop_caches 1", after_drop_s, 1),
                                     ("after drop_caches 2", after_drop_s, 2)):
            if drop is not None:
                k.drop_caches(drop)
                row(f"drop_caches {drop}")
            for _ in range(int(seconds // step_s)):
                k.advance(int(step_s * 1e9))
                row(phase)
        k.check()
    return pd.DataFrame(rows)


def plot_kivity(df, ax, *, title="huge pages of sort's buffer while the page cache holds memory"):
    """AnonHugePages and the page cache over simulated time (a :func:`kivity_coverage`
    frame), one line pair per khugepaged pace."""
    for sleep_ms, g in df.groupby("khugepaged_sleep_ms", sort=False):
        line, = ax.plot(g.t_s, g.anon_huge_mib, label=f"AnonHugePages, khugepaged every {sleep_ms} ms")
        ax.plot(g.t_s, g.cached_mib, ls=":", color=line.get_color(), label=f"page cache ({sleep_ms} ms run)")
    for phase in ("drop_caches 1", "drop_caches 2"):
        t = df.loc[df.phase == phase, "t_s"]
        if len(t):
            ax.axvline(t.iloc[0], color="#999999", lw=0.8)
            ax.annotate(phase, (t.iloc[0], ax.get_ylim()[1] * 0.95), fontsize="small", rotation=90,
                        va="top", ha="right")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("MiB")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="center right")
    return ax


# -- figures (thin: data in, an ax out) ------------------------------------------------------

def plot_defrag_latency(df, ax, *, title="THP fault latency by defrag mode"):
    """Latency percentiles (a :func:`defrag_fault_latency` frame) as grouped bars, log
    scale: one group per percentile, one bar per ``defrag`` mode."""
    piv = df.pivot(index="percentile", columns="defrag", values="latency_us")
    x = np.arange(len(piv.index))
    w = 0.8 / max(len(piv.columns), 1)
    for i, mode in enumerate(piv.columns):
        ax.bar(x + i * w - 0.4 + w / 2, piv[mode].to_numpy(), w, label=f"defrag={mode}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"p{q:g}" for q in piv.index])
    ax.set_yscale("log")
    ax.set_ylabel("latency (µs, simulated)")
    ax.set_title(title)
    ax.legend()
    return ax


def plot_gorman(df, ax, *, title="huge pages obtained on an aged machine"):
    """Success rate with compaction off and on (a :func:`gorman_hugepage_allocation` frame)."""
    labels = ["compaction on" if c else "compaction off" for c in df["compaction"]]
    ax.bar(labels, 100 * df["success_rate"].to_numpy(), color=["#999999" if not c else "#1f77b4"
                                                                for c in df["compaction"]])
    ax.set_ylim(0, 100)
    ax.set_ylabel("huge page allocations that succeeded (%)")
    ax.set_title(title)
    return ax
