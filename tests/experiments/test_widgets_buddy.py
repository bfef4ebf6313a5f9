"""Notebook 01's plain functions and its dashboard, driven headlessly (matplotlib Agg)."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from thpbench.data import data_path
from thpbench import BuddyAllocator, plots, procfs, widgets  # noqa: E402
from thpbench.workloads import churn_readout  # noqa: E402

DATA = data_path("procfs")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_memory_map_colours_state_and_type():
    a = BuddyAllocator(4096)
    img = plots.memory_map(a)
    assert img.shape[2] == 3 and img.shape[0] * img.shape[1] == 4096
    pale_movable = plots.MIGRATETYPE_COLORS[1] * (1 - plots._FREE_TINT) + plots._FREE_TINT
    assert np.allclose(img.reshape(-1, 3), pale_movable)
    pfn = a.alloc(0, "unmovable")          # claims the order-10 block at pfn 0
    movable = a.alloc(3, "movable")
    a.check()
    flat = plots.memory_map(a).reshape(-1, 3)
    assert np.allclose(flat[pfn], plots.MIGRATETYPE_COLORS[0])
    assert np.allclose(flat[movable:movable + 8], plots.MIGRATETYPE_COLORS[1])
    pale_unmovable = plots.MIGRATETYPE_COLORS[0] * (1 - plots._FREE_TINT) + plots._FREE_TINT
    assert np.allclose(flat[pfn + 1], pale_unmovable)


def test_memory_map_downsamples_and_pads():
    a = BuddyAllocator(5000)
    img = plots.memory_map(a, max_pixels=1024)
    assert img.shape[0] * img.shape[1] <= 2 * 1024
    img = plots.memory_map(a, row_pageblocks=1)
    assert img.shape == (10, 512, 3)
    assert np.allclose(img[-1, -1], 1.0)          # past the zone end: white
    with pytest.raises(TypeError):
        plots.memory_map("zone")
    with pytest.raises(ValueError, match="row_pageblocks"):
        plots.memory_map(a, row_pageblocks=0)


def test_fragmentation_indices_table():
    a = BuddyAllocator(1024)
    pages = [a.alloc(0) for _ in range(1024)]
    for p in pages[::2]:
        a.free(p, 0)
    df = plots.fragmentation_indices(a, "x")
    assert list(df.columns) == ["source", "order", "unusable_index", "fragmentation_index"]
    for o in range(11):
        assert df.loc[o, "unusable_index"] == a.unusable_index(o)
        assert df.loc[o, "fragmentation_index"] == a.fragmentation_index(o)
    fig, ax = plt.subplots()
    plots.plot_fragmentation_indices(df, ax)
    assert len(ax.lines) == 2


def test_simulate_buddy_and_plot():
    r = widgets.simulate_buddy(64, 2.0, 0.2, True, seed=1)
    a = r["allocator"]
    a.check()
    assert a.nr_pages == 64 * 256
    assert r["readout"] == churn_readout(a)
    assert r["params"]["grouping"] is True and r["params"]["memory_mib"] == 64
    assert r["churn"].history["turnover"].iloc[-1] >= 2.0
    fig = widgets.plot_buddy(r)
    assert len(fig.axes) == 3
    assert "grouping by mobility on" in fig._suptitle.get_text()
    off = widgets.simulate_buddy(64, 2.0, 0.2, False, seed=1)
    off["allocator"].check()
    assert off["readout"]["nr_pageblocks_unmovable"] == off["allocator"].nr_pageblocks
    with pytest.raises(ValueError, match="memory_mib"):
        widgets.simulate_buddy(2)
    with pytest.raises(ValueError, match="memory_mib"):
        widgets.simulate_buddy(64.5)


def test_compare_grouping_table():
    df = widgets.compare_grouping(64, 3.0, seeds=(0, 1))
    assert len(df) == 8
    assert set(df["moment"]) == {"aged", "at rest"} and set(df["grouping"]) == {"on", "off"}
    rest = df[df["moment"] == "at rest"].groupby("grouping")["hugepages_pct"].mean()
    assert rest["on"] > 3 * rest["off"]
    assert ((df["hugepages_pct"] >= 0) & (df["hugepages_pct"] <= 100)).all()


def test_snapshot_vs_simulation():
    snap = procfs.load_snapshot(DATA / "after-sort")
    r = widgets.snapshot_vs_simulation(snap, "Normal", turnover=1.0, seed=2)
    r["real"].check()
    r["simulated"].check()
    assert r["real"].buddyinfo().tolist() == snap.zone("Normal")["buddyinfo"].tolist()
    assert r["simulated"].nr_pages == r["real"].nr_pages
    # page cache was dropped until the free memory matches the real zone's (to a few %)
    assert abs(r["simulated"].nr_free_pages - r["real"].nr_free_pages) < 0.05 * r["real"].nr_pages
    pb = snap.zone("Normal")["pageblocks"]
    assert r["unmovable_share"] == pytest.approx((pb[0] + pb[2]) / pb.sum())
    t = r["table"]
    assert len(t) == 22 and t.groupby("source").size().tolist() == [11, 11]
    fig = widgets.plot_snapshot_vs_simulation(r)
    assert len(fig.axes) == 4


def test_dashboard_headless():
    dash = widgets.BuddyDashboard(memory_mib=32, turnover=1.0)
    assert dash.last_result is None
    dash.refresh()
    assert dash.last_result["params"]["memory_mib"] == 32
    dash.memory_mib.value = 48                    # observe() re-runs the simulation
    assert dash.last_result["allocator"].nr_pages == 48 * 256
    dash.grouping.value = False
    assert dash.last_result["params"]["grouping"] is False
    dash.last_result["allocator"].check()
    dash.unmovable_share.value = 0.0
    assert dash.last_result["readout"]["nr_polluted_pageblocks"] == 0
    dash.turnover.value = 2.5
    assert dash.last_result["params"]["turnover"] == 2.5


def test_gorman_dashboard_drives_the_experiment_headlessly():
    from thpbench.widgets import GormanDashboard
    d = GormanDashboard(mem_mib=64, aging="anon", defrag="defer", interval_ms=100)
    first = d.refresh()
    assert list(first["compaction"]) == [False, True]
    d.defrag.value = "never"            # an observed change re-runs it
    never = d.last_result
    assert never is not first
    # defrag=never: faults neither compact directly nor wake kcompactd
    assert (never["compact_stall"] == 0).all()
    d.mem_mib.value = 128
    assert d.last_result["attempts"].iloc[0] == int(128 * (1 << 20) * 0.9) // (2 << 20)
