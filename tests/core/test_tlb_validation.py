"""Issue 9, item 4: TLB geometries are checked before any allocation.

Before the fix, ``n_sets * n_ways`` was computed in int64: a product that overflowed
passed the size check, nothing was allocated and the first access wrote through a
zero-byte buffer (a segfault).  The crashing cases run in a child process so that a
regression fails one test instead of killing the run."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from thpbench import tlb
from thpbench._core import TlbSim, TLB_MAX_ENTRIES
from thpbench.tlb import CPU, MMU, Geometry, preset


def run_child(code):
    """Run `code` in a fresh interpreter; its return code and output."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_overflowing_tlbsim_geometry_raises_instead_of_crashing():
    rc, out = run_child("""
        import numpy as np
        from thpbench._core import TlbSim
        try:
            TlbSim({"l1_4k": (2**32, 2**32)}).run(np.arange(0, 1 << 30, 4096, dtype=np.uint64))
        except ValueError as e:
            print("ValueError:", e)
    """)
    assert rc == 0, out
    assert "ValueError" in out and "l1_4k" in out and "2**24" in out


def test_better_cpu_beyond_the_bound_raises_instead_of_crashing():
    rc, out = run_child("""
        import numpy as np
        from thpbench.tlb import preset, MMU
        try:
            cpu = preset("barcelona").better(tlb_scale=2**62, l2_scale=1)
            MMU(cpu).run(np.arange(0, 1 << 30, 4096, dtype=np.uint64))
        except ValueError as e:
            print("ValueError:", e)
    """)
    assert rc == 0, out
    assert "ValueError" in out and "tlb_scale" in out


@pytest.mark.parametrize("g,exc", [
    ((2**32, 2**32), ValueError),             # entries beyond the bound
    ((2**64, 1), ValueError),                 # beyond int64
    ((-4, 1), ValueError),
    ((0, 0), ValueError),
    ((4, 8), ValueError),                     # more ways than entries
    ((12, 5), ValueError),                    # not a multiple
    ((TLB_MAX_ENTRIES * 2, 2), ValueError),
    ((4.0, 2), TypeError),                    # int() would have truncated silently
    ((4, 2.5), TypeError),
    ((True, 1), TypeError),
    (("64", 4), TypeError),
    ((64,), TypeError),
    ((64, 4, 1), TypeError),
    ("64x4", TypeError),
    ({0: 64, 1: 4}, TypeError),
    (np.zeros((2, 2), int), TypeError),
    (None, TypeError),
    (64, TypeError),
])
def test_bad_geometries_name_the_structure_and_value(g, exc):
    with pytest.raises(exc, match="l2"):
        TlbSim({"l1_4k": (64, 4), "l2": g})


def test_geometry_objects_and_arrays_are_accepted():
    sim = TlbSim({"l1_4k": Geometry(64, 4), "l2": np.array([1536, 12])})
    assert sim.geometry == {"l1_4k": (64, 4), "l2": (1536, 12)}


def test_largest_geometry_is_accepted():
    sim = TlbSim({"l1_4k": (TLB_MAX_ENTRIES, TLB_MAX_ENTRIES >> 12)})
    sim.run(np.arange(0, 1 << 24, 4096, dtype=np.uint64))
    assert sim.cache_stats()["l1_4k"]["misses"] == 4096


@pytest.mark.parametrize("kw", [dict(tlb_scale=2**62, l2_scale=1), dict(l2_scale=1e30),
                                dict(pwc_scale=2**40), dict(nested_scale=2**40)])
def test_better_names_the_scale_that_is_too_large(kw):
    what = next(iter(kw))
    with pytest.raises(ValueError, match=what):
        preset("barcelona").better(**kw)


@pytest.mark.parametrize("kw,exc", [(dict(tlb_scale=float("nan")), ValueError),
                                    (dict(tlb_scale=float("inf")), ValueError),
                                    (dict(walk_speedup=0), ValueError),
                                    (dict(l2_scale=-1), ValueError),
                                    (dict(pwc_scale="2"), TypeError)])
