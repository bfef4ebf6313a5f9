"""Reclaim workloads and daemons: kswapd naps, hibernation order, THP split before
swap, the kernel-build mix and Kivity's sort (small scale), with check() at each step."""
import numpy as np
import pytest

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel
from thpbench.kernel.reclaim import kernel_build_mix, kivity_sort

MiB = 1 << 20


def test_shrink_all_memory_takes_inactive_before_active():
    k = Kernel(64 * MiB, thp={"enabled": "never"})
    cold = k.page_cache.create("cold", 8 * MiB)
    hot = k.page_cache.create("hot", 8 * MiB)
    hot.read()
    hot.read()                        # active
    cold.read()                       # inactive
    k.check()
    got = k.shrink_all_memory(1024)
    k.check()
    assert got >= 1024
    assert hot.cached().all()
    assert (~cold.cached()).sum() >= 1024
    k.shrink_all_memory(4096)         # all of cold, then active pages are deactivated
    k.check()
    assert not cold.cached().any()


def test_kswapd_naps_and_counts_hit_quickly():
    k = Kernel(64 * MiB, thp={"enabled": "never"})
    f = k.page_cache.create("a", 120 * MiB)
    f.read(0, 70 * MiB)               # below low: kswapd runs, then naps
    k.check()
    runs = k.kswapd.runs
    assert runs >= 1
    f.read(70 * MiB, 50 * MiB)        # woken again within its 100 ms nap
    k.check()
    vs = k.vmstat()
    assert vs["kswapd_low_wmark_hit_quickly"] >= 1
    assert k.kswapd.cpu_ns > 0
    k.advance(1_000_000_000)
    g = k.page_cache.create("b", 20 * MiB)
    g.read()                          # a wake-up after the nap ended
    k.check()
    assert k.vmstat()["kswapd_high_wmark_hit_quickly"] >= 1


def test_partially_mapped_thp_is_split_before_swap():
    k = Kernel(64 * MiB, thp={"enabled": "always"})
    k.reclaim.thp_swap = True
    p = k.spawn()
    a = p.mmap(2 * HPAGE_PMD_SIZE)
    n = 2 * HPAGE_PMD_SIZE // PAGE_SIZE
    vals = np.arange(n, dtype=np.uint64) + 5
    addrs = a + np.arange(n, dtype=np.int64) * PAGE_SIZE
    p.touch_pages(addrs, values=vals)
    p.madvise(a, 16 * PAGE_SIZE, "MADV_DONTNEED")     # the first THP is partially mapped now
    k.check()
    k.shrink_all_memory(4 * 512)
    k.shrink_all_memory(4 * 512)
    k.check()
    vs = k.vmstat()
    assert vs["thp_split_page"] >= 1                   # the partial one was split
    assert vs["thp_swpout"] >= 1                       # the whole one went out whole
    back = p.peek(addrs[16:])[0]
    assert (back == vals[16:]).all()


def test_kernel_build_mix_pins_pageblocks_with_slab():
    k = Kernel(256 * MiB, thp={"enabled": "always"})
    df = kernel_build_mix(k, jobs=12, seed=1)
    k.check()
    assert len(df) == 12
    assert (df["slab_unreclaimable_mib"].iloc[-1] > 0) and df["slab_pageblocks"].iloc[-1] >= 1
    assert df["cached_mib"].iloc[-1] > 0
    assert k.vmstat()["nr_dirty"] > 0 or k.vmstat()["pgpgout"] > 0
    # long-lived kmalloc objects survive the jobs: their pages stay
    assert k.slab["kmalloc-256"].nr_objects > 0
    # deterministic for a seed
    k2 = Kernel(256 * MiB, thp={"enabled": "always"})
    df2 = kernel_build_mix(k2, jobs=12, seed=1)
    assert df.drop(columns="t_ns").equals(df2.drop(columns="t_ns"))


@pytest.mark.parametrize("aged", [False, True])
def test_kivity_sort_small(aged):
    k, df = kivity_sort(mem_bytes=256 * MiB, file_bytes=128 * MiB, sort_bytes=150 * MiB,
                        chunk_bytes=16 * MiB, aged=aged, aging_jobs=8)
    k.check()
    assert set(df["phase"]) >= {"read", "sort", "write"}
    assert df["thp_fault_alloc"].iloc[-1] > 0
    assert df["cached_mib"].max() > 100
    assert (df["free_mib"] >= 0).all()
    vs = k.vmstat()
    assert vs["pgsteal_kswapd"] > 0
    # the output file's data went through the page cache and (partly) to disk intact
    out = k.page_cache.files["sort.out.0"]
    assert out.values().min() > 0


def test_kswapd_after_balance_hooks_and_compaction_ready():
    k = Kernel(64 * MiB, thp={"enabled": "never"})
    seen = []
    k.kswapd.after_balance_hooks.append(lambda order, n: seen.append((order, n)))
    f = k.page_cache.create("a", 80 * MiB)
    f.read()
    k.check()
    assert seen and all(n >= 0 for _, n in seen)
    # a costly-order request stops once free pages pass high + 2 << order
    k.drop_caches(1)
    g = k.page_cache.create("b", 50 * MiB)
    g.read()
    assert k.reclaim.compaction_ready(9) == (k.buddy.nr_free_pages >= k.watermarks["high"] + (2 << 9))
    n = k.shrink_node(10_000, order=9)
    k.check()
    assert k.buddy.nr_free_pages >= k.watermarks["high"] + (2 << 9)
    assert n < 10_000
