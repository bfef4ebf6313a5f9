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
# # 01 · The buddy allocator and fragmentation
#
# A transparent huge page is 2 MiB of *physically contiguous* memory: 512 frames of
# 4 KiB in a row, starting at a multiple of 512. Whether the kernel can hand one out
# depends on one piece of code, the buddy allocator in `mm/page_alloc.c`, and on how
# broken up its free memory has become. Every later notebook of thpbench (THP faults,
# khugepaged, compaction, balloons) starts from the state this notebook builds.
#
# In the April 2010 thread on THP, Linus Torvalds asked for numbers taken "not
# directly after a clean reboot": a freshly booted machine has all its free memory in
# big blocks, and any huge-page benchmark looks good on it. So here we learn
#
# 1. how the buddy allocator splits and merges blocks (orders, buddies),
# 2. why it sorts memory by *migratetype* into *pageblocks*, and what happens when a
#    type runs out (fallback, claim, steal),
# 3. how the kernel measures fragmentation (unusable index, fragmentation index),
# 4. how to *age* a simulated machine with an allocation churn, and what grouping
#    pages by mobility (Linux 2.6.24) changes,
# 5. how the simulator compares with a real machine's `/proc/buddyinfo`.

# %% tags=["parameters"]
import os

SCALE = int(os.environ.get("THPBENCH_SCALE", "1"))
MEMORY_MIB = 256 * SCALE      # simulated zone for the aging experiments
TURNOVER = 4.0                # how many times the churn re-allocates all of memory
SEEDS = tuple(range(3 * SCALE))
SEED = 0

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import thpbench
from thpbench import BuddyAllocator, procfs, plots, widgets
from thpbench.data import data_path
from thpbench.workloads import KERNEL_BUILD, aged_allocator, churn_readout

pd.set_option("display.width", 120)


DATA = data_path("procfs")

# %% [markdown]
# ## 1. Orders and buddies
#
# The allocator manages frames numbered by their *page frame number* (pfn). It only
# ever deals in blocks of `2**order` frames that start at a multiple of their own size:
# order 0 is one 4 KiB page, order 9 is a 2 MiB huge page, order 10 (`MAX_PAGE_ORDER`)
# is 4 MiB. Free blocks wait on one free list per order.
#
# A fresh zone is handed to the allocator in the largest aligned pieces that fit, so a
# freshly booted 64 MiB zone is sixteen order-10 blocks. `/proc/buddyinfo` prints, per
# zone, how many free blocks each order has; thpbench prints its simulated zone in the
# same layout (`frag_show_print()` in `mm/vmstat.c`):

# %%
fresh = BuddyAllocator(64 * 256)          # 64 MiB of 4 KiB frames
print(procfs.buddyinfo_text(fresh), end="")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# **Splitting.** Asking for a block of order *k* takes the first free block of order
# *k* or more. A larger block is cut in halves: the allocator keeps the lower half and
# puts the upper half back on the free list one order down, until the block is the size
# asked for (`expand()`). Watch a tiny zone of 16 frames (max order 4):

# %%
tiny = BuddyAllocator(16, max_order=4, pageblock_order=2)


def show(label, a):
    blocks = ", ".join(f"[{b['pfn']}..{b['pfn'] + (1 << b['order']) - 1}] o{b['order']}" for b in a.free_blocks())
    print(f"{label:<22} free: {blocks}")


show("fresh", tiny)
p = tiny.alloc(0)
show(f"alloc(0) -> pfn {p}", tiny)
q = tiny.alloc(0)
show(f"alloc(0) -> pfn {q}", tiny)
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# **Merging.** Two blocks of the same order that together form an aligned block of
# the next order are *buddies*. The buddy of the block at `pfn` of order `k` is at
# `pfn ^ (1 << k)` (`__find_buddy_pfn()`): flipping bit `k` of the pfn. When a block is
# freed and its buddy is free at the same order, the two merge, and the merged block
# looks for its own buddy one order up (`__free_one_page()`):