def test_better_rejects_non_finite_and_non_positive_scales(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        preset("skylake").better(**kw)


def test_geometry_and_cpu_bounds():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        Geometry(2**32, 2**32)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        Geometry(2**25, 1).scaled(1)
    with pytest.raises(ValueError, match="2\\*\\*24"):
        Geometry(64, 4).scaled(2**30)
    with pytest.raises(ValueError):
        CPU(l2_shared=(2**40, 2**20))
    with pytest.raises(TypeError):
        Geometry(64.0, 4)


@pytest.mark.parametrize("kw,exc", [
    (dict(mode="ept"), ValueError), (dict(mode=None), ValueError), (dict(levels=3), ValueError),
    (dict(levels=2**70), ValueError), (dict(levels=4.0), TypeError), (dict(host_levels="4"), TypeError),
])
def test_bad_tlbsim_arguments(kw, exc):
    with pytest.raises(exc):
        TlbSim({"l1_4k": (64, 4)}, **kw)


def test_bad_mapping_leaves_the_previous_one_installed():
    sim = TlbSim({"l1_4k": (64, 4), "l1_2m": (32, 4)})
    sim.set_mapping(guest_huge=np.ones(4, bool), base_va=0)
    tr = np.arange(0, 8 << 20, 4096, dtype=np.uint64)
    for kw, exc in ((dict(guest_huge=np.zeros(4, bool), base_va=4096), ValueError),
                    (dict(guest_huge=np.zeros(4, bool), base_va=-(2 << 20)), ValueError),
                    (dict(guest_huge=np.zeros(4, bool), base_va=1 << 64), ValueError),
                    (dict(guest_huge=np.zeros((2, 2), bool)), ValueError),
                    (dict(guest_huge=np.zeros(4, bool), gpa_region=[0, 1]), ValueError),
                    (dict(guest_huge=np.zeros(2, bool), gpa_region=[0, 1 << 40]), ValueError),
                    (dict(guest_huge=np.zeros(2, bool), gpa_region=[0.5, 1]), TypeError),
                    (dict(guest_huge=["x"]), TypeError),
                    (dict(host_huge=np.zeros(4, bool), default_host_huge="yes"), TypeError)):
        with pytest.raises(exc):
            sim.set_mapping(**kw)
    sim.run(tr)        # still the huge mapping: one 2 MiB walk per region
    c = sim.counters()
    assert c["dtlb_load_misses.walk_completed_2m_4m"] == 4 and c["dtlb_load_misses.walk_completed_4k"] == 0


@pytest.mark.parametrize("args,exc", [
    ((-4096, 4096), ValueError), ((0, -1), ValueError), (((1 << 64) - 4096, 8192), ValueError),
    ((0, 4096, 13), ValueError), ((0.5, 4096), TypeError), ((0, "4096"), TypeError),
])
def test_bad_flush_ranges(args, exc):
    sim = TlbSim({"l1_4k": (64, 4)})
    sim.run(np.arange(0, 1 << 20, 4096, dtype=np.uint64))
    with pytest.raises(exc):
        sim.flush_range(*args)
    assert sim.occupancy("l1_4k") == 64 and sim.counters()["flush_range_calls"] == 0


def test_flush_at_the_top_of_the_address_space():
    sim = TlbSim({"l1_4k": (64, 4)})
    top = (1 << 64) - 4096
    sim.run(np.array([top, 0], dtype=np.uint64))
    sim.flush_range(top, 4096)
    assert sim.occupancy("l1_4k") == 1
    sim.check()


@pytest.mark.parametrize("trace,exc", [(np.zeros((2, 2), np.uint64), ValueError), (np.array([1.5]), TypeError),
                                       (np.array([-1]), ValueError), (np.array([True]), TypeError),
                                       (np.array(["a"]), TypeError), (np.uint64(4), ValueError)])
def test_bad_traces(trace, exc):
    sim = TlbSim({"l1_4k": (64, 4)})
    with pytest.raises(exc):
        sim.run(trace)
    assert sim.counters()["accesses"] == 0


def test_init_twice_is_refused():
    sim = TlbSim({"l1_4k": (64, 4)})
    with pytest.raises(TypeError, match="already"):
        sim.__init__({"l1_4k": (2**20, 4)})
    assert sim.geometry == {"l1_4k": (64, 4)}
