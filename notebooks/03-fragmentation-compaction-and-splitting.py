# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Aged memory: fragmentation, compaction and the cost of a huge page
#
# Notebook 02 handed out huge pages on a machine that had just booted. Real machines
# are not like that, and the people arguing about THP in April 2010 knew it. Linus
# Torvalds asked for numbers taken "*not* directly after a clean reboot". Avi Kivity
# answered that THP had to be run together with Mel Gorman's memory compaction, "otherwise
# fragmentation may prevent huge pages from being instantiated", and then watched page
# cache hold on to memory until only a few tens of megabytes of a 2 GB guest were in huge
# pages (anchors A0).
#
# This notebook ages a simulated machine and asks four questions:
#
# 1. What does aged memory look like, and why can't the allocator simply hand out 2 MiB?
# 2. How much does compaction buy? Gorman measured it in April 2010 (anchors A8); we
#    rebuild the shape of his table.
# 3. What does the page cache do to huge pages? Kivity watched it in April 2010; we
#    replay his `sort` and drop the caches as he did.
# 4. What does a huge page cost the application that waits for it? With `defrag=always`
#    a fault may stall in direct compaction; with `defer` it never does (Ingens, anchors A5,
#    measured those stalls).
#
# Every number below is computed by the simulator in this run; the published numbers are
# printed beside them, never in place of them.

# %% tags=["parameters"]
import os

SCALE = int(os.environ.get("THPBENCH_SCALE", "1"))
MEM_MIB = 128 * SCALE          # the simulated machine of sections 1, 2 and 4
KIVITY_SCALE = 1.0             # section 3: a 2 GiB machine, as Kivity's guest
SEED = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import thpbench
from thpbench import experiments as E
from thpbench import plots

pd.set_option("display.width", 120)

# %% [markdown]
# ## 1. Aged memory as a picture
#
# `experiments.aged_kernel` ages a machine the simplest way that still behaves like a
# real one: a process writes a value into 85 % of memory, one 4 KiB page at a time, and
# then gives three quarters of those pages back at random (`MADV_DONTNEED`). What stays
# is movable anonymous memory scattered over every 2 MiB block, and the free memory lies
# in small pieces between it. Each kept page still holds its value, so we can check later
# that compaction moved data without losing any.

# %%
k, p, addrs, values = E.aged_kernel(MEM_MIB, touched=0.85, keep=0.25, seed=SEED)
b = k.buddy
info = b.buddyinfo()
print(f"free memory: {b.nr_free_pages * 4 // 1024} MiB of {MEM_MIB} MiB, "
      f"in {int(info.sum())} free blocks; free 2 MiB blocks (order >= 9): {int(info[9:].sum())}")
