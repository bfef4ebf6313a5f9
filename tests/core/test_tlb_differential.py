"""Differential tests: the Cython TLB loop against the pure-Python reference
(thpbench/_reference/tlb.py) on random geometries, mappings, traces and flushes."""
import numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck

from thpbench._core import TlbSim
from thpbench._reference.tlb import ReferenceTLB

MiB = 1 << 20

def sized(sets, ways):
    """(entries, ways) of `sets` sets of `ways` ways: any set count, powers of two or not."""
    return st.tuples(sets, ways).map(lambda sw: (sw[0] * sw[1], sw[1]))


geom = sized(st.integers(1, 9), st.integers(1, 6))


@st.composite
def configs(draw):
    g = {}
    if draw(st.booleans()):
        g["l1"] = draw(geom)
    else:
        for k in ("l1_4k", "l1_2m"):
            if draw(st.booleans()):
                g[k] = draw(geom)
    l2 = draw(st.sampled_from(["shared", "split", "none"]))
    if l2 == "shared":
        g["l2"] = draw(sized(st.integers(1, 40), st.integers(1, 12)))
    elif l2 == "split":
        g["l2_4k"] = draw(sized(st.integers(1, 40), st.integers(1, 12)))
        if draw(st.booleans()):
            g["l2_2m"] = draw(geom)
    for prefix in ("pwc", "hpwc"):
        kind = draw(st.sampled_from(["unified", "levels", "none"]))
        if kind == "unified":
            g[prefix] = draw(geom)
        elif kind == "levels":
            for l in range(2, 6):
                if draw(st.booleans()):
                    g[f"{prefix}{l}"] = draw(geom)
    if draw(st.booleans()):
        g["ntlb"] = draw(geom)
    if draw(st.booleans()):
        g["ptcache"] = draw(sized(st.integers(1, 16), st.integers(1, 8)))
    mode = draw(st.sampled_from(["native", "nested", "shadow"]))
    levels = draw(st.sampled_from([4, 5]))
    host_levels = draw(st.sampled_from([4, 5]))
    return g, mode, levels, host_levels


@st.composite
def mappings(draw):
    n = draw(st.integers(0, 12))
    base = draw(st.sampled_from([0, 1 << 30, (1 << 47) - (64 << 21)]))
    guest = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gpa = draw(st.one_of(st.none(), st.lists(st.integers(0, 15), min_size=n, max_size=n)))
    nh = draw(st.integers(0, 16))
    host = draw(st.lists(st.booleans(), min_size=nh, max_size=nh))
    return dict(guest_huge=np.array(guest, dtype=bool), base_va=base,
                default_guest_huge=draw(st.booleans()),
                gpa_region=None if gpa is None else np.array(gpa, dtype=np.int64),
                host_huge=np.array(host, dtype=bool), default_host_huge=draw(st.booleans()),
                host_pt_huge=draw(st.sampled_from([None, True, False])))


@st.composite
def traces(draw, base):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 400))
    footprint = draw(st.sampled_from([64 << 10, 4 * MiB, 32 * MiB, 1 << 36]))
    rng = np.random.default_rng(seed)
    t = rng.integers(0, footprint, size=n, dtype=np.uint64) + np.uint64(base)
    if draw(st.booleans()):   # some far-away addresses: other top-level entries
        t[::7] += np.uint64(1 << 40)
    return t


def compare(sim, ref):
    assert sim.cache_stats() == ref.cache_stats()
    c, r = sim.counters(), ref.counters()
    for k, v in r.items():
        assert c[k] == v, k


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), mp=mappings(), data=st.data())
def test_core_matches_reference(cfg, mp, data):
    g, mode, levels, host_levels = cfg
    sim = TlbSim(g, mode=mode, levels=levels, host_levels=host_levels)
    ref = ReferenceTLB(g, mode=mode, levels=levels, host_levels=host_levels)
    sim.set_mapping(**mp)
    ref.set_mapping(**mp)
    for _ in range(data.draw(st.integers(1, 3))):
        t = data.draw(traces(mp["base_va"]))
        sim.run(t)
        ref.run(t)
        compare(sim, ref)
        sim.check()
        action = data.draw(st.sampled_from(["none", "range", "all"]))
        if action == "range":
            va = int(t[data.draw(st.integers(0, len(t) - 1))]) & ~0xfff
            nbytes = data.draw(st.sampled_from([4096, 3 * 4096, 2 * MiB, 40 * 4096]))
            stride = data.draw(st.sampled_from([12, 21]))
            sim.flush_range(va, nbytes, stride)
            ref.flush_range(va, nbytes, stride)
        elif action == "all":
            sim.flush_all()
            ref.flush_all()
        sim.check()
    compare(sim, ref)


def test_reference_matches_on_a_long_skylake_like_run():
    g = {"l1_4k": (64, 4), "l1_2m": (32, 4), "l2": (1536, 12), "pwc2": (32, 4), "pwc3": (4, 4),
         "pwc4": (2, 2), "hpwc2": (32, 4), "ntlb": (16, 4), "ptcache": (512, 8)}
    rng = np.random.default_rng(7)
    hot = rng.integers(0, 64 * MiB, 20_000, dtype=np.uint64)
    cold = rng.integers(0, 4 << 30, 5_000, dtype=np.uint64)
    t = np.concatenate([hot, cold, hot[:5000]])
    for mode in ("native", "nested", "shadow"):
        sim, ref = TlbSim(g, mode=mode), ReferenceTLB(g, mode=mode)
        huge = rng.random(32) < 0.5
        host = rng.random(2048) < 0.7
        for x in (sim, ref):
            x.set_mapping(guest_huge=huge, base_va=0, host_huge=host, default_host_huge=True)
            x.run(t)
        compare(sim, ref)
