"""The core's LRU / shrink_folio_list decisions against the pure-Python reference
(thpbench/_reference/reclaim.py) on small random states."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from thpbench._reference.reclaim import RefLru
from thpbench.units import PAGE_SIZE
from thpbench.kernel import Kernel

pytestmark = pytest.mark.differential

MiB = 1 << 20
PG_referenced, PG_active, PG_dirty, PG_reclaim = 0x01, 0x02, 0x04, 0x08


def build(data):
    swap = data.draw(st.sampled_from([0, 16 * MiB]), label="swap")
    k = Kernel(32 * MiB, thp={"enabled": "never"}, swap_bytes=swap)
    rc = k.reclaim.core
    n_anon = data.draw(st.integers(0, 24), label="n_anon")
    n_file = data.draw(st.integers(0, 24), label="n_file")
    if n_anon:
        p = k.spawn()
        a = p.mmap(n_anon * PAGE_SIZE)
        p.touch_range(a, n_anon * PAGE_SIZE)
        child = p.fork() if data.draw(st.booleans(), label="fork") else None
        pfns = p.folio_orders(a, n_anon * PAGE_SIZE)[0]
        for i in range(n_anon):
            if data.draw(st.booleans()):
                p.age(a + i * PAGE_SIZE, PAGE_SIZE)
            if child is not None and data.draw(st.booleans()):
                child.touch(a + i * PAGE_SIZE, write=False)     # a second young mapping
            if data.draw(st.booleans()):
                rc.set_referenced(int(pfns[i]), True)
    if n_file:
        f = k.page_cache.create("f", n_file * PAGE_SIZE)
        f.read()
        for i in range(n_file):
            what = data.draw(st.sampled_from(["once", "twice", "dirty", "mapped"]))
            off = i * PAGE_SIZE
            if what == "twice":
                f.read(off, PAGE_SIZE)
            elif what == "dirty":
                f.write(off, np.array([i + 99], np.uint64))
            elif what == "mapped":
                f.mmap(off, PAGE_SIZE)          # mapped, its accessed bit set
        g = k.page_cache.create("g", n_file * PAGE_SIZE)
        for i in range(n_file):
            if data.draw(st.booleans()):
                g.write(i * PAGE_SIZE, np.array([i + 7], np.uint64))   # dirty, inactive
        if data.draw(st.booleans(), label="prepass"):
            # a direct-reclaim pass marks dirty pages PG_reclaim (and activates them)
            for _ in range(2):     # the first meets PG_referenced from the write
                rc.shrink_list(2, data.draw(st.integers(0, 2 * n_file)), True, True, True, False)
            # and back to the inactive list (shrink_active_list), PG_reclaim kept
            rc.shrink_list(3, data.draw(st.integers(0, 2 * n_file)), True, True, True, False)
    k.check()
    return k, rc


def snapshot(rc):
    lists = []
    for L in range(4):
        lists.append([{"pfn": pfn, "file": L >= 2, "referenced": bool(pg & PG_referenced),
                       "dirty": bool(pg & PG_dirty), "reclaim": bool(pg & PG_reclaim),
                       "young": rc.folio_young(pfn)} for pfn, pg in rc.lru_list(L)])
    return lists


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_shrink_list_matches_reference(data):
    k, rc = build(data)
    lists = snapshot(rc)
    L = data.draw(st.integers(0, 3), label="list")
    n = data.draw(st.integers(0, 50), label="nr_to_scan")
    may_writepage = data.draw(st.booleans(), label="may_writepage")
    may_swap = data.draw(st.booleans(), label="may_swap")
    is_kswapd = data.draw(st.booleans(), label="is_kswapd")
    ref = RefLru(lists, k.core.nr_swap_free).shrink_list(L, n, may_writepage=may_writepage,
                                                          may_swap=may_swap, is_kswapd=is_kswapd)
    s0, c0 = rc.stats(), k.core.stats()
    free0 = k.buddy.nr_free_pages
    rc.shrink_list(L, n, may_writepage, True, may_swap, is_kswapd)
    k.check()
    s1, c1 = rc.stats(), k.core.stats()
    for M in range(4):
        got = rc.lru_list(M)
        assert [p for p, _ in got] == [f["pfn"] for f in ref.lists[M]], f"list {M}"
        for (pfn, pg), f in zip(got, ref.lists[M]):
            assert bool(pg & PG_referenced) == f["referenced"], pfn
            assert bool(pg & PG_dirty) == f["dirty"], pfn
            assert bool(pg & PG_reclaim) == f["reclaim"], pfn
            assert bool(pg & PG_active) == (M in (1, 3)), pfn
            assert rc.folio_young(pfn) == f["young"], pfn
    d = {key: s1[key] - s0[key] for key in s0}
    scan = d["pgscan_kswapd"] + d["pgscan_direct"]
    steal = d["pgsteal_kswapd"] + d["pgsteal_direct"]
    assert scan == ref.c["pgscan"]
    assert steal == ref.c["pgsteal"] == len(ref.freed)
    assert d["pgactivate"] == ref.c["pgactivate"]
    assert d["pgdeactivate"] == ref.c["pgdeactivate"]
    assert d["nr_vmscan_immediate_reclaim"] == ref.c["immediate"]
    assert d["x_file_written"] == ref.c["written"]
    assert c1["pswpout"] - c0["pswpout"] == ref.c["pswpout"]
    assert k.buddy.nr_free_pages - free0 == len(ref.freed)