# %%
for pfn, order in [(0, 0), (1, 0), (2, 1), (4, 2), (8, 3)]:
    print(f"buddy of pfn {pfn:2d} at order {order}: pfn {pfn ^ (1 << order):2d}")
tiny.free(p, 0)
show(f"free(pfn {p})", tiny)
tiny.free(q, 0)
show(f"free(pfn {q})", tiny)
tiny.check()
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Freeing pfn 0 alone could not merge: its buddy, pfn 1, was still in use. Freeing
# pfn 1 merged them, then with [2..3], [4..7] and [8..15], back to one order-4 block.
# A single allocated page in the middle of a 2 MiB region is enough to keep that
# region from ever becoming a free huge page. That is fragmentation.
#
# ## 2. Migratetypes, pageblocks, fallback
#
# Which pages stay allocated is therefore what matters. Anonymous memory and page
# cache are *movable*: compaction can migrate them elsewhere and reclaim can drop
# them. Most kernel memory (slab objects, page tables, kernel stacks) is *unmovable*.
# Dentry and inode caches are *reclaimable*: a shrinker can free them, though not on
# demand. Since Linux 2.6.24 (Mel Gorman's "grouping pages by mobility") the allocator
# keeps one free list per order **and migratetype**, and it gives every *pageblock*
# (512 frames, order 9 on x86-64) a type. Requests of a type are served from
# pageblocks of that type, so unmovable pages gather in few pageblocks and leave the
# rest clean for huge pages.
#
# When a type's lists are empty the allocator falls back to another type, in the order
# of the `fallbacks[]` table:
#
# | request | tries |
# |---|---|
# | Unmovable | Reclaimable, then Movable |
# | Movable | Reclaimable, then Unmovable |
# | Reclaimable | Unmovable, then Movable |
#
# It first tries to *claim*: take the largest free fallback block, and if it covers a
# whole pageblock, or if at least half of its pageblock is free or already used by
# compatible pages, relabel the pageblock with the new type (`try_to_claim_block()`).
# Otherwise it *steals* the smallest fallback block and leaves the pageblock's type
# alone (`__rmqueue_steal()`): the pageblock is now *mixed*. The simulator counts both,
# as the kernel's `mm_page_alloc_extfrag` tracepoint does.
#
# A fresh zone's pageblocks are all Movable. The very first unmovable page therefore
# falls back, and since the block it finds is a whole order-10 block, it claims both
# of that block's pageblocks:

# %%
z = BuddyAllocator(64 * 256)
pfn = z.alloc(0, "unmovable")
print("unmovable page at pfn", pfn, "| counters:", z.counters())
print(procfs.pagetypeinfo_text(z), end="")
z.check()
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# The rest of the claimed 4 MiB went onto the Unmovable lists, one block per order
# (the halves `expand()` gave back). The next unmovable requests will come from there
# and leave the movable pageblocks alone.
#
# On a full machine the choice between claim and steal matters. Fill 8 MiB (four
# pageblocks) with movable pages, free some pages at the start of the second pageblock,
# and ask for one unmovable page. With 8 pages free, the pageblock is far from half
# free: the allocator steals a page and the pageblock stays Movable, now holding one
# unmovable page. With 300 free it claims the pageblock for Unmovable, and it is the
# 212 movable pages still in it that make it mixed:

