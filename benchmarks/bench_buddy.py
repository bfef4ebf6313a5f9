"""Buddy allocator throughput: the bulk path, the per-call path and the pure-Python reference.

Scenario (issue 2): a machine of NR_PAGES frames (default 4M = 16 GiB) is filled with
allocations, freed at random down to half, then driven in a churning steady state that
alternates a random free with an allocation (OP_REPLACE_SLOT: free what a random live
slot holds, allocate a new block into it), so blocks really split and merge.  An alloc
and a free count one operation each.  Two order mixes: all order 0, and mixed orders
with P(order k) proportional to 2**-k (k = 0..10).

The per-call path and the reference replay the same kind of steady state for fewer
operations, starting from the same aged state (the reference is a copy of the core's
state, `reference_from`), so all three rates describe the same memory picture.

    python benchmarks/bench_buddy.py [--frames N] [--steady OPS] [--seed S]
"""
import argparse
import time

import numpy as np

import thpbench
from thpbench._reference.buddy import reference_from


def order_mix(rng, n, mixed, max_order=10):
    if not mixed:
        return np.zeros(n, dtype=np.int8)
    p = 2.0 ** -np.arange(max_order + 1)
    return rng.choice(max_order + 1, size=n, p=p / p.sum()).astype(np.int8)


def aged_state(nr_pages, mixed, seed):
    """Fill, then free random slots down to half of memory; returns (allocator, slots, live)."""
    rng = np.random.default_rng(seed)
    b = thpbench.BuddyAllocator(nr_pages)
    mean_pages = 1.0 if not mixed else 5.5
    nslots = int(nr_pages / mean_pages * 1.3) + 16
    orders = order_mix(rng, nslots, mixed)
    slots = np.full(nslots, -1, dtype=np.int64)
    b.run(np.full(nslots, thpbench.OP_ALLOC, np.int8), orders, np.arange(nslots), None, slots)
    live = np.flatnonzero(slots >= 0)
    rng.shuffle(live)
    pages = (1 << orders[live].astype(np.int64)).cumsum()
    cut = int(np.searchsorted(pages, nr_pages // 2))
    free_now, live = live[:cut], live[cut:]
    b.run(np.full(len(free_now), thpbench.OP_FREE_SLOT, np.int8), np.zeros(len(free_now), np.int8),
          free_now, None, slots)
    return b, slots, live, rng


def steady_ops(rng, live, n, mixed):
    """n REPLACE steps over random live slots: each is one free and one allocation."""
    which = live[rng.integers(0, len(live), size=n)]
    return np.full(n, thpbench.OP_REPLACE_SLOT, np.int8), order_mix(rng, n, mixed), which


def bench(nr_pages, steady, percall_steps, ref_steps, mixed, seed):
    label = "mixed orders" if mixed else "order 0"
    b, slots, live, rng = aged_state(nr_pages, mixed, seed)
    free_before = b.nr_free_pages
    ops, orders, which = steady_ops(rng, live, steady, mixed)
    t0 = time.perf_counter()
    res = b.run(ops, orders, which, None, slots)
    dt = time.perf_counter() - t0
    n_ops = 2 * steady
    bulk_rate = n_ops / dt
    fails = int((res < 0).sum())
    b.check()

    # per-call path and reference: the same kind of churn, one Python call per
    # operation, driven by the same loop over plain Python lists
    book = {int(p): int(o) for p, o, _ in b.allocated_blocks()}
    ref = reference_from(b)
    ops, orders, which = steady_ops(rng, live, percall_steps, mixed)
    percall_rate = 2 * percall_steps / drive(b.alloc, b.free, slots.tolist(), dict(book), which, orders)
    b.check()
    ops, orders, which = steady_ops(rng, live, ref_steps, mixed)
    ref_rate = 2 * ref_steps / drive(ref.alloc, ref.free, slots.tolist(), dict(book), which, orders)
    ref.check()

    print(f"{label:>13}: aged to {free_before / nr_pages:.0%} free; steady state {n_ops:,} ops "
          f"({fails:,} failed allocations)")
    print(f"{'':>13}  bulk     {bulk_rate / 1e6:8.2f} M ops/s")
    print(f"{'':>13}  per-call {percall_rate / 1e6:8.2f} M ops/s   ({2 * percall_steps:,} ops)")
    print(f"{'':>13}  reference{ref_rate / 1e6:8.3f} M ops/s   ({2 * ref_steps:,} ops)")
    print(f"{'':>13}  bulk/reference {bulk_rate / ref_rate:8.1f}x   per-call/reference "
          f"{percall_rate / ref_rate:6.1f}x   bulk/per-call {bulk_rate / percall_rate:5.1f}x")
    return bulk_rate, percall_rate, ref_rate


def drive(alloc, free, slots, book, which, orders):
    """Replace steps through per-call alloc/free; returns the seconds taken."""
    which, orders = which.tolist(), orders.tolist()
    t0 = time.perf_counter()
    for s, o in zip(which, orders):
        p = slots[s]
        if p >= 0:
            free(p, book.pop(p))
        q = alloc(o, 1)
        if q is None:
            slots[s] = -1
        else:
            slots[s] = q
            book[q] = o
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4 << 20, help="frames of 4 KiB (default 4M = 16 GiB)")
    ap.add_argument("--steady", type=int, default=5_000_000, help="steady-state steps for the bulk path")
    ap.add_argument("--percall", type=int, default=500_000, help="steady-state steps for the per-call path")
    ap.add_argument("--reference", type=int, default=20_000, help="steady-state steps for the reference")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(f"thpbench {thpbench.__version__}: buddy allocator, {a.frames:,} frames "
          f"({a.frames * 4096 / 2**30:.1f} GiB)")
    for mixed in (False, True):
        bench(a.frames, a.steady, a.percall, a.reference, mixed, a.seed)
    b = thpbench.BuddyAllocator(16 << 20)
    print(f"core state: {b.state_bytes / b.nr_pages:.2f} bytes per frame "
          f"({b.state_bytes / 2**20:.0f} MiB for 16M frames = 64 GiB)")


if __name__ == "__main__":
    main()
