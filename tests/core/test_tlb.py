"""Known-answer tests of the TLB / page-walk simulator (thpbench.tlb over _core.TlbSim)."""
import numpy as np
import pytest

from thpbench import tlb
from thpbench._core import TlbSim
from thpbench.tlb import MMU, CPU, Geometry, preset, walk_refs_worst_case

MiB = 1 << 20
GiB = 1 << 30


def bare(mode="native", levels=4, host_levels=4, **geom):
    """A simulator with only the structures given (default: a small L1 and L2)."""
    g = {"l1_4k": (64, 4), "l1_2m": (32, 4), "l2": (1536, 12)}
    g.update(geom)
    return TlbSim({k: v for k, v in g.items() if v is not None}, mode=mode, levels=levels,
                  host_levels=host_levels)


# -- scans ----------------------------------------------------------------------------

def test_sequential_scan_misses_once_per_page():
    sim = bare()
    trace = np.arange(0, 64 * MiB, 64, dtype=np.uint64)       # 16384 pages, 64 lines each
    sim.run(trace)
    c = sim.counters()
    assert c["accesses"] == trace.size
    assert c["dtlb_load_misses.walk_completed_4k"] == 64 * MiB // 4096
    assert sim.cache_stats()["l1_4k"]["misses"] == 64 * MiB // 4096


def test_sequential_scan_with_thp_misses_once_per_huge_page():
    sim = bare()
    sim.set_mapping(guest_huge=np.ones(32, bool), base_va=0)
    sim.run(np.arange(0, 64 * MiB, 4096, dtype=np.uint64))
    c = sim.counters()
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 32
    assert c["dtlb_load_misses.walk_completed_4k"] == 0


def test_working_set_within_l1_hits_after_warmup():
    sim = bare(l2=None)
    pages = np.arange(0, 64 * 4096, 4096, dtype=np.uint64)      # 64 pages = the L1 exactly
    sim.run(pages)
    sim.run(np.tile(pages, 10))
    st = sim.cache_stats()["l1_4k"]
    assert st["misses"] == 64 and st["hits"] == 640


def test_lru_within_a_set():
    # one set of 2 ways: a b a c -> c evicts b (LRU), so b misses again, a hits
    sim = TlbSim({"l1_4k": (2, 2)})
    a, b, c = 0, 4096, 8192
    sim.run(np.array([a, b, a, c, a, b], dtype=np.uint64))
    st = sim.cache_stats()["l1_4k"]
    assert (st["hits"], st["misses"], st["evictions"]) == (2, 4, 2)


def test_non_power_of_two_sets_index_by_modulo():
    # 3 sets x 1 way: pages 0 and 3 conflict (0 mod 3 == 3 mod 3), pages 0 and 1 do not
    sim = TlbSim({"l1_4k": (3, 1)})
    sim.run(np.array([0, 3 * 4096, 0], dtype=np.uint64))
    assert sim.cache_stats()["l1_4k"]["hits"] == 0
    sim2 = TlbSim({"l1_4k": (3, 1)})
    sim2.run(np.array([0, 4096, 0, 2 * 4096, 4096], dtype=np.uint64))
    assert sim2.cache_stats()["l1_4k"]["hits"] == 2


@pytest.mark.parametrize("entries,ways", [(1536, 12), (1536, 6), (1536, 1536), (1000, 8), (96, 6)])
def test_capacity_of_any_geometry(entries, ways):
    # Cycling over exactly `entries` consecutive pages fills every set evenly, so a
    # second lap hits every time; one page more and LRU makes every access miss
    # whenever each set overflows (here: when entries/ways sets get one extra page).
    sim = TlbSim({"l1_4k": (entries, ways)})
    pages = np.arange(entries, dtype=np.uint64) * np.uint64(4096)
    sim.run(np.tile(pages, 3))
    st = sim.cache_stats()["l1_4k"]
    assert st["misses"] == entries and st["hits"] == 2 * entries


# -- walk lengths ---------------------------------------------------------------------

@pytest.mark.parametrize("levels,expect", [(4, 4), (5, 5)])
def test_worst_case_native_walk(levels, expect):
    sim = TlbSim({"l1_4k": (1, 1)}, mode="native", levels=levels)
    sim.run(np.array([0x7f12_3456_7000], dtype=np.uint64))
    assert sim.counters()["walk_refs"] == expect == walk_refs_worst_case(levels)


