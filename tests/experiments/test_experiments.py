"""The named scenarios of notebook 03 (thpbench.experiments), at small sizes."""
import numpy as np
import pytest

from thpbench import experiments as E


def test_kivity_coverage_page_cache_holds_huge_pages_down():
    df = E.kivity_coverage(0.25, settle_s=30, after_drop_s=30)
    assert set(df.khugepaged_sleep_ms) == {10000, 100}
    for sleep_ms, g in df.groupby("khugepaged_sleep_ms"):
        g = g.set_index("phase")
        # the sort's buffer was huge while memory was free, and lost most of it to the
        # page cache's pressure (kswapd splits THPs before swapping them, as in 2010)
        peak = g.loc["read", "anon_huge_mib"].max()
        after_sort = g.loc["sort", "anon_huge_mib"]
        assert after_sort < peak / 2
        # drop_caches 1 empties the page cache
        assert g.loc["drop_caches 1", "cached_mib"] < g.loc["page cache kept", "cached_mib"].iloc[-1] / 4
        assert (np.diff(g.t_s.to_numpy()) >= 0).all()
    last = df.groupby("khugepaged_sleep_ms").anon_huge_mib.last()
    assert last[100] > last[10000]          # a faster khugepaged recovers more in the same time


def test_build_and_cache_kernel_and_gorman_with_reclaim():
    k, f = E.build_and_cache_kernel(64, jobs=20, cached=0.5)
    k.check()
    assert k.meminfo()["Cached"] > 25 * 1024
    df = E.gorman_hugepage_allocation(mem_mib=128, aging="kernel_build", defrag="defer", interval_ms=100)
    off, on = df.set_index("compaction").loc[False], df.set_index("compaction").loc[True]
    assert on["huge_pages"] >= off["huge_pages"] and on["pgmigrate_success"] > 0
    assert on["pages_reclaimed"] > 0             # kswapd made room in the page cache


@pytest.mark.parametrize("kw", [dict(scale=0), dict(scale=10), dict(scale="1")])
def test_kivity_coverage_bad_scale(kw):
    with pytest.raises(ValueError, match="scale"):
        E.kivity_coverage(**kw)


def test_gorman_bad_aging():
    with pytest.raises(ValueError, match="aging"):
        E.gorman_hugepage_allocation(mem_mib=64, aging="weekend")
