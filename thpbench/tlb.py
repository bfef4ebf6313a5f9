"""Translation cost: TLBs, page-walk caches, native / nested (2D) / shadow walks.

The hot loop lives in the Cython core (``_core.TlbSim``, file ``_tlb.pxi``); this module
holds what a user reads and changes: CPU presets with their public sources, the "better
CPU" builder, the :class:`MMU` that translates traces through a process's (and a
host's) mappings, and the cycles-per-access cost model validated against Arcangeli's
2010 KVM kernel-build table (anchor A1).

The model, and where it simplifies the hardware
-----------------------------------------------
* **TLB hierarchy.** L1 data TLBs per page size (4 KiB, 2 MiB) or one L1 shared by
  both sizes (AMD); a second level per size or shared; each an ``(entries, ways)``
  :class:`Geometry` of any set count (indexed by modulo unless a power of two); true
  LRU (hardware uses pseudo-LRU variants).  Levels are neither inclusive nor
  exclusive.  Loads and stores share the data TLB; instruction fetches are not
  simulated (filter them out of traces).  1 GiB pages, PCIDs/ASIDs, hyperthread
  partitioning and AMD's skewed or coalescing TLBs are not modelled.
* **Page-walk caches.** Per level, keyed by the virtual-address bits above that level
  (Intel's PML4E/PDPTE/PDE caches), or one unified cache (AMD's page walk cache).
  Probed deepest first; a hit at level *l* leaves *l - leaf* references.  Intel and
  AMD do not publish most of their sizes: preset values say so.
* **Nested (2D) walk.** Each guest page-table page has a guest-physical address that
  the walker translates through the nested TLB, else a host walk (with the host's
  walk caches); then it reads the guest entry.  The final guest-physical address is
  translated the same way.  With no caches, a g-level guest on an h-level host costs
  ``g*(h+1) + h = (g+1)(h+1) - 1`` references: 24 for 4-on-4, 35 for 5-on-5.
  Guest page-table pages sit in a guest-physical area of their own, backed by the
  host with ``host_pt_huge`` pages.
* **Shadow paging.** The hardware walks the hypervisor's shadow table: a 1D walk whose
  leaf size is ``min(guest, host)``.  The price is paid elsewhere: every guest write to
  its page tables traps (a VM exit); the cost model charges those.
* **Splintering.** Under virtualization a TLB entry covers the smaller of the guest's
  and the host's mapping: a guest THP on host 4 KiB pages gets 4 KiB entries.
* **Pure-TLB runs.** ``MMU(..., walk_model=False)`` counts a walk per last-level miss
  and models none: the TLB hit and miss counts are those of the full model, walk
  references are 0.
* **Guest-physical layout.** A guest 2 MiB virtual region maps to one guest-physical
  2 MiB region (``gpa_region``, identity by default).  Within a region 4 KiB pages
  keep their offset (the simulator needs no per-PTE frame numbers).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from thpbench._core import TlbSim, TLB_SINGLE_PAGE_FLUSH_CEILING, TLB_MAX_ENTRIES

__all__ = [
    "Geometry", "CPU", "PRESETS", "preset", "MMU", "RuntimeModel", "COSTS_2010",
    "walk_refs_worst_case", "ARCANGELI_2010", "TlbSim", "TLB_SINGLE_PAGE_FLUSH_CEILING",
    "simulate", "KbuildProfile", "kbuild_trace", "kbuild_layout", "a1_grid", "a1_fit", "a1_table", "slowdowns",
    "A1_FIT_ROWS", "break_even_tlb", "explore", "plot_a1", "dashboard",
]

PAGE_SHIFT = 12
PMD_SHIFT = 21
HPAGE_PMD_SIZE = 1 << PMD_SHIFT


# ---------------------------------------------------------------------------
# Geometry and CPU presets
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """``entries`` in ``ways``-way sets (``ways == entries``: fully associative).

    ``(entries, ways)`` is the one geometry convention of thpbench: ``TlbSim`` and
    :meth:`CPU.geometry` use it too.  At most ``TLB_MAX_ENTRIES`` (2**24) entries."""

    entries: int
    ways: int

    def __post_init__(self):
        for what, v in (("entries", self.entries), ("ways", self.ways)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Geometry({self.entries!r}, {self.ways!r}): {what} must be an "
                                f"integer, got {type(v).__name__}")
        object.__setattr__(self, "entries", int(self.entries))
        object.__setattr__(self, "ways", int(self.ways))
        if not 1 <= self.ways <= self.entries <= TLB_MAX_ENTRIES or self.entries % self.ways:
            raise ValueError(f"Geometry({self.entries}, {self.ways}): need 1 <= ways <= entries "
                             f"<= {TLB_MAX_ENTRIES} (2**24) and entries a multiple of ways")

    @classmethod
    def of(cls, g, what: str = "geometry") -> "Geometry":
        """A Geometry from a Geometry or an ``(entries, ways)`` pair."""
        if isinstance(g, Geometry):
            return g
        if isinstance(g, (tuple, list)) and len(g) == 2:
            return cls(g[0], g[1])
        raise TypeError(f"{what} = {g!r}: expected a Geometry or (entries, ways)")

    @property
    def sets(self) -> int:
        return self.entries // self.ways

    def scaled(self, factor: float) -> "Geometry":
        """More sets, same associativity (at least one set)."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)) \
                or not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"scale factor {factor!r} must be a finite number > 0")
        sets = max(1, int(round(self.sets * factor)))
        if sets * self.ways > TLB_MAX_ENTRIES:
            raise ValueError(f"{self} scaled by {factor!r} has {sets * self.ways} entries, more "
                             f"than TLB_MAX_ENTRIES = {TLB_MAX_ENTRIES} (2**24)")
        return Geometry(sets * self.ways, self.ways)

    def __str__(self):
        return f"{self.entries} entries, " + ("fully assoc." if self.ways == self.entries
                                              else f"{self.ways}-way")


def _g(entries, ways=None):
    return Geometry(entries, entries if ways is None else ways)