@pytest.mark.parametrize("g,h,expect", [(4, 4, 24), (5, 5, 35), (4, 5, 29), (5, 4, 29)])
def test_worst_case_nested_walk(g, h, expect):
    sim = TlbSim({"l1_4k": (1, 1)}, mode="nested", levels=g, host_levels=h)
    sim.run(np.array([0x1234_5678_9000], dtype=np.uint64))
    c = sim.counters()
    assert c["walk_refs"] == expect == (g + 1) * (h + 1) - 1
    assert c["guest_walk_refs"] == g and c["host_walk_refs"] == expect - g


def test_nested_walk_with_huge_pages_shortens_both_dimensions():
    sim = TlbSim({"l1_4k": (1, 1), "l1_2m": (1, 1)}, mode="nested")
    sim.set_mapping(guest_huge=np.ones(4, bool), base_va=0, host_huge=np.ones(4, bool),
                    host_pt_huge=True)
    sim.run(np.array([0x10_0000], dtype=np.uint64))
    # guest walks 3 levels, each host walk 3 levels: (3+1)(3+1)-1
    assert sim.counters()["walk_refs"] == 15 == walk_refs_worst_case(4, 4, True, True)


def test_shadow_walk_is_one_dimensional():
    sim = TlbSim({"l1_4k": (1, 1)}, mode="shadow")
    sim.run(np.array([0x1234_5678_9000], dtype=np.uint64))
    assert sim.counters()["walk_refs"] == 4
    assert sim.counters()["host_walk_refs"] == 0


def test_pde_cache_leaves_one_reference():
    sim = bare(pwc2=(32, 4))
    sim.run(np.array([0, 4096, 8192], dtype=np.uint64))
    # first walk 4 refs, then the PDE cache holds the PMD entry: 1 ref each
    assert sim.counters()["walk_refs"] == 4 + 1 + 1


def test_unified_pwc_behaves_like_per_level_when_large_enough():
    tr = np.random.default_rng(3).integers(0, 256 * MiB, 5000, dtype=np.uint64)  # all PDEs fit
    a = bare(pwc2=(256, 4), pwc3=(256, 4), pwc4=(256, 4))
    b = bare(pwc=(768, 12))
    a.run(tr)
    b.run(tr)
    assert a.counters()["walk_refs"] == b.counters()["walk_refs"]


def test_nested_tlb_skips_host_walks():
    sim = TlbSim({"l1_4k": (1, 1), "ntlb": (16, 16)}, mode="nested")
    sim.run(np.array([0x1000, 0x2000 + (1 << 40)], dtype=np.uint64))
    c = sim.counters()
    # the second walk shares the top-level guest table page (its host walk is cached):
    # first walk 24; second: PML4 page cached (0 host refs) + 3 other tables + data page
    assert c["walk_refs"] == 24 + (4 + 3 * 4 + 4)


# -- splintering ----------------------------------------------------------------------

def test_guest_thp_on_host_4k_gets_a_4k_tlb_entry():
    sim = bare(mode="nested")
    sim.set_mapping(guest_huge=np.ones(2, bool), base_va=0, host_huge=np.zeros(2, bool))
    sim.run(np.arange(0, 2 * MiB, 4096, dtype=np.uint64))
    c = sim.counters()
    assert c["dtlb_load_misses.walk_completed_4k"] == 512
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 0
    sim2 = bare(mode="nested")
    sim2.set_mapping(guest_huge=np.ones(2, bool), base_va=0, host_huge=np.ones(2, bool))
    sim2.run(np.arange(0, 2 * MiB, 4096, dtype=np.uint64))
    assert sim2.counters()["dtlb_load_misses.walk_completed_2m_4m"] == 1


@pytest.mark.parametrize("mode", ["nested", "shadow"])
def test_splinter_is_min_of_guest_and_host(mode):
    for gh, hh, expect_huge in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 1)]:
        sim = bare(mode=mode)
        sim.set_mapping(guest_huge=[bool(gh)], base_va=0, host_huge=[bool(hh)])
        sim.run(np.array([0x1000], dtype=np.uint64))
        assert sim.counters()["dtlb_load_misses.walk_completed_2m_4m"] == expect_huge


def test_native_ignores_host_backing():
    sim = bare(mode="native")
    sim.set_mapping(guest_huge=[True], base_va=0, host_huge=[False])
    sim.run(np.array([0x1000], dtype=np.uint64))
    assert sim.counters()["dtlb_load_misses.walk_completed_2m_4m"] == 1


