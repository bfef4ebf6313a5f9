"""The cycles-per-access cost model, its A1 calibration, and the break-even search."""
import dataclasses

import numpy as np
import pytest

from thpbench import tlb
from thpbench import workloads as w

MiB = 1 << 20


@pytest.fixture(scope="module")
def grid():
    return tlb.a1_grid("nehalem", tlb.KbuildProfile(sample_accesses=150_000, processes=3))


def test_cost_model_is_linear_in_its_counters():
    cm = tlb.RuntimeModel(access_ns=1, stlb_hit_ns=2, walk_ref_cached_ns=3, walk_ref_ns=10,
                       fault_4k_ns=100, fault_2m_ns=1000, vmexit_ns=50, virt_overhead=0.5)
    c = {"accesses": 10, "dtlb_load_misses.stlb_hit": 2, "walk_refs": 5, "walk_refs_cached": 3,
         "faults_4k": 1, "faults_2m": 1, "vmexits": 2}
    assert cm.time_ns(c) == 10 + 4 + 9 + 20 + 100 + 1000 + 100
    assert cm.time_ns({**c, "virtualized": True}) == 1.5 * cm.time_ns(c)
    assert cm.translation_ns(c) == 4 + 9 + 20


def test_fault_costs_come_from_arcangelis_rfc():
    cm = tlb.RuntimeModel()
    # 3 GB first touch: 2.182 s with 4 KiB pages, 1.566 s with THP
    assert cm.fault_4k_ns * (3 * 2**30 // 4096) == pytest.approx(2.182e9)
    assert cm.fault_2m_ns * (3 * 2**30 // 2**21) == pytest.approx(1.566e9)


def test_grid_mechanisms(grid):
    g = grid.set_index(["paging", "guest_thp", "host_thp"])
    bare_thp, bare_4k = g.loc[("bare metal", "always", "-")], g.loc[("bare metal", "never", "-")]
    ept_aa, ept_nn = g.loc[("EPT", "always", "always")], g.loc[("EPT", "never", "never")]
    sh_aa, sh_na = g.loc[("shadow", "always", "always")], g.loc[("shadow", "never", "always")]
    # THP cuts walks; nested walks cost more references than native ones; shadow walks
    # are native-length; shadow exits grow when the guest maps 4 KiB pages
    assert bare_thp["dtlb_load_misses.walk_completed"] < bare_4k["dtlb_load_misses.walk_completed"]
    assert ept_aa["walk_refs"] > bare_thp["walk_refs"]
    assert ept_nn["walk_refs"] - ept_nn["walk_refs_cached"] > bare_4k["walk_refs"] - bare_4k["walk_refs_cached"]
    assert sh_aa["walk_refs"] == bare_thp["walk_refs"]
    assert sh_na["vmexits"] > sh_aa["vmexits"] > 0
    # under shadow paging host THP enters through KVM's reads of guest memory on exits:
    # the same exits cost the host more walk references on 4 KiB host pages
    sh_nn = g.loc[("shadow", "never", "never")]
    assert sh_nn["vmexits"] == sh_na["vmexits"]
    assert sh_nn["exit_walk_refs"] > sh_na["exit_walk_refs"] > 0
    assert bare_4k["exit_walk_refs"] == 0 and ept_nn["exit_walk_refs"] == 0
    assert bare_thp["faults_2m"] > 0 and bare_4k["faults_2m"] == 0


def test_a1_fit_hits_the_fitted_rows_and_orders_the_rest(grid):
    cm = tlb.a1_fit(grid)
    table = tlb.a1_table(grid, cm)
    fitted = table[table.role == "fitted"]
    assert np.allclose(fitted.simulated_slowdown_pct, fitted.published_slowdown_pct)
    assert cm.walk_ref_ns > cm.walk_ref_cached_ns > 0 and cm.vmexit_ns > 0
    # same order as published, strictly (issue 5's acceptance)
    ordered = table.sort_values("published_slowdown_pct").simulated_slowdown_pct.to_numpy()
    assert np.all(np.diff(ordered) > 0)
    assert (table.simulated_rank == table.published_rank).all()
    # EPT rows strictly ordered: host THP matters under nested paging
    ept = table[table.paging == "EPT"].simulated_slowdown_pct.to_numpy()
    assert ept[0] < ept[1] < ept[2]
    predicted = table[table.role == "predicted"]
    rel = (predicted.simulated_slowdown_pct - predicted.published_slowdown_pct).abs() / predicted.published_slowdown_pct
    assert rel.max() < 0.6


def test_a1_fit_refuses_an_unreachable_target(grid):
    g = grid.copy()
    g.loc[1, "published_slowdown_pct"] = -50.0     # THP=never 50% faster: impossible here
    with pytest.raises(ValueError, match="cannot reach"):
        tlb.a1_fit(g)


def test_break_even_finds_a_larger_tlb_for_a_mid_sized_footprint():
    trace = w.zipf_hotset(200_000, 64 * MiB, s=0.6, seed=3)
    r = tlb.break_even_tlb(trace, cpu="skylake")
    assert r["break_even_tlb_scale"] is not None and r["break_even_tlb_scale"] > 1
    curve = r["curve"]
    assert curve.translation_ns.iloc[-1] <= r["thp_translation_ns"]
    assert (curve.translation_ns.diff().dropna() <= 0).all()


def test_walk_refs_worst_case_formula():
    assert tlb.walk_refs_worst_case(4) == 4
    assert tlb.walk_refs_worst_case(4, 4) == 24
    assert tlb.walk_refs_worst_case(5, 5) == 35
    assert tlb.walk_refs_worst_case(4, 4, guest_huge=True) == 19


def test_explore_and_dashboard_headless():
    small = tlb.KbuildProfile(processes=1, sample_accesses=20_000)
    df = tlb.explore("nehalem", "EPT", guest_thp=False, host_thp=False, tlb_scale=4, profile=small)
    assert list(df.cpu) == ["stock", "better"]
    assert df.l2_entries.iloc[1] == 4 * df.l2_entries.iloc[0]
    assert df.slowdown_pct.iloc[1] < df.slowdown_pct.iloc[0]
    box = tlb.dashboard(profile=small)
    box.refresh()
    first = box.last_result
    box.controls["guest_thp"].value = True          # fires the observer
    assert box.last_result is not first
    assert bool(box.last_result.guest_thp.iloc[0]) is True


def test_plot_a1_draws(grid):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    tlb.plot_a1(tlb.a1_table(grid, tlb.a1_fit(grid)), ax)
    assert len(ax.patches) == 16
    plt.close(fig)