@dataclass(frozen=True)
class CPU:
    """A processor's data-TLB hierarchy and walk hardware, with its public source.

    ``None`` means the structure is absent.  ``l1_shared``/``l2_shared`` replace the
    per-size structures; ``pwc`` maps a level (2 = PDE, 3 = PDPTE, 4 = PML4E, 5 = PML5E)
    to its walk cache, ``pwc_unified`` is one cache for all levels.  ``hpwc``/``hpwc_unified``
    and ``ntlb`` serve nested walks.  ``ptcache`` is the share of the data caches that
    holds page-table entries: each walk reference looks up its 64-byte line there (a
    line holds 8 entries), so walks of sparse 4 KiB tables miss more than walks that
    stop at a PMD.  ``stlb_hit_cycles``, ``walk_ref_cached_cycles`` and
    ``walk_ref_cycles`` (a reference that misses ``ptcache``) feed the cost model.

    Every structure is a :class:`Geometry` or an ``(entries, ways)`` pair, so a CPU can be
    built from a geometry alone (``name``, ``year`` and ``source`` are optional)::

        CPU(l1_4k=(64, 4), l2_shared=(1536, 12))
        CPU.from_geometry({"l1_4k": (64, 4), "l2": (1536, 12)})   # TlbSim's names
    """

    name: str = "custom CPU"
    year: int | None = None
    source: str = ""
    l1_4k: Geometry | None = None
    l1_2m: Geometry | None = None
    l1_shared: Geometry | None = None
    l2_4k: Geometry | None = None
    l2_2m: Geometry | None = None
    l2_shared: Geometry | None = None
    pwc: dict = field(default_factory=dict)
    pwc_unified: Geometry | None = None
    hpwc: dict = field(default_factory=dict)
    hpwc_unified: Geometry | None = None
    ntlb: Geometry | None = None
    ptcache: Geometry | None = None
    levels: int = 4
    ghz: float = 3.0
    stlb_hit_cycles: float = 7.0
    walk_ref_cached_cycles: float = 12.0
    walk_ref_cycles: float = 200.0
    assumed: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"CPU name must be a str, got {self.name!r}")
        if self.year is not None and (isinstance(self.year, bool) or not isinstance(self.year, int)):
            raise TypeError(f"{self.name}: year must be an int or None, got {self.year!r}")
        for f in _CPU_GEOMETRY_FIELDS:
            g = getattr(self, f)
            if g is not None:
                object.__setattr__(self, f, Geometry.of(g, f"{self.name}: {f}"))
        for f in ("pwc", "hpwc"):
            d = getattr(self, f)
            if not isinstance(d, dict):
                raise TypeError(f"{self.name}: {f} must be a dict level -> Geometry, got {d!r}")
            object.__setattr__(self, f, {l: Geometry.of(g, f"{self.name}: {f}[{l}]") for l, g in d.items()})
        if self.l1_shared is not None and (self.l1_4k or self.l1_2m):
            raise ValueError(f"{self.name}: give l1_shared or l1_4k/l1_2m, not both")
        if self.l2_shared is not None and (self.l2_4k or self.l2_2m):
            raise ValueError(f"{self.name}: give l2_shared or l2_4k/l2_2m, not both")
        for d, u, what in ((self.pwc, self.pwc_unified, "pwc"), (self.hpwc, self.hpwc_unified, "hpwc")):
            if d and u is not None:
                raise ValueError(f"{self.name}: give {what}_unified or per-level {what}, not both")
            bad = [l for l in d if l not in (2, 3, 4, 5)]
            if bad:
                raise ValueError(f"{self.name}: {what} levels {bad} not in 2..5 (2 = PDE cache)")
        if self.levels not in (4, 5):
            raise ValueError(f"{self.name}: levels={self.levels}, allowed 4 or 5")

    @classmethod
    def from_geometry(cls, geometry: dict, **kw) -> "CPU":
        """A CPU from ``TlbSim``'s geometry dict (``{"l1_4k": (64, 4), "l2": (1536, 12),
        "pwc2": (32, 4), ...}``, each ``(entries, ways)``); ``kw`` sets the other fields
        (name, year, source, levels, cycle costs).  The inverse of :meth:`geometry`."""
        if not isinstance(geometry, dict):
            raise TypeError(f"geometry must be a dict of structure name -> (entries, ways), "
                            f"got {type(geometry).__name__}")
        fields = {"pwc": {}, "hpwc": {}}
        for name, g in geometry.items():
            if isinstance(name, str) and name[:-1] in ("pwc", "hpwc") and name[-1:] in ("2", "3", "4", "5"):
                fields[name[:-1]][int(name[-1])] = Geometry.of(g, f"geometry[{name!r}]")
            elif name in _SIM_TO_CPU_FIELD:
                fields[_SIM_TO_CPU_FIELD[name]] = Geometry.of(g, f"geometry[{name!r}]")
            else:
                raise ValueError(f"unknown TLB structure {name!r}; allowed: "
                                 f"{sorted(_SIM_TO_CPU_FIELD) + ['pwc2..pwc5', 'hpwc2..hpwc5']}")
        return cls(**fields, **kw)

    def geometry(self) -> dict:
        """Structure name -> (entries, ways), as ``_core.TlbSim`` takes it."""
        out = {}

        def put(name, g):
            if g is not None:
                out[name] = (g.entries, g.ways)

        if self.l1_shared is not None:
            put("l1", self.l1_shared)
        else:
            put("l1_4k", self.l1_4k)
            put("l1_2m", self.l1_2m)
        if self.l2_shared is not None:
            put("l2", self.l2_shared)
        else:
            put("l2_4k", self.l2_4k)
            put("l2_2m", self.l2_2m)
        if self.pwc_unified is not None:
            put("pwc", self.pwc_unified)
        for l, g in self.pwc.items():
            put(f"pwc{l}", g)
        if self.hpwc_unified is not None:
            put("hpwc", self.hpwc_unified)
        for l, g in self.hpwc.items():
            put(f"hpwc{l}", g)
        put("ntlb", self.ntlb)
        put("ptcache", self.ptcache)
        return out

    def field_of(self, structure: str) -> str:
        """The CPU field behind ``TlbSim`` structure name ``structure`` ("l2" ->
        "l2_shared", "pwc" -> "pwc_unified", "pwc2" -> "pwc2", ...)."""
        return _SIM_TO_CPU_FIELD.get(structure, structure)

    def l2_entries(self) -> int:
        return sum(g.entries for g in (self.l2_shared, self.l2_4k, self.l2_2m) if g is not None)

    def better(self, name: str | None = None, tlb_scale: float = 1.0, l2_scale: float | None = None,
               pwc_scale: float = 1.0, add_pde_cache: Geometry | None = None,
               walk_speedup: float = 1.0, nested_scale: float = 1.0) -> "CPU":
        """Linus's "get a better CPU": a copy with bigger TLBs, bigger (or added)
        page-walk caches and faster walks.

        ``tlb_scale`` multiplies the sets of every TLB level (``l2_scale`` overrides it for
        the second level), ``pwc_scale`` the sets of every walk cache, ``nested_scale``
        the nested TLB and host walk caches; ``walk_speedup`` divides ``walk_ref_cycles``.
        """
        for what, v in (("tlb_scale", tlb_scale), ("l2_scale", l2_scale), ("pwc_scale", pwc_scale),
                        ("walk_speedup", walk_speedup), ("nested_scale", nested_scale)):
            if v is None and what == "l2_scale":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{what} must be a number, got {v!r}")
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"{what}={v!r}: scales and speedups must be finite and > 0")
        l2s = tlb_scale if l2_scale is None else l2_scale
        if add_pde_cache is not None:
            add_pde_cache = Geometry.of(add_pde_cache, "add_pde_cache")

        def sc(g, f, what):
            # each structure is checked before any is built: TLB_MAX_ENTRIES bounds them
            if g is None:
                return None
            try:
                return g.scaled(f)
            except ValueError as e:
                raise ValueError(f"{what}={f!r} makes {self.name!r} too large: {e}") from None

        l2_what = "tlb_scale" if l2_scale is None else "l2_scale"
        pwc = {l: sc(g, pwc_scale, "pwc_scale") for l, g in self.pwc.items()}
        if add_pde_cache is not None and self.pwc_unified is None:
            pwc.setdefault(2, add_pde_cache)
        return dataclasses.replace(
            self,
            name=name or f"{self.name} (better)",
            l1_4k=sc(self.l1_4k, tlb_scale, "tlb_scale"), l1_2m=sc(self.l1_2m, tlb_scale, "tlb_scale"),
            l1_shared=sc(self.l1_shared, tlb_scale, "tlb_scale"),
            l2_4k=sc(self.l2_4k, l2s, l2_what), l2_2m=sc(self.l2_2m, l2s, l2_what),
            l2_shared=sc(self.l2_shared, l2s, l2_what),
            pwc=pwc, pwc_unified=sc(self.pwc_unified, pwc_scale, "pwc_scale"),
            hpwc={l: sc(g, nested_scale, "nested_scale") for l, g in self.hpwc.items()},
            hpwc_unified=sc(self.hpwc_unified, nested_scale, "nested_scale"),
            ntlb=sc(self.ntlb, nested_scale, "nested_scale"),
            walk_ref_cycles=self.walk_ref_cycles / walk_speedup,
            walk_ref_cached_cycles=self.walk_ref_cached_cycles / walk_speedup,
        )

    def describe(self) -> pd.DataFrame:
        rows = []
        for f in ("l1_4k", "l1_2m", "l1_shared", "l2_4k", "l2_2m", "l2_shared", "pwc_unified",
                  "hpwc_unified", "ntlb", "ptcache"):
            g = getattr(self, f)
            if g is not None:
                rows.append({"structure": f, "entries": g.entries, "ways": g.ways, "sets": g.sets})
        for prefix, d in (("pwc", self.pwc), ("hpwc", self.hpwc)):
            for l, g in sorted(d.items()):
                rows.append({"structure": f"{prefix}{l}", "entries": g.entries, "ways": g.ways,
                             "sets": g.sets})
        return pd.DataFrame(rows)


