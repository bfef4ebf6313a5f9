"""Simulated accesses per second of the TLB core, beside pycachesim and the pure-Python
reference, on the same traces and LRU geometries.

pycachesim (``pip install thpbench[bench]``, or ``pip install pycachesim``) simulates
caches of any line size: a level of ``entries // ways`` sets of ``ways`` ways with
4096-byte lines and LRU replacement is a TLB of 4 KiB pages.  Both simulators run in
this process on the same trace; the script checks that each level's miss count is
equal and prints the rates and their ratio.  thpbench runs pure-TLB
(``walk_model=False``: a last-level miss counts a walk and models none), which is the
work pycachesim does; its rates with the walk model (walk caches, nested walks), which
pycachesim cannot do, follow in a second table.  pycachesim is fed a Python list of
ints, its fastest input (converted before timing); thpbench a uint64 array.

Traces: ``uniform`` -- random over 4 GiB, nearly every access misses every level;
``hot`` -- 90% of accesses over an 8 MiB hot set (2048 pages), 10% over 4 GiB: L1
misses that often hit a 1536-entry L2.

The script prints, it asserts nothing.

    python benchmarks/bench_tlb.py [--n 4000000] [--ref-n 100000] [--repeat 3]
"""
import argparse
import os
import platform
import time

import numpy as np

from thpbench._core import TlbSim
from thpbench._reference.tlb import ReferenceTLB

try:
    import cachesim
except ImportError:          # the bench extra is not installed: thpbench alone
    cachesim = None

GiB = 1 << 30
MiB = 1 << 20

# name -> [(TlbSim structure, (entries, ways)), ...] from the first level down
GEOMETRIES = {
    "L1 64/4-way": [("l1_4k", (64, 4))],
    "L1 48 fully assoc. (Barcelona)": [("l1_4k", (48, 48))],
    "L1 64/4 + L2 1536/12 (Skylake)": [("l1_4k", (64, 4)), ("l2", (1536, 12))],
    "L1 64/4 + L2 1536/6 (256 sets)": [("l1_4k", (64, 4)), ("l2", (1536, 6))],
    "L1 64/4 + L2 512/4 (Nehalem)": [("l1_4k", (64, 4)), ("l2", (512, 4))],
}

# the walk model on: configurations pycachesim has no counterpart for
WALK_CONFIGS = {
    "Skylake-like, 4-level walk, no walk caches": (
        {"l1_4k": (64, 4), "l2": (1536, 12)}, "native"),
    "+ PDE/PDPTE/PML4E caches + PTE lines": (
        {"l1_4k": (64, 4), "l1_2m": (32, 4), "l2": (1536, 12), "pwc2": (32, 4), "pwc3": (4, 4),
         "pwc4": (2, 2), "ptcache": (1024, 8)}, "native"),
    "nested 4-on-4, walk caches + nested TLB": (
        {"l1_4k": (64, 4), "l1_2m": (32, 4), "l2": (1536, 12), "pwc2": (32, 4), "pwc3": (4, 4),
         "pwc4": (2, 2), "hpwc2": (32, 4), "hpwc3": (4, 4), "hpwc4": (2, 2), "ntlb": (16, 4)}, "nested"),
}


def traces(n, seed):
    rng = np.random.default_rng(seed)
    uniform = rng.integers(0, 4 * GiB, n, dtype=np.uint64) & ~np.uint64(7)
    hot = rng.integers(0, 8 * MiB, n, dtype=np.uint64)
    cold = rng.random(n) < 0.10
    hot[cold] = rng.integers(0, 4 * GiB, int(cold.sum()), dtype=np.uint64)
    return {"uniform": uniform, "hot": hot & ~np.uint64(7)}


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_thpbench(levels, trace, walk_model=False, mode="native"):
    sim = TlbSim(dict(levels), mode=mode, walk_model=walk_model)
    sim.run(trace)
    return sim


def run_pycachesim(levels, addrs):
    # Built from the last level up (pycachesim's rule); one 4096-byte line = one page.
    mem = cachesim.MainMemory()
    below, caches = None, []
    for name, (entries, ways) in reversed(levels):
        c = cachesim.Cache(name, entries // ways, ways, 4096, "LRU", load_from=below, store_to=below)
        caches.append(c)
        below = c
    mem.load_to(caches[0])
    mem.store_from(caches[0])
    cs = cachesim.CacheSimulator(caches[-1], mem)
    cs.load(addrs)
    return {name: c.backend.MISS_count for (name, _), c in zip(levels, reversed(caches))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000, help="accesses per trace")
    ap.add_argument("--ref-n", type=int, default=100_000, help="accesses for the pure-Python reference")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs, the best one counts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    if cachesim is None:
        print("pycachesim: not installed (pip install 'thpbench[bench]'): thpbench alone")
    else:
        print(f"pycachesim {getattr(cachesim, '__version__', '?')}: same trace, same LRU geometry, "
              f"4096-byte lines")
    print(f"n = {args.n:,} accesses per trace, best of {args.repeat}")
    trs = traces(args.n, args.seed)
    lists = {k: v.tolist() for k, v in trs.items()} if cachesim is not None else {}

    print()
    print("thpbench: pure-TLB run (walk_model=False); '+walk': the same with the walk model on "
          "(4-level walks, no walk cache)")
    print(f"{'geometry':32s} {'trace':8s} {'thpbench M/s':>12s} {'+walk M/s':>9s} {'pycachesim M/s':>14s} "
          f"{'ratio':>6s}  misses per level (thpbench = pycachesim)")
    worst = float("inf")
    for gname, levels in GEOMETRIES.items():
        for tname, trace in trs.items():
            t_core, sim = best_time(lambda: run_thpbench(levels, trace), args.repeat)
            stats = sim.cache_stats()
            ours = {name: stats[name]["misses"] for name, _ in levels}
            t_walk, _ = best_time(lambda: run_thpbench(levels, trace, walk_model=True), args.repeat)
            line = f"{gname:32s} {tname:8s} {args.n / t_core / 1e6:12.1f} {args.n / t_walk / 1e6:9.1f}"
            if cachesim is not None:
                t_pcs, theirs = best_time(lambda: run_pycachesim(levels, lists[tname]), args.repeat)
                ratio = t_pcs / t_core
                worst = min(worst, ratio)
                equal = "equal" if ours == theirs else f"DIFFER: pycachesim {theirs}"
                line += f" {args.n / t_pcs / 1e6:14.1f} {ratio:5.2f}x  {ours} {equal}"
            else:
                line += f" {'-':>14s} {'-':>6s}  {ours}"
            print(line)
    if cachesim is not None:
        print(f"lowest ratio thpbench / pycachesim: {worst:.2f}x")

    print()
    print("with the walk model (no pycachesim counterpart); reference: the pure-Python twin")
    print(f"{'configuration':45s} {'trace':8s} {'M acc/s':>8s} {'ref k acc/s':>12s} {'ratio':>7s}")
    for name, (geo, mode) in WALK_CONFIGS.items():
        for tname, trace in trs.items():
            t_core, _ = best_time(lambda: run_thpbench(geo, trace, walk_model=True, mode=mode), args.repeat)
            sub = trace[: args.ref_n]
            t_ref, _ = best_time(lambda: ReferenceTLB(geo, mode=mode).run(sub), 1)
            core, ref = args.n / t_core, sub.size / t_ref
            print(f"{name:45s} {tname:8s} {core / 1e6:8.1f} {ref / 1e3:12.1f} {core / ref:6.0f}x")


if __name__ == "__main__":
    main()