def test_gpa_region_maps_guest_regions_to_host_backing():
    # guest virtual region 0 -> guest-physical region 3, which the host backs huge
    sim = bare(mode="nested")
    sim.set_mapping(guest_huge=[True], base_va=1 << 30, gpa_region=[3],
                    host_huge=[False, False, False, True])
    sim.run(np.array([(1 << 30) + 0x1000], dtype=np.uint64))
    assert sim.counters()["dtlb_load_misses.walk_completed_2m_4m"] == 1


# -- flushes (contract with the THP kernel) ------------------------------------------

def test_flush_range_invalidates_only_the_range():
    sim = bare()
    pages = np.arange(8, dtype=np.uint64) * np.uint64(4096)
    sim.run(pages)
    sim.flush_range(0, 2 * 4096)
    c = sim.counters()
    assert c["nr_tlb_local_flush_one"] == 2 and c["nr_tlb_local_flush_all"] == 0
    assert c["entries_flushed"] >= 4          # 2 pages x (L1 + L2)
    before = sim.cache_stats()["l1_4k"]["misses"]
    sim.run(pages)
    assert sim.cache_stats()["l1_4k"]["misses"] - before == 2


def test_collapse_flush_is_a_full_flush_on_x86():
    # mm/khugepaged.c collapse_huge_page -> pmdp_collapse_flush -> flush_tlb_range over
    # 2 MiB at PAGE_SHIFT stride: 512 > tlb_single_page_flush_ceiling -> flush everything
    sim = bare()
    sim.run(np.arange(0, 4 * MiB, 4096, dtype=np.uint64))
    sim.flush_range(0, 2 * MiB)
    c = sim.counters()
    assert c["nr_tlb_local_flush_all"] == 1 and c["nr_tlb_local_flush_one"] == 0
    assert sim.occupancy("l1_4k") == 0 and sim.occupancy("l2") == 0


def test_pmd_stride_flush_is_one_invalidation():
    # a split flushing at PMD stride (flush_pmd_tlb_range with PMD_SIZE stride): 1 entry
    sim = bare()
    sim.set_mapping(guest_huge=[True, True], base_va=0)
    sim.run(np.array([0x1000, 0x20_1000], dtype=np.uint64))
    assert sim.occupancy("l1_2m") == 2
    sim.flush_range(0, 2 * MiB, stride_shift=21)
    c = sim.counters()
    assert c["nr_tlb_local_flush_one"] == 1 and c["nr_tlb_local_flush_all"] == 0
    assert sim.occupancy("l1_2m") == 1


def test_collapse_then_new_mapping_changes_entry_size():
    # a 4 KiB-mapped region is collapsed to a THP: after map + flush the next access walks
    # to a 2 MiB entry, and a split brings 4 KiB entries back
    mmu = MMU("skylake")
    region = np.arange(0, 2 * MiB, 4096, dtype=np.uint64)
    mmu.map(guest_huge=[False], base_va=0)
    c1 = mmu.run(region)
    assert c1["dtlb_load_misses.walk_completed_4k"] == 512
    mmu.map(guest_huge=[True], base_va=0)
    mmu.flush_range(0, 2 * MiB)                     # pmdp_collapse_flush
    c2 = mmu.run(region)
    assert c2["dtlb_load_misses.walk_completed_2m_4m"] == 1
    assert c2["dtlb_load_misses.walk_completed_4k"] == 0
    mmu.map(guest_huge=[False], base_va=0)
    mmu.flush_range(0, 2 * MiB, stride_shift=21)    # split
    c3 = mmu.run(region)
    assert c3["dtlb_load_misses.walk_completed_4k"] == 512
    k = mmu.counters()
    assert k["nr_tlb_local_flush_all"] == 1 and k["nr_tlb_local_flush_one"] == 1
    assert k["flush_range_calls"] == 2


def test_flush_all_counts_and_empties_everything():
    sim = bare(mode="nested", ntlb=(16, 4), pwc2=(32, 4))
    sim.run(np.arange(0, MiB, 4096, dtype=np.uint64))
    sim.flush_all()
    assert sim.counters()["nr_tlb_local_flush_all"] == 1
    for name in ("l1_4k", "l2", "ntlb", "pwc2"):
        assert sim.occupancy(name) == 0


def test_guest_flush_keeps_nested_tlb():
    sim = bare(mode="nested", ntlb=(16, 4))
    sim.run(np.arange(0, 64 * 4096, 4096, dtype=np.uint64))
    n = sim.occupancy("ntlb")
    assert n > 0
    sim.flush_range(0, 2 * MiB)   # full flush of the guest's translations
    assert sim.occupancy("ntlb") == n


