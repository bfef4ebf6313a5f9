"""Differential tests: the core's collapse decision and split results against the
pure-Python reference (thpbench._reference.mm) on random page-table states."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from thpbench._reference import mm as ref
from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel.kernel import Kernel, SCAN_RESULT_NAMES

pytestmark = pytest.mark.differential

KINDS = ("none", "zero", "present", "swap")


@st.composite
def pte_tables(draw):
    """A PTE table built by construction, with what the scan should see for each page."""
    n = 512
    # runs keep the tables realistic (mostly-full, mostly-empty, mixed)
    weights = draw(st.lists(st.integers(0, 6), min_size=4, max_size=4))
    if sum(weights) == 0:
        weights = [1, 1, 1, 1]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kinds = rng.choice(4, size=n, p=np.array(weights) / sum(weights))
    young = rng.random(n) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    fork = draw(st.booleans())
    cow = rng.random(n) < draw(st.sampled_from([0.0, 0.5, 0.9]))
    limits = dict(max_ptes_none=draw(st.sampled_from([0, 64, 256, 511])),
                  max_ptes_swap=draw(st.sampled_from([0, 8, 64, 511])),
                  max_ptes_shared=draw(st.sampled_from([0, 64, 256, 511])))
    return kinds, young, fork, cow, limits


def build(kinds, young, fork, cow, limits):
    k = Kernel(64 << 20, thp={"enabled": "never", "khugepaged/max_ptes_none": limits["max_ptes_none"],
                              "khugepaged/max_ptes_swap": limits["max_ptes_swap"],
                              "khugepaged/max_ptes_shared": limits["max_ptes_shared"]})
    p = k.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    addrs = a + np.arange(512) * PAGE_SIZE
    values = (np.arange(512) + 0xdead0000).astype(np.uint64)
    kinds = np.asarray(kinds)
    wr = (kinds == 2) | (kinds == 3)
    p.touch_pages(addrs[wr], write=True, values=values[wr])
    p.touch_pages(addrs[kinds == 1], write=False)
    for i in np.nonzero(kinds == 3)[0]:
        p.pageout(int(addrs[i]), PAGE_SIZE)
    k.check()
    target = p
    ptes = []
    if fork:
        target = p.fork()
        # the child's entries start old; write some present pages (CoW), young some others
        cw = cow & (kinds == 2)
        target.touch_pages(addrs[cw], write=True, values=values[cw])
        yg = young & ((kinds == 2) | (kinds == 1)) & ~cw
        target.touch_pages(addrs[yg], write=False)
        for i in range(512):
            kind = KINDS[kinds[i]]
            if kind == "present":
                ptes.append(ref.Pte("present", write=bool(cw[i]), young=bool(cw[i] or yg[i]), shared=not cw[i],
                                    value=int(values[i])))
            else:
                ptes.append(ref.Pte(kind, young=bool(kind == "zero" and yg[i]), value=int(values[i])))
    else:
        p.age(a, HPAGE_PMD_SIZE)
        yg = young & ((kinds == 2) | (kinds == 1))
        p.touch_pages(addrs[yg], write=False)
        for i in range(512):
            kind = KINDS[kinds[i]]
            ptes.append(ref.Pte(kind, write=kind == "present", young=bool(yg[i]), value=int(values[i])))
    k.check()
    return k, target, a, ptes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pte_tables(), st.booleans())
def test_collapse_decision_matches_reference(table, is_khugepaged):
    kinds, young, fork, cow, limits = table
    k, p, a, ptes = build(kinds, young, fork, cow, limits)
    expect = ref.scan_pmd(ptes, is_khugepaged=is_khugepaged, **limits)
    if not (kinds != 0).any():
        # no PTE table at all (nothing was ever touched): SCAN_PMD_NONE before any scan
        expect = dict(expect, result="SCAN_PMD_NONE", exceeded=None)
    r, none_or_zero, unmapped, shared, referenced, writable = k.core.scan_pmd(p.pid, a >> 12, is_khugepaged)
    assert SCAN_RESULT_NAMES[r] == expect["result"]
    if expect["result"] != "SCAN_PMD_NONE":
        assert (none_or_zero, unmapped, shared, referenced, writable) == (
            expect["none_or_zero"], expect["unmapped"], expect["shared"], expect["referenced"], expect["writable"])
    # and the collapse itself: the THP holds what the reference says
    before = k.vmstat()
    if is_khugepaged:
        rc = k.core.collapse(p.pid, a >> 12, 0x3, True)
        k._after_op()
    else:
        rc = p.madvise(a, HPAGE_PMD_SIZE, "MADV_COLLAPSE")
    k.check()
    collapsed = p.check_huge(a, 1)
    assert collapsed == (expect["result"] == "SCAN_SUCCEED")
    if expect["exceeded"] and is_khugepaged:
        assert k.vmstat()[expect["exceeded"]] == before[expect["exceeded"]] + 1   # the collapse attempt
    if collapsed:
        vals, _ = p.peek(a + np.arange(512) * PAGE_SIZE)
        assert list(vals) == ref.collapse_content(ptes)


@st.composite
def split_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    frac = draw(st.sampled_from([0.0, 0.01, 0.5, 0.99]))
    unmapped = rng.random(512) < frac
    zero_frac = draw(st.sampled_from([0.0, 0.3, 1.0]))
    zero = rng.random(512) < zero_frac
    new_order = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8]))
    return unmapped, zero, new_order


@settings(max_examples=60, deadline=None)
@given(split_cases())
def test_split_results_match_reference(case):
    unmapped, zero, new_order = case
    k = Kernel(64 << 20, thp={"enabled": "always", "shrink_underused": 0})
    p = k.spawn()
    a = p.mmap(HPAGE_PMD_SIZE)
    addrs = a + np.arange(512) * PAGE_SIZE
    values = np.where(zero, 0, np.arange(512) + 0xbeef0000).astype(np.uint64)
    p.touch_pages(addrs, write=True, values=values)
    for i in np.nonzero(unmapped)[0]:
        p.madvise(int(addrs[i]), PAGE_SIZE, "MADV_DONTNEED")
    k.check()
    free0 = k.buddy.nr_free_pages
    expect = ref.split_folio(list(~unmapped), [int(v) for v in values], new_order)
    if unmapped.all():
        return        # the folio was freed with its last mapping; nothing to split
    n = k.split_huge_pages(p.pid, a, a + HPAGE_PMD_SIZE, new_order)
    k.check()
    if not expect["ok"]:
        assert n == 0
        return
    assert n == 1
    vals, kinds = p.peek(addrs)
    pfns, orders = p.folio_orders(a, HPAGE_PMD_SIZE)
    for i, s in enumerate(expect["page_state"]):
        if s == "mapped":
            assert kinds[i] == 1 and vals[i] == values[i] and orders[i] == new_order
        elif s == "zero":
            assert kinds[i] == 2
        else:
            assert kinds[i] == 0
    assert k.buddy.nr_free_pages - free0 == expect["freed_pages"]
    assert p.status()["RssAnon"] == 4 * expect["rss_pages"]