# %%
for nr_freed in (8, 300):
    z = BuddyAllocator(2048)
    pages = [z.alloc(0, "movable") for _ in range(2048)]
    for p in pages[512:512 + nr_freed]:
        z.free(p, 0)
    pfn = z.alloc(0, "unmovable")
    z.check()
    c = z.counters()
    types = [thpbench.MIGRATETYPE_NAMES[t] for t in z.pageblock_migratetypes()]
    print(f"{nr_freed:3d} pages free -> unmovable page at pfn {pfn}; claim {c['claim']}, steal {c['steal']}; "
          f"pageblocks {types}; mixed pageblocks {churn_readout(z)['nr_mixed_pageblocks']}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Steals are how unmovable pages leak into movable pageblocks over time; each one can
# spoil a future huge page.
#
# With grouping switched off (`grouping=False`, the pre-2.6.24 allocator, which the
# kernel still uses as `page_group_by_mobility_disabled` on very small machines), there
# is one list per order and every type shares it.
#
# ## 3. Measuring fragmentation
#
# The kernel has two indices per order *o* (`mm/vmstat.c`, shown in debugfs under
# `extfrag/`), both computed from the free block counts `nr_free[k]`:
#
# * **unusable free space index**: the fraction of free memory in blocks smaller than
#   order *o*, useless for an order-*o* request. 0 means all free memory could serve
#   it; 1 means none could.
# * **fragmentation index**, for a request that would *fail*: close to 0 means "fails
#   for lack of memory", close to 1 means "fails because the free memory is in pieces"
#   (compaction's cue; `extfrag_threshold` is 500, i.e. 0.5). It is -1 when a free
#   block of order ≥ *o* exists.
#
# thpbench returns both as fractions (the kernel's value / 1000). We check them against
# the formulas on a zone where we freed every other page of 4 MiB:

# %%
z = BuddyAllocator(1024)
pages = [z.alloc(0) for _ in range(1024)]
for pfn in pages[::2]:
    z.free(pfn, 0)
info = z.buddyinfo()
free_pages = sum(int(n) << k for k, n in enumerate(info))
total = int(info.sum())
for o in (0, 1, 2, 9):
    suitable = sum(int(n) << (k - o) for k, n in enumerate(info) if k >= o)
    unusable = (free_pages - (suitable << o)) * 1000 // free_pages / 1000
    frag = -1.0 if suitable else (1000 - (1000 + free_pages * 1000 // (1 << o)) // total) / 1000
    assert (unusable, frag) == (z.unusable_index(o), z.fragmentation_index(o))
    print(f"order {o}: {free_pages} free pages in {total} blocks -> unusable {unusable:.3f}, fragmentation {frag:.3f}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Half of memory is free, yet not a single order-1 request can be served: the unusable
# index is 1 from order 1 up. The fragmentation index grows with the order towards 1:
# the larger the request, the more its failure is due to fragmentation rather than to
# a lack of free memory.
#
# ## 4. Aging a machine
#
# `thpbench.workloads` ages a zone with an *allocation churn*: a population of live
# allocations of several classes, each with a migratetype, a mix of orders and a
# lifetime, driven entirely through the allocator's bulk path
# (`BuddyAllocator.run()`, one call per step, no Python per operation). The default
# mix, `KERNEL_BUILD`, models a kernel build on a machine whose page cache holds the
# sources. It is a model, not a measurement:

# %%
pd.DataFrame([{"class": c.name, "migratetype": c.migratetype, "share of used memory": c.share,
               "relative lifetime": c.lifetime,
               "orders (P)": " ".join(f"{p:g}" for p in c.orders)} for c in KERNEL_BUILD])

# %% [markdown]
# The workload first fills 97 % of memory with all classes interleaved, as boot and
# the start of a build do. Then it churns: a random allocation of a random class is
# freed and replaced by a new one, until the memory has been re-allocated `TURNOVER`
# times. At the end the compiler processes exit (their anon memory, page tables and
# stacks are freed), and the page cache, slab and dentry/inode caches stay. That is
# the *aged* state the later notebooks start from. The history has one row per step:

# %%
alloc, churn = aged_allocator(MEMORY_MIB * 256, turnover=TURNOVER, seed=SEED)
alloc.check()
cols = ["phase", "turnover", "nr_free_pages", "nr_free_pageblocks", "unusable_index", "nr_pageblocks_unmovable",
        "nr_pageblocks_reclaimable", "nr_mixed_pageblocks", "extfrag", "claim", "steal", "alloc_fail"]
churn.history[cols].round(3)

# %%
summary = churn.history[cols].iloc[[0, -1]].round(3).reset_index(drop=True)
print(summary.to_string())
# NBVAL_CHECK_OUTPUT

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
plots.plot_churn_history(churn.history, ax, columns=("unusable_index", "free_pageblocks_fraction"))
ax.set_title(f"aging {MEMORY_MIB} MiB (the last point: processes exited)")
plt.show()

# %% [markdown]
# Free memory grew when the processes exited, but hardly any of it comes as whole
# 2 MiB blocks (`nr_free_pageblocks`): the freed anon pages sit between page-cache and
# slab pages that are still there. The unusable index at order 9 tells the same.
#
# ### The widget
#
# Move the sliders: memory size, how much churn, the share of memory that is unmovable
# or reclaimable, and grouping by mobility on or off. Left: free blocks per order of
# the fresh and the aged zone. Middle: the physical memory map, one pixel per frame
# (or the average of a few), pfn 0 at the top left, one row per few pageblocks;
# allocated frames in the colour of their migratetype, free frames pale in the colour
# of their pageblock's type. Right: both indices per order.
#
# The widget calls `thpbench.widgets.simulate_buddy()` and `plot_buddy()`, which the
# tests call too. Below it is the same figure for the default settings, drawn statically.

# %%
dash = widgets.BuddyDashboard(memory_mib=MEMORY_MIB, turnover=TURNOVER, seed=SEED)
dash

# %%
result = widgets.simulate_buddy(MEMORY_MIB, TURNOVER, seed=SEED)
fig = widgets.plot_buddy(result)
plt.show()

# %% [markdown]
# ## 5. Grouping by mobility, on and off
#
# Mel Gorman's case for grouping pages by mobility (merged in 2.6.24) was a stress test:
# build kernels, then try to allocate huge pages. On PPC64 the vanilla kernel managed 1 %
# of memory as huge pages and the patched one 40 % (his numbers; see
# `docs/references.md`, A8). Our version: the same aged workload with grouping on and off,
# over `SEEDS`; "at rest" is after the page cache is dropped too, so that only the
# long-lived kernel memory (slab, dentries, inodes) remains. `hugepages_pct` is the
# share of pageblocks free as whole 2 MiB blocks, what huge-page requests could take
# without compaction.

# %%
cmp = widgets.compare_grouping(MEMORY_MIB, TURNOVER, seeds=SEEDS)
table = (cmp.groupby(["moment", "grouping"], sort=False)[["hugepages_pct", "nr_polluted_pageblocks",
                                                          "nr_mixed_pageblocks", "unusable_index"]]
         .mean().round(1))
print(table.to_string())
# NBVAL_CHECK_OUTPUT

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, grouping in zip(axes, (True, False)):
    a, w = aged_allocator(MEMORY_MIB * 256, turnover=TURNOVER, grouping=grouping, seed=SEED)
    w.release("page_cache")
    plots.plot_memory_map(a, ax, legend=not grouping,
                          title=f"at rest, grouping {'on' if grouping else 'off'}: "
                                f"{churn_readout(a)['nr_free_pageblocks']} of {a.nr_pageblocks} pageblocks free")
fig.tight_layout()
plt.show()

# %% [markdown]
# With grouping on, the long-lived kernel allocations sit in a few pageblocks
# (red and orange bands) and the rest of memory becomes whole free pageblocks as soon
# as the movable pages go. With grouping off they are sprinkled everywhere, and almost
# every pageblock holds at least one of them (`nr_polluted_pageblocks`): memory is
# mostly free and still useless for huge pages. Only compaction could repair that, and
# only by moving movable pages, which does not help when the pins are unmovable. That
# is why Gorman's numbers differ by an order of magnitude. The exact percentages here
# depend on the model's mix and are not meant to reproduce his.
#
# ## 6. This machine
#
# `data/procfs/` holds `/proc/buddyinfo`, `/proc/pagetypeinfo` and `/proc/zoneinfo`
# captured on the machine this project was developed on (see `data/README.md`: kernel
# 6.18, an idle capture and some after memory churn). thpbench parses them and prints
# them back byte for byte:

# %%
snaps = {d.name: procfs.load_snapshot(d) for d in sorted(DATA.iterdir()) if (d / "buddyinfo").exists()}
idle = snaps["idle"]
print(idle.texts["buddyinfo"], end="")
print("uname -r:", idle.meta["uname_r"])
for name, s in snaps.items():
    same = (procfs.format_buddyinfo(s.buddyinfo) == s.texts["buddyinfo"]
            and procfs.format_pagetypeinfo(s.pagetypeinfo) == s.texts["pagetypeinfo"])
    print(f"{name:<20} parse -> format gives identical text: {same}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# `allocator_from_snapshot()` builds a simulated zone whose buddyinfo equals the real
# zone's row, with the same free blocks per migratetype and pageblocks per type as
# pagetypeinfo lists: it allocates all frames, types the pageblocks, and frees exactly
# the listed blocks in places where no two can merge. Where in the zone the blocks were
# the files do not say, so that part is drawn at random (seeded). Its output in the
# kernel's format is the real line:

# %%
real = procfs.allocator_from_snapshot(idle, "Normal")
real.check()
sim_line = procfs.buddyinfo_text(real, "Normal")
real_line = next(l for l in idle.texts["buddyinfo"].splitlines(True) if " Normal " in l)
print(sim_line, end="")
print("identical to the real line:", sim_line == real_line)
print(f"{real.nr_pages} frames ({real.nr_pages // 256} MiB), {real.nr_free_pages} free; "
      f"order-9 requests it can serve now: {churn_readout(real)['nr_free_pageblocks']}")
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# Beside it, a simulated zone of the same size, aged by the churn with the real zone's
# share of Unmovable + Reclaimable pageblocks. After the compiler processes exit, a
# random part of its page cache is dropped until it has as much free memory as the real
# zone:

# %%
cmpsnap = widgets.snapshot_vs_simulation(idle, "Normal", turnover=TURNOVER, seed=SEED)
fig = widgets.plot_snapshot_vs_simulation(cmpsnap)
plt.show()
t = cmpsnap["table"]
print(t[t["order"].isin([0, 3, 6, 9, 10])].pivot(index="order", columns="source", values="unusable_index").to_string())
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# At the same amount of free memory, the real zone is far less fragmented than the
# simulated one at high orders. The real machine was never short of memory (this kernel
# also initialises memory lazily, so much of its free memory has never been used), while
# the simulated one churned at 97 % full and then freed page cache at random, and the
# kernel's reclaim does not free at random but by LRU age, which frees neighbours
# together more often. The gap is the point: fragmentation depends on history, so every
# experiment in thpbench states which starting state it uses: `BuddyAllocator(n)`
# (fresh), `aged_allocator(n, ...)`, or `allocator_from_snapshot(...)` of a real machine.
#
# ### Your machine
#
# On Linux, `procfs.snapshot()` reads the running machine (pagetypeinfo needs root);
# `snapshot().save(dir)` keeps it. The next cell shows this kernel's view now; its
# numbers change from run to run.

# %%
# NBVAL_IGNORE_OUTPUT
if Path("/proc/buddyinfo").exists():
    live = procfs.snapshot()
    print(live.texts["buddyinfo"], end="")
else:
    print("no /proc/buddyinfo here")

# %% [markdown]
# ## What the simulator leaves out
#
# One zone without holes, no per-cpu page lists, no watermarks or reclaim (an allocation
# either finds a free block or fails), no highatomic reserves, CMA, watermark boosting or
# free-page shuffling (see `help(thpbench.BuddyAllocator)`). The churn's classes are a
# model of a kernel build, and dropping caches frees random pages, not LRU order. Compaction,
# which moves movable pages to rebuild huge pages, comes in a later notebook.