# -- validation at the boundary -------------------------------------------------------

@pytest.mark.parametrize("kw,exc", [
    (dict(geometry={"l1_4k": (0, 4)}), ValueError),
    (dict(geometry={"l1_4k": (4,)}), TypeError),
    (dict(geometry={"l3": (4, 4)}), ValueError),
    (dict(geometry={"l1": (4, 4), "l1_4k": (4, 4)}), ValueError),
    (dict(geometry={"pwc": (4, 4), "pwc2": (4, 4)}), ValueError),
    (dict(geometry={}, mode="ept"), ValueError),
    (dict(geometry={}, levels=3), ValueError),
])
def test_bad_configs_raise(kw, exc):
    with pytest.raises(exc):
        TlbSim(**kw)


def test_bad_mappings_and_traces_raise():
    sim = bare()
    with pytest.raises(ValueError, match="aligned"):
        sim.set_mapping(guest_huge=[True], base_va=4096)
    with pytest.raises(ValueError, match="gpa_region"):
        sim.set_mapping(guest_huge=[True, False], gpa_region=[0])
    with pytest.raises(TypeError):
        sim.run(np.array([0.5]))
    with pytest.raises(ValueError, match="negative"):
        sim.run(np.array([-4096]))
    with pytest.raises(ValueError, match="stride_shift"):
        sim.flush_range(0, 4096, stride_shift=13)


def test_geometry_validation():
    with pytest.raises(ValueError):
        Geometry(1536, 7)
    assert Geometry(1536, 12).sets == 128
    assert Geometry(1536, 6).sets == 256


# -- presets ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(tlb.PRESETS))
def test_presets_build_and_cite_sources(name):
    cpu = preset(name)
    assert cpu.source and cpu.year
    mmu = MMU(cpu, mode="nested")
    c = mmu.run(np.arange(0, 8 * MiB, 4096, dtype=np.uint64))
    assert c["accesses"] == 2048


def test_skylake_stlb_is_1536_12_way():
    assert tlb.PRESETS["skylake"].l2_shared == Geometry(1536, 12)


def test_better_cpu_has_more_reach_and_fewer_walks():
    cpu = preset("nehalem")
    better = cpu.better(l2_scale=8, walk_speedup=2)
    assert better.l2_entries() == 8 * cpu.l2_entries()
    assert better.walk_ref_cycles == cpu.walk_ref_cycles / 2
    tr = np.random.default_rng(0).integers(0, 16 * MiB, 100_000, dtype=np.uint64)
    w0 = MMU(cpu).run(tr)["dtlb_load_misses.walk_completed"]
    w1 = MMU(better).run(tr)["dtlb_load_misses.walk_completed"]
    assert w1 < w0


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="skylake"):
        preset("pentium")


# -- page-table lines in the data caches ----------------------------------------------

def test_walks_of_neighbouring_pages_share_pte_lines():
    # 8 PTEs share a 64-byte line: walking 8 consecutive pages reads one PTE line
    sim = TlbSim({"l1_4k": (1, 1), "pwc2": (4, 4), "ptcache": (64, 4)})
    sim.run(np.arange(0, 8 * 4096, 4096, dtype=np.uint64))
    c = sim.counters()
    assert c["walk_refs"] == 4 + 7                  # then PDE-cache hits: one ref each
    assert c["walk_refs_cached"] == 7               # the PTE line was read by the first walk


def test_tlb_flush_keeps_page_table_lines():
    sim = TlbSim({"l1_4k": (1, 1), "ptcache": (64, 4)})
    sim.run(np.array([0], dtype=np.uint64))
    sim.flush_all()
    sim.run(np.array([0], dtype=np.uint64))
    assert sim.counters()["walk_refs_cached"] == 4


@pytest.mark.parametrize("mode,exits", [("native", 0), ("nested", 0), ("shadow", 3)])
def test_guest_pte_writes_exit_only_under_shadow_paging(mode, exits):
    mmu = MMU("nehalem", mode=mode)
    mmu.guest_pte_writes(2)
    mmu.guest_pte_writes()
    c = mmu.counters()
    assert c["mmu_pte_write"] == 3 and c["exits"] == exits
    with pytest.raises(ValueError):
        mmu.guest_pte_writes(-1)


