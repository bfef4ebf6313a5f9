"""Measure this machine's costs for thpbench's CostModel and store them in data/calibration/.

Runs the real kernel's first-touch faults (mmap + MADV_NOHUGEPAGE / MADV_HUGEPAGE, one
byte per 4 KiB page) and page copy / clear bandwidth, prints them beside the published
fallbacks, and writes data/calibration/<date>-<host>.json, which CostModel.default()
then loads.

    python benchmarks/calibrate.py [--mib 256] [--repeat 3] [--dry-run]
"""
import argparse
import json

from thpbench.costs import DATA_DIR, CostModel, measure_host


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256, help="size of the mapping touched (MiB, multiple of 2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write data/calibration/")
    a = ap.parse_args()
    result = measure_host(a.mib << 20, a.repeat)
    m = result["machine"]
    print(f"{m['host']}: {m['cpu']}, Linux {m['kernel']}, {m['cpus']} CPUs, THP {m['thp_enabled']}")
    raw = result["raw"]
    print(f"first touch, 4 KiB pages : {raw['first_touch_4k']['ns_per_page']:9.1f} ns per fault")
    t = raw["first_touch_thp"]
    print(f"first touch, MADV_HUGEPAGE: {t['ns_per_page']:9.1f} ns per 4 KiB touched, "
          f"{t['ns_per_fault']:9.1f} ns per fault, {t['huge_share']:.0%} of the range in THPs")
    print(f"  THP speed-up on first touch: {raw['first_touch_4k']['ns_per_page'] / t['ns_per_page']:.2f}x")
    print(f"page copy {raw['bandwidth']['copy_page_ns']:.1f} ns, page clear {raw['bandwidth']['clear_page_ns']:.1f} ns")
    pub = CostModel.published().as_dict()
    for k, v in result["costs"].items():
        print(f"  {k:16} measured {v:12.1f}   built-in {pub[k]:12.1f}")
    if not a.dry_run:
        out = DATA_DIR / "calibration" / f"{result['date']}-{m['host']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
