"""Access-trace generators and the valgrind lackey importer (thpbench.workloads)."""
import gzip

import numpy as np
import pytest

from thpbench import workloads as w
from thpbench.data import data_path
from thpbench.tlb import MMU

MiB = 1 << 20


@pytest.mark.parametrize("gen", [
    lambda seed: w.uniform(10_000, 64 * MiB, seed=seed, base=1 << 30),
    lambda seed: w.gups(10_000, 64 * MiB, seed=seed, base=1 << 30),
    lambda seed: w.zipf_hotset(10_000, 64 * MiB, s=1.0, seed=seed, base=1 << 30),
    lambda seed: w.pointer_chase(10_000, 64 * MiB, seed=seed, base=1 << 30),
])
def test_generators_are_seeded_and_in_range(gen):
    a, b, c = gen(1), gen(1), gen(2)
    assert a.dtype == np.uint64 and a.size == 10_000
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 1 << 30 and a.max() < (1 << 30) + 64 * MiB


def test_zipf_concentrates_on_a_hot_set():
    flat = w.zipf_hotset(50_000, 64 * MiB, s=0.0, seed=0)
    hot = w.zipf_hotset(50_000, 64 * MiB, s=1.2, seed=0)
    assert np.unique(hot >> np.uint64(12)).size < 0.5 * np.unique(flat >> np.uint64(12)).size


def test_pointer_chase_visits_every_node_once_per_lap():
    t = w.pointer_chase(3 * 1024, 64 * 1024, seed=5)        # 1024 nodes of 64 B, 3 laps
    laps = t.reshape(3, 1024)
    assert all(np.unique(l).size == 1024 for l in laps)
    assert np.array_equal(laps[0], laps[1])


def test_strided_and_streaming():
    s = w.strided(10, 4096 * 4, 4096)
    assert list(s[:5] >> np.uint64(12)) == [0, 1, 2, 3, 0]
    st = w.streaming(1024, 8 * MiB, elem_bytes=8)
    assert np.all(np.diff(st.astype(np.int64)) == 8)


def test_streaming_misses_once_per_page():
    mmu = MMU("skylake")
    c = mmu.run(w.streaming(4 * MiB // 8, 4 * MiB))
    assert c["dtlb_load_misses.walk_completed"] == 1024


def test_generator_arguments_are_checked():
    with pytest.raises(ValueError):
        w.uniform(-1, MiB, seed=0)
    with pytest.raises(ValueError):
        w.zipf_hotset(10, MiB, s=-1, seed=0)
    with pytest.raises(ValueError):
        w.strided(10, MiB, 0)


LACKEY_SAMPLE = b"""==123== Lackey, an example Valgrind tool
==123== Command: ./a.out
I  04000000,3
 L 1ffefffd28,8
 S 04222cac,4
 M 0421d7f0,4
I  04000003,5
==123== Exit code:       0
"""


def test_lackey_parser_reads_kinds_addresses_sizes(tmp_path):
    p = tmp_path / "t.out"
    p.write_bytes(LACKEY_SAMPLE)
    df = w.read_lackey_df(p)
    assert list(df["kind"]) == ["I", "L", "S", "M", "I"]
    assert list(df["addr"]) == [0x04000000, 0x1ffefffd28, 0x04222cac, 0x0421d7f0, 0x04000003]
    assert list(df["size"]) == [3, 8, 4, 4, 5]
    assert list(w.read_lackey(p)) == [0x1ffefffd28, 0x04222cac, 0x0421d7f0]
    gz = tmp_path / "t.out.gz"
    gz.write_bytes(gzip.compress(LACKEY_SAMPLE))
    assert np.array_equal(w.read_lackey(gz, kinds="I"), [0x04000000, 0x04000003])


def test_lackey_parser_rejects_non_lackey(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n")
    with pytest.raises(ValueError, match="no lackey"):
        w.read_lackey(p)
    with pytest.raises(ValueError, match="kinds"):
        w.read_lackey(p, kinds="X")


@pytest.fixture(scope="module")
def sort_trace():
    return w.read_lackey(data_path("lackey-sort-5000.txt.xz"))


def test_shipped_real_trace_reads(sort_trace):
    assert sort_trace.size == 2_341_274
    pages = np.unique(sort_trace >> np.uint64(12)).size
    assert pages == 157


def test_real_trace_through_4k_and_2m_mappings(sort_trace):
    lo = int(sort_trace.min()) & ~((2 << 20) - 1)
    n = ((int(sort_trace.max()) - lo) >> 21) + 1
    results = {}
    for huge in (False, True):
        mmu = MMU("nehalem")
        mmu.map(guest_huge=np.full(n, huge), base_va=lo)
        results[huge] = mmu.run(sort_trace)
    small, big = results[False], results[True]
    assert small["accesses"] == big["accesses"] == sort_trace.size
    # 4 KiB: at least one walk per distinct page; 2 MiB: at most a handful, all 2 MiB
    assert small["dtlb_load_misses.walk_completed_4k"] >= 157
    assert big["dtlb_load_misses.walk_completed_4k"] == 0
    assert 6 <= big["dtlb_load_misses.walk_completed_2m_4m"] < small["dtlb_load_misses.walk_completed_4k"]
    assert big["walk_refs"] < small["walk_refs"]