def test_mmu_contract_with_hand_made_arrays():
    # guest: 4 regions from 1 GiB, regions 1 and 2 PMD-mapped huge; they live in
    # guest-physical regions 10..13, of which the host backs 11 and 13 with 2 MiB pages
    base = 1 << 30
    mmu = MMU("skylake", mode="nested")
    mmu.map(guest_huge=[False, True, True, False], base_va=base, gpa_region=[10, 11, 12, 13],
            host_huge=np.isin(np.arange(16), [11, 13]))
    one_access_per_region = np.array([base + r * (2 << 20) + 0x1000 for r in range(4)], dtype=np.uint64)
    c = mmu.run(one_access_per_region)
    # region 1: huge on both sides -> 2M entry; region 2: guest huge, host 4K -> splintered
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 1
    assert c["dtlb_load_misses.walk_completed_4k"] == 3


def test_check_passes_after_runs_and_flushes():
    sim = bare(mode="nested", ntlb=(16, 4), pwc=(16, 4), ptcache=(32, 4))
    sim.set_mapping(guest_huge=np.arange(8) % 2 == 0, base_va=0, host_huge=np.ones(8, bool))
    sim.run(np.random.default_rng(1).integers(0, 16 * MiB, 5000, dtype=np.uint64))
    sim.check()
    sim.flush_range(4096, 3 * 4096)
    sim.check()
    sim.flush_range(0, 2 * MiB)
    sim.check()


@pytest.mark.parametrize("mode", ["native", "nested", "shadow"])
def test_collapse_and_split_events_change_entries_and_count_flushes(mode):
    base = 1 << 30
    mmu = MMU("skylake", mode=mode)
    mmu.map(guest_huge=np.zeros(2, bool), base_va=base, host_huge=np.ones(4096, bool),
            default_host_huge=True, host_pt_huge=True)
    region = np.arange(base, base + 2 * MiB, 4096, dtype=np.uint64)
    trace = np.concatenate([region, region, region])
    c = mmu.run_with_events(trace, [(512, "collapse", base + 5), (1024, "split", base)])
    # first lap 512 walks (4K); collapse -> one 2M walk; split -> 512 walks again
    assert c["dtlb_load_misses.walk_completed_4k"] == 1024
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 1
    assert c["nr_tlb_local_flush_all"] == 1 and c["nr_tlb_local_flush_one"] == 1
    assert c["mmu_pte_write"] == 1 + 513
    assert c["exits"] == (514 if mode == "shadow" else 0)


def test_events_outside_the_mapping_raise():
    mmu = MMU("skylake")
    with pytest.raises(ValueError, match="map"):
        mmu.collapse(0)
    mmu.map(guest_huge=[False], base_va=0)
    with pytest.raises(ValueError, match="outside"):
        mmu.split(4 * MiB)
    with pytest.raises(ValueError, match="kind"):
        mmu.run_with_events(np.zeros(4, np.uint64), [(1, "merge", 0)])


# -- the public API: CPU from a geometry, per-level counters, pure-TLB runs ----------

def test_cpu_from_a_geometry_alone():
    cpu = CPU(l1_4k=(64, 4), l2_shared=Geometry(1536, 12))
    assert cpu.l1_4k == Geometry(64, 4) and cpu.year is None and cpu.source == ""
    assert cpu.geometry() == {"l1_4k": (64, 4), "l2": (1536, 12)}
    same = CPU.from_geometry({"l1_4k": (64, 4), "l2": (1536, 12), "pwc2": (32, 4)}, name="mine")
    assert same.name == "mine" and same.l2_shared == Geometry(1536, 12) and same.pwc == {2: Geometry(32, 4)}
    assert CPU.from_geometry(preset("barcelona").geometry()).geometry() == preset("barcelona").geometry()
    tr = np.random.default_rng(5).integers(0, 64 * MiB, 20_000, dtype=np.uint64)
    assert MMU(cpu).run(tr)["accesses"] == tr.size
    with pytest.raises(ValueError, match="l3"):
        CPU.from_geometry({"l3": (64, 4)})
    with pytest.raises(TypeError, match="l1_4k"):
        CPU(l1_4k=64)


def test_one_geometry_convention_entries_ways_everywhere():
    # the same (entries, ways) pair means the same structure in Geometry, CPU and TlbSim
    sim = TlbSim({"l1_4k": (64, 4)})
    cpu = CPU(l1_4k=(64, 4))
    assert sim.geometry == cpu.geometry() == {"l1_4k": (64, 4)}
    pages = np.arange(64, dtype=np.uint64) * np.uint64(4096)
    sim.run(np.tile(pages, 2))
    assert sim.cache_stats()["l1_4k"] == {"hits": 64, "misses": 64, "fills": 64, "evictions": 0}
    with pytest.raises(ValueError, match="multiple of ways"):
        TlbSim({"l1_4k": (64, 5)})


