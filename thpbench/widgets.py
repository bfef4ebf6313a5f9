"""ipywidgets dashboards.  Each is a thin layer: the controls call a plain function
(``simulate_*``) and a plotting function (``plot_*``) that tests call directly."""
from __future__ import annotations

import numpy as np
import pandas as pd

from thpbench import plots, procfs
from thpbench._core import BuddyAllocator
from thpbench.workloads import AllocationChurn, churn_readout

__all__ = ["simulate_buddy", "plot_buddy", "compare_grouping", "snapshot_vs_simulation", "plot_snapshot_vs_simulation",
           "BuddyDashboard", "GormanDashboard"]

PAGES_PER_MIB = 256   # 4 KiB frames


def simulate_buddy(memory_mib=256, turnover=4.0, unmovable_share=0.11, grouping=True, *, fill=0.97, seed=0,
                   release=("anon", "pagetables_stacks")):
    """Age a fresh zone of ``memory_mib`` MiB with the kernel-build churn; return the results.

    Returns a dict: ``allocator`` (the aged ``BuddyAllocator``), ``churn`` (the
    :class:`~thpbench.workloads.AllocationChurn`, its ``history`` DataFrame),
    ``readout`` (:func:`~thpbench.workloads.churn_readout` at the end), ``indices``
    (:func:`~thpbench.plots.fragmentation_indices`) and ``params``.
    """
    if not isinstance(memory_mib, (int, np.integer)) or isinstance(memory_mib, bool) or memory_mib < 4:
        raise ValueError(f"memory_mib must be an integer >= 4 (one order-10 block), got {memory_mib!r}")
    alloc = BuddyAllocator(int(memory_mib) * PAGES_PER_MIB, grouping=bool(grouping))
    w = AllocationChurn(alloc, fill=fill, unmovable_share=unmovable_share, seed=seed)
    w.fill()
    if turnover > 0:
        w.run(turnover, steps=8)
    if release:
        w.release(*[n for n in release if n in {c.name for c in w.classes}])
    return {"allocator": alloc, "churn": w, "readout": churn_readout(alloc),
            "indices": plots.fragmentation_indices(alloc),
            "params": {"memory_mib": int(memory_mib), "turnover": float(turnover),
                       "unmovable_share": unmovable_share, "grouping": bool(grouping), "fill": fill, "seed": seed}}


