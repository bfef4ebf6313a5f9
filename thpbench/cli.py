"""The ``thpbench`` command.

    thpbench buddyinfo [--mib 1024] [--aged] [--turnover 4] [--no-grouping] [--pagetypeinfo]
        simulate a zone (fresh, or aged by the kernel-build churn) and print it as the
        kernel prints /proc/buddyinfo (and /proc/pagetypeinfo)
    thpbench snapshot [--proc /proc] [--save DIR]
        read this machine's buddy allocator files and print, per zone, the unusable and
        fragmentation indices per order (mm/vmstat.c's formulas, as debugfs extfrag/ shows them)
    thpbench thp-sysfs [--root /sys/kernel/mm/transparent_hugepage]
        this machine's THP settings beside the simulated kernel's defaults
    thpbench a1 [--cpu nehalem] [--processes 4] [--sample 300000]
        Arcangeli's 2010 KVM kernel-build table (guest THP x host THP, EPT and shadow
        paging) beside the simulated slowdowns
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


def cmd_thp_sysfs(a) -> int:
    from thpbench.kernel import Kernel
    real = procfs.read_thp_sysfs(a.root)
    sim = Kernel(64 << 20).sysfs
    width = max(len(k) for k in real)
    print(f"{'file':<{width}}  {'this machine':<44}  simulator default")
    for name, text in real.items():
        if name in ("khugepaged/pages_collapsed", "khugepaged/full_scans"):
            mark = "   (a counter)"
        else:
            mark = "" if sim[name] == text else "   <- differs"
        print(f"{name:<{width}}  {text:<44}  {sim[name]}{mark}")
    return 0


def cmd_a1(a) -> int:
    import pandas as pd

    from thpbench import tlb
    profile = tlb.KbuildProfile(processes=a.processes, sample_accesses=a.sample)
    grid = tlb.a1_grid(a.cpu, profile)
    cm = tlb.a1_fit(grid)
    table = tlb.a1_table(grid, cm)
    cols = ["paging", "guest_thp", "host_thp", "published_slowdown_pct", "simulated_slowdown_pct", "role"]
    with pd.option_context("display.width", 200):
        print(table[cols].round(1).to_string(index=False))
    print(f"\nfitted: walk reference {cm.walk_ref_ns:.1f} ns, virtualization overhead "
          f"{100 * cm.virt_overhead:.1f}%, shadow exit {cm.vmexit_ns / 1000:.1f} us")
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
    t = sub.add_parser("thp-sysfs", help="this machine's THP settings beside the simulator's defaults")
    t.add_argument("--root", default=procfs.THP_SYSFS)
    t.set_defaults(func=cmd_thp_sysfs)
    r = sub.add_parser("a1", help="Arcangeli's 2010 KVM table beside the simulation")
    r.add_argument("--cpu", default="nehalem", help="a CPU preset (nehalem, barcelona, skylake, zen4)")
    r.add_argument("--processes", type=_positive_int, default=4)
    r.add_argument("--sample", type=_positive_int, default=300_000, help="sampled accesses per process")
    r.set_defaults(func=cmd_a1)
    a = ap.parse_args(argv)
    try:
        return a.func(a)
    except BrokenPipeError:          # `thpbench ... | head`
        sys.stderr.close()
        return 0
    except (ValueError, FileNotFoundError, KeyError) as e:
        ap.exit(2, f"thpbench {a.command}: error: {e}\n")


if __name__ == "__main__":
    sys.exit(main())