def test_mmu_counters_carry_per_level_hits_and_misses_under_cpu_field_names():
    mmu = MMU("skylake")
    tr = np.random.default_rng(2).integers(0, 256 * MiB, 30_000, dtype=np.uint64)
    run = mmu.run(tr)
    c = mmu.counters()
    for f in ("l1_4k", "l1_2m", "l2_shared", "pwc2", "pwc3", "pwc4", "ptcache"):
        assert f"{f}_hits" in c and f"{f}_misses" in c, f
        assert run[f"{f}_misses"] == c[f"{f}_misses"]
    assert c["l1_4k_hits"] + c["l1_4k_misses"] == tr.size
    assert c["l2_shared_hits"] == c["dtlb_load_misses.stlb_hit"]
    assert c["l2_shared_misses"] == c["dtlb_load_misses.walk_completed"]
    zen = MMU("zen4").counters()
    assert {"l1_shared_hits", "l2_shared_misses", "pwc_unified_hits", "ntlb_misses"} <= set(zen)


@pytest.mark.parametrize("mode", ["native", "nested", "shadow"])
def test_walk_model_off_counts_the_same_tlb_misses_and_no_walk(mode):
    tr = np.random.default_rng(4).integers(0, 512 * MiB, 30_000, dtype=np.uint64)
    full, pure = MMU("skylake", mode=mode), MMU("skylake", mode=mode, walk_model=False)
    assert pure.walk_model is False and pure.sim.walk_model is False
    for m in (full, pure):
        m.map(guest_huge=np.arange(256) % 3 == 0, base_va=0, default_host_huge=True)
    a, b = full.run(tr), pure.run(tr)
    for k in ("dtlb_load_misses.walk_completed_4k", "dtlb_load_misses.walk_completed_2m_4m",
              "dtlb_load_misses.stlb_hit", "l1_4k_misses", "l1_2m_misses", "l2_shared_misses"):
        assert a[k] == b[k], k
    assert a["walk_refs"] > 0
    assert b["walk_refs"] == b["walk_refs_cached"] == b["pwc2_hits"] + b["pwc2_misses"] == 0
    with pytest.raises(TypeError, match="walk_model"):
        TlbSim({}, walk_model="no")


def test_a_walk_without_caches_counts_every_level_in_the_fast_loop():
    # no walk cache, no page-table lines: the loop counts levels - class references per
    # walk without modelling it; same answer as with an (unused) nested TLB present
    tr = np.random.default_rng(6).integers(0, 64 * MiB, 10_000, dtype=np.uint64)
    sim = TlbSim({"l1_4k": (64, 4), "l1_2m": (32, 4)}, levels=5)
    sim.set_mapping(guest_huge=np.arange(32) % 2 == 1, base_va=0)
    sim.run(tr)
    c = sim.counters()
    w4, w2 = c["dtlb_load_misses.walk_completed_4k"], c["dtlb_load_misses.walk_completed_2m_4m"]
    assert w4 and w2 and c["walk_refs"] == 5 * w4 + 4 * w2 == c["guest_walk_refs"]


def test_mmu_cache_stats_rows_use_cpu_field_names():
    mmu = MMU("zen4")
    mmu.run(np.arange(0, 4 * MiB, 4096, dtype=np.uint64))
    df = mmu.cache_stats().set_index("structure")
    assert df.loc["l1_shared", "sim_name"] == "l1" and df.loc["l2_shared", "entries"] == 3072
    assert df.loc["l1_shared", "misses"] == mmu.counters()["l1_shared_misses"] == 1024


def test_a_rejected_map_keeps_the_previous_mapping_for_collapse_and_split():
    mmu = MMU("skylake").map(guest_huge=np.zeros(4, bool), base_va=0)
    with pytest.raises(ValueError, match="aligned"):
        mmu.map(guest_huge=np.ones(8, bool), base_va=4096)
    mmu.collapse(3 * 2 * MiB)             # region 3 of the 4-region mapping still exists
    with pytest.raises(ValueError, match="outside"):
        mmu.collapse(5 * 2 * MiB)
    c = mmu.run(np.arange(0, 8 * MiB, 4096, dtype=np.uint64))
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 1
