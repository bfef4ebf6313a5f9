"""THP scenarios for notebook 02: plain functions returning DataFrames (widgets and
tests call the same functions).

* :func:`walkthrough` -- the fault path and khugepaged, step by step, for a student;
* :func:`compare_fault_modes` -- ``enabled`` x ``defrag`` side by side under memory
  held by underused THPs;
* :func:`sparse_collapse` / :func:`max_ptes_none_sweep` -- khugepaged's
  ``max_ptes_none``: TLB reach against memory bloat;
* :func:`bloat_scenario` -- the Ingens / HawkEye bloat replay (anchors A5, A6):
  insert, delete most keys at random, reinsert large values.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel, OutOfMemory

MiB = 1 << 20


def _kinds_name(k):
    return {0: "none", 1: "PTE table", 2: "huge PMD (THP)", 3: "huge zero page"}[int(k)]


def walkthrough() -> pd.DataFrame:
    """One process, one 8 MiB mapping, thp enabled=madvise: what each step does to the
    page tables and counters.  Returns one row per step."""
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "khugepaged/scan_sleep_millisecs": 100})
    p = k.spawn()
    a = p.mmap(4 * HPAGE_PMD_SIZE)
    rows = []

    def snap(step):
        vs = k.vmstat()
        kinds = p.pmd_kinds(a, a + 4 * HPAGE_PMD_SIZE)
        rows.append({"step": step, "PMD 0": _kinds_name(kinds[0]), "PMD 1": _kinds_name(kinds[1]),
                     "PMD 2": _kinds_name(kinds[2]), "PMD 3": _kinds_name(kinds[3]),
                     "RssAnon kB": p.status()["RssAnon"], "AnonHugePages kB": k.meminfo()["AnonHugePages"],
                     "thp_fault_alloc": vs["thp_fault_alloc"], "thp_zero_page_alloc": vs["thp_zero_page_alloc"],
                     "thp_split_pmd": vs["thp_split_pmd"], "pages_collapsed": k.pages_collapsed,
                     "t_ms": round(k.now_ns / 1e6, 3)})
        k.check()

    p.touch(a)
    snap("write 1 byte, VMA not madvised: a 4 KiB page")
    p.madvise(a + HPAGE_PMD_SIZE, 3 * HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
    p.touch(a + HPAGE_PMD_SIZE)
    snap("MADV_HUGEPAGE, write 1 byte: a 2 MiB THP")
    p.touch(a + 2 * HPAGE_PMD_SIZE, write=False)
    snap("read 1 byte: the huge zero page")
    p.madvise(a + HPAGE_PMD_SIZE, PAGE_SIZE, "MADV_DONTNEED")
    snap("MADV_DONTNEED 4 KiB of the THP: split_huge_pmd")
    p.touch_range(a, 64 * PAGE_SIZE)
    p.madvise(a, HPAGE_PMD_SIZE, "MADV_HUGEPAGE")
    snap("64 small pages in PMD 0, then MADV_HUGEPAGE on it")
    k.advance(300_000_000)
    snap("300 ms later: khugepaged has collapsed both PTE tables")
    return pd.DataFrame(rows)


def compare_fault_modes(mem_mib=128, idle_mib=100, region_mib=24, max_ptes_none=64,
                        compaction=False) -> pd.DataFrame:
    """``enabled`` x ``defrag`` side by side.

    An idle process holds ``idle_mib`` of THPs that were allocated at fault but only
    ever hold zeros (calloc'd and forgotten: "underused" THPs).  Then an application
    touches two regions of ``region_mib``: one madvised (MADV_HUGEPAGE), one not.
    Memory runs short midway; direct reclaim (only where ``defrag`` allows it for that
    VMA) runs the deferred-split shrinker, which splits the underused THPs and frees
    their zero pages, so the next THP allocation succeeds instead of falling back.

    ``compaction`` (default False, a kernel without CONFIG_COMPACTION) isolates the
    shrinker's part.  With compaction the slow path tries async compaction first; here
    memory, not fragmentation, is short, so compaction is skipped, and a fault that
    was not madvised under ``defrag=always`` (``__GFP_NORETRY``) then gives up without
    reclaim, as ``__alloc_pages_slowpath`` does.
    """
    rows = []
    for enabled in ("never", "madvise", "always"):
        for defrag in ("always", "defer", "defer+madvise", "madvise", "never"):
            k = Kernel(mem_mib * MiB, thp={"enabled": "always", "defrag": "always",
                                          "khugepaged/max_ptes_none": max_ptes_none}, compaction=compaction,
                       lru_reclaim=False)     # the deferred-split shrinker alone, as described
            idle = k.spawn()
            b = idle.mmap(idle_mib * MiB)
            idle.touch_range(b, idle_mib * MiB, stride=HPAGE_PMD_SIZE)      # writes: the value stored...
            idle.touch_pages(np.arange(b, b + idle_mib * MiB, HPAGE_PMD_SIZE),
                             values=np.zeros(idle_mib * MiB // HPAGE_PMD_SIZE, np.uint64))   # ...is zero
            k.sysfs["enabled"] = enabled
            k.sysfs["defrag"] = defrag
            before = k.vmstat()
            t0 = k.now_ns
            app = k.spawn()
            ra = app.mmap(region_mib * MiB)
            rb = app.mmap(region_mib * MiB)
            app.madvise(ra, region_mib * MiB, "MADV_HUGEPAGE")
            oom = False
            try:
                app.touch_range(ra, region_mib * MiB)
                app.touch_range(rb, region_mib * MiB)
            except OutOfMemory:
                oom = True
            k.check()
            vs = k.vmstat()
            huge_a = int(app.pmd_mapped(ra, ra + region_mib * MiB).sum()) * 2
            huge_b = int(app.pmd_mapped(rb, rb + region_mib * MiB).sum()) * 2
            rows.append({"enabled": enabled, "defrag": defrag,
                         "thp_fault_alloc": vs["thp_fault_alloc"] - before["thp_fault_alloc"],
                         "thp_fault_fallback": vs["thp_fault_fallback"] - before["thp_fault_fallback"],
                         "thp_underused_split_page": vs["thp_underused_split_page"] - before["thp_underused_split_page"],
                         "huge MiB (madvised)": huge_a, "huge MiB (not madvised)": huge_b,
                         "fault time ms": round((k.now_ns - t0) / 1e6, 2), "oom": oom})
    return pd.DataFrame(rows)


def sparse_collapse(max_ptes_none=511, fill=0.2, region_mib=32, mem_mib=128, seed=0, scan_seconds=40.0) -> dict:
    """A region faulted with 4 KiB pages where only a fraction ``fill`` of the pages is
    used (at random), then MADV_HUGEPAGE: what khugepaged makes of it.

    Returns useful / resident / huge memory (MiB), the bloat factor (resident/useful),
    the share of useful pages reached through 2 MiB TLB entries, and the TLB entries
    needed to map the useful pages (one per PMD-mapped THP, one per other page).
    """
    if not 0 <= max_ptes_none <= 511:
        raise ValueError(f"max_ptes_none {max_ptes_none} out of range 0..511")
    if not 0 < fill <= 1:
        raise ValueError(f"fill {fill} must be in (0, 1]")
    rng = np.random.default_rng(seed)
    k = Kernel(mem_mib * MiB, thp={"enabled": "madvise", "khugepaged/max_ptes_none": int(max_ptes_none)}, lru_reclaim=False)
    p = k.spawn()
    a = p.mmap(region_mib * MiB)
    n = region_mib * MiB // PAGE_SIZE
    used = np.nonzero(rng.random(n) < fill)[0]
    addrs = a + used * PAGE_SIZE
    p.touch_pages(addrs)
    p.madvise(a, region_mib * MiB, "MADV_HUGEPAGE")
    k.advance(int(scan_seconds * 1e9))
    k.check()
    _, kinds = p.peek(addrs)
    rss = p.status()["RssAnon"] / 1024
    huge_pmds = int(p.pmd_mapped(a, a + region_mib * MiB).sum())
    in_huge = int((kinds == 4).sum())
    return {"max_ptes_none": int(max_ptes_none), "fill": fill, "useful MiB": len(used) * PAGE_SIZE / MiB,
            "resident MiB": rss, "huge MiB": huge_pmds * 2, "bloat": rss / max(len(used) * PAGE_SIZE / MiB, 1e-9),
            "useful pages in THPs": in_huge / max(len(used), 1),
            "TLB entries": huge_pmds + (len(used) - in_huge),
            "pages_collapsed": k.pages_collapsed,
            "thp_scan_exceed_none_pte": k.vmstat()["thp_scan_exceed_none_pte"]}


def max_ptes_none_sweep(values=(0, 32, 64, 128, 256, 384, 448, 511), fill=0.2, **kw) -> pd.DataFrame:
    return pd.DataFrame([sparse_collapse(v, fill, **kw) for v in values])


def plot_max_ptes_none(df: pd.DataFrame, ax=None):
    """Bloat and TLB reach against max_ptes_none."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(df["max_ptes_none"], df["bloat"], "o-", color="C3", label="memory bloat (resident / useful)")
    ax.set_xlabel("khugepaged/max_ptes_none")
    ax.set_ylabel("bloat factor", color="C3")
    ax2 = ax.twinx()
    ax2.plot(df["max_ptes_none"], df["useful pages in THPs"], "s--", color="C0", label="useful pages in THPs")
    ax2.set_ylabel("share of useful pages in THPs", color="C0")
    ax2.set_ylim(-0.05, 1.05)
    ax.set_title(f"fill {df['fill'].iloc[0]:.0%}: TLB reach against bloat")
    return ax


BLOAT_POLICIES = {
    "Linux default (max_ptes_none=511)": {"khugepaged/max_ptes_none": 511},
    "max_ptes_none=256": {"khugepaged/max_ptes_none": 256},
    "max_ptes_none=0": {"khugepaged/max_ptes_none": 0},
}


def bloat_scenario(policy="Linux default (max_ptes_none=511)", mem_mib=256, fill_frac=0.6, delete_frac=0.8,
                   idle_seconds=120.0, seed=0):
    """The bloat replay of Ingens (OSDI'16) and HawkEye (ASPLOS'19), scaled down.

    1. *insert*: a Redis-like heap of 4 KiB values fills ``fill_frac`` of memory
       (THP enabled=always: the heap is faulted as THPs);
    2. *delete*: ``delete_frac`` of the keys at random; the allocator purges their
       pages with MADV_DONTNEED (the THPs' PMDs are split, the folios queued for
       deferred split);
    3. *idle* for ``idle_seconds``: khugepaged scans; with max_ptes_none=511 it
       collapses every sparse region back into a full THP: the freed memory returns;
    4. *reinsert*: 2 MiB values until the live data is back to the phase-1 size.

    Returns (summary dict, timeline DataFrame of t_s, phase, used MiB, AnonHugePages MiB).
    """
    if policy not in BLOAT_POLICIES:
        raise ValueError(f"unknown policy {policy!r}; allowed: {', '.join(BLOAT_POLICIES)}")
    rng = np.random.default_rng(seed)
    k = Kernel(mem_mib * MiB, thp={"enabled": "always", **BLOAT_POLICIES[policy]}, lru_reclaim=False)
    p = k.spawn()
    timeline = []

    def mark(phase):
        mi = k.meminfo()
        timeline.append({"t_s": k.now_ns / 1e9, "phase": phase, "used MiB": (mi["MemTotal"] - mi["MemFree"]) / 1024,
                         "AnonHugePages MiB": mi["AnonHugePages"] / 1024})

    heap_bytes = int(mem_mib * fill_frac) // 2 * 2 * MiB
    heap = p.mmap(heap_bytes)
    nkeys = heap_bytes // PAGE_SIZE
    mark("start")
    p.touch_range(heap, heap_bytes)
    mark("insert")
    victims = rng.choice(nkeys, size=int(nkeys * delete_frac), replace=False)
    p.dontneed_pages(heap + victims * PAGE_SIZE)
    mark("delete")
    steps = 12
    for _ in range(steps):
        k.advance(int(idle_seconds * 1e9 / steps))
        mark("idle")
    live = (nkeys - len(victims)) * PAGE_SIZE
    oom_at = None
    nvalues = 0
    while live + HPAGE_PMD_SIZE <= heap_bytes:
        v = p.mmap(HPAGE_PMD_SIZE)
        try:
            p.touch_range(v, HPAGE_PMD_SIZE)
        except OutOfMemory:
            oom_at = nvalues
            mark("OOM")
            break
        live += HPAGE_PMD_SIZE
        nvalues += 1
        if nvalues % 4 == 0:
            mark("reinsert")
    k.check()
    mark("end")
    vs = k.vmstat()
    summary = {"policy": policy, "heap MiB": heap_bytes // MiB, "deleted MiB": len(victims) * PAGE_SIZE // MiB,
               "pages_collapsed": k.pages_collapsed, "thp_split_page": vs["thp_split_page"],
               "2 MiB values reinserted": nvalues, "OOM": oom_at is not None,
               "used MiB after idle": next(r["used MiB"] for r in reversed(timeline) if r["phase"] == "idle")}
    return summary, pd.DataFrame(timeline)


def plot_bloat(timelines: dict, ax=None, mem_mib=None):
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for i, (name, df) in enumerate(timelines.items()):
        x = np.arange(len(df))
        ax.plot(x, df["used MiB"], "-", color=f"C{i}", label=name)
        oom = df[df.phase == "OOM"]
        if len(oom):
            ax.plot(oom.index, oom["used MiB"], "x", color=f"C{i}", ms=12, mew=3)
    if mem_mib:
        ax.axhline(mem_mib, color="k", lw=0.8, ls=":")
    ax.set_xlabel("step (insert, delete, 12 idle samples, reinsert every 8 MiB)")
    ax.set_ylabel("memory in use (MiB)")
    ax.legend(fontsize=8)
    return ax


def max_ptes_none_widget():
    """Sliders for max_ptes_none and the fill fraction; redraws sparse_collapse()."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display
    mpn = w.IntSlider(value=511, min=0, max=511, step=1, description="max_ptes_none", continuous_update=False)
    fill = w.FloatSlider(value=0.2, min=0.01, max=1.0, step=0.01, description="fill", continuous_update=False)
    out = w.Output()

    def redraw(_=None):
        r = sparse_collapse(mpn.value, fill.value)
        with out:
            out.clear_output(wait=True)
            print(f"resident {r['resident MiB']:.1f} MiB for {r['useful MiB']:.1f} MiB used "
                  f"(bloat x{r['bloat']:.2f}); {r['useful pages in THPs']:.0%} of used pages in THPs; "
                  f"{r['TLB entries']} TLB entries")
        box.last_result = r

    mpn.observe(redraw, "value")
    fill.observe(redraw, "value")
    box = w.VBox([mpn, fill, out])
    box.last_result = None
    redraw()
    return box
