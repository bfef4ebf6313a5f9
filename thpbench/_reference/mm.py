"""Pure-Python reference for the THP decisions of the Cython core (_mm.pxi).

Deliberately simple and slow; used by the differential tests and as readable
documentation of two decisions:

* :func:`scan_pmd` -- khugepaged's / MADV_COLLAPSE's verdict on one PTE table
  (``hpage_collapse_scan_pmd`` in mm/khugepaged.c), and :func:`collapse_content`,
  what the new THP holds after ``collapse_huge_page``;
* :func:`split_folio` -- what ``split_huge_page_to_order`` leaves behind for an
  anonymous PMD-order folio (mm/huge_memory.c: __folio_split, remap_page with
  RMP_USE_SHARED_ZEROPAGE).
"""
from __future__ import annotations

from dataclasses import dataclass

HPAGE_PMD_NR = 512


@dataclass(frozen=True)
class Pte:
    """One PTE as the scan sees it."""
    kind: str            # "none", "zero" (the shared zero page), "swap", "present"
    write: bool = False
    young: bool = False
    shared: bool = False  # the page is mapped more than once (page_mapcount() > 1)
    value: int = 0        # the page's content (present or swapped)


def scan_pmd(ptes, *, max_ptes_none=511, max_ptes_swap=64, max_ptes_shared=256, is_khugepaged=True):
    """hpage_collapse_scan_pmd() over a PTE table.

    Returns a dict: ``result`` (the scan_result name), the counts at the point the
    scan stopped (``none_or_zero``, ``unmapped``, ``shared``, ``referenced``),
    ``writable``, and ``exceeded`` (the thp_scan_exceed_* counter bumped, or None).
    MADV_COLLAPSE (is_khugepaged=False) ignores the three limits and the young rule.
    """
    assert len(ptes) == HPAGE_PMD_NR
    none_or_zero = unmapped = shared = referenced = 0
    writable = False
    for pte in ptes:
        if pte.kind == "swap":
            unmapped += 1
            if not is_khugepaged or unmapped <= max_ptes_swap:
                continue
            return dict(result="SCAN_EXCEED_SWAP_PTE", none_or_zero=none_or_zero, unmapped=unmapped, shared=shared,
                        referenced=referenced, writable=writable, exceeded="thp_scan_exceed_swap_pte")
        if pte.kind in ("none", "zero"):
            none_or_zero += 1
            if none_or_zero <= max_ptes_none or not is_khugepaged:
                continue
            return dict(result="SCAN_EXCEED_NONE_PTE", none_or_zero=none_or_zero, unmapped=unmapped, shared=shared,
                        referenced=referenced, writable=writable, exceeded="thp_scan_exceed_none_pte")
        if pte.write:
            writable = True
        if pte.shared:
            shared += 1
            if is_khugepaged and shared > max_ptes_shared:
                return dict(result="SCAN_EXCEED_SHARED_PTE", none_or_zero=none_or_zero, unmapped=unmapped,
                            shared=shared, referenced=referenced, writable=writable,
                            exceeded="thp_scan_exceed_share_pte")
        if is_khugepaged and pte.young:
            referenced += 1
    if not writable:
        result = "SCAN_PAGE_RO"
    elif is_khugepaged and (referenced == 0 or (unmapped and referenced < HPAGE_PMD_NR // 2)):
        result = "SCAN_LACK_REFERENCED_PAGE"
    else:
        result = "SCAN_SUCCEED"
    return dict(result=result, none_or_zero=none_or_zero, unmapped=unmapped, shared=shared, referenced=referenced,
                writable=writable, exceeded=None)


def collapse_content(ptes):
    """The content of the collapsed THP: present and swapped pages copied, the rest zero."""
    return [p.value if p.kind in ("present", "swap") else 0 for p in ptes]


def split_folio(mapped, content, new_order):
    """split_huge_page_to_order() of a PMD-order anon folio mapped by PTEs of one mm.

    ``mapped[i]``: page i is mapped; ``content[i]``: its value.  Returns a dict:
    ``ok`` (False for new_order 1 or >= 9: -EINVAL), ``page_state`` per page ("freed",
    "mapped", "zero": remapped to the shared zero page and freed), ``orders`` (the
    folio order each still-mapped page belongs to), ``freed_pages``, ``rss_pages``.
    """
    n = len(mapped)
    assert n == HPAGE_PMD_NR
    if new_order == 1 or not 0 <= new_order < 9:
        return dict(ok=False)
    step = 1 << new_order
    state = ["mapped"] * n
    for h in range(0, n, step):
        if not any(mapped[h:h + step]):
            for i in range(h, h + step):
                state[i] = "freed"
        else:
            for i in range(h, h + step):
                if not mapped[i]:
                    state[i] = "unmapped-in-folio"    # stays allocated with its folio
                elif new_order == 0 and content[i] == 0:
                    state[i] = "zero"
    freed = sum(s in ("freed", "zero") for s in state)
    rss = sum(s == "mapped" for s in state)
    orders = [new_order if s == "mapped" else -1 for s in state]
    return dict(ok=True, page_state=state, orders=orders, freed_pages=freed, rss_pages=rss)
