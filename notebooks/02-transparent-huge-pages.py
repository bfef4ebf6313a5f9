# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — Transparent huge pages: the fault path and khugepaged
#
# In April 2010 the argument on linux-mm was whether transparent huge pages (THP) earn
# their complexity. A 2 MiB page lets one TLB entry cover what would otherwise take
# 512, and it shortens every page walk by one level. The price is that the kernel must
# find 2 MiB of physically contiguous memory, zero all of it at fault time, and decide
# what to do when a program uses only part of it.
#
# This notebook runs a simulated Linux kernel (`thpbench.Kernel`). Its page tables,
# fault path, `khugepaged` and splitting code follow Linux 6.18 and use the kernel's
# names, so every counter below can be compared with `/proc/vmstat` on a real machine.
# It covers:
#
# 1. what one page fault does, step by step;
# 2. `khugepaged` collapsing small pages into huge ones on the simulated clock;
# 3. the `enabled` and `defrag` modes side by side;
# 4. `max_ptes_none`: more TLB reach in exchange for wasted memory;
# 5. the memory-bloat scenario from the Ingens and HawkEye papers, and where Linux's
#    default policy runs out of memory.

# %% tags=["parameters"]
import os

SCALE = float(os.environ.get("THPBENCH_SCALE", "1"))
MEM_MIB = int(256 * SCALE)           # physical memory of the bloat scenario
REGION_MIB = int(32 * SCALE)         # the sparse region of the max_ptes_none sweep
SEED = 0

# %%
import matplotlib
import numpy as np
import pandas as pd

import thpbench
from thpbench import mm_scenarios as S
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)

# %% [markdown]
# ## 1. The fault path, one step at a time
#
# A process maps 8 MiB (four 2 MiB regions, which is four PMD entries) while
# `enabled=madvise`. Each row is one action, followed by what each PMD entry now
# points to and the counters involved.
#
# * With `madvise`, a region only gets a huge page if the program asked for one, so
#   the first write gets one 4 KiB page. `do_anonymous_page()` allocates it and a PTE
#   table.
# * After `MADV_HUGEPAGE` the same one-byte write lands in
#   `do_huge_pmd_anonymous_page()`: one order-9 allocation, 2 MiB zeroed, one PMD
#   entry, and `thp_fault_alloc` goes up.
# * A *read* of untouched memory maps the huge zero page. Nothing is allocated for
#   the process and RSS does not change.
# * `MADV_DONTNEED` of a single 4 KiB page cannot remove part of a PMD mapping. The
#   kernel first splits the PMD into 512 PTEs (`split_huge_pmd`, counted in
#   `thp_split_pmd`), then frees that one PTE. The 2 MiB folio itself stays whole and
#   is queued for a deferred split.
# * The first `MADV_HUGEPAGE` also registered the process with `khugepaged`. Once
#   PMD 0 is madvised too, `khugepaged` collapses both PTE tables into THPs at its
#   next wake-up, filling the empty entries with zeros (`max_ptes_none` is 511).

# %%
walk = S.walkthrough()
walk
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# ## 2. khugepaged on the simulated clock
#
# `khugepaged` wakes every `scan_sleep_millisecs` (10 s by default) and scans
# `pages_to_scan` PTEs (4096, so 8 PMDs) per wake-up. It takes the registered
# processes in turn (the `mm_slot` list). A PTE table is collapsed if it passes the
# rules of `hpage_collapse_scan_pmd()`:
#
# * at most `max_ptes_none` empty entries;
# * at most `max_ptes_swap` swapped-out entries;
# * at most `max_ptes_shared` entries shared with another process;
# * at least one writable page and one recently referenced (young) page.
#
# Below, a process faults 64 MiB as small pages and then asks for huge pages. The
# default scan rate collapses 16 MiB per 10 s, so the conversion takes most of a
# minute of simulated time. In 2010 Kivity watched `khugepaged` collapse 50–100
# pages/s and still found only 40–50 MB of a 1.2 GB sort in huge pages after 80 s
# (anchor A0). In his case, fragmentation by the page cache was the bigger limit.

# %%
k = thpbench.Kernel(256 << 20)
p = k.spawn()
a = p.mmap(64 << 20)
p.touch_range(a, 64 << 20)                      # faulted as 4 KiB pages: the VMA is not madvised
p.madvise(a, 64 << 20, "MADV_HUGEPAGE")         # khugepaged_enter_vma(): the mm joins the scan list
for _ in range(8):
    k.advance(10_000_000_000)                   # 10 s of simulated time
k.check()
res = k.result()
timeline = res.df[["t_ns", "AnonHugePages", "pages_collapsed", "full_scans"]].copy()
timeline["t_s"] = timeline.t_ns / 1e9
ax = timeline.plot(x="t_s", y="AnonHugePages", drawstyle="steps-post", legend=False, figsize=(6, 3))
ax.set_xlabel("simulated time (s)")
ax.set_ylabel("AnonHugePages (kB)")
ax.set_title("khugepaged at its defaults: 8 PMDs per 10 s");

# %%
print({key: k.vmstat()[key] for key in ("thp_collapse_alloc", "thp_fault_alloc", "nr_anon_transparent_hugepages")},
      k.khugepaged_stats()["pages_collapsed"], k.khugepaged_stats()["full_scans"])
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# ## 3. `enabled` and `defrag`, side by side
#
# `enabled` decides *whether* a fault may use a huge page. `defrag` decides *how hard*
# the allocator may try when no free 2 MiB block exists. `vma_thp_gfp_mask()` turns
# `defrag` into allocation flags: `always` enters direct reclaim for every VMA;
# `madvise` and `defer+madvise` do so only for `MADV_HUGEPAGE` VMAs; `defer` and
# `never` fail fast and fall back to 4 KiB pages (`thp_fault_fallback`).
#
# The setup: an idle process holds 100 MiB of THPs that contain nothing but zeros
# (memory that was allocated and never used). An application then touches two 24 MiB
# regions, the first madvised and the second not. Memory runs out partway through.
# Direct reclaim here means the deferred-split shrinker. It splits each "underused" THP,
# maps its zero-filled pages to the shared zero page, and frees them
# (`thp_underused_split_page`). To show that mechanism alone, this table runs a
# kernel built without compaction (`Kernel(..., compaction=False)`, as without
# `CONFIG_COMPACTION`): here memory, not fragmentation, is short, so compaction would
# only be skipped. Compaction and its stalls are the subject of notebook 03.

