"""Figures for the allocation churn (thpbench.workloads) and procfs.allocator_from_snapshot.

Prints operations per second of the churn workload end to end (numpy drawing the op
arrays + BuddyAllocator.run() + the per-step read-outs), of run() alone on the same
op arrays, and the time to rebuild this repo's real snapshot.  No assertions: figures.

    python benchmarks/bench_churn.py [nr_pages]      (default 4M frames = 16 GiB)
"""
import sys
import time
from pathlib import Path

import numpy as np

from thpbench.data import data_path
from thpbench import OP_REPLACE_SLOT, BuddyAllocator, procfs
from thpbench.workloads import AllocationChurn


def main(nr_pages=1 << 22, turnover=4.0):
    print(f"nr_pages {nr_pages} ({nr_pages >> 8} MiB), turnover {turnover}")
    for grouping in (True, False):
        a = BuddyAllocator(nr_pages, grouping=grouping)
        w = AllocationChurn(a, seed=0)
        t = time.perf_counter()
        w.fill()
        t_fill = time.perf_counter() - t
        ops0 = w.ops
        t = time.perf_counter()
        w.run(turnover, steps=8)
        t_run = time.perf_counter() - t
        ops = w.ops - ops0
        print(f"grouping {'on ' if grouping else 'off'}: fill {w.slots.size} allocs in {t_fill:.2f} s; "
              f"churn {ops / 1e6:.1f} M ops (a replace = 2) in {t_run:.2f} s = {ops / t_run / 1e6:.1f} M ops/s "
              f"end to end, 8 read-outs included")
        # the same kind of op arrays, drawn once, through run() alone
        rng = np.random.default_rng(1)
        n = ops // 2
        cls = rng.choice(len(w.classes), size=n, p=w._class_p)
        slot = w.slot_offset[cls] + (rng.random(n) * w.nr_slots[cls]).astype(np.int64)
        orders = w._orders_for(cls)
        t = time.perf_counter()
        a.run(np.full(n, OP_REPLACE_SLOT, np.int8), orders, slot, w._mts[cls], w.slots)
        t_core = time.perf_counter() - t
        print(f"              run() alone on {2 * n / 1e6:.1f} M ops: {t_core:.2f} s = {2 * n / t_core / 1e6:.1f} M ops/s "
              f"(end-to-end / core = {t_run / t_core:.2f}x the time)")
        a.check()
    snap = procfs.load_snapshot(data_path("procfs", "idle"))
    t = time.perf_counter()
    r = procfs.allocator_from_snapshot(snap, "Normal")
    t_snap = time.perf_counter() - t
    print(f"allocator_from_snapshot(idle, Normal): {r.nr_pages} frames, {len(r.free_blocks())} free blocks "
          f"in {t_snap:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 22)
