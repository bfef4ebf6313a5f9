"""Property-based fuzzing of the TLB entry points (issue 9): random geometries and
operation sequences, valid and invalid, on ``TlbSim`` and on an ``MMU`` attached to a
simulated process.  Where an operation is valid the core must agree with the pure-Python
reference (``thpbench/_reference/tlb.py``) on every hit and miss; where it is not it must
raise ValueError or TypeError and leave the simulator as it was.  Hypothesis shrinks the
operation sequences themselves, so a failure is reported as a short list of calls."""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import thpbench
from thpbench._core import TLB_MAX_ENTRIES, TlbSim
from thpbench._reference.tlb import ReferenceTLB
from thpbench.tlb import MMU, CPU

pytestmark = pytest.mark.fuzz

MiB = 1 << 20
STRUCTS = ["l1_4k", "l1_2m", "l1", "l2_4k", "l2_2m", "l2", "pwc", "pwc2", "pwc3", "pwc4", "pwc5",
           "hpwc", "hpwc2", "hpwc3", "hpwc4", "hpwc5", "ntlb", "ptcache"]
CONFLICTS = [("l1", "l1_4k"), ("l1", "l1_2m"), ("l2", "l2_4k"), ("l2", "l2_2m")] + \
    [(u, f"{u}{l}") for u in ("pwc", "hpwc") for l in range(2, 6)]


def valid_pair(g):
    """The documented rule for one structure's (entries, ways)."""
    if not isinstance(g, tuple) or len(g) != 2:
        return False
    e, w = g
    if any(isinstance(x, bool) or not isinstance(x, int) for x in (e, w)):
        return False
    return 1 <= w <= e <= TLB_MAX_ENTRIES and e % w == 0


good_pair = st.tuples(st.integers(1, 12), st.integers(1, 6)).map(lambda sw: (sw[0] * sw[1], sw[1]))
bad_pair = st.one_of(
    st.tuples(st.integers(-3, 0), st.integers(-2, 4)),
    st.tuples(st.sampled_from([2**24 + 1, 2**32, 2**62, 2**63, 2**64, 2**100]),
              st.sampled_from([1, 2, 2**32, 2**62])),
    st.integers(2, 7).flatmap(lambda w: st.tuples(st.integers(1, 5), st.integers(1, w - 1)).map(
        lambda t: (t[0] * w + t[1], w))),                          # entries not a multiple of ways
    st.tuples(st.integers(1, 8), st.integers(9, 20)),          # more ways than entries
    st.sampled_from([(4.0, 2), (4, 2.0), (True, 1), ("64", 4), (64,), (64, 4, 1), None, 64, "8x2"]),
)


@st.composite
def geometries(draw):
    kind = draw(st.sampled_from(["ok", "ok", "ok", "bad pair", "conflict", "unknown name"]))
    names = draw(st.lists(st.sampled_from(STRUCTS), unique=True, max_size=7))
    if kind != "conflict":
        names = [n for n in names if not any(n == b and a in names for a, b in CONFLICTS)]
    g = {n: draw(good_pair) for n in names}
    if kind == "bad pair":
        g[draw(st.sampled_from(names or ["l1_4k"]))] = draw(bad_pair)
    elif kind == "unknown name":
        g[draw(st.sampled_from(["l3", "L1", "pwc1", "pwc6", "", "tlb"]))] = (4, 4)
    return g


def geometry_ok(g):
    return (all(n in STRUCTS for n in g) and all(valid_pair(v) for v in g.values())
            and not any(a in g and b in g for a, b in CONFLICTS))


# -- operations: each a tuple, valid or not -----------------------------------------

addresses = st.sampled_from([0, 4096, 2 * MiB - 4096, 2 * MiB, 1 << 30, (1 << 47) - 4096,
                             (1 << 64) - 4096, -4096, 1 << 64, 5])
