"""min_free_kbytes, the zone watermarks and lowmem_reserve, as Linux 6.18 computes them.

The page allocator keeps free pages above per-zone watermarks (``mm/page_alloc.c``):

* ``calculate_min_free_kbytes()``: ``min_free_kbytes = clamp(int_sqrt(16 * lowmem_kB),
  128, 262144)`` with ``lowmem_kB = nr_free_buffer_pages() * 4``;
  ``nr_free_buffer_pages()`` sums, over the zones up to ZONE_NORMAL,
  ``managed - high watermark`` (at boot the watermarks are still 0).
* ``set_recommended_min_free_kbytes()`` (``mm/khugepaged.c``, while THP is enabled):
  at least ``pageblock_nr_pages * nr_zones * (2 + MIGRATE_PCPTYPES^2)`` pages, ``nr_zones``
  counting the populated zones up to ZONE_NORMAL, but at most 5% of
  ``nr_free_buffer_pages()``; with THP off it recalculates ``calculate_min_free_kbytes``.
* ``__setup_per_zone_wmarks()``: ``pages_min = min_free_kbytes / 4`` shared among the
  lowmem zones (not ZONE_MOVABLE) in proportion to their managed pages (rounded down);
  ZONE_MOVABLE gets ``clamp(managed / 1024, SWAP_CLUSTER_MAX, 128)``; then
  ``step = max(zone_min / 4, managed * watermark_scale_factor / 10000)`` and
  ``low = min + step``, ``high = low + step``, ``promo = high + step``.
* ``setup_per_zone_lowmem_reserve()``: zone i keeps ``lowmem_reserve[j] = (managed pages of
  zones i+1..j) / sysctl_lowmem_reserve_ratio[i]`` away from allocations that could have
  used a higher zone j (ratios 256, 256, 32 for DMA, DMA32, Normal; 0 for Movable:
  none).  /proc/zoneinfo prints it as ``protection: (...)``.

:func:`zone_watermarks` does all of it for a zone layout (``test_procfs_watermarks``
checks it against every zone of the captures in ``data/procfs``); :func:`x86_64_zones`
gives the layout of an x86-64 machine of a given size, and :func:`pooled_watermarks` the
watermarks of the one zone the simulator keeps.
"""
from __future__ import annotations

import math

ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable", "Device")        # x86-64, no HIGHMEM
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
# mm/page_alloc.c: sysctl_lowmem_reserve_ratio[] (Device: 0, not initialised)
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0, 0)
WATERMARK_SCALE_FACTOR = 10          # mm/page_alloc.c: watermark_scale_factor default
SWAP_CLUSTER_MAX = 32
MIGRATE_PCPTYPES = 3
DMA_PAGES = 4096                     # ZONE_DMA: the first 16 MiB (MAX_DMA_PFN)
BELOW_4G_PAGES = 786432              # RAM below the 3..4 GiB MMIO gap (a Firecracker guest)


def x86_64_zones(nr_pages: int) -> dict:
    """Managed pages per zone of an x86-64 machine with ``nr_pages`` 4 KiB pages of RAM.

    ZONE_DMA holds the first 16 MiB, ZONE_DMA32 the rest of the RAM below 4 GiB, of which
    there are 3 GiB (the MMIO gap from 3 to 4 GiB, as Firecracker lays out a guest: the
    machine of ``data/procfs``), ZONE_NORMAL what lies above 4 GiB.  Simplified: every
    page is managed (the kernel keeps some of DMA and the memory map for itself:
    3840 of DMA's 4095 pages and 1.2% of DMA32 on that machine).
    """
    n = int(nr_pages)
    if n < 0:
        raise ValueError(f"nr_pages {nr_pages!r} must be >= 0")
    dma = min(n, DMA_PAGES)
    dma32 = max(0, min(n, BELOW_4G_PAGES) - DMA_PAGES)
    normal = max(0, n - BELOW_4G_PAGES)
    return {"DMA": dma, "DMA32": dma32, "Normal": normal, "Movable": 0, "Device": 0}


def _managed(zones) -> list:
    if not isinstance(zones, dict):
        raise TypeError(f"zones must be a dict of zone name -> managed pages, got {type(zones).__name__}")
    unknown = [z for z in zones if z not in ZONE_NAMES]
    if unknown:
        raise ValueError(f"unknown zones {unknown}; allowed: {', '.join(ZONE_NAMES)}")
    out = []
    for name in ZONE_NAMES:
        v = zones.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"managed pages of zone {name} must be an int >= 0, got {v!r}")
        out.append(v)
    return out


def _nr_free_buffer_pages(managed, high) -> int:
    # mm/page_alloc.c: nr_free_buffer_pages() -> nr_free_zone_pages(gfp_zone(GFP_USER)):
    # the zones up to ZONE_NORMAL, managed pages above the high watermark
    return sum(max(managed[i] - high[i], 0) for i in range(ZONE_NORMAL + 1))


def calculate_min_free_kbytes(managed, high=None) -> int:
    """mm/page_alloc.c: calculate_min_free_kbytes()."""
    high = high or [0] * len(ZONE_NAMES)
    lowmem_kbytes = _nr_free_buffer_pages(managed, high) * 4
    return min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)