_CPU_GEOMETRY_FIELDS = ("l1_4k", "l1_2m", "l1_shared", "l2_4k", "l2_2m", "l2_shared",
                        "pwc_unified", "hpwc_unified", "ntlb", "ptcache")
# TlbSim's structure names -> CPU fields (per-level walk caches keep their names, pwc2..)
_SIM_TO_CPU_FIELD = {"l1_4k": "l1_4k", "l1_2m": "l1_2m", "l1": "l1_shared", "l2_4k": "l2_4k",
                     "l2_2m": "l2_2m", "l2": "l2_shared", "pwc": "pwc_unified",
                     "hpwc": "hpwc_unified", "ntlb": "ntlb", "ptcache": "ptcache"}


# Intel documents the TLBs but not the paging-structure caches; these per-level sizes
# (PDE 32, PDPTE 4, PML4E 2, fully associative) are the ones commonly measured or
# assumed in the literature on Intel walks (e.g. Barr, Cox, Rixner, ISCA 2010,
# "Translation caching: skip, don't walk (the page table)", which also describes the
# two designs modelled here).  They are assumptions, flagged as such in each preset.
_INTEL_PSC = {2: _g(32, 4), 3: _g(4), 4: _g(2)}
_INTEL_EPT_PSC = {2: _g(32, 4), 3: _g(4), 4: _g(2)}

PRESETS: dict[str, CPU] = {
    "nehalem": CPU(
        name="Intel Nehalem (Core i7 / Xeon 5500, 2008)", year=2008,
        source=("Intel 64 and IA-32 Architectures Optimization Reference Manual (248966), "
                "Nehalem section; Tom's Hardware, 'Intel Core i7 (Nehalem): Architecture by AMD?', "
                "14 Oct 2008: DTLB 64 entries 4-way (4K) and 32 entries 4-way (2M/4M); "
                "unified STLB 512 entries 4-way, 4 KiB pages only"),
        l1_4k=_g(64, 4), l1_2m=_g(32, 4), l2_4k=_g(512, 4),
        pwc=dict(_INTEL_PSC), hpwc=dict(_INTEL_EPT_PSC), ntlb=None,
        ptcache=_g(512, 8), ghz=2.93, stlb_hit_cycles=7.0,
        assumed=("paging-structure cache sizes (PDE 32 4-way, PDPTE 4, PML4E 2) and EPT walk "
                 "caches of the same size; no separate nested TLB; page-table lines keep 512 "
                 "lines (32 KiB) of the data caches. Arcangeli's 2010 host "
                 "(2 sockets x 6 cores, 24 threads) was of the Westmere-EP generation, "
                 "modelled here with Nehalem's TLB geometry."),
    ),
    "barcelona": CPU(
        name="AMD Barcelona (Opteron family 10h, 2007)", year=2007,
        source=("AMD Software Optimization Guide for AMD Family 10h Processors (40546): L1 DTLB "
                "48 entries fully associative (all page sizes), L2 DTLB 512 entries 4-way (4K) "
                "and 128 entries 2-way (2M); nested paging (RVI) with a page walk cache and a "
                "nested TLB as described by Bhargava, Serebrin, Spadini, Manne, ASPLOS 2008"),
        l1_shared=_g(48), l2_4k=_g(512, 4), l2_2m=_g(128, 2),
        pwc_unified=_g(24), hpwc_unified=_g(24), ntlb=_g(16),
        ptcache=_g(512, 8), ghz=2.3, stlb_hit_cycles=5.0,
        assumed=("page walk cache 24 entries and nested TLB 16 entries, fully associative; "
                 "page-table lines keep 512 lines (32 KiB) of the data caches"),
    ),
    "skylake": CPU(
        name="Intel Skylake (client / Xeon SP, 2015)", year=2015,
        source=("Intel 64 and IA-32 Architectures Optimization Reference Manual 248966-045 "
                "(Feb 2022), Table 2-15: DTLB 64 entries 4-way (4K), 32 entries 4-way (2M/4M); "
                "STLB 1536 entries 12-way shared by 4K and 2M pages"),
        l1_4k=_g(64, 4), l1_2m=_g(32, 4), l2_shared=_g(1536, 12),
        pwc=dict(_INTEL_PSC), hpwc=dict(_INTEL_EPT_PSC), ntlb=None,
        ptcache=_g(1024, 8), ghz=3.0, stlb_hit_cycles=9.0,
        assumed=("paging-structure cache sizes as for Nehalem (not published); 1 GiB TLBs not "
                 "modelled; page-table lines keep 1024 lines (64 KiB) of the data caches"),
    ),
    "zen4": CPU(
        name="AMD Zen 4 (Ryzen 7000 / EPYC 9004, 2022)", year=2022,
        source=("AMD Software Optimization Guide for AMD Family 19h Processors (57647), Zen 4: "
                "L1 DTLB 72 entries fully associative (all page sizes); L2 DTLB 3072 entries "
                "24-way holding 4K and 2M entries"),
        l1_shared=_g(72), l2_shared=_g(3072, 24),
        pwc_unified=_g(64, 4), hpwc_unified=_g(64, 4), ntlb=_g(64, 4),
        ptcache=_g(2048, 8), ghz=4.0, stlb_hit_cycles=7.0,
        assumed=("page walk cache, nested TLB and host walk cache sizes (64 entries 4-way) are "
                 "assumptions; the L2 DTLB also caches PDEs in hardware (not modelled); "
                 "page-table lines keep 2048 lines (128 KiB) of the data caches"),
    ),
}