op = st.one_of(
    st.tuples(st.just("run"), st.integers(0, 2**32 - 1), st.integers(1, 300),
              st.sampled_from([64 << 10, 4 * MiB, 32 * MiB, 1 << 36]), st.booleans()),
    st.tuples(st.just("bad_run"), st.sampled_from(["float", "negative", "2d", "bool", "str"])),
    st.tuples(st.just("flush_all")),
    st.tuples(st.just("flush_range"), addresses,
              st.sampled_from([0, 1, 4096, 3 * 4096, 2 * MiB, 40 * 4096, 1 << 40, -1, 1 << 64]),
              st.sampled_from([12, 21, 13, 0])),
    st.tuples(st.just("map"), st.integers(0, 12), st.sampled_from([0, 1 << 30, 4096, -(2 * MiB)]),
              st.booleans(), st.booleans(), st.integers(0, 16), st.booleans(),
              st.sampled_from(["none", "ok", "short", "huge", "float"])),
)


def flush_ok(va, nbytes, stride):
    return stride in (12, 21) and va >= 0 and nbytes >= 0 and va + nbytes <= 1 << 64


def mapping(n, base, gh_default, hh_default, nh, pt, gpa_kind, seed):
    rng = np.random.default_rng(seed)
    gpa = {"none": None, "ok": rng.integers(0, 16, n), "short": rng.integers(0, 16, n + 1),
           "huge": np.full(n, 1 << 40), "float": rng.random(n) + 0.5}[gpa_kind]
    kw = dict(guest_huge=rng.random(n) < 0.5, base_va=base, default_guest_huge=gh_default,
              gpa_region=gpa, host_huge=rng.random(nh) < 0.6, default_host_huge=hh_default,
              host_pt_huge=pt)
    ok = (base >= 0 and base % (2 * MiB) == 0
          and (gpa_kind in ("none", "ok") or (n == 0 and gpa_kind in ("huge", "float"))))
    return kw, ok


def bad_trace(kind):
    return {"float": np.array([0.5, 4096.0]), "negative": np.array([4096, -4096]),
            "2d": np.zeros((2, 3), np.uint64), "bool": np.array([True, False]),
            "str": np.array(["0x1000"])}[kind]


def state(sim):
    return sim.cache_stats(), sim.counters(), {n: sim.occupancy(n) for n in sim.geometry}


def same(sim, ref):
    assert sim.cache_stats() == ref.cache_stats()
    c = sim.counters()
    for k, v in ref.counters().items():
        assert c[k] == v, k


def apply(sim, ref, o, base_seed):
    """Apply operation `o` to both; an invalid one must raise and change nothing."""
    kind = o[0]
    if kind == "run":
        _, seed, n, footprint, far = o
        t = np.random.default_rng(seed).integers(0, footprint, n, dtype=np.uint64) + np.uint64(sim_base[0])
        if far:
            t[::5] += np.uint64(1 << 40)
        sim.run(t)
        ref.run(t)
    elif kind == "bad_run":
        before = state(sim)
        with pytest.raises((ValueError, TypeError)):
            sim.run(bad_trace(o[1]))
        assert state(sim) == before
    elif kind == "flush_all":
        sim.flush_all()
        ref.flush_all()
    elif kind == "flush_range":
        _, va, nbytes, stride = o
        if flush_ok(va, nbytes, stride):
            sim.flush_range(va, nbytes, stride)
            ref.flush_range(va, nbytes, stride)
        else:
            before = state(sim)
            with pytest.raises((ValueError, TypeError), match="stride_shift|va|nbytes"):
                sim.flush_range(va, nbytes, stride)
            assert state(sim) == before
    elif kind == "map":
        kw, ok = mapping(*o[1:], seed=base_seed)
        if ok:
            sim.set_mapping(**kw)
            ref.set_mapping(**kw)
            sim_base[0] = kw["base_va"]
        else:
            with pytest.raises((ValueError, TypeError), match="base_va|gpa_region"):
                sim.set_mapping(**kw)
    sim.check()


sim_base = [0]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=geometries(), mode=st.sampled_from(["native", "nested", "shadow"]),
       levels=st.sampled_from([4, 5]), host_levels=st.sampled_from([4, 5]), walk_model=st.booleans(),
       ops=st.lists(op, max_size=12), seed=st.integers(0, 2**32 - 1))
