"""The cost model: what each simulated event costs, in simulated nanoseconds.

Every cost the simulator charges to its clock comes from one ``CostModel``.  Each field
names its source: a measurement of the machine it runs on (``measure_host()``, run by
``benchmarks/calibrate.py``, which stores its result in ``data/calibration/``), or a
stated published figure.  ``CostModel.default()`` loads the newest calibration shipped in
``data/calibration/`` and falls back to the figures written here when there is none.

The measurements use the real kernel from Python: an anonymous ``mmap`` with
``MADV_NOHUGEPAGE`` or ``MADV_HUGEPAGE`` touched once per 4 KiB page (the 2010 numbers of
Andrea Arcangeli's first THP RFC were taken the same way: one byte per page, anchors A0),
and numpy copies and fills of buffers far larger than the caches for page copy and page
clearing bandwidth.
"""
from __future__ import annotations

import dataclasses
import json
import mmap
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from thpbench.data import data_dir

import numpy as np

PAGE_SIZE = 4096
HPAGE_PMD_SIZE = 2 << 20

#: Where calibrations live: the repository's data/calibration (an editable install or a
#: checkout); override with THPBENCH_DATA.
DATA_DIR = data_dir()


@dataclass(frozen=True)
class CostModel:
    """Simulated-time costs, in nanoseconds.  ``sources`` says where each came from."""

    # faults (measured: mmap + first touch of one byte per 4 KiB page)
    fault_4k_ns: float = 2.182e9 / 786432  #: a first-touch 4 KiB anon fault, page zeroing included
    fault_2m_ns: float = 1.566e9 / 1536    #: a first-touch 2 MiB THP fault, 2 MiB zeroing included
    # memory bandwidth (measured: numpy on buffers larger than the last-level cache)
    copy_page_ns: float = 400.0           #: copying one 4 KiB page (copy_mc_user_highpage)
    clear_page_ns: float = 200.0          #: clearing one 4 KiB page (clear_page)
    # page-table work
    scan_pte_ns: float = 5.0              #: khugepaged reading one PTE (hpage_collapse_scan_pmd)
    split_pmd_ns: float = 2_000.0         #: __split_huge_pmd: 512 PTE writes and a flush
    split_thp_ns: float = 30_000.0        #: __folio_split of 512 pages: unmap, remap, free
    # compaction and migration: a scanner step touches one struct page; a migration
    # unmaps, copies and remaps (mm/migrate.c), so it costs a copy plus rmap work
    scan_pfn_ns: float = 5.0              #: one pfn looked at by a compaction scanner
    migrate_overhead_ns: float = 1_000.0  #: unmap + remap + TLB flush of one migrated page
    # devices (published figures, see `sources`)
    swap_out_page_ns: float = 20_000.0    #: writing a 4 KiB page to swap on an SSD (amortised)
    swap_in_page_ns: float = 100_000.0    #: reading a 4 KiB page back (one random read)
    file_read_page_ns: float = 100_000.0  #: a page-cache miss served by the same SSD
    hypercall_ns: float = 1_500.0         #: a VM exit and re-entry (a balloon or tmem call)
    sources: dict = field(default_factory=dict, compare=False)

    def replace(self, **changes) -> "CostModel":
        """A copy with some costs changed (a "what if" for sweeps)."""
        bad = set(changes) - {f.name for f in dataclasses.fields(self)}
        if bad:
            raise ValueError(f"unknown cost(s) {sorted(bad)}; known: {', '.join(self.as_dict())}")
        for k, v in changes.items():
            if k != "sources" and not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"{k} must be a non-negative number of nanoseconds, got {v!r}")
        sources = dict(self.sources)
        sources.update({k: "set by the user" for k in changes if k != "sources"})
        return dataclasses.replace(self, **changes, sources=sources)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sources"}

    @classmethod
    def published(cls) -> "CostModel":
        """The built-in figures, with their sources (no measurement of this machine)."""
        return cls(sources=dict(PUBLISHED_SOURCES))

    @classmethod
    def from_calibration(cls, path) -> "CostModel":
        """Costs measured on a machine (a JSON file written by benchmarks/calibrate.py)."""
        data = json.loads(Path(path).read_text())
        base = cls.published()
        measured = {k: float(v) for k, v in data["costs"].items() if k in base.as_dict()}
        sources = dict(base.sources)
        where = f"measured on {data['machine']['host']} ({data['machine']['cpu']}, Linux {data['machine']['kernel']}) " \
                f"on {data['date']} by benchmarks/calibrate.py"
        sources.update({k: where for k in measured})
        return dataclasses.replace(base, **measured, sources=sources)

    @classmethod
    def default(cls) -> "CostModel":
        """The costs a simulation uses unless told otherwise.

        ``THPBENCH_CALIBRATION`` names a calibration file (or "published" for the
        built-in figures); the test suite pins it so that notebook outputs do not change
        when you calibrate your own machine.  Otherwise the newest calibration in
        data/calibration/, else the published figures.
        """
        pinned = os.environ.get("THPBENCH_CALIBRATION")
        if pinned == "published":
            return cls.published()
        if pinned:
            return cls.from_calibration(pinned)
        files = sorted((DATA_DIR / "calibration").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if files:
            return cls.from_calibration(files[-1])
        return cls.published()


PUBLISHED_SOURCES = {
    "fault_4k_ns": "Arcangeli's THP RFC (linux-mm, 26 Oct 2009; anchors A0): first touch of 3 GB "
                   "with 4 KiB pages took 2.182 s, i.e. 786432 faults",
    "fault_2m_ns": "Arcangeli's THP RFC (anchors A0): the same 3 GB with THP took 1.566 s, 1536 faults of 2 MiB",
    "copy_page_ns": "an estimate: 4 KiB at ~10 GB/s",
    "clear_page_ns": "an estimate: 4 KiB at ~20 GB/s",
    "scan_pte_ns": "an estimate: a few ns per PTE read",
    "split_pmd_ns": "an estimate: 512 PTE writes and a TLB flush",
    "split_thp_ns": "an estimate: unmapping, remapping and freeing 512 pages",
    "scan_pfn_ns": "an estimate: one struct page (64 bytes, one cache line) read per pfn",
    "migrate_overhead_ns": "an estimate: try_to_migrate + remove_migration_ptes + a TLB shootdown, "
                           "about 1 us per page",
    "swap_out_page_ns": "an estimate: an SSD write of 4 KiB, amortised over a batch (~20 us)",
    "swap_in_page_ns": "an estimate: one random 4 KiB SSD read (~100 us)",
    "file_read_page_ns": "as swap_in_page_ns: a page-cache miss on the same SSD",
    "hypercall_ns": "an estimate: a VM exit round trip on recent x86 (~1,000-2,000 cycles at 1-2 GHz)",
}


# --- measuring this machine ------------------------------------------------------------

def first_touch_ns(nbytes: int = 256 << 20, huge: bool = False, repeat: int = 3) -> dict:
    """Time the real kernel's first-touch faults: one byte written per 4 KiB page.

    Maps ``nbytes`` of anonymous memory with ``MADV_HUGEPAGE`` (``huge=True``) or
    ``MADV_NOHUGEPAGE``, writes one byte per 4 KiB page, and unmaps; the best of
    ``repeat`` runs.  Returns ns per 4 KiB page, ns per fault (one per 2 MiB when huge and
    THP served it), and the share of the range that was backed by THPs (from
    /proc/self/smaps' AnonHugePages of the mapping), so a machine with THP off or
    fragmented memory is visible, not hidden.
    """
    if nbytes < HPAGE_PMD_SIZE or nbytes % HPAGE_PMD_SIZE:
        raise ValueError(f"nbytes must be a positive multiple of 2 MiB, got {nbytes}")
    advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
    best = None
    huge_share = 0.0
    for _ in range(repeat):
        # over-map by 2 MiB so an aligned window of nbytes exists inside
        m = mmap.mmap(-1, nbytes + HPAGE_PMD_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            if advice is not None:
                m.madvise(advice)
            buf = np.frombuffer(m, dtype=np.uint8)
            start = (-buf.ctypes.data) % HPAGE_PMD_SIZE
            window = buf[start:start + nbytes]
            t0 = time.perf_counter_ns()
            window[::PAGE_SIZE] = 1
            dt = time.perf_counter_ns() - t0
            if huge:
                huge_share = max(huge_share, _anon_huge_bytes(buf.ctypes.data) / nbytes)
            del window, buf
        finally:
            m.close()
        best = dt if best is None else min(best, dt)
    pages = nbytes // PAGE_SIZE
    faults = pages if not huge else nbytes // HPAGE_PMD_SIZE * huge_share + pages * (1 - huge_share)
    return {"ns_per_page": best / pages, "ns_per_fault": best / max(faults, 1), "huge_share": huge_share,
            "nbytes": nbytes}


def _anon_huge_bytes(addr: int) -> int:
    """AnonHugePages of the mapping holding ``addr``, from /proc/self/smaps (0 if unknown)."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return 0
    inside = False
    for line in text.splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1]) * 1024
    return 0


def bandwidth_ns_per_page(nbytes: int = 512 << 20, repeat: int = 3) -> dict:
    """ns to copy and to clear one 4 KiB page, from numpy on buffers beyond the caches."""
    a = np.ones(nbytes, dtype=np.uint8)
    b = np.ones(nbytes, dtype=np.uint8)
    copy = clear = None
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        np.copyto(b, a)
        t1 = time.perf_counter_ns()
        b.fill(0)
        t2 = time.perf_counter_ns()
        copy = t1 - t0 if copy is None else min(copy, t1 - t0)
        clear = t2 - t1 if clear is None else min(clear, t2 - t1)
    pages = nbytes // PAGE_SIZE
    return {"copy_page_ns": copy / pages, "clear_page_ns": clear / pages}


def machine() -> dict:
    """What the calibration ran on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    thp = "unknown"
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "kernel": platform.release(), "cpus": os.cpu_count(),
            "thp_enabled": thp}


def measure_host(nbytes: int = 256 << 20, repeat: int = 3) -> dict:
    """Measure this machine's costs: the data benchmarks/calibrate.py stores."""
    small = first_touch_ns(nbytes, huge=False, repeat=repeat)
    huge = first_touch_ns(nbytes, huge=True, repeat=repeat)
    bw = bandwidth_ns_per_page(repeat=repeat)
    costs = {"fault_4k_ns": small["ns_per_page"], "copy_page_ns": bw["copy_page_ns"],
             "clear_page_ns": bw["clear_page_ns"]}
    if huge["huge_share"] > 0.9:
        costs["fault_2m_ns"] = huge["ns_per_fault"]
    return {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "costs": costs,
            "raw": {"first_touch_4k": small, "first_touch_thp": huge, "bandwidth": bw}}
