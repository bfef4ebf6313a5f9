"""Reclaim, kswapd, the page cache and slab caches (thpbench/reclaim.py, _reclaim.pxi)."""
import numpy as np
import pytest

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel, OutOfMemory
from thpbench.kernel.reclaim import LRU

MiB = 1 << 20


def kernel(mem_mib=64, **kw):
    thp = kw.pop("thp", {"enabled": "never"})
    return Kernel(mem_mib * MiB, thp=thp, **kw)


def test_page_cache_read_miss_then_hit_counts_and_charges():
    k = kernel()
    f = k.page_cache.create("a", 4 * MiB)
    t0 = k.now_ns
    assert f.read() == 1024
    k.check()
    assert k.now_ns - t0 >= 1024 * k.costs.file_read_page_ns
    t1 = k.now_ns
    assert f.read() == 0                      # all hits
    k.check()
    assert k.now_ns == t1
    vs = k.vmstat()
    assert vs["pgpgin"] == 4096 and vs["nr_file_pages"] == 1024
    # second access of each page: referenced -> active (folio_mark_accessed)
    assert vs["nr_active_file"] == 1024 and vs["pgactivate"] == 1024
    assert k.meminfo()["Cached"] == 4096
    assert f.cached().all()


def test_write_makes_dirty_pages_and_values_read_back():
    k = kernel()
    f = k.page_cache.create("a", 1 * MiB)
    vals = np.arange(1, 257, dtype=np.uint64) * 7
    f.write(0, vals)
    k.check()
    assert k.vmstat()["nr_dirty"] == 256
    assert (f.values() == vals).all()
    assert f.fsync() == 256
    k.check()
    assert k.vmstat()["nr_dirty"] == 0 and k.vmstat()["pgpgout"] == 1024


def test_drop_caches_frees_clean_unmapped_page_cache_only():
    k = kernel()
    f = k.page_cache.create("a", 4 * MiB)
    g = k.page_cache.create("b", 1 * MiB)
    m = k.page_cache.create("m", 1 * MiB)
    f.read()
    g.write(0, np.full(256, 5, np.uint64))
    m.read()
    m.mmap()
    free0 = k.buddy.nr_free_pages
    out = k.drop_caches(1)
    k.check()
    assert out["pagecache"] == 1024
    assert k.buddy.nr_free_pages - free0 == 1024
    assert not f.cached().any() and g.cached().all() and m.cached().all()
    assert k.vmstat()["drop_pagecache"] == 1
    assert (g.values() == 5).all()            # dirty data kept


def test_reclaim_never_drops_a_dirty_page_without_writing_it():
    k = kernel(64)
    f = k.page_cache.create("data", 40 * MiB)
    vals = np.arange(10240, dtype=np.uint64) + 1000
    f.write(0, vals)                          # 40 MiB dirty in a 64 MiB machine
    k.check()
    # direct reclaim may not write: dirty pages stay, none is dropped
    written0 = k.reclaim.core.stats()["x_file_written"]
    k.reclaim.core.shrink_lruvec(0, 10**6, False, True, True, False, False)
    k.check()
    assert k.reclaim.core.stats()["x_file_written"] == written0
    assert f.cached().sum() == 10240 and k.vmstat()["nr_dirty"] == 10240
    # hog memory: reclaim must write every page it frees
    p = k.spawn()
    a = p.mmap(40 * MiB)
    p.touch_range(a, 40 * MiB)
    k.check()
    cached = f.cached()
    assert (~cached).sum() > 0
    assert k.vmstat()["pgpgout"] >= 4 * (~cached).sum()
    assert (f.values() == vals).all()
    assert f.read() > 0                       # refault from disk
    k.check()
    assert (f.values() == vals).all()


def test_swap_in_returns_the_same_data():
    k = kernel(64)
    p = k.spawn()
    a = p.mmap(48 * MiB)
    n = 48 * MiB // PAGE_SIZE
    addrs = a + np.arange(n, dtype=np.int64) * PAGE_SIZE
    vals = (np.arange(n, dtype=np.uint64) * 2654435761) | np.uint64(1)
    p.touch_pages(addrs, values=vals)
    k.check()
    q = k.spawn()
    b = q.mmap(40 * MiB)
    q.touch_range(b, 40 * MiB)                # forces anon to swap
    k.check()
    assert k.vmstat()["pswpout"] > 0
    _, kinds = p.peek(addrs)
    assert (kinds == 3).sum() > 0
    got = np.array([p.read(int(x)) for x in addrs[::37]], dtype=np.uint64)
    k.check()
    assert (got == vals[::37]).all()
    assert k.vmstat()["pswpin"] > 0