def plot_buddy(result, fig=None):
    """Three panels for a :func:`simulate_buddy` result: buddyinfo bars (fresh vs aged),
    the memory map, and the unusable / fragmentation index per order."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(13, 4.2))
    fig.clear()
    a = result["allocator"]
    p = result["params"]
    fresh = BuddyAllocator(a.nr_pages, max_order=a.max_order, pageblock_order=a.pageblock_order)
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1.0, 1.0]})
    plots.plot_buddyinfo({"fresh (after boot)": fresh.buddyinfo(), "aged": a.buddyinfo()}, ax1)
    r = result["readout"]
    plots.plot_memory_map(a, ax2, legend=False,
                          title=f"memory map: {r['nr_free_pageblocks']} of {a.nr_pageblocks} pageblocks free whole")
    plots.plot_fragmentation_indices(result["indices"], ax3)
    fig.suptitle(f"{p['memory_mib']} MiB, turnover {p['turnover']:g}, unmovable share {p['unmovable_share']}, "
                 f"grouping by mobility {'on' if p['grouping'] else 'off'}", fontsize="medium")
    fig.tight_layout()
    return fig


def compare_grouping(memory_mib=256, turnover=4.0, unmovable_share=0.11, *, seeds=(0,), fill=0.97):
    """The same aged workload with grouping by mobility on and off (2.6.24's change).

    After the churn the compiler processes exit and then the page cache is dropped;
    returns a tidy DataFrame with one row per (grouping, seed, moment): ``moment`` is
    "aged" (processes exited) or "at rest" (page cache dropped too), with
    ``hugepages_pct`` = free 2 MiB blocks as a percentage of all pageblocks, the
    share of memory a hugepage request could take without compaction, plus
    :func:`~thpbench.workloads.churn_readout`'s columns.
    """
    rows = []
    for grouping in (True, False):
        for seed in seeds:
            res = simulate_buddy(memory_mib, turnover, unmovable_share, grouping, fill=fill, seed=seed)
            a, w = res["allocator"], res["churn"]
            for moment in ("aged", "at rest"):
                if moment == "at rest":
                    w.release("page_cache")
                r = churn_readout(a)
                rows.append({"grouping": "on" if grouping else "off", "seed": seed, "moment": moment,
                             "hugepages_pct": 100.0 * r["nr_free_pageblocks"] / a.nr_pageblocks, **r})
    return pd.DataFrame(rows)


def snapshot_vs_simulation(snap, zone="Normal", *, turnover=4.0, unmovable_share=None, grouping=True, seed=0):
    """A real zone (rebuilt with :func:`~thpbench.procfs.allocator_from_snapshot`) beside a
    simulated zone of the same size aged by the kernel-build churn.

    ``unmovable_share`` defaults to the snapshot's share of Unmovable + Reclaimable
    pageblocks.  The simulated zone churns at the default fill (under pressure), its
    compiler processes exit, and then a random part of its page cache is dropped so that
    its free pages come as close as they can to the real zone's.  Returns a dict:
    ``real`` and ``simulated`` allocators, ``churn`` and a tidy DataFrame ``table``
    (source, order, nr_free, unusable_index, fragmentation_index).
    """
    real = procfs.allocator_from_snapshot(snap, zone, seed=seed)
    if unmovable_share is None:
        pb = real.pagetypeinfo()["pageblocks"]
        unmovable_share = float((pb[0] + pb[2]) / pb.sum())
    sim = BuddyAllocator(real.nr_pages, grouping=grouping)
    w = AllocationChurn(sim, unmovable_share=unmovable_share, seed=seed)
    w.fill()
    w.run(turnover, steps=4)
    w.release("anon", "pagetables_stacks")
    need = real.nr_free_pages - sim.nr_free_pages
    cache = w.live_pages()["page_cache"]
    if need > 0 and cache > 0:
        w.release("page_cache", fraction=min(1.0, need / cache))
    frames = []
    for label, a in ((f"real {zone} ({snap.meta.get('uname_r', '?')})", real), ("simulated, aged", sim)):
        df = plots.fragmentation_indices(a, label)
        df.insert(2, "nr_free", a.buddyinfo())
        frames.append(df)
    return {"real": real, "simulated": sim, "churn": w, "unmovable_share": unmovable_share,
            "table": pd.concat(frames, ignore_index=True)}


def plot_snapshot_vs_simulation(result, fig=None):
    """Buddyinfo bars, both memory maps and both index curves for :func:`snapshot_vs_simulation`."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(13, 7))
    fig.clear()
    axes = fig.subplots(2, 2)
    t = result["table"]
    labels = list(dict.fromkeys(t["source"]))
    plots.plot_buddyinfo({l: t.loc[t["source"] == l, "nr_free"].to_numpy() for l in labels}, axes[0, 0])
    plots.plot_fragmentation_indices(t, axes[0, 1])
    plots.plot_memory_map(result["real"], axes[1, 0], title=labels[0] + " (rebuilt)", legend=False)
    plots.plot_memory_map(result["simulated"], axes[1, 1], title=labels[1])
    fig.tight_layout()
    return fig


class BuddyDashboard:
    """Sliders for :func:`simulate_buddy`, drawing :func:`plot_buddy`.

    The controls are attributes (``memory_mib``, ``turnover``, ``unmovable_share``,
    ``grouping``); changing one re-runs the simulation.  ``last_result`` holds the last
    result, ``widget`` the box to display.  Headless tests set ``.value`` and read
    ``last_result``.
    """

    def __init__(self, memory_mib=256, turnover=4.0, unmovable_share=0.11, grouping=True, seed=0):
        import ipywidgets as W

        style = {"description_width": "initial"}
        self.memory_mib = W.IntSlider(value=memory_mib, min=16, max=2048, step=16, description="memory (MiB)",
                                      continuous_update=False, style=style)
        self.turnover = W.FloatSlider(value=turnover, min=0.0, max=16.0, step=0.5, description="churn (x memory)",
                                      continuous_update=False, style=style)
        self.unmovable_share = W.FloatSlider(value=unmovable_share, min=0.0, max=0.5, step=0.01,
                                             description="unmovable share", continuous_update=False, style=style)
        self.grouping = W.ToggleButton(value=grouping, description="grouping by mobility")
        self.seed = seed
        self.output = W.Output()
        self.last_result = None
        for c in (self.memory_mib, self.turnover, self.unmovable_share, self.grouping):
            c.observe(lambda change: self.refresh(), names="value")
        self.widget = W.VBox([W.HBox([self.memory_mib, self.turnover]), W.HBox([self.unmovable_share, self.grouping]),
                              self.output])

    def refresh(self):
        self.last_result = simulate_buddy(self.memory_mib.value, self.turnover.value, self.unmovable_share.value,
                                          self.grouping.value, seed=self.seed)
        import matplotlib.pyplot as plt

        with self.output:
            self.output.clear_output(wait=True)
            fig = plot_buddy(self.last_result)
            plt.show()
            plt.close(fig)
        return self.last_result

    def _ipython_display_(self):
        from IPython.display import display

        if self.last_result is None:
            self.refresh()
        display(self.widget)


class GormanDashboard:
    """Sliders for :func:`thpbench.experiments.gorman_hugepage_allocation`: the machine's
    size and aging, ``defrag``, the share of memory asked for as huge pages and the time
    between faults; draws compaction off against on (:func:`~thpbench.experiments.plot_gorman`)
    with the table beneath.  ``last_result`` holds the last DataFrame; headless tests
    set ``.value`` and read it."""

    def __init__(self, mem_mib=128, aging="kernel_build", defrag="defer", target=0.9, interval_ms=100, seed=0):
        import ipywidgets as W

        style = {"description_width": "initial"}
        self.mem_mib = W.IntSlider(value=mem_mib, min=64, max=1024, step=64, description="memory (MiB)",
                                   continuous_update=False, style=style)
        self.aging = W.Dropdown(options=[("kernel builds + dd page cache", "kernel_build"),
                                         ("one process's random frees", "anon")], value=aging,
                                description="aged by", style=style)
        self.defrag = W.Dropdown(options=["always", "defer", "defer+madvise", "madvise", "never"], value=defrag,
                                 description="defrag", style=style)
        self.target = W.FloatSlider(value=target, min=0.1, max=1.0, step=0.05, description="huge pages asked (x memory)",
                                    continuous_update=False, style=style)
        self.interval_ms = W.IntSlider(value=interval_ms, min=0, max=500, step=50, description="ms between faults",
                                       continuous_update=False, style=style)
        self.seed = seed
        self.output = W.Output()
        self.last_result = None
        for c in (self.mem_mib, self.aging, self.defrag, self.target, self.interval_ms):
            c.observe(lambda change: self.refresh(), names="value")
        self.widget = W.VBox([W.HBox([self.mem_mib, self.aging, self.defrag]),
                              W.HBox([self.target, self.interval_ms]), self.output])

    def refresh(self):
        from thpbench import experiments

        self.last_result = experiments.gorman_hugepage_allocation(
            mem_mib=self.mem_mib.value, target=self.target.value, seed=self.seed, defrag=self.defrag.value,
            interval_ms=self.interval_ms.value, aging=self.aging.value)
        import matplotlib.pyplot as plt
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5, 3.2))
            experiments.plot_gorman(self.last_result, ax, title=f"defrag={self.defrag.value}")
            plt.show()
            plt.close(fig)
            display(self.last_result[["compaction", "attempts", "huge_pages", "success_rate", "compact_stall",
                                      "pgmigrate_success", "pages_reclaimed"]].round(3))
        return self.last_result

    def _ipython_display_(self):
        from IPython.display import display

        if self.last_result is None:
            self.refresh()
        display(self.widget)
