"""Simulated accesses per second of the TLB core loop and of the pure-Python reference.

Configuration of the issue's target: a 64-entry 4-way L1 and a 1536-entry 12-way L2
(Skylake's STLB geometry), uniform random accesses over 4 GiB mapped with 4 KiB pages.
Both are run in this process on the same trace prefix; the script prints rates and the
ratio, it asserts nothing.

    python benchmarks/bench_tlb.py [--n 20000000] [--ref-n 200000]
"""
import argparse
import platform
import time

import numpy as np

from thpbench._core import TlbSim
from thpbench._reference.tlb import ReferenceTLB
from thpbench import workloads

GiB = 1 << 30


def rate(run, trace, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(trace)
        best = min(best, time.perf_counter() - t0)
    return len(trace) / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000_000, help="accesses for the core loop")
    ap.add_argument("--ref-n", type=int, default=200_000, help="accesses for the reference")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    trace = workloads.uniform(args.n, 4 * GiB, seed=args.seed)
    configs = {
        "L1 64/4-way + L2 1536/12-way (TLB only)": ({"l1_4k": (16, 4), "l2": (128, 12)}, "native"),
        "+ PDE/PDPTE/PML4E walk caches": ({"l1_4k": (16, 4), "l1_2m": (8, 4), "l2": (128, 12),
                                           "pwc2": (8, 4), "pwc3": (1, 4), "pwc4": (1, 2)}, "native"),
        "L2 1536/6-way (256 sets)": ({"l1_4k": (16, 4), "l2": (256, 6)}, "native"),
        "nested 4-on-4, walk caches + nested TLB": ({"l1_4k": (16, 4), "l1_2m": (8, 4), "l2": (128, 12),
                                                     "pwc2": (8, 4), "pwc3": (1, 4), "pwc4": (1, 2),
                                                     "hpwc2": (8, 4), "hpwc3": (1, 4), "hpwc4": (1, 2),
                                                     "ntlb": (4, 4)}, "nested"),
    }
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"trace: uniform random over 4 GiB, 4 KiB pages; core n={args.n:,}, reference n={args.ref_n:,}")
    print(f"{'configuration':45s} {'core M acc/s':>13s} {'ref k acc/s':>12s} {'ratio':>8s}")
    for name, (geo, mode) in configs.items():
        core = rate(lambda t: TlbSim(geo, mode=mode).run(t), trace)
        ref = rate(lambda t: ReferenceTLB(geo, mode=mode).run(t), trace[: args.ref_n], repeat=1)
        print(f"{name:45s} {core / 1e6:13.1f} {ref / 1e3:12.1f} {core / ref:7.0f}x")


if __name__ == "__main__":
    main()