@pytest.mark.parametrize("thp_swap", [False, True])
def test_thp_swap_whole_or_split(thp_swap):
    k = kernel(64, thp={"enabled": "always"})
    k.reclaim.thp_swap = thp_swap
    p = k.spawn()
    a = p.mmap(8 * HPAGE_PMD_SIZE)
    n = 8 * HPAGE_PMD_SIZE // PAGE_SIZE
    addrs = a + np.arange(n, dtype=np.int64) * PAGE_SIZE
    vals = np.arange(n, dtype=np.uint64) + 77
    p.touch_pages(addrs, values=vals)
    assert k.vmstat()["thp_fault_alloc"] == 8
    k.check()
    got = k.shrink_all_memory(8 * 512)
    k.check()
    vs = k.vmstat()
    if thp_swap:
        assert vs["thp_swpout"] > 0 and vs["thp_swpout_fallback"] == 0
    else:
        assert vs["thp_swpout"] == 0 and vs["thp_swpout_fallback"] > 0 and vs["thp_split_page"] > 0
    assert got > 0
    assert (p.peek(addrs)[0] == vals).all()
    back = np.array([p.read(int(x)) for x in addrs[::101]], dtype=np.uint64)
    assert (back == vals[::101]).all()
    k.check()


def test_shrink_all_memory_frees_what_it_says():
    k = kernel(64)
    f = k.page_cache.create("a", 16 * MiB)
    f.read()
    p = k.spawn()
    a = p.mmap(16 * MiB)
    p.touch_range(a, 16 * MiB)
    k.check()
    free0 = k.buddy.nr_free_pages
    got = k.shrink_all_memory(6000)
    k.check()
    assert got == k.buddy.nr_free_pages - free0
    # inactive file goes first; anon pages carry the accessed bit of their first
    # fault, so one pass only clears it (folio_check_references: FOLIOREF_KEEP)
    vs = k.vmstat()
    assert vs["pgsteal_file"] == 4096 and vs["pgsteal_anon"] == 0 and got == 4096
    free1 = k.buddy.nr_free_pages
    got2 = k.shrink_all_memory(2000)
    k.check()
    assert got2 == k.buddy.nr_free_pages - free1
    assert got2 >= 2000 and k.vmstat()["pswpout"] >= 2000


def test_kswapd_keeps_free_memory_above_low_after_a_burst():
    k = kernel(64)
    f = k.page_cache.create("a", 200 * MiB)
    f.read()                                  # 200 MiB through a 64 MiB page cache
    k.check()
    w = k.watermarks
    assert k.buddy.nr_free_pages >= w["low"]
    vs = k.vmstat()
    assert vs["pgsteal_kswapd"] > 0 and vs["pageoutrun"] > 0
    assert vs["pgsteal_kswapd"] > vs["pgsteal_direct"]
    p = k.spawn()
    a = p.mmap(30 * MiB)
    p.touch_range(a, 30 * MiB)                # an anon burst
    k.check()
    assert k.buddy.nr_free_pages >= w["low"]


def test_direct_reclaim_counts_allocstall_and_oom_when_nothing_is_reclaimable():
    k = kernel(32, swap_bytes=0)
    p = k.spawn()
    a = p.mmap(64 * MiB)
    with pytest.raises(OutOfMemory):
        p.touch_range(a, 64 * MiB)
    k.check()
    vs = k.vmstat()
    assert vs["allocstall_normal"] > 0 and vs["oom_kill"] == 1


def test_workingset_refault_activates_a_recently_evicted_page():
    k = kernel(64)
    hot = k.page_cache.create("hot", 8 * MiB)
    hot.read()
    hot.read()                                # active
    stream = k.page_cache.create("stream", 100 * MiB)
    stream.read()
    k.check()
    vs = k.vmstat()
    assert vs["nr_active_file"] > 0
    stream.read(0, 4 * MiB)                   # refaults of evicted stream pages
    k.check()
    assert k.vmstat()["workingset_refault_file"] > 0


def test_slab_pages_are_freed_only_when_empty_and_drop_caches_2():
    k = kernel(64)
    d = k.slab["dentry"]
    hs = d.alloc(21 * 10)                     # 10 pages of 21 dentries
    k.check()
    assert len(d.pages) == 10
    assert k.vmstat()["nr_slab_reclaimable"] == 10
    pfn = hs[0] // 64
    # dentries pin a RECLAIMABLE pageblock (grouping by mobility)
    assert k.buddy.pageblock_migratetypes()[pfn >> k.buddy.pageblock_order] == 2
    # free all but one object per page: the pages stay
    keep = [h for h in hs if h % 64 == 0]
    assert d.free([h for h in hs if h % 64 != 0]) == 0
    assert len(d.pages) == 10
    k.check()
    d.free(keep)
    assert len(d.pages) == 0
    k.check()
    hs = d.alloc(100)
    d.touch(hs[:50])
    k.slab["kmalloc-256"].alloc(40)
    out = k.drop_caches(2)
    k.check()
    assert out["slab"] > 0 and d.nr_objects == 0
    assert k.slab.nr_pages(reclaimable=False) > 0   # kmalloc is not reclaimable
    assert k.vmstat()["drop_slab"] == 1


