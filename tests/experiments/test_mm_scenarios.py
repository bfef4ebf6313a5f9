"""The notebook-02 scenario functions (and the widget) behave as their docstrings say."""
import matplotlib

matplotlib.use("Agg")

import pytest

from thpbench import mm_scenarios as S


def test_walkthrough_steps():
    df = S.walkthrough()
    assert list(df["PMD 1"])[:3] == ["none", "huge PMD (THP)", "huge PMD (THP)"]
    assert df["PMD 2"].iloc[2] == "huge zero page"
    assert df["thp_split_pmd"].iloc[3] == 1 and df["PMD 1"].iloc[3] == "PTE table"
    assert df["pages_collapsed"].iloc[-1] == 2 and df["PMD 0"].iloc[-1] == "huge PMD (THP)"


def test_compare_fault_modes_follows_vma_thp_gfp_mask():
    df = S.compare_fault_modes().set_index(["enabled", "defrag"])
    assert (df.loc["never", "thp_fault_alloc"] == 0).all()
    # madvised region: direct reclaim for always, defer+madvise, madvise -> no fallback
    for d in ("always", "defer+madvise", "madvise"):
        assert df.loc[("always", d), "huge MiB (madvised)"] == 24
    for d in ("defer", "never"):
        assert df.loc[("always", d), "thp_fault_fallback"] > 0
    # the region that is not madvised reclaims only with defrag=always
    assert df.loc[("always", "always"), "huge MiB (not madvised)"] == 24
    assert df.loc[("always", "madvise"), "huge MiB (not madvised)"] < 24
    assert (df["thp_underused_split_page"] > 0).all() and not df["oom"].any()


def test_max_ptes_none_trades_bloat_for_reach():
    df = S.max_ptes_none_sweep(values=(0, 256, 511), fill=0.2)
    assert df["bloat"].iloc[0] == pytest.approx(1.0) and df["useful pages in THPs"].iloc[0] == 0
    assert df["bloat"].iloc[-1] > 4 and df["useful pages in THPs"].iloc[-1] == 1.0
    assert df["TLB entries"].iloc[-1] < df["TLB entries"].iloc[0]
    S.plot_max_ptes_none(df)
    with pytest.raises(ValueError):
        S.sparse_collapse(512)


def test_bloat_scenario_linux_default_runs_out_of_memory():
    linux, tl = S.bloat_scenario("Linux default (max_ptes_none=511)")
    small, tl2 = S.bloat_scenario("max_ptes_none=0")
    assert linux["OOM"] and linux["pages_collapsed"] > 0
    assert not small["OOM"] and small["pages_collapsed"] == 0 and small["thp_split_page"] > 0
    assert "OOM" in set(tl.phase)
    S.plot_bloat({"linux": tl, "0": tl2}, mem_mib=256)
    with pytest.raises(ValueError):
        S.bloat_scenario("hawkeye")


def test_widget_recomputes_on_slider_change():
    box = S.max_ptes_none_widget()
    first = box.last_result
    box.children[0].value = 0
    assert box.last_result["max_ptes_none"] == 0 and box.last_result["bloat"] <= first["bloat"]
