"""The ``thpbench`` command.

    thpbench buddyinfo [--mib 1024] [--aged] [--turnover 4] [--no-grouping] [--pagetypeinfo]
        simulate a zone (fresh, or aged by the kernel-build churn) and print it as the
        kernel prints /proc/buddyinfo (and /proc/pagetypeinfo)
    thpbench snapshot [--proc /proc] [--save DIR]
        read this machine's buddy allocator files and print, per zone, the unusable and
        fragmentation indices per order (mm/vmstat.c's formulas, as debugfs extfrag/ shows them)
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from thpbench import procfs
from thpbench._core import BuddyAllocator
from thpbench.workloads import aged_allocator


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _indices_table(alloc: BuddyAllocator) -> str:
    orders = range(alloc.max_order + 1)
    head = "order          " + "".join(f"{o:>7}" for o in orders)
    unusable = "unusable_index " + "".join(f"{alloc.unusable_index(o):7.3f}" for o in orders)
    extfrag = "extfrag_index  " + "".join(f"{alloc.fragmentation_index(o):7.3f}" for o in orders)
    return "\n".join([head, unusable, extfrag])


def cmd_buddyinfo(a) -> int:
    nr_pages = a.mib * 256
    if a.aged:
        alloc, _ = aged_allocator(nr_pages, turnover=a.turnover, grouping=not a.no_grouping, seed=a.seed)
    else:
        alloc = BuddyAllocator(nr_pages, grouping=not a.no_grouping)
    alloc.check()
    sys.stdout.write(procfs.buddyinfo_text(alloc))
    if a.pagetypeinfo:
        sys.stdout.write("\n" + procfs.pagetypeinfo_text(alloc))
    print()
    print(_indices_table(alloc))
    return 0


def cmd_snapshot(a) -> int:
    snap = procfs.snapshot(a.proc)
    sys.stdout.write(snap.texts["buddyinfo"])
    for zone in snap.zone_names():
        z = snap.zone(zone)
        row = np.asarray(z["buddyinfo"], dtype=np.int64)
        nr_pages = int(sum(int(n) << k for k, n in enumerate(row)))
        if nr_pages == 0:
            print(f"\nzone {zone}: no free memory")
            continue
        # an allocator holding just this zone's free blocks gives mm/vmstat.c's indices
        alloc = procfs.allocator_from_buddyinfo(row)
        print(f"\nzone {zone}: {nr_pages * 4 // 1024} MiB free")
        print(_indices_table(alloc))
    if a.save:
        print(f"\nsaved to {snap.save(a.save)}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="thpbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("buddyinfo", help="simulate a zone and print it as /proc/buddyinfo")
    b.add_argument("--mib", type=_positive_int, default=1024, help="memory size in MiB (default 1024)")
    b.add_argument("--aged", action="store_true", help="age it with the kernel-build churn first")
    b.add_argument("--turnover", type=float, default=4.0, help="churn, in multiples of memory (with --aged)")
    b.add_argument("--no-grouping", action="store_true", help="the pre-2.6.24 allocator: no grouping by mobility")
    b.add_argument("--pagetypeinfo", action="store_true", help="also print /proc/pagetypeinfo")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_buddyinfo)
    s = sub.add_parser("snapshot", help="this machine's buddyinfo with fragmentation indices")
    s.add_argument("--proc", default="/proc", help="where to read buddyinfo/pagetypeinfo/zoneinfo")
    s.add_argument("--save", help="also save the raw files into this directory")
    s.set_defaults(func=cmd_snapshot)
    a = ap.parse_args(argv)
    try:
        return a.func(a)
    except BrokenPipeError:          # `thpbench ... | head`
        sys.stderr.close()
        return 0
    except (ValueError, FileNotFoundError) as e:
        ap.exit(2, f"thpbench {a.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