def test_slab_shrinker_runs_under_pressure():
    k = kernel(64)
    k.slab["dentry"].alloc(21 * 300)
    f = k.page_cache.create("a", 120 * MiB)
    f.read()
    k.check()
    vs = k.vmstat()
    assert vs["slabs_scanned"] > 0


def test_lru_invariants_after_fork_munmap_and_collapse():
    k = kernel(64, thp={"enabled": "always"})
    p = k.spawn()
    a = p.mmap(4 * HPAGE_PMD_SIZE)
    p.touch_range(a, 4 * HPAGE_PMD_SIZE)
    c = p.fork()
    c.touch_range(a, HPAGE_PMD_SIZE)          # CoW
    k.check()
    p.madvise(a + HPAGE_PMD_SIZE, PAGE_SIZE, "MADV_DONTNEED")
    k.shrink()
    k.check()
    k.shrink_all_memory(1500)
    k.check()
    c.exit()
    p.munmap(a, 2 * HPAGE_PMD_SIZE)
    k.check()
    sizes = k.reclaim.core.lru_sizes()
    assert sizes["nr_inactive_anon"] + sizes["nr_active_anon"] == k.vmstat()["nr_anon_pages"]


def test_check_detects_a_broken_list():
    k = kernel()
    f = k.page_cache.create("a", 1 * MiB)
    f.read()
    k.check()
    rc = k.reclaim.core
    lst = rc.lru_list(LRU["inactive_file"])
    assert len(lst) == 256
    f.unlink()
    k.check()
    assert rc.lru_sizes()["nr_inactive_file"] == 0


def test_validation():
    k = kernel()
    with pytest.raises(ValueError):
        k.drop_caches(4)
    with pytest.raises(ValueError):
        k.shrink_all_memory(-1)
    with pytest.raises(ValueError):
        k.reclaim.swappiness = 201
    f = k.page_cache.create("a", MiB)
    with pytest.raises(ValueError):
        f.read(MiB, PAGE_SIZE)
    with pytest.raises(ValueError):
        k.page_cache.create("a", MiB)


def test_migrate_file_page_moves_data_mapping_and_lru_place():
    k = kernel()
    f = k.page_cache.create("a", 16 * PAGE_SIZE)
    f.read()
    rc = k.reclaim.core
    src = int(rc.file_cached(f.ino, 3, 1)[0])
    before = f.values().copy()
    dst = k.buddy.alloc(0, "movable")
    assert rc.migrate_file_page(src, dst) == 0
    k.buddy.free(src, 0)
    k.check()
    assert int(rc.file_cached(f.ino, 3, 1)[0]) == dst
    assert (f.values() == before).all()
    assert dst in [p for p, _ in rc.lru_list(LRU["inactive_file"])]
    assert rc.migrate_file_page(src, dst) == -1        # src is no page-cache page now


def test_mapped_file_pages_are_unmapped_by_reclaim_only_when_allowed():
    k = kernel()
    f = k.page_cache.create("lib.so", 64 * PAGE_SIZE)
    f.read()
    f.mmap()
    k.check()
    rc = k.reclaim.core
    assert k.vmstat()["nr_mapped"] == 64
    # may_unmap off: mapped pages are kept (sc->may_unmap)
    assert rc.shrink_list(LRU["inactive_file"], 64, True, False, True, False) == 0
    k.check()
    assert f.cached().all()
    # read once (PG_referenced) and mapped with the accessed bit: FOLIOREF_ACTIVATE
    a0 = rc.stats()["pgactivate"]
    assert rc.shrink_list(LRU["inactive_file"], 64, True, True, True, False) == 0
    k.check()
    assert rc.stats()["pgactivate"] - a0 == 64 and rc.lru_sizes()["nr_active_file"] == 64
    # shrink_active_list: deactivated, accessed bits cleared
    rc.shrink_list(LRU["active_file"], 64)
    k.check()
    # not accessed since: reclaimed (clean), unmapped (try_to_unmap)
    freed = rc.shrink_list(LRU["inactive_file"], 64, True, True, True, False)
    k.check()
    assert freed == 64 and rc.stats()["x_file_unmapped"] == 64
    assert k.vmstat()["nr_mapped"] == 0 and not f.cached().any()