def preset(name: str) -> CPU:
    """A CPU preset by name: one of ``PRESETS``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown CPU preset {name!r}; allowed: {sorted(PRESETS)}") from None


def walk_refs_worst_case(levels: int = 4, host_levels: int | None = None,
                         guest_huge: bool = False, host_huge: bool = False) -> int:
    """Memory references of a walk with every cache cold.

    Native: ``levels`` (one fewer for a 2 MiB leaf).  Nested: ``g*(h+1) + h`` with ``g``
    and ``h`` the guest and host levels actually walked, i.e. ``(g+1)(h+1) - 1``.
    """
    g = levels - (1 if guest_huge else 0)
    if host_levels is None:
        return g
    h = host_levels - (1 if host_huge else 0)
    return (g + 1) * (h + 1) - 1


# ---------------------------------------------------------------------------
# The MMU: translating traces through mappings
# ---------------------------------------------------------------------------

#: Per simulated-kernel event: (flush stride shift, page-table entries written; None =
#: one per 4 KiB page of the range).  Collapse: pmdp_collapse_flush() flushes 2 MiB at
#: PAGE_SHIFT stride (a full flush on x86) and writes one PMD.  Split: pmdp_invalidate()
#: -> flush_pmd_tlb_range() at PMD_SHIFT stride, then 512 PTEs and the PMD are written.
#: Zap, mprotect, migration, CoW and swap-out clear or rewrite one PTE per page and flush
#: at PAGE_SHIFT stride (arch/x86/include/asm/tlbflush.h, arch/x86/mm/tlb.c).
KERNEL_FLUSH_STRIDE = {
    "collapse": (PAGE_SHIFT, 1),
    "split_pmd": (PMD_SHIFT, 513),
    "zap": (PAGE_SHIFT, None),
    "mprotect": (PAGE_SHIFT, None),
    "migrate": (PAGE_SHIFT, None),
    "cow": (PAGE_SHIFT, None),
    "swapout": (PAGE_SHIFT, None),
    "thp_fault": (None, 1),          # a new PMD over an empty range: no flush
}


class MMU:
    """A CPU's translation hardware translating address traces.

    Parameters
    ----------
    cpu : CPU or str
        A :class:`CPU` or a preset name.
    mode : "native", "nested" or "shadow"
    levels, host_levels : 4 or 5
        Paging levels of the guest (or native) and host tables; default ``cpu.levels``.
    walk_model : bool
        False for a pure-TLB run: a miss in the last TLB level counts a completed walk
        but no walk is modelled (no walk references, walk caches or nested TLB), which
        makes the run several times faster.

    :meth:`counters` holds, besides the perf-style totals, each structure's hits and
    misses under the CPU's field names: ``l1_4k_hits``, ``l1_4k_misses``,
    ``l2_shared_hits``, ``pwc_unified_misses``, ``pwc2_hits`` (the PDE cache), ...

    The mapping contract (what the simulated kernel and host provide)
    ------------------------------------------------------------------
    :meth:`map` takes, for the guest (or the native process),

    * ``guest_huge`` -- one boolean per 2 MiB virtual region starting at ``base_va``:
      True when the region's PMD maps a 2 MiB page (THP), False when it points to a
      table of 4 KiB PTEs.  Addresses outside the array use ``default_guest_huge``.
    * ``gpa_region`` (optional) -- the guest-physical 2 MiB region number each virtual
      region maps to (identity by default); outside the array guest-physical = virtual.

    and for the host (nested and shadow modes),

    * ``host_huge`` -- one boolean per 2 MiB guest-physical region: True when the host
      backs it with a 2 MiB page.  Outside the array: ``default_host_huge``.
      ``host_pt_huge`` is the host page size behind the guest's page-table pages.

    The TLB entry for an access is 2 MiB only when the guest maps it huge and (under
    virtualization) the host backs it huge.  When the kernel changes a mapping it must
    say so, as Linux does: call :meth:`map` with the new arrays, then
    :meth:`flush_range` for the changed range, or :meth:`flush_all` when the host changes
    its backing (KVM flushes the guest's TLB then).  ``flush_range(va, nbytes,
    stride_shift)`` follows x86's flush_tlb_mm_range (arch/x86/mm/tlb.c): a range of
    more than ``tlb_single_page_flush_ceiling`` (33) strides becomes a full flush
    (``nr_tlb_local_flush_all``), otherwise ``nbytes >> stride_shift`` single
    invalidations are counted (``nr_tlb_local_flush_one``).  khugepaged's collapse
    (``pmdp_collapse_flush`` -> ``flush_tlb_range`` over 2 MiB at PAGE_SHIFT stride) is
    therefore a full flush; a flush at PMD stride (``stride_shift=21``, as
    ``flush_pmd_tlb_range`` does where an architecture defines it with PMD_SIZE stride)
    is one invalidation per 2 MiB.
    """

    def __init__(self, cpu: CPU | str = "skylake", mode: str = "native",
                 levels: int | None = None, host_levels: int | None = None,
                 walk_model: bool = True):
        self.cpu = preset(cpu) if isinstance(cpu, str) else cpu
        if not isinstance(self.cpu, CPU):
            raise TypeError(f"cpu must be a CPU or a preset name, got {type(cpu).__name__}")
        self.mode = mode
        self.levels = self.cpu.levels if levels is None else levels
        self.host_levels = self.levels if host_levels is None else host_levels
        self._attached = None
        self.sim = TlbSim(self.cpu.geometry(), mode=mode, levels=self.levels,
                          host_levels=self.host_levels, walk_model=walk_model)
        self.walk_model = self.sim.walk_model
        # counters() names: TlbSim structure -> CPU field
        self._fields = {name: self.cpu.field_of(name) for name in self.sim.geometry}
        self._pte_writes = 0
        self._exits = 0

    def map(self, guest_huge=None, base_va: int = 0, default_guest_huge: bool = False,
            gpa_region=None, host_huge=None, default_host_huge: bool = False,
            host_pt_huge: bool | None = None) -> "MMU":
        """Install the guest (native) and host mappings; see the class docstring.  On an
        error (ValueError / TypeError naming the argument) the previous mapping stays."""
        self.sim.set_mapping(guest_huge=guest_huge, base_va=base_va,
                             default_guest_huge=default_guest_huge, gpa_region=gpa_region,
                             host_huge=host_huge, default_host_huge=default_host_huge,
                             host_pt_huge=host_pt_huge)
        # (kept only once the core accepted them: collapse() and split() re-install them)
        self._map_args = dict(guest_huge=None if guest_huge is None else np.array(guest_huge, dtype=bool),
                              base_va=base_va, default_guest_huge=default_guest_huge,
                              gpa_region=gpa_region,
                              host_huge=None if host_huge is None else np.array(host_huge, dtype=bool),
                              default_host_huge=default_host_huge, host_pt_huge=host_pt_huge)
        return self

    def run(self, trace) -> dict:
        """Translate every address of ``trace``; returns the counters of this run alone
        (cumulative ones stay in :meth:`counters`)."""
        before = self.counters()
        self.sim.run(trace)
        after = self.counters()
        return {k: after[k] - before[k] for k in after if k not in ("mmu_pte_write", "exits")}

    def flush_range(self, va: int, nbytes: int, stride_shift: int = PAGE_SHIFT) -> None:
        self.sim.flush_range(va, nbytes, stride_shift)

    def flush_all(self) -> None:
        self.sim.flush_all()

    def _region(self, va: int) -> int:
        a = getattr(self, "_map_args", None)
        if a is None or a["guest_huge"] is None:
            raise ValueError("map() a guest_huge array before collapse()/split()")
        r = (int(va) - a["base_va"]) >> PMD_SHIFT
        if int(va) < a["base_va"] or r >= a["guest_huge"].size:
            raise ValueError(f"va {int(va):#x} is outside the mapped regions "
                             f"[{a['base_va']:#x}, {a['base_va'] + (a['guest_huge'].size << PMD_SHIFT):#x})")
        return r

    def collapse(self, va: int) -> None:
        """khugepaged collapsed the 2 MiB region holding ``va`` into a THP
        (mm/khugepaged.c: collapse_huge_page): the PMD now maps 2 MiB, the old
        translations are flushed (pmdp_collapse_flush: a 2 MiB range at PAGE_SHIFT
        stride, a full flush on x86), and the guest wrote one PMD."""
        r = self._region(va)
        self._map_args["guest_huge"][r] = True
        self.map(**self._map_args)
        start = self._map_args["base_va"] + (r << PMD_SHIFT)
        self.flush_range(start, HPAGE_PMD_SIZE, PAGE_SHIFT)
        self.guest_pte_writes(1)

    def split(self, va: int) -> None:
        """The PMD mapping the region holding ``va`` was split into 512 PTEs
        (mm/huge_memory.c: __split_huge_pmd): the 2 MiB entry is flushed at PMD stride
        and the guest wrote 512 PTEs and the PMD."""
        r = self._region(va)
        self._map_args["guest_huge"][r] = False
        self.map(**self._map_args)
        start = self._map_args["base_va"] + (r << PMD_SHIFT)
        self.flush_range(start, HPAGE_PMD_SIZE, PMD_SHIFT)
        self.guest_pte_writes(513)

    # -- translating through a simulated kernel's page tables ---------------------------
    def attach(self, process, start: int, end: int, *, host_huge=None, default_host_huge: bool = False,
               host_pt_huge: bool | None = None) -> "MMU":
        """Translate through ``process``'s page tables (a :class:`thpbench.kernel.Process`) over
        [start, end): each 2 MiB region is huge exactly when the simulated kernel maps it
        with a PMD (``Process.pmd_mapped``), and stays so as the kernel changes it.

        The MMU joins ``kernel.tlb_flush_hooks``: when the kernel collapses, splits,
        zaps, write-protects, migrates, copies on write or swaps out pages of this
        process, the mapping is re-read and the range flushed with the stride x86 uses
        for that operation (:data:`KERNEL_FLUSH_STRIDE`), and the page-table writes are
        counted (each one an exit under shadow paging).  ``host_huge`` etc. are as in
        :meth:`map` (the host's backing of guest-physical memory).  :meth:`detach` ends it.
        """
        # An exited process has no page tables left (and its pid may already name
        # another process): refuse it before touching anything.
        if not hasattr(process, "alive") or not hasattr(process, "pmd_mapped"):
            raise TypeError(f"process must be a thpbench.kernel.Process, got {type(process).__name__}")
        if not process.alive:
            raise ValueError(f"process {process.pid} has exited: MMU.attach needs a live process")
        for what, v in (("start", start), ("end", end)):
            if isinstance(v, bool) or not hasattr(v, "__index__"):
                raise TypeError(f"{what} must be an integer address, got {v!r}")
        start = start.__index__() >> PMD_SHIFT << PMD_SHIFT
        end = -(-end.__index__() >> PMD_SHIFT) << PMD_SHIFT
        if end <= start:
            raise ValueError(f"empty range [{start:#x}, {end:#x})")
        guest_huge = process.pmd_mapped(start, end)      # raises on a range outside the window
        self.detach()
        self.map(guest_huge=guest_huge, base_va=start, host_huge=host_huge,
                 default_host_huge=default_host_huge, host_pt_huge=host_pt_huge)
        self._attached = (process, start, end)
        process.kernel.tlb_flush_hooks.append(self._kernel_event)
        return self

    def detach(self) -> None:
        """Stop following the attached process (if any)."""
        att = self._attached
        if att is not None:
            hooks = att[0].kernel.tlb_flush_hooks
            if self._kernel_event in hooks:
                hooks.remove(self._kernel_event)
            self._attached = None

    def _kernel_event(self, pid: int, start: int, nbytes: int, kind: str) -> None:
        if self._attached is None:
            return
        process, lo, hi = self._attached
        if pid != process.pid or start >= hi or start + nbytes <= lo:
            return
        if process.alive:
            self._map_args["guest_huge"] = process.pmd_mapped(lo, hi)
            self.map(**self._map_args)
        stride, writes = KERNEL_FLUSH_STRIDE[kind]
        if stride is not None:
            self.flush_range(start, nbytes, stride)
        self.guest_pte_writes(writes if writes is not None else max(1, nbytes >> PAGE_SHIFT))
        if not process.alive:
            # exit_mmap's zap was the last event of this mm: stop following it, so that a
            # later process given the same pid is not mistaken for it
            self.detach()

    def run_with_events(self, trace, events) -> dict:
        """Run ``trace`` with mapping changes in between: ``events`` is an iterable of
        ``(index, kind, va)``, kind "collapse" or "split", applied before access
        ``index``.  Returns the counters of the whole run (TLB and flush counters,
        ``mmu_pte_write``, ``exits``)."""
        trace = np.asarray(trace)
        before = self.counters()
        pos = 0
        for index, kind, va in sorted(events, key=lambda e: e[0]):
            if not 0 <= index <= trace.size:
                raise ValueError(f"event index {index} outside the trace (0..{trace.size})")
            if kind not in ("collapse", "split"):
                raise ValueError(f"event kind {kind!r}: allowed 'collapse', 'split'")
            self.sim.run(trace[pos:index])
            pos = index
            getattr(self, kind)(va)
        self.sim.run(trace[pos:])
        after = self.counters()
        return {k: after[k] - before[k] for k in after}

    def guest_pte_writes(self, n: int = 1) -> None:
        """The guest (or native kernel) wrote ``n`` page-table entries: a fault, a
        collapse or split, an munmap.  Under shadow paging each write traps to the
        hypervisor, which updates its shadow table: counted as KVM's ``mmu_pte_write``
        and one VM exit each (``exits``).  Under nested paging or natively there is no
        exit (the hardware walks the guest's own table)."""
        n = int(n)
        if n < 0:
            raise ValueError(f"n={n}: page-table writes must be >= 0")
        self._pte_writes += n
        if self.mode == "shadow":
            self._exits += n

    def counters(self) -> dict:
        """Cumulative counters: TlbSim's (perf-style names), each structure's hits and
        misses under the CPU's field names (``l1_4k_hits``, ``l2_shared_misses``, ...),
        ``mmu_pte_write`` and ``exits``."""
        c = self.sim.counters()
        for name, st in self.sim.cache_stats().items():
            f = self._fields[name]
            c[f"{f}_hits"] = st["hits"]
            c[f"{f}_misses"] = st["misses"]
        c["mmu_pte_write"] = self._pte_writes
        c["exits"] = self._exits
        return c

    def cache_stats(self) -> pd.DataFrame:
        """One row per structure: its CPU field name (``structure``), the TlbSim name
        (``sim_name``), entries, ways, hits, misses, fills and evictions."""
        return pd.DataFrame([{"structure": self._fields[k], "sim_name": k,
                              "entries": self.sim.geometry[k][0], "ways": self.sim.geometry[k][1], **v}
                             for k, v in self.sim.cache_stats().items()])

    def reset_counters(self) -> None:
        self.sim.reset_counters()
        self._pte_writes = self._exits = 0


# ---------------------------------------------------------------------------
# From translation to time
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RuntimeModel:
    """Nanoseconds of a run from its counters: a linear model with stated parameters.

    (Translation costs turned into run time; the simulated kernel's event costs are
    :class:`thpbench.CostModel`'s, from :mod:`thpbench.costs`.)

    ``t = (accesses*access_ns + stlb_hits*stlb_hit_ns + walk_refs_cached*walk_ref_cached_ns
    + (walk_refs - walk_refs_cached)*walk_ref_ns + faults_4k*fault_4k_ns + faults_2m*fault_2m_ns + vmexits*vmexit_ns)
    * (1 + virt_overhead if virtualized)``

    * ``access_ns``: the workload's mean time per memory access outside translation
      (a workload property: instructions, cache misses).
    * ``stlb_hit_ns``: an L1-TLB miss that hits the second level.
    * ``walk_ref_cached_ns``, ``walk_ref_ns``: one page-walk reference whose line is in the
      walker's share of the data caches (``ptcache``), and one that is not (mean over
      L3 and DRAM).
    * ``fault_4k_ns``, ``fault_2m_ns``: a page fault that maps and zeroes a 4 KiB page or a
      2 MiB THP.  Defaults from Arcangeli's RFC (26 Oct 2009, anchors A0): first touch of
      3 GB took 2.182 s with 4 KiB pages and 1.566 s with THP.
    * ``vmexit_ns``: under shadow paging, one trapped guest page-table write or CR3 switch
      (exit, shadow-MMU work, entry).
    * ``virt_overhead``: the share of time a guest loses to virtualization for reasons
      other than address translation (I/O, timer and IPI exits), applied to virtualized runs.

    Mosalloc (Agbarya et al., MICRO 2020; anchors A9) found such linear models err by
    25-192%; this one is calibrated on three rows of the A1 table and checked on the
    other four (:func:`a1_fit`, :func:`a1_table`).
    """

    access_ns: float = 1.0
    stlb_hit_ns: float = 3.0
    walk_ref_cached_ns: float = 4.0
    walk_ref_ns: float = 60.0
    fault_4k_ns: float = 2.182e9 / (3 * 2**30 / 4096)
    fault_2m_ns: float = 1.566e9 / (3 * 2**30 / 2**21)
    vmexit_ns: float = 2000.0
    virt_overhead: float = 0.0

    def time_ns(self, counters: dict) -> float:
        t = (counters.get("accesses", 0) * self.access_ns
             + counters.get("dtlb_load_misses.stlb_hit", 0) * self.stlb_hit_ns
             + self._walk_ns(counters)
             + counters.get("faults_4k", 0) * self.fault_4k_ns
             + counters.get("faults_2m", 0) * self.fault_2m_ns
             + counters.get("vmexits", 0) * self.vmexit_ns)
        return t * (1.0 + self.virt_overhead) if counters.get("virtualized", False) else t

    def translation_ns(self, counters: dict) -> float:
        """The part of :meth:`time_ns` spent on TLB misses (STLB hits and walks)."""
        return counters.get("dtlb_load_misses.stlb_hit", 0) * self.stlb_hit_ns + self._walk_ns(counters)

    def _walk_ns(self, counters: dict) -> float:
        # the guest's walks, plus the host's walks for KVM's reads on shadow-paging exits
        refs = counters.get("walk_refs", 0) + counters.get("exit_walk_refs", 0)
        cached = counters.get("walk_refs_cached", 0) + counters.get("exit_walk_refs_cached", 0)
        return (cached * self.walk_ref_cached_ns + (refs - cached) * self.walk_ref_ns
                + counters.get("exit_stlb_hits", 0) * self.stlb_hit_ns)

    @classmethod
    def for_cpu(cls, cpu: CPU, **kw) -> "RuntimeModel":
        """Latencies from the CPU's cycle counts at its clock."""
        return cls(stlb_hit_ns=cpu.stlb_hit_cycles / cpu.ghz,
                   walk_ref_cached_ns=cpu.walk_ref_cached_cycles / cpu.ghz,
                   walk_ref_ns=cpu.walk_ref_cycles / cpu.ghz, **kw)


COSTS_2010 = RuntimeModel.for_cpu(PRESETS["nehalem"])


# ---------------------------------------------------------------------------
# Arcangeli's 2010 KVM kernel build (anchors A1) and the model's account of it
# ---------------------------------------------------------------------------

#: Slowdown vs bare metal with THP=always (83.86 s), "Kernel build bench with Transparent
#: Hugepage Support #29", linux-mm, 3 Aug 2010, <20100803160131.GI6071@random.random>.
ARCANGELI_2010 = pd.DataFrame([
    ("bare metal", "always", "-", 0.0),
    ("bare metal", "never", "-", 4.06),
    ("EPT", "always", "always", 5.67),
    ("EPT", "never", "always", 12.71),
    ("EPT", "never", "never", 24.81),
    ("shadow", "always", "always", 198.0),
    ("shadow", "never", "always", 254.0),
    ("shadow", "never", "never", 260.0),
], columns=["paging", "guest_thp", "host_thp", "published_slowdown_pct"])

#: The rows :func:`a1_fit` calibrates on, one parameter each; the rest are predictions.
A1_FIT_ROWS = {
    "walk_ref_ns": ("bare metal", "never", "-"),
    "virt_overhead": ("EPT", "always", "always"),
    "vmexit_ns": ("shadow", "always", "always"),
}


@dataclass(frozen=True)
class KbuildProfile:
    """A kernel-build-like workload: a sequence of short compiler processes.

    Each process has an anonymous heap (``heap_mib``, THP-eligible: the benchmark's gcc
    was patched to align its GC arenas to 2 MiB) and file-backed data (``file_mib``:
    always 4 KiB in 2010, when THP covered anonymous memory only).  Its accesses visit
    pages drawn from a Zipf law (exponent ``zipf_s``, ``heap_share`` of the visits to the
    heap), each visit a run of ``run_len`` consecutive 8-byte accesses in the page
    (spatial locality).  A process makes ``real_accesses`` accesses in all; the
    simulator runs a warm-up sample and a measured sample of ``sample_accesses`` each
    and scales the measured rates to ``real_accesses``.

    Every page (or THP) a process touches is one page fault.  Under shadow paging each
    fault is a trapped page-table write (``exits_per_fault``) and each process also
    costs ``other_exits`` exits that THP does not change (fork, exec, exit, CR3
    switches).  Process exit flushes the TLB (a CR3 switch without PCIDs, as in 2010).
    These values are the model's, chosen before fitting; only the cost model's
    ``walk_ref_ns``, ``virt_overhead`` and ``vmexit_ns`` are fitted (:func:`a1_fit`).

    Under shadow paging KVM handles each exit by reading guest memory through the
    host's mapping of it (:func:`shadow_exit_host_walks`): ``guest_mem_mib`` is the
    guest's RAM (15 GiB in Arcangeli's setup), over which its page-table pages lie, and
    ``exit_sample`` exits are simulated and scaled to the run's count.
    """

    processes: int = 4
    sample_accesses: int = 300_000
    real_accesses: float = 3e8
    heap_mib: int = 48
    file_mib: int = 8
    heap_share: float = 0.85
    zipf_s: float = 0.9
    run_len: int = 64
    exits_per_fault: float = 1.0
    other_exits: float = 20_000.0
    guest_mem_mib: int = 15 * 1024
    exit_sample: int = 4000
    seed: int = 2010

    def scaled(self, scale: float) -> "KbuildProfile":
        return dataclasses.replace(self, sample_accesses=max(10_000, int(self.sample_accesses * scale)))


_KB_HEAP_BASE = 1 << 30          # 2 MiB aligned
_KB_FILE_BASE = 1 << 32


def kbuild_trace(profile: KbuildProfile, rng, layout=None) -> np.ndarray:
    """One sample of a kernel-build-like process's accesses (see :class:`KbuildProfile`).

    ``layout`` is the process's (heap, file) page permutations -- where its hot pages
    are -- from :func:`kbuild_layout`; samples of one process must share it."""
    if layout is None:
        layout = kbuild_layout(profile, rng)
    perm_heap, perm_file = layout
    visits = max(1, profile.sample_accesses // profile.run_len)

    def zipf_pages(n, perm):
        pages = perm.size
        w = np.arange(1, pages + 1, dtype=np.float64) ** (-profile.zipf_s)
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        ranks = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), pages - 1)
        return perm[ranks]

    in_heap = rng.random(visits) < profile.heap_share
    page_va = np.empty(visits, dtype=np.uint64)
    nh = int(in_heap.sum())
    page_va[in_heap] = zipf_pages(nh, perm_heap).astype(np.uint64) * np.uint64(4096) + np.uint64(_KB_HEAP_BASE)
    page_va[~in_heap] = (zipf_pages(visits - nh, perm_file).astype(np.uint64) * np.uint64(4096)
                         + np.uint64(_KB_FILE_BASE))
    start = rng.integers(0, 512, size=visits, dtype=np.uint64)
    k = np.arange(profile.run_len, dtype=np.uint64)
    offs = ((start[:, None] + k[None, :]) % np.uint64(512)) * np.uint64(8)
    return (page_va[:, None] + offs).ravel()


def kbuild_layout(profile: KbuildProfile, rng):
    """Where a process's hot pages are: random permutations of its heap and file pages."""
    return (rng.permutation((profile.heap_mib << 20) >> PAGE_SHIFT),
            rng.permutation((profile.file_mib << 20) >> PAGE_SHIFT))


#: Guest memory reads KVM makes per shadow-paging exit, beyond the guest page-table walk:
#: the emulator fetches the trapping instruction and writes the guest PTE
#: (x86_emulate_instruction / emulator_write_emulated in arch/x86/kvm/x86.c).
SHADOW_EXIT_EMULATOR_READS = 2
_HVA_BASE = 1 << 40              # where the VMM maps guest RAM (2 MiB aligned)


def shadow_exit_host_walks(cpu: CPU, host_thp: bool, profile: KbuildProfile, rng, touched_va,
                           n_exits: float, levels: int = 4) -> dict:
    """The host's own translation work on shadow-paging exits, scaled to ``n_exits``.

    On each exit KVM walks the guest's page table for the faulting address
    (FNAME(walk_addr_generic) in arch/x86/kvm/mmu/paging_tmpl.h reads one guest PTE per
    level) and emulates the trapped write (fetch the instruction, write the PTE), all
    through the host virtual address of guest memory.  Those reads are translated by the
    host's page tables: 2 MiB entries where host THP backs guest RAM, 4 KiB otherwise.
    This is how host THP matters under shadow paging even when the guest uses 4 KiB
    pages.  The guest's page-table pages (one per 2 MiB of the process's touched
    addresses, one per GiB above, one per 512 GiB, one root) and its text page lie at
    random guest-physical pages of ``profile.guest_mem_mib``.

    Simplification: the guest's accesses between two exits are taken to evict the
    host's translations (the TLB and walk caches are flushed before each simulated
    exit); the host's page-table lines stay in the data-cache model.
    """
    host = MMU(cpu, mode="native", levels=levels)
    host.map(default_guest_huge=bool(host_thp))       # all of guest RAM, as the VMM maps it
    va = np.unique(np.asarray(touched_va, dtype=np.uint64) >> np.uint64(PAGE_SHIFT)) << np.uint64(PAGE_SHIFT)
    guest_pages = (int(profile.guest_mem_mib) << 20) >> PAGE_SHIFT
    tables = {}

    def table_page(key):
        if key not in tables:
            tables[key] = int(rng.integers(0, guest_pages))
        return tables[key]

    text_page = table_page(("text",))
    n = int(min(profile.exit_sample, max(1, int(n_exits))))
    picks = va[rng.integers(0, va.size, size=n)] if va.size else np.zeros(n, dtype=np.uint64)
    total = {}
    for addr in picks.tolist():
        hva = []
        for level in range(levels, 0, -1):            # root first, then down to the PTE page
            shift = PAGE_SHIFT + 9 * level
            index = (addr >> (shift - 9)) & 511       # the entry read in this table
            page = table_page((level, addr >> shift)) if level < levels else table_page(("root",))
            hva.append(_HVA_BASE + (page << PAGE_SHIFT) + index * 8)
        hva.append(_HVA_BASE + (text_page << PAGE_SHIFT) + (addr & 0xFC0))   # instruction fetch
        hva.append(hva[levels - 1])                                          # the emulated PTE write
        host.flush_all()
        for k, v in host.run(np.array(hva, dtype=np.uint64)).items():
            total[k] = total.get(k, 0) + v
    scale = float(n_exits) / n
    return {"exit_walk_refs": total.get("walk_refs", 0) * scale,
            "exit_walk_refs_cached": total.get("walk_refs_cached", 0) * scale,
            "exit_stlb_hits": total.get("dtlb_load_misses.stlb_hit", 0) * scale}


def simulate(cpu: CPU | str, paging: str, guest_thp: bool, host_thp: bool,
             profile: KbuildProfile = KbuildProfile(), levels: int = 4) -> dict:
    """Run the kernel-build-like workload on one configuration.

    ``paging`` is "bare metal", "EPT" (nested) or "shadow".  Returns counters summed over
    processes, the TLB ones scaled to ``profile.real_accesses`` per process, plus
    ``faults_4k``, ``faults_2m``, ``vmexits`` and ``virtualized``."""
    modes = {"bare metal": "native", "native": "native", "EPT": "nested", "nested": "nested",
             "shadow": "shadow"}
    if paging not in modes:
        raise ValueError(f"paging {paging!r} not one of {sorted(modes)}")
    mode = modes[paging]
    mmu = MMU(cpu, mode=mode, levels=levels)
    rng = np.random.default_rng(profile.seed)
    exit_rng = np.random.default_rng([profile.seed, 1])
    heap_regions = (profile.heap_mib << 20) >> PMD_SHIFT
    n_regions = ((_KB_FILE_BASE - _KB_HEAP_BASE) >> PMD_SHIFT) + ((profile.file_mib << 20) >> PMD_SHIFT) + 1
    guest_huge = np.zeros(n_regions, dtype=bool)
    guest_huge[:heap_regions] = guest_thp           # file-backed regions stay 4 KiB
    host_huge = np.full(n_regions, host_thp, dtype=bool)
    total: dict = {}
    for _ in range(profile.processes):
        mmu.map(guest_huge=guest_huge, base_va=_KB_HEAP_BASE, host_huge=host_huge,
                default_host_huge=host_thp, host_pt_huge=host_thp)
        layout = kbuild_layout(profile, rng)
        warm = kbuild_trace(profile, rng, layout)
        mmu.run(warm)                                # compulsory misses: not scaled
        sample = kbuild_trace(profile, rng, layout)
        c = mmu.run(sample)
        scale = profile.real_accesses / sample.size
        c = {k: v * scale for k, v in c.items() if not k.startswith(("nr_tlb", "flush", "entries"))}
        touched = np.concatenate([warm, sample])
        in_heap = touched < np.uint64(_KB_FILE_BASE)
        heap_units = np.unique(touched[in_heap] >> np.uint64(PMD_SHIFT if guest_thp else PAGE_SHIFT)).size
        file_pages = np.unique(touched[~in_heap] >> np.uint64(PAGE_SHIFT)).size
        c["faults_2m"] = heap_units if guest_thp else 0
        c["faults_4k"] = file_pages + (0 if guest_thp else heap_units)
        c["vmexits"] = ((c["faults_2m"] + c["faults_4k"]) * profile.exits_per_fault
                        + profile.other_exits) if mode == "shadow" else 0
        if mode == "shadow":
            # its own random stream, so that every mode runs the same guest accesses
            c.update(shadow_exit_host_walks(mmu.cpu, host_thp, profile, exit_rng, touched, c["vmexits"],
                                            levels=mmu.host_levels))
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
        mmu.flush_all()                              # process exit / context switch
    total["virtualized"] = mode != "native"
    total["cpu"] = mmu.cpu.name
    return total


def a1_grid(cpu: CPU | str = "nehalem", profile: KbuildProfile = KbuildProfile()) -> pd.DataFrame:
    """Counters of the eight A1 configurations, one row each (no cost model yet)."""
    rows = []
    for r in ARCANGELI_2010.itertuples():
        c = simulate(cpu, r.paging, r.guest_thp == "always", r.host_thp == "always", profile)
        rows.append({"paging": r.paging, "guest_thp": r.guest_thp, "host_thp": r.host_thp,
                     "published_slowdown_pct": r.published_slowdown_pct, **c})
    df = pd.DataFrame(rows)
    num = df.select_dtypes("number").columns
    df[num] = df[num].fillna(0)          # counters a mode does not have (exit walks) are 0
    return df


def slowdowns(grid: pd.DataFrame, cm: RuntimeModel) -> np.ndarray:
    """Slowdown (%) of each row of ``grid`` against its first row."""
    t = np.array([cm.time_ns(row) for row in grid.to_dict("records")])
    return 100.0 * (t / t[0] - 1.0)


def _row(grid, key):
    keys = list(zip(grid.paging, grid.guest_thp, grid.host_thp))
    return keys.index(tuple(key))


def a1_fit(grid: pd.DataFrame, base: RuntimeModel = COSTS_2010, fit_rows: dict = A1_FIT_ROWS) -> RuntimeModel:
    """Calibrate each parameter of ``fit_rows`` (default: ``walk_ref_ns`` on bare metal
    THP=never, ``virt_overhead`` on EPT always/always, ``vmexit_ns`` on shadow
    always/always) so that its row's simulated slowdown equals the published one; the
    other rows of the table are then predictions.  Each slowdown is linear in its
    parameter, so each is solved exactly, in the order given.
    """
    recs = grid.to_dict("records")
    ref = recs[_row(grid, ("bare metal", "always", "-"))]
    cm = base
    for param, key in fit_rows.items():
        i = _row(grid, key)
        row = recs[i]
        want = 1.0 + grid.loc[i, "published_slowdown_pct"] / 100.0
        # want * T_ref(p) = T_row(p), both linear in p
        c0, c1 = dataclasses.replace(cm, **{param: 0.0}), dataclasses.replace(cm, **{param: 1.0})
        r0, r1, w0, w1 = c0.time_ns(ref), c1.time_ns(ref), c0.time_ns(row), c1.time_ns(row)
        denom = (w1 - w0) - want * (r1 - r0)
        if denom == 0:
            raise ValueError(f"cannot fit {param} on {key}: the row does not depend on it")
        p = (want * r0 - w0) / denom
        if not math.isfinite(p) or p < 0:
            raise ValueError(f"fitting {param} on {key} gave {p:.4g} < 0: the model cannot "
                             f"reach the published slowdown with this workload profile")
        cm = dataclasses.replace(cm, **{param: p})
    return cm


def a1_table(grid: pd.DataFrame, cm: RuntimeModel, fit_rows: dict = A1_FIT_ROWS) -> pd.DataFrame:
    """Simulated beside published slowdowns, which rows were fitted, and the ranks."""
    out = grid[["paging", "guest_thp", "host_thp", "published_slowdown_pct"]].copy()
    out["simulated_slowdown_pct"] = slowdowns(grid, cm)
    fitted = {tuple(k) for k in fit_rows.values()}
    out["role"] = ["reference" if (p, g, h) == ("bare metal", "always", "-") else
                   ("fitted" if (p, g, h) in fitted else "predicted")
                   for p, g, h in zip(out.paging, out.guest_thp, out.host_thp)]
    out["published_rank"] = out["published_slowdown_pct"].rank(method="min").astype(int)
    out["simulated_rank"] = out["simulated_slowdown_pct"].round(3).rank(method="min").astype(int)
    out["walks_per_kaccess"] = 1000.0 * grid["dtlb_load_misses.walk_completed"] / grid["accesses"]
    out["refs_per_walk"] = grid["walk_refs"] / grid["dtlb_load_misses.walk_completed"].clip(lower=1)
    return out


def break_even_tlb(trace, cpu: CPU | str = "skylake", mode: str = "native", guest_thp_frac: float = 1.0,
                  host_thp: bool = True, cm: RuntimeModel | None = None, max_scale: int = 1024,
                  base_va: int | None = None, warm: bool = True) -> dict:
    """How much larger must the TLBs be, with 4 KiB pages only, to make translation as
    cheap as THP does on the stock CPU?

    Runs ``trace`` with THP (every region huge, or the first ``guest_thp_frac`` of them)
    on ``cpu``, then 4 KiB-only on CPUs whose TLBs (both levels) have 1, 2, 4, ... times
    the sets (``cpu.better(tlb_scale=...)``), until
    the translation time (stlb hits + walk references) is no larger.  With ``warm`` the
    trace runs once to warm the TLBs and is measured on a second pass (steady state:
    a short trace would otherwise be dominated by compulsory misses that no TLB size
    removes).  Returns the scale found (None when even ``max_scale`` is not enough)
    and the curve.
    """
    cpu = preset(cpu) if isinstance(cpu, str) else cpu
    cm = cm or RuntimeModel.for_cpu(cpu)
    trace = np.asarray(trace, dtype=np.uint64)
    lo = int(trace.min()) & ~(HPAGE_PMD_SIZE - 1) if base_va is None else base_va
    n_regions = int((int(trace.max()) - lo) >> PMD_SHIFT) + 1
    huge = np.zeros(n_regions, dtype=bool)
    huge[: int(round(guest_thp_frac * n_regions))] = True

    def translation_ns(c, huge_arr, cpu_):
        mmu = MMU(cpu_, mode=mode)
        mmu.map(guest_huge=huge_arr, base_va=lo, host_huge=np.full(n_regions, host_thp),
                default_host_huge=host_thp, host_pt_huge=host_thp)
        if warm:
            mmu.run(trace)
        k = mmu.run(trace)
        return cm.translation_ns(k), k

    target, _ = translation_ns(None, huge, cpu)
    rows, found, scale = [], None, 1
    while scale <= max_scale:
        better = cpu.better(tlb_scale=scale)
        t, k = translation_ns(None, np.zeros(n_regions, dtype=bool), better)
        rows.append({"tlb_scale": scale, "l2_entries": better.l2_entries(), "translation_ns": t,
                     "stlb_hits": k["dtlb_load_misses.stlb_hit"],
                     "walks": k["dtlb_load_misses.walk_completed"]})
        if t <= target and found is None:
            found = scale
            break
        scale *= 2
    return {"thp_translation_ns": target, "break_even_tlb_scale": found,
            "break_even_l2_entries": None if found is None else cpu.better(tlb_scale=found).l2_entries(),
            "curve": pd.DataFrame(rows)}


# ---------------------------------------------------------------------------
# Exploring: one configuration against the bare-metal THP reference (widgets call this)
# ---------------------------------------------------------------------------

def explore(cpu: CPU | str = "nehalem", paging: str = "EPT", guest_thp: bool = False,
            host_thp: bool = True, tlb_scale: float = 1.0, pwc_scale: float = 1.0,
            walk_speedup: float = 1.0, cm: RuntimeModel | None = None,
            profile: KbuildProfile = KbuildProfile(processes=2, sample_accesses=150_000)) -> pd.DataFrame:
    """Slowdown of one configuration, on the stock and on the "better" CPU, against bare
    metal with THP on the stock CPU: one row per CPU, tidy.

    ``cm`` is the cost model (default: :data:`COSTS_2010`, or pass one fitted by
    :func:`a1_fit`); the better CPU's walk references are ``walk_speedup`` times faster.
    """
    base_cpu = preset(cpu) if isinstance(cpu, str) else cpu
    cm = cm or COSTS_2010
    better = base_cpu.better(tlb_scale=tlb_scale, pwc_scale=pwc_scale, walk_speedup=walk_speedup,
                             nested_scale=pwc_scale)
    ref = simulate(base_cpu, "bare metal", True, True, profile)
    t_ref = cm.time_ns(ref)
    rows = []
    for label, c, m in (("stock", base_cpu, cm),
                        ("better", better, dataclasses.replace(
                            cm, walk_ref_ns=cm.walk_ref_ns / walk_speedup,
                            walk_ref_cached_ns=cm.walk_ref_cached_ns / walk_speedup))):
        k = simulate(c, paging, guest_thp, host_thp, profile)
        t = m.time_ns(k)
        rows.append({"cpu": label, "paging": paging, "guest_thp": guest_thp, "host_thp": host_thp,
                     "l2_entries": c.l2_entries(),
                     "walks_per_kaccess": 1000 * k["dtlb_load_misses.walk_completed"] / k["accesses"],
                     "refs_per_walk": k["walk_refs"] / max(1.0, k["dtlb_load_misses.walk_completed"]),
                     "translation_share_pct": 100 * m.translation_ns(k) / t,
                     "slowdown_pct": 100 * (t / t_ref - 1)})
    return pd.DataFrame(rows)


def plot_a1(table: pd.DataFrame, ax=None):
    """Published vs simulated slowdowns of the A1 grid, side by side (log scale)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    labels = [f"{p}\n{g}/{h}" for p, g, h in zip(table.paging, table.guest_thp, table.host_thp)]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.published_slowdown_pct + 1, 0.4, label="published (Arcangeli 2010)")
    bars = ax.bar(x + 0.2, table.simulated_slowdown_pct + 1, 0.4, label="simulated (hatched: fitted)")
    if "role" in table:
        for b, role in zip(bars, table.role):
            if role == "fitted":
                b.set_hatch("//")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("slowdown vs bare metal THP, % (+1, log)")
    ax.legend(fontsize=8)
    return ax


def dashboard(cm: RuntimeModel | None = None, profile: KbuildProfile | None = None):
    """ipywidgets controls over :func:`explore`: TLB size, walk caches, walk speed, guest
    and host THP, nested or shadow.  Returns the widget box; ``box.refresh()`` reruns and
    ``box.last_result`` holds the last DataFrame (tests drive it headlessly)."""
    import ipywidgets as W
    from IPython.display import display

    controls = {
        "cpu": W.Dropdown(options=sorted(PRESETS), value="nehalem", description="CPU"),
        "paging": W.ToggleButtons(options=["bare metal", "EPT", "shadow"], value="EPT"),
        "guest_thp": W.Checkbox(value=False, description="guest THP"),
        "host_thp": W.Checkbox(value=True, description="host THP"),
        "tlb_scale": W.FloatLogSlider(value=1, base=2, min=0, max=6, step=1, description="TLB x",
                                      continuous_update=False),
        "pwc_scale": W.FloatLogSlider(value=1, base=2, min=-2, max=4, step=1, description="PWC x",
                                      continuous_update=False),
        "walk_speedup": W.FloatSlider(value=1, min=0.5, max=4, step=0.5, description="walk speedup",
                                      continuous_update=False),
    }
    out = W.Output()
    box = W.VBox([W.HBox([controls["cpu"], controls["paging"]]),
                  W.HBox([controls["guest_thp"], controls["host_thp"]]),
                  W.HBox([controls["tlb_scale"], controls["pwc_scale"], controls["walk_speedup"]]),
                  out])
    kwargs = {} if profile is None else {"profile": profile}

    def refresh(*_):
        df = explore(**{k: c.value for k, c in controls.items()}, cm=cm, **kwargs)
        box.last_result = df
        with out:
            out.clear_output(wait=True)
            display(df.round(2))
        return df

    for c in controls.values():
        c.observe(refresh, "value")
    box.controls = controls
    box.refresh = refresh
    box.last_result = None
    return box