print(f"unusable index at order 9: {b.unusable_index(9):.3f}   "
      f"fragmentation index at order 9: {b.fragmentation_index(9):.3f}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Four fifths of memory is free, yet only a handful of free blocks are 2 MiB long: the
# unusable index (the share of free memory that cannot serve an order-9 request) says
# most of the free memory is useless for a huge page. (The fragmentation index is -1 as
# long as at least one free 2 MiB block exists: the kernel computes it only to explain a
# request that *would fail*, and then a value near 1 blames fragmentation, near 0 a lack
# of memory.) The memory map shows why: almost every 2 MiB row holds a few pages still
# in use.

# %%
fig, ax = plt.subplots(1, 2, figsize=(12, 4))
plots.plot_memory_map(b, ax[0], title="aged: kept pages pin every pageblock", legend=False)
res = k.compact_memory()
plots.plot_memory_map(b, ax[1], title="after /proc/sys/vm/compact_memory")
plt.tight_layout()
plt.show()
k.check()
got, _ = p.peek(addrs)
print(f"compact_memory: {res['result']}, {res.get('pgmigrate_success', 0)} pages migrated; "
      f"free 2 MiB blocks now {int(b.buddyinfo()[9:].sum())}; "
      f"every kept page still holds its value: {bool(np.array_equal(got, values))}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Compaction (`mm/compaction.c`) runs two scanners towards each other: the *migrate
# scanner* walks up from the bottom of the zone and picks up movable pages, the *free
# scanner* walks down from the top and collects free pages to put them in. Each page is
# migrated: copied to its new frame, and every page table that mapped it is rewritten
# through the reverse map. When the scanners meet, the bottom of the zone is made of
# whole free pageblocks. Only *movable* pages can move: page tables, slab and anything
# pinned stay where they are, and that is why grouping pages by mobility (notebook 01)
# matters so much to compaction.

# %% [markdown]
# ## 2. Compaction on and off: the shape of Gorman's table
#
# On 20 April 2010, during the THP debate, Mel Gorman posted version 8 of memory
# compaction with a stress test: while kernel builds ran, it asked for 90 % of memory as
# huge pages and counted how many it got, and how many pages had to be reclaimed to get
# them (anchors A8):
#
# | Architecture | huge pages, vanilla | with compaction | pages reclaimed, vanilla | with compaction |
# |---|---|---|---|---|
# | X86 | 98 % | 99 % | 68,296 | 9,791 |
# | X86-64 | 95 % | 98 % | 112,599 | 53,234 |
# | PPC64 | 55 % | 70 % | 103,216 | 61,838 |
#
# (The reclaim numbers are from his "easy" run, where success barely changed but far
# fewer pages were reclaimed.) Our version ages a machine the way his stress test did:
# kernel-build jobs (short-lived anon memory, sources and headers read through the page
# cache, dentries and inodes, long-lived kernel allocations), then a large file written
# as `dd` leaves it, so that the page cache holds 60 % of memory
# (`experiments.build_and_cache_kernel`). A process then faults 90 % of memory in 2 MiB
# pieces, madvised for THP; a fault that falls back gives its small page back. We run it
# on a kernel built without compaction and with it, once with `defrag=always` (each
# fault may reclaim and compact directly) and once with `defrag=defer` (faults never
# wait; kswapd and kcompactd work in the background, 100 ms between faults).
# `pages_reclaimed` is what kswapd and direct reclaim stole (`pgsteal_kswapd +
# pgsteal_direct`).

# %%
rows = []
for defrag, interval in (("always", 0), ("defer", 100)):
    df = E.gorman_hugepage_allocation(mem_mib=2 * MEM_MIB, target=0.9, seed=SEED, defrag=defrag,
                                      interval_ms=interval, aging="kernel_build")
    df.insert(0, "defrag", defrag)
    rows.append(df)
gorman = pd.concat(rows, ignore_index=True)
gorman[["defrag", "compaction", "attempts", "huge_pages", "success_rate", "compact_stall",
        "pgmigrate_success", "pages_reclaimed"]].round(3)
# NBVAL_CHECK_OUTPUT

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for a, (defrag, g) in zip(ax, gorman.groupby("defrag", sort=False)):
    E.plot_gorman(g, a, title=f"defrag={defrag}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Try it: the dashboard reruns the experiment (compaction off and on) for the machine,
# aging, `defrag` mode, share of memory asked for and pace of faults you choose. It calls
# `experiments.gorman_hugepage_allocation`, the function the table above came from.

# %%
from thpbench.widgets import GormanDashboard

GormanDashboard(mem_mib=MEM_MIB, aging="kernel_build", defrag="defer", interval_ms=100, seed=SEED)

# %% [markdown]
# **Reading it against Gorman.** The direction is his: with compaction the machine
# hands out several times more huge pages than without. The levels are not, for three
# reasons the model states rather than hides:
#
# * Gorman's vanilla kernel still got 95 % on x86-64 because 2010 kernels had *lumpy
#   reclaim*: to free a huge page they reclaimed the whole aligned 2 MiB range around a
#   page, paying in reclaimed pages (his "pages reclaimed" column). Lumpy reclaim was
#   removed in Linux 3.5 once compaction had replaced it; the simulated kernel, like
#   today's, reclaims without regard to contiguity, so without compaction reclaim frees
#   pages but rarely a whole 2 MiB block. That is also why the model reclaims *more*
#   with compaction on, where Gorman reclaimed less: today's reclaim only makes room
#   for compaction to work in (`compaction_ready()`), it no longer makes the huge page.
# * He allocated hugetlbfs pages, whose allocations retry compaction up to its
#   synchronous priorities. A THP fault runs *async* compaction and gives up early
#   (`__GFP_NORETRY` and the costly-order rules of `__alloc_pages_slowpath`), so the
#   simulated rates are a lower bound of his.
# * Direct compaction marks pageblocks it could not use (`PB_migrate_skip`) and skips them
#   until kswapd resets the marks, so faults that stall again and again gain less than
#   kswapd and kcompactd working between them, which is why `defer` can end ahead of
#   `always` here.

# %% [markdown]
# ## 3. The page cache against huge pages: Kivity's sort
#
# Avi Kivity ran `sort -S 1200M` on a 1 GB file in a 2 GB guest, with THP and Gorman's
# compaction, and a kernel build beside it. After 80 seconds of sort only 40–50 MB of
# the buffer was in huge pages, although khugepaged was collapsing 50–100 pages a
# second; after he dropped the page cache there were about 800 MB, and about 100 MB more
# after dropping the dentry cache (anchors A0). The page cache was holding the free
# memory that huge pages needed.
#
# `experiments.kivity_coverage` replays it: a 2 GiB machine aged by kernel-build jobs
# reads a 1 GiB file through the page cache into a 1200 MiB buffer (THP on), sorts it and
# writes the output; then it idles with the page cache full, drops the page cache
# (`drop_caches` 1), idles again, and drops dentries and inodes (`drop_caches` 2). Once
# with khugepaged at its default pace (`scan_sleep_millisecs` 10000: 8 huge pages per
# 10 s) and once waking every 100 ms, the pace of Kivity's 50–100 collapses a second.

# %%
kivity = E.kivity_coverage(KIVITY_SCALE, seed=SEED)
summary = (kivity.groupby(["khugepaged_sleep_ms", "phase"], sort=False)
           [["t_s", "anon_huge_mib", "cached_mib", "free_mib"]].last().round(0))
summary
# NBVAL_CHECK_OUTPUT

# %%
fig, ax = plt.subplots(figsize=(10, 4))
E.plot_kivity(kivity, ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# **What the simulation says, against what Kivity saw.**
#
# * While sort reads its input the buffer is in huge pages, because memory is still
#   free. When the input and output files fill the page cache, kswapd reclaims, and it
#   takes the buffer's cold huge pages too: a 2010 kernel splits a THP before swapping it
#   out (`thp_split_page`; `kernel.reclaim.thp_swap = True` swaps it whole, as kernels
#   since 5.8 can). What stays in huge pages after the sort is the same order as
#   Kivity's 40–50 MB of 1200 MB.
# * With khugepaged at its default pace nothing much changes for minutes: 8 collapses per
#   10 seconds, and an allocation failure sends it to sleep for `alloc_sleep_millisecs`
#   (60 s). Dropping the caches frees the memory, but someone has to rebuild the huge
#   pages.
# * With khugepaged at Kivity's pace the buffer comes back to huge pages within seconds,
#   here even before the caches are dropped: the simulated khugepaged allocates with
#   direct reclaim and compaction (`khugepaged/defrag` = 1) and compaction migrates the
#   page cache out of the way, which in April 2010 was still an out-of-tree patch set
#   in its 7th and 8th versions. Kivity's recovery came when he dropped the caches; the
#   final level, near 800 MB, is close to his.
# * The simulated page cache holds whole pageblocks of Movable memory that compaction can
#   move; real dentry and inode slab pages are Reclaimable and pin their pageblocks, which
#   is why Kivity gained another 100 MB from `drop_caches` 2. The model's dentry cache is
#   small here, so dropping it changes little.

# %% [markdown]
# ## 4. What a huge page costs the application: fault latency
#
# With `defrag=always` a THP fault that finds no free 2 MiB block enters direct
# compaction and waits for it; the application sees the stall in its page-fault
# latency. Ingens (OSDI 2016, anchors A5) measured such stalls and argued for doing that
# work asynchronously; Linux added `defer` (4.6) and `defer+madvise` (4.11) for the same
# reason. Here each mode faults a madvised 32 MiB region on the same aged machine; each
# attempt's latency is the fault's own cost (this machine's measured 2 MiB first-touch
# cost, `benchmarks/calibrate.py`) plus the direct compaction it waited for.

# %%
lat = E.defrag_fault_latency(modes=("always", "defer"), mem_mib=MEM_MIB, fault_mib=32, seed=SEED)
lat.round(1)
# NBVAL_CHECK_OUTPUT

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
E.plot_defrag_latency(lat, ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# With `defer` every fault costs the same and fewer of them get a huge page (the
# `thp_share` column): the fault fell back to 4 KiB pages and left the work to
# kcompactd and khugepaged. With `always` most faults get their huge page, and the tail
# pays for it in compaction time. That is the trade the 2010 thread could not yet
# measure and the reason `madvise` became the default for `defrag`: only programs that
# asked for huge pages wait for them.
#
# **What the model leaves out here.** One zone; no per-cpu lists; no lumpy reclaim; THP
# faults use async compaction only; costs of scanning and migrating are estimates from
# the cost model (`thpbench.CostModel`, which names each source), not measurements of
# the kernel's compaction code.