# %%
modes = S.compare_fault_modes()
modes
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Reading the table:
#
# * With `enabled=never` the application gets no THPs at all.
# * With `enabled=madvise`, only the madvised region is eligible. Its allocations
#   reclaim under `always`, `defer+madvise` and `madvise`; under `defer` and `never`
#   they fall back to small pages.
# * With `enabled=always`, only `defrag=always` reclaims for the region that was not
#   madvised as well. That is why `madvise` became the usual default for `defrag`:
#   direct reclaim stalls are paid only by programs that asked for huge pages.
# * `fault time ms` charges each fault what `thpbench.CostModel.default()` says: this
#   machine's own first-touch costs as `benchmarks/calibrate.py` measured them (without a
#   calibration, the rates of the first THP RFC, anchor A0), plus an estimate for splitting.

# %% [markdown]
# ## 4. `max_ptes_none`: TLB reach against memory bloat
#
# `max_ptes_none` (default 511) is the number of *empty* entries `khugepaged`
# tolerates in a PTE table it collapses. The empty entries become real, zeroed memory
# inside the new THP. At 511, a single used page is enough to turn 4 KiB of memory
# into 2 MiB. At 0, only completely full tables are collapsed.
#
# Below, 20 % of the pages of a region are in use, scattered at random. Each point
# shows how much memory is resident after `khugepaged` has finished, and what share of
# the useful pages a 2 MiB TLB entry reaches.

# %%
sweep = S.max_ptes_none_sweep(values=(0, 64, 128, 256, 384, 448, 480, 511), fill=0.2, region_mib=REGION_MIB,
                              mem_mib=max(128, 4 * REGION_MIB))
S.plot_max_ptes_none(sweep);

# %%
sweep[["max_ptes_none", "useful MiB", "resident MiB", "bloat", "useful pages in THPs", "TLB entries"]].round(3)
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# The change is a step. With 20 % of the pages used, a table has about 410 empty
# entries, so nothing collapses until `max_ptes_none` reaches that number. From there
# on every table collapses: resident memory grows about five-fold, and the useful
# pages need 16 TLB entries instead of about 1700. Move the sliders to try other fill
# levels. The widget calls `S.sparse_collapse()`, the same function the tests call.

# %%
S.max_ptes_none_widget()

# %% [markdown]
# ## 5. The bloat scenario of Ingens and HawkEye (anchors A5, A6)
#
# Ingens (OSDI 2016) and HawkEye (ASPLOS 2019) both describe a Redis workload that
# runs a THP kernel out of memory. HawkEye's version has three phases: insert many
# small values, delete 80 % of the keys at random, then insert large values until
# memory use is back where it started. Here it is scaled down to a simulated machine
# of `MEM_MIB` MiB with `enabled=always`:
#
# 1. *insert*: a heap of 4 KiB values fills 60 % of memory. The heap is faulted as
#    THPs.
# 2. *delete*: the allocator returns the pages of 80 % of the keys with
#    `MADV_DONTNEED`. Each affected PMD is split, and each THP, now partly mapped, is
#    queued for deferred split.
# 3. *idle*: `khugepaged` scans. With `max_ptes_none=511`, every table with at least
#    one page left is collapsed back into a full THP, so the deleted memory comes back
#    as zeros. The partly mapped folios would have been split and freed under memory
#    pressure. A collapsed THP is fully mapped, so the shrinker leaves it alone.
# 4. *reinsert*: 2 MiB values until the live data is as large as in phase 1.

# %%
summaries, timelines = [], {}
for policy in S.BLOAT_POLICIES:
    summary, tl = S.bloat_scenario(policy, mem_mib=MEM_MIB, seed=SEED)
    summaries.append(summary)
    timelines[policy] = tl
ax = S.plot_bloat(timelines, mem_mib=MEM_MIB)
ax.set_title("memory in use; x = out of memory");

# %%
pd.DataFrame(summaries).set_index("policy")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# With Linux's default `max_ptes_none=511`, `khugepaged` rebuilds all the deleted
# memory as THPs. The reinsert phase then runs out of memory well before the live
# data reaches its original size, even though only 40 % of physical memory holds live
# data. With a stricter `max_ptes_none` nothing is collapsed. When memory runs short,
# the deferred-split shrinker splits the partly mapped THPs and frees the deleted
# pages, so the reinsert phase completes. The price is that the surviving small values
# lose their huge pages. That trade-off is what Ingens (utilization-based promotion)
# and HawkEye (bloat recovery by de-duplicating zero pages) were designed to improve.
# Linux 6.12's underused-THP shrinker (`shrink_underused`, active when
# `max_ptes_none < 511`) is the kernel's own step in that direction.
#
# **What the model leaves out.** In this notebook reclaim means the deferred-split
# shrinker; LRU reclaim, kswapd and compaction are in the simulated kernel but are the
# subject of notebook 03. Folios are order 0 or 9 (no mTHP). All costs are taken from
# `thpbench.CostModel`. For the simulator's speed against this machine's kernel, see
# `benchmarks/bench_mm.py`.