def setup_per_zone_wmarks(managed, min_free_kbytes, watermark_scale_factor=WATERMARK_SCALE_FACTOR) -> list:
    """mm/page_alloc.c: __setup_per_zone_wmarks(): [{min, low, high, promo}] per zone."""
    pages_min = min_free_kbytes >> 2
    lowmem_pages = sum(m for i, m in enumerate(managed) if i != ZONE_MOVABLE)
    out = []
    for i, m in enumerate(managed):
        tmp = pages_min * m // lowmem_pages if lowmem_pages else 0
        if i == ZONE_MOVABLE:
            wmin = min(max(m // 1024, SWAP_CLUSTER_MAX), 128)
        else:
            wmin = tmp
        step = max(tmp >> 2, m * watermark_scale_factor // 10000)        # mult_frac()
        out.append({"min": wmin, "low": wmin + step, "high": wmin + 2 * step, "promo": wmin + 3 * step})
    return out


def setup_per_zone_lowmem_reserve(managed) -> list:
    """mm/page_alloc.c: setup_per_zone_lowmem_reserve(): lowmem_reserve[] per zone."""
    n = len(managed)
    out = []
    for i in range(n):
        reserve = [0] * n
        ratio = LOWMEM_RESERVE_RATIO[i]
        if i < n - 1 and ratio and managed[i]:
            upper = 0
            for j in range(i + 1, n):
                upper += managed[j]
                reserve[j] = upper // ratio
        out.append(tuple(reserve))
    return out


def zone_watermarks(zones: dict, *, thp_enabled=True, pageblock_order=9, min_free_kbytes=None,
                    present: dict | None = None) -> dict:
    """The kernel's watermarks for a zone layout, as after boot.

    ``zones``: managed pages per zone name (``ZONE_NAMES``); ``present``: present pages
    per zone (default: the managed ones; only "populated" is read from it).
    ``min_free_kbytes``: a value written to /proc/sys/vm/min_free_kbytes (the
    computation is skipped), else the boot sequence: ``init_per_zone_wmark_min()``
    (calculate_min_free_kbytes with no watermarks yet, then the watermarks), then, with
    THP enabled, khugepaged's ``set_recommended_min_free_kbytes()``.

    Returns ``{"min_free_kbytes": int, "zones": {name: {"managed", "min", "low",
    "high", "promo", "protection"}}}``.
    """
    managed = _managed(zones)
    pres = _managed(present) if present is not None else managed
    if not isinstance(pageblock_order, int) or not 0 <= pageblock_order <= 20:
        raise ValueError(f"pageblock_order {pageblock_order!r} must be an int in 0..20")
    if min_free_kbytes is None:
        mfk = calculate_min_free_kbytes(managed)
        if thp_enabled:
            high = [w["high"] for w in setup_per_zone_wmarks(managed, mfk)]
            # mm/khugepaged.c: set_recommended_min_free_kbytes(); for_each_populated_zone
            # up to gfp_zone(GFP_USER) = ZONE_NORMAL
            nr_zones = sum(1 for i in range(ZONE_NORMAL + 1) if pres[i] > 0)
            pb = 1 << pageblock_order
            recommended = pb * nr_zones * 2 + pb * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
            recommended = min(recommended, _nr_free_buffer_pages(managed, high) // 20) * 4
            mfk = max(mfk, recommended)
    else:
        if isinstance(min_free_kbytes, bool) or not isinstance(min_free_kbytes, int) or min_free_kbytes < 0:
            raise ValueError(f"min_free_kbytes {min_free_kbytes!r} must be an int >= 0")
        mfk = min_free_kbytes
    wm = setup_per_zone_wmarks(managed, mfk)
    reserve = setup_per_zone_lowmem_reserve(managed)
    return {"min_free_kbytes": mfk,
            "zones": {name: {"managed": managed[i], **wm[i], "protection": reserve[i]}
                      for i, name in enumerate(ZONE_NAMES)}}


def pooled_watermarks(layout: dict, highest_zoneidx: int = ZONE_MOVABLE) -> dict:
    """The watermarks of one zone that pools every zone of ``layout`` (a
    :func:`zone_watermarks` result), for allocations that may use zones up to
    ``highest_zoneidx`` (user memory, GFP_HIGHUSER_MOVABLE: ZONE_MOVABLE).

    The allocator walks the zonelist and takes a zone whose free pages exceed its mark
    plus ``lowmem_reserve[highest_zoneidx]`` (``__zone_watermark_ok``); it fails a mark
    only when every zone does.  So a pool of all the zones fails a mark when its free
    pages are at most the sum, over the populated zones, of the zone's mark plus its
    reserve, each no more than the zone's managed pages (a zone whose reserve exceeds
    its size, like DMA on a large machine, is never used for user memory: all of it
    counts).  A simplification: kswapd's "balanced" (any one zone above high) and the
    fallback order between zones are not modelled, only the totals.
    """
    out = {}
    for mark in ("min", "low", "high", "promo"):
        total = 0
        for z in layout["zones"].values():
            if z["managed"] == 0:
                continue
            total += min(z["managed"], z[mark] + z["protection"][highest_zoneidx])
        out[mark] = total
    return out