def test_tlbsim_sequences_match_the_reference_or_raise(g, mode, levels, host_levels, walk_model, ops, seed):
    event(f"geometry {'valid' if geometry_ok(g) else 'invalid'}")
    if not geometry_ok(g):
        with pytest.raises((ValueError, TypeError)):
            TlbSim(g, mode=mode, levels=levels, host_levels=host_levels, walk_model=walk_model)
        return
    sim = TlbSim(g, mode=mode, levels=levels, host_levels=host_levels, walk_model=walk_model)
    ref = ReferenceTLB(g, mode=mode, levels=levels, host_levels=host_levels, walk_model=walk_model)
    sim_base[0] = 0
    for i, o in enumerate(ops):
        event(f"op {o[0]}")
        apply(sim, ref, o, seed + i)
        same(sim, ref)


# -- the MMU following a simulated process ---------------------------------------------

class MirroredMMU(MMU):
    """An MMU whose every mapping change, flush and run is mirrored into a ReferenceTLB."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ref = ReferenceTLB(self.cpu.geometry(), mode=self.mode, levels=self.levels,
                                host_levels=self.host_levels, walk_model=self.walk_model)

    def map(self, **kw):
        super().map(**kw)
        self.ref.set_mapping(**kw)
        return self

    def flush_range(self, va, nbytes, stride_shift=12):
        super().flush_range(va, nbytes, stride_shift)
        self.ref.flush_range(va, nbytes, stride_shift)

    def flush_all(self):
        super().flush_all()
        self.ref.flush_all()

    def run(self, trace):
        out = super().run(trace)
        self.ref.run(trace)
        return out


kernel_op = st.one_of(
    st.tuples(st.just("run"), st.integers(0, 2**32 - 1), st.integers(1, 400)),
    st.tuples(st.just("collapse"), st.integers(0, 3)),
    st.tuples(st.just("dontneed"), st.integers(0, 2047)),
    st.tuples(st.just("touch"), st.integers(0, 2047)),
    st.tuples(st.just("exit"), st.integers(0, 1)),
    st.tuples(st.just("spawn")),
    st.tuples(st.just("attach"), st.integers(0, 1)),
    st.tuples(st.just("flush_all")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpu=st.sampled_from(["nehalem", "barcelona", "skylake", "zen4", "tiny"]),
       mode=st.sampled_from(["native", "nested", "shadow"]), walk_model=st.booleans(),
       ops=st.lists(kernel_op, max_size=14))
def test_mmu_attached_to_a_process_matches_the_reference(cpu, mode, walk_model, ops):
    if cpu == "tiny":
        cpu = CPU(l1_4k=(4, 2), l1_2m=(2, 2), l2_shared=(16, 4), pwc={2: (4, 4)}, ntlb=(2, 2))
    k = thpbench.Kernel(64 * MiB, thp={"enabled": "madvise"})
    procs = []

    def spawn():
        p = k.spawn()
        a = p.mmap(8 * MiB)
        p.touch_range(a, 8 * MiB)
        procs.append((p, a))

    spawn()
    spawn()
    mmu = MirroredMMU(cpu, mode=mode, walk_model=walk_model)
    p0, a0 = procs[0]
    mmu.attach(p0, a0, a0 + 8 * MiB, default_host_huge=True)
    current = 0
    for o in ops:
        kind = o[0]
        event(f"mmu op {kind}")
        if kind == "run":
            p, a = procs[current]
            t = np.random.default_rng(o[1]).integers(0, 8 * MiB, o[2], dtype=np.uint64) + np.uint64(a)
            mmu.run(t)
        elif kind == "attach":
            i = o[1] % len(procs)
            p, a = procs[i]
            if p.alive:
                mmu.attach(p, a, a + 8 * MiB, default_host_huge=True)
                current = i
            else:
                before = mmu.counters()
                with pytest.raises(ValueError, match="exited"):
                    mmu.attach(p, a, a + 8 * MiB)
                assert mmu.counters() == before
        elif kind == "spawn" and len(procs) < 4:
            spawn()
        elif kind == "flush_all":
            mmu.flush_all()
        else:
            i = o[1] % len(procs) if kind == "exit" else current
            p, a = procs[i]
            if not p.alive:
                continue
            if kind == "collapse":
                p.madvise(a + o[1] * 2 * MiB, 2 * MiB, "MADV_COLLAPSE")
            elif kind == "dontneed":
                p.madvise(a + o[1] * 4096, 4096, "MADV_DONTNEED")
            elif kind == "touch":
                p.touch(a + o[1] * 4096)
            elif kind == "exit":
                p.exit()
        k.check()
        mmu.sim.check()
        same(mmu.sim, mmu.ref)
