"""Figures for memory compaction (thpbench.kernel.compaction): pages migrated per second.

Ages a zone with the allocation churn (thpbench.workloads.aged_allocator), drops half
of its page cache, then runs compact_memory (sync, whole zone, order -1) in the core,
with and without a PageBook, and prints pages migrated per second and pages scanned
per second.  On a small zone the pure-Python reference runs the same compaction, and
the ratio core / reference is printed.  No assertions: figures.

    python benchmarks/bench_compaction.py [nr_pages]      (default 4M frames = 16 GiB)
"""
import sys
import time

from thpbench.kernel.compaction import PageBook, compact_memory
from thpbench.workloads import aged_allocator
from thpbench._reference.buddy import reference_from
from thpbench._reference.compaction import ReferenceCompaction, ReferenceZoneState


def aged(nr_pages, seed=0):
    a, w = aged_allocator(nr_pages, seed=seed)
    w.release("page_cache", fraction=0.5)
    return a, w


def free_pageblocks(x):
    info = list(x.buddyinfo())
    return sum(int(info[k]) << (k - x.pageblock_order) for k in range(x.pageblock_order, x.max_order + 1))


def score_of(x):
    # fragmentation_score_node() from the free lists (works for the core and the reference)
    info = [int(n) for n in x.buddyinfo()]
    free = sum(n << k for k, n in enumerate(info))
    suitable = sum(n << (k - x.pageblock_order) for k, n in enumerate(info) if k >= x.pageblock_order)
    frag = 0 if free == 0 else (free - (suitable << x.pageblock_order)) * 100 // free
    return x.nr_pages * frag // (x.nr_pages + 1)


def one(label, a, run, view=None):
    view = a if view is None else view      # what the figures read (the reference runs on a copy)
    before = free_pageblocks(view)
    score = score_of(view)
    t = time.perf_counter()
    r = run()
    dt = time.perf_counter() - t
    after = free_pageblocks(view)
    moved = r["pgmigrate_success"]
    scanned = r["total_migrate_scanned"] + r["total_free_scanned"]
    print(f"  {label}: {r['result']}, {moved} pages migrated in {dt * 1e3:.1f} ms = {moved / dt / 1e6:.2f} M pages/s "
          f"({scanned / dt / 1e6:.1f} M pfns scanned/s); free pageblocks {before} -> {after}, "
          f"fragmentation score {score} -> {score_of(view)}")
    return moved / dt


def main(nr_pages=1 << 22):
    print(f"compact_memory on an aged zone of {nr_pages} frames ({nr_pages >> 8} MiB), half its page cache dropped")
    t = time.perf_counter()
    a, w = aged(nr_pages)
    print(f"  (aging took {time.perf_counter() - t:.1f} s)")
    one("core, no book      ", a, lambda: compact_memory(a))
    a, w = aged(nr_pages)
    book = PageBook(a)
    book.owner[:] = -1
    one("core, PageBook     ", a, lambda: compact_memory(a, book))
    a, w = aged(nr_pages)
    book = PageBook(a, w.slots)
    # a slot names one block, so this book refuses to split large folios: -ENOMEM ends early
    one("core, churn slots  ", a, lambda: compact_memory(a, book))

    small = 1 << 15
    print(f"core vs the pure-Python reference on {small} frames ({small >> 8} MiB), compact_memory")
    a, w = aged(small, seed=1)
    ref = reference_from(a)
    core = one("core     ", a, lambda: compact_memory(a))

    def run_ref():
        zs = ReferenceZoneState(ref)
        rc = ReferenceCompaction(ref, zs)
        res = rc.run()
        out = dict(zs.stats)
        out["result"] = ("COMPACT_COMPLETE" if res == 5 else str(res))
        out["total_migrate_scanned"] = rc.total_migrate_scanned
        out["total_free_scanned"] = rc.total_free_scanned
        return out

    slow = one("reference", a, run_ref, view=ref)
    print(f"  core / reference = {core / slow:.0f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 22)
