"""/proc/buddyinfo and /proc/pagetypeinfo: kernel layout, round trips, allocators built from snapshots."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from thpbench.data import data_path
from thpbench import MIGRATETYPE_NAMES, BuddyAllocator, procfs

DATA = data_path("procfs")
SNAPSHOTS = sorted(p for p in DATA.iterdir() if p.is_dir() and (p / "buddyinfo").exists())


def test_snapshots_exist():
    # data/README.md promises at least an idle and a churned capture
    names = {p.name for p in SNAPSHOTS}
    assert "idle" in names and len(names) >= 3


@pytest.mark.parametrize("snap_dir", SNAPSHOTS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", ["buddyinfo", "pagetypeinfo"])
def test_round_trip_real_files(snap_dir, name):
    text = (snap_dir / name).read_text()
    parse = {"buddyinfo": procfs.parse_buddyinfo, "pagetypeinfo": procfs.parse_pagetypeinfo}[name]
    fmt = {"buddyinfo": procfs.format_buddyinfo, "pagetypeinfo": procfs.format_pagetypeinfo}[name]
    assert fmt(parse(text)) == text


@pytest.mark.parametrize("snap_dir", SNAPSHOTS, ids=lambda p: p.name)
def test_parsed_values_match_the_text(snap_dir):
    text = (snap_dir / "buddyinfo").read_text()
    df = procfs.parse_buddyinfo(text)
    for line in text.splitlines():
        words = line.replace(",", "").split()   # Node 0 zone NAME c0 c1 ...
        zone, counts = words[3], [int(w) for w in words[4:]]
        assert procfs.buddyinfo_row(df, zone, int(words[1])).tolist() == counts
    pti = procfs.parse_pagetypeinfo((snap_dir / "pagetypeinfo").read_text())
    assert pti.pageblock_order == 9 and pti.pages_per_block == 512
    assert pti.migratetypes == MIGRATETYPE_NAMES
    # the two files were read moments apart: per-type sums are close to buddyinfo, and
    # every zone pagetypeinfo lists is a zone buddyinfo lists
    for zone in dict.fromkeys(pti.free["zone"]):
        per_type = pti.zone_free(zone).sum(axis=0)
        row = procfs.buddyinfo_row(df, zone)
        assert np.abs(per_type - row).sum() <= 0.05 * row.sum() + 64


def test_zoneinfo_sizes():
    zi = procfs.parse_zoneinfo((DATA / "idle" / "zoneinfo").read_text())
    normal = zi[zi["zone"] == "Normal"].iloc[0]
    text = (DATA / "idle" / "zoneinfo").read_text()
    block = text[text.index("zone   Normal"):]
    for key in ("spanned", "present", "managed"):
        line = next(l for l in block.splitlines() if l.strip().startswith(key + " "))
        assert normal[key] == int(line.split()[-1])
    assert normal["start_pfn"] == int(next(l for l in block.splitlines() if "start_pfn" in l).split()[-1])
    assert normal["pages_free"] == normal["nr_free_pages"]
    pti = procfs.parse_pagetypeinfo((DATA / "idle" / "pagetypeinfo").read_text())
    # pagetypeinfo counts pageblocks of online memory; here that is exactly `managed`
    assert pti.zone_pageblocks("Normal").sum() * 512 >= normal["managed"]


SYNTHETIC = (
    "Page block order: 9\n"
    "Pages per block:  512\n"
    "\n"
    "Free pages count per migrate type at order       0      1      2 \n"
    "Node    0, zone   Normal, type    Unmovable      5 1234567      0 \n"
    "Node    0, zone   Normal, type      Movable >100000     12      3 \n"
    "Node    0, zone   Normal, type  Reclaimable      0      0      0 \n"
    "Node    0, zone   Normal, type   HighAtomic      0      0      0 \n"
    "Node    0, zone   Normal, type          CMA      7      0      0 \n"
    "Node    0, zone   Normal, type      Isolate      0      0      0 \n"
    "Node    0, zone Movable_long, type      Movable      1      2      3 \n"
    "\n"
    "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n"
    "Node 0, zone   Normal            3           10            1            0            2            0 \n"
    "\n"
    "Number of mixed blocks    Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n"
    "Node 0, zone   Normal            1            4            0            0            0            0 \n"
    "Page block order: 9\n"
    "Pages per block:  512\n"
    "\n"
    "Free pages count per migrate type at order       0      1      2 \n"
    "Node    1, zone   Normal, type    Unmovable      1      0      0 \n"
    "\n"
    "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n"
    "Node 1, zone   Normal            8            0            0            0            0            0 \n"
)


def test_synthetic_pagetypeinfo_cma_cap_mixed_two_nodes():
    pti = procfs.parse_pagetypeinfo(SYNTHETIC)
    assert procfs.format_pagetypeinfo(pti) == SYNTHETIC
    assert pti.migratetypes[4] == "CMA" and pti.nr_orders == 3
    capped = pti.free[pti.free["capped"]]
    assert capped[["zone", "migratetype", "order", "nr_free"]].values.tolist() == [["Normal", "Movable", 0, 100000]]
    assert pti.zone_free("Normal")[0].tolist() == [5, 1234567, 0]
    assert pti.mixed is not None and pti.mixed["nr_pageblocks"].sum() == 5
    assert sorted(set(pti.free["node"])) == [0, 1]
    assert pti.zone_pageblocks("Normal", node=1).tolist() == [8, 0, 0, 0, 0, 0]


def test_buddyinfo_wide_numbers_and_two_nodes():
    text = ("Node 0, zone   Normal 1234567      0      1 \n"
            "Node 1, zone HighMemLong      1      2      3 \n")
    df = procfs.parse_buddyinfo(text)
    assert procfs.format_buddyinfo(df) == text
    assert procfs.buddyinfo_row(df, "HighMemLong", 1).tolist() == [1, 2, 3]


@pytest.mark.parametrize("text, where", [
    ("Node 0, zone   Normal      1      x \n", "line 1"),
    ("Node 0, zone   Normal      1      2 \nbogus\n", "line 2"),
])
def test_bad_buddyinfo(text, where):
    with pytest.raises(ValueError, match=where):
        procfs.parse_buddyinfo(text)


def test_bad_inputs():
    with pytest.raises(TypeError):
        procfs.parse_buddyinfo(b"Node 0")
    with pytest.raises(ValueError, match="line 5"):
        procfs.parse_pagetypeinfo(SYNTHETIC.replace("Unmovable      5", "Unmovable      q", 1))
    with pytest.raises(ValueError, match="headers"):
        procfs.parse_pagetypeinfo("")
    with pytest.raises(ValueError, match="no zone 'Highmem'"):
        procfs.buddyinfo_row(procfs.parse_buddyinfo("Node 0, zone   Normal      1 \n"), "Highmem")
    with pytest.raises(TypeError):
        procfs.format_pagetypeinfo("text")


# ---------------------------------------------------------------------------
# allocators in the state of a real zone
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("snap_dir", SNAPSHOTS, ids=lambda p: p.name)
@pytest.mark.parametrize("zone", ["DMA", "DMA32", "Normal"])
def test_allocator_from_snapshot_matches_every_zone(snap_dir, zone):
    snap = procfs.load_snapshot(snap_dir)
    alloc = procfs.allocator_from_snapshot(snap, zone, seed=3)
    alloc.check()
    z = snap.zone(zone)
    assert alloc.buddyinfo().tolist() == z["buddyinfo"].tolist()
    pti = alloc.pagetypeinfo()
    assert pti["pageblocks"].tolist() == z["pageblocks"].tolist()
    assert alloc.nr_pages == z["pageblocks"].sum() * 512
    # per-migratetype free counts: pagetypeinfo's, reconciled with buddyinfo's totals
    assert (pti["free"].sum(axis=0) == z["buddyinfo"]).all()
    assert np.abs(pti["free"] - z["free"]).sum() == np.abs(z["free"].sum(axis=0) - z["buddyinfo"]).sum()
    # the simulated zone prints as the real zone's buddyinfo line, byte for byte
    real_line = next(l for l in (snap_dir / "buddyinfo").read_text().splitlines(True) if f" {zone} " in l)
    assert procfs.format_buddyinfo(procfs.allocator_buddyinfo(alloc, zone)) == real_line
    # every free block sits on its own pageblock's list, in a pageblock of that type
    fb = alloc.free_blocks()
    pbt = alloc.pageblock_migratetypes()
    assert (pbt[fb["pfn"] >> 9] == fb["migratetype"]).all()
    # allocated memory carries its pageblock's type
    fm = alloc.frame_migratetypes()
    used = fm >= 0
    assert (fm[used] == pbt[np.flatnonzero(used) >> 9]).all()


def _consistent(snap_dir, zone):
    z = procfs.load_snapshot(snap_dir).zone(zone)
    return bool((z["free"].sum(axis=0) == z["buddyinfo"]).all())


# buddyinfo and pagetypeinfo are read moments apart; where the machine allocated in
# between, the two files disagree and no allocator can print both (covered instead by
# test_allocator_from_snapshot_*, where buddyinfo wins)
CONSISTENT = [(d, z) for d in SNAPSHOTS for z in ("DMA", "DMA32", "Normal") if _consistent(d, z)]


def test_most_captures_are_self_consistent():
    assert len(CONSISTENT) >= 10


@pytest.mark.parametrize("snap_dir,zone", CONSISTENT, ids=lambda v: getattr(v, "name", v))
def test_simulated_pagetypeinfo_lines_equal_the_real_ones(snap_dir, zone):
    snap = procfs.load_snapshot(snap_dir)
    alloc = procfs.allocator_from_snapshot(snap, zone)
    sim = procfs.format_pagetypeinfo(procfs.allocator_pagetypeinfo(alloc, zone))
    real = (snap_dir / "pagetypeinfo").read_text()
    sim_lines = [l for l in sim.splitlines() if f" {zone}" in l]
    real_lines = [l for l in real.splitlines() if f" {zone}," in l or f" {zone} " in l]
    assert len(real_lines) == 6 and sim_lines == real_lines


def test_allocator_from_snapshot_grouping_off_and_seeds():
    snap = procfs.load_snapshot(DATA / "after-sort")
    off = procfs.allocator_from_snapshot(snap, grouping=False, seed=0)
    off.check()
    assert off.buddyinfo().tolist() == snap.zone("Normal")["buddyinfo"].tolist()
    assert off.pagetypeinfo()["pageblocks"].tolist() == [off.nr_pageblocks, 0, 0, 0, 0]
    a = procfs.allocator_from_snapshot(snap, seed=1)
    b = procfs.allocator_from_snapshot(snap, seed=1)
    c = procfs.allocator_from_snapshot(snap, seed=2)
    assert np.array_equal(a.free_blocks(), b.free_blocks())
    assert not np.array_equal(a.free_blocks(), c.free_blocks())


def test_built_allocator_keeps_working():
    snap = procfs.load_snapshot(DATA / "idle")
    alloc = procfs.allocator_from_snapshot(snap)
    info = alloc.buddyinfo()
    n9 = int(info[9] + 2 * info[10])
    # exactly the order >= 9 free blocks serve order-9 requests (no other free block merges)
    got = [alloc.alloc(9, "movable") for _ in range(n9 + 1)]
    assert None not in got[:n9] and got[n9] is None
    alloc.check()
    for pfn in got[:n9]:
        alloc.free(pfn, 9)
    alloc.check()
    assert alloc.buddyinfo().tolist() == info.tolist()


def test_allocator_from_buddyinfo_defaults_and_errors():
    row = np.array([3, 0, 2, 0, 0, 0, 0, 0, 0, 1, 1])
    a = procfs.allocator_from_buddyinfo(row)
    a.check()
    assert a.buddyinfo().tolist() == row.tolist() and a.nr_pages % 1024 == 0
    b = procfs.allocator_from_buddyinfo(row, nr_pages=5000)
    assert b.nr_pages == 5000 and b.buddyinfo().tolist() == row.tolist()
    b.check()
    with pytest.raises(ValueError, match="more than nr_pages"):
        procfs.allocator_from_buddyinfo(row, nr_pages=1000)
    with pytest.raises(ValueError, match="cannot place"):
        # 2000 free pages in 2048 frames, all order 0: their buddies cannot all stay allocated
        procfs.allocator_from_buddyinfo([2000, 0, 0], nr_pages=2048, max_order=2, pageblock_order=1)
    with pytest.raises(ValueError, match="1-d array"):
        procfs.allocator_from_buddyinfo([[1, 2]])
    with pytest.raises(ValueError, match="pageblock counts"):
        procfs.allocator_from_buddyinfo(row, nr_pages=5120, pageblocks=[1, 2, 0, 0, 0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=11, max_size=11), st.integers(0, 2**16), st.booleans(),
       st.integers(0, 3))
def test_allocator_from_random_buddyinfo(counts, seed, grouping, extra_chunks):
    row = np.array(counts)
    free_pages = int((row << np.arange(11)).sum())
    nr_pages = (-(-free_pages * 2 // 1024) + extra_chunks) * 1024 + 1024 + seed % 700
    a = procfs.allocator_from_buddyinfo(row, nr_pages=nr_pages, grouping=grouping, seed=seed)
    a.check()
    assert a.buddyinfo().tolist() == row.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=11, max_size=11), min_size=3, max_size=3),
       st.integers(0, 2**16))
def test_allocator_from_random_pagetypeinfo(free3, seed):
    free = np.zeros((5, 11), dtype=np.int64)
    free[:3] = free3
    pages = (free << np.arange(11)).sum(axis=1)
    blocks = np.zeros(5, dtype=np.int64)
    blocks[:3] = -(-pages[:3] * 2 // 512) + 1
    a = procfs.allocator_from_buddyinfo(free.sum(axis=0), free_per_migratetype=free, pageblocks=blocks, seed=seed)
    a.check()
    pti = a.pagetypeinfo()
    assert pti["free"].tolist() == free.tolist() and pti["pageblocks"].tolist() == blocks.tolist()


def test_formatter_caps_long_lists_like_the_kernel():
    a = procfs.allocator_from_buddyinfo([150000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], nr_pages=1 << 19)
    text = procfs.format_pagetypeinfo(procfs.allocator_pagetypeinfo(a))
    movable = next(l for l in text.splitlines() if "type      Movable" in l)
    assert movable.split()[6] == ">100000"
    assert procfs.format_pagetypeinfo(procfs.parse_pagetypeinfo(text)) == text


def test_fresh_allocator_formats():
    a = BuddyAllocator(5000)
    text = procfs.format_buddyinfo(procfs.allocator_buddyinfo(a, "Normal"))
    assert text == "Node 0, zone   Normal " + "".join("%6d " % c for c in a.buddyinfo()) + "\n"
    pti = procfs.allocator_pagetypeinfo(a)
    out = procfs.format_pagetypeinfo(pti)
    assert out.startswith("Page block order: 9\nPages per block:  512\n\n")
    assert procfs.format_pagetypeinfo(procfs.parse_pagetypeinfo(out)) == out


def test_snapshot_reads_a_proc_directory(tmp_path):
    for name in ("buddyinfo", "pagetypeinfo", "zoneinfo"):
        (tmp_path / name).write_text((DATA / "after-sort" / name).read_text())
    snap = procfs.snapshot(tmp_path)
    assert procfs.format_buddyinfo(snap.buddyinfo) == (DATA / "after-sort" / "buddyinfo").read_text()
    assert snap.meta["uname_r"]
    saved = snap.save(tmp_path / "copy")
    again = procfs.load_snapshot(saved)
    pd.testing.assert_frame_equal(again.buddyinfo, snap.buddyinfo)
    assert again.meta["captured_utc"] == snap.meta["captured_utc"]
    (tmp_path / "pagetypeinfo").unlink()
    assert procfs.snapshot(tmp_path).pagetypeinfo is None
    with pytest.raises(FileNotFoundError):
        procfs.snapshot(tmp_path / "nowhere")


@pytest.mark.skipif(not Path("/proc/buddyinfo").exists(), reason="not Linux")
def test_live_snapshot_round_trips():
    # values change from moment to moment; only the layout is asserted
    snap = procfs.snapshot()
    assert procfs.format_buddyinfo(snap.buddyinfo) == snap.texts["buddyinfo"]
    if snap.pagetypeinfo is not None:
        assert procfs.format_pagetypeinfo(snap.pagetypeinfo) == snap.texts["pagetypeinfo"]


def test_highatomic_isolate_and_cma_rows():
    # 6 rows: Unmovable, Movable, Reclaimable, HighAtomic, CMA, Isolate (a CONFIG_CMA kernel)
    free = np.zeros((6, 11), dtype=np.int64)
    free[0, [0, 3]] = [5, 2]
    free[1, [0, 9, 10]] = [7, 1, 2]
    free[3, 2] = 3          # HighAtomic
    free[4, 10] = 1         # CMA: folded into Movable
    free[5, 9] = 1          # Isolate
    blocks = np.array([2, 12, 1, 1, 2, 2])
    a = procfs.allocator_from_buddyinfo(free.sum(axis=0), free_per_migratetype=free, pageblocks=blocks, seed=4)
    a.check()
    pti = a.pagetypeinfo()
    assert pti["pageblocks"].tolist() == [2, 14, 1, 1, 2]
    assert pti["free"][1].tolist() == (free[1] + free[4]).tolist()
    assert pti["free"][3].tolist() == free[3].tolist() and pti["free"][4].tolist() == free[5].tolist()
    assert a.buddyinfo().tolist() == free.sum(axis=0).tolist()
    text = procfs.pagetypeinfo_text(a)
    assert procfs.format_pagetypeinfo(procfs.parse_pagetypeinfo(text)) == text
    assert procfs.buddyinfo_text(a, "DMA32") == procfs.format_buddyinfo(procfs.allocator_buddyinfo(a, "DMA32"))


def test_allocator_from_snapshot_with_cma_names():
    names = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
    text = ("Page block order: 9\nPages per block:  512\n\n"
            + "%-43s " % "Free pages count per migrate type at order" + "".join("%6d " % o for o in range(11)) + "\n")
    free = {"Unmovable": [3, 1] + [0] * 9, "Movable": [4, 0, 2] + [0] * 6 + [1, 2],
            "Reclaimable": [0] * 11, "HighAtomic": [0] * 11, "CMA": [0] * 10 + [1], "Isolate": [0] * 11}
    for n in names:
        text += "Node %4d, zone %8s, type %12s " % (0, "Normal", n) + "".join("%6d " % c for c in free[n]) + "\n"
    text += "\n%-23s" % "Number of blocks type " + "".join("%12s " % n for n in names) + "\n"
    text += "Node 0, zone %8s " % "Normal" + "".join("%12d " % c for c in (1, 13, 0, 0, 2, 0)) + "\n"
    total = np.sum([free[n] for n in names], axis=0)
    buddy = "Node 0, zone %8s " % "Normal" + "".join("%6d " % c for c in total) + "\n"
    snap = procfs.ProcSnapshot(procfs.parse_buddyinfo(buddy), procfs.parse_pagetypeinfo(text), None)
    a = procfs.allocator_from_snapshot(snap)
    a.check()
    assert a.nr_pages == 16 * 512
    assert a.buddyinfo().tolist() == total.tolist()
    assert a.pagetypeinfo()["pageblocks"].tolist() == [1, 15, 0, 0, 0]
    assert a.pagetypeinfo()["free"][1, 10] == 3
    # an impossible snapshot: more free order-0 blocks than can stay unmerged
    with pytest.raises(ValueError, match="cannot place"):
        procfs.allocator_from_buddyinfo([6000, 0, 0], nr_pages=8192, max_order=2, pageblock_order=1)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 10), st.integers(0, 10), st.data())
def test_allocator_from_buddyinfo_other_geometries(max_order, pb, data):
    pb = min(pb, max_order)
    row = np.array(data.draw(st.lists(st.integers(0, 5), min_size=max_order + 1, max_size=max_order + 1)))
    free_pages = int((row << np.arange(max_order + 1)).sum())
    nr_pages = 2 * free_pages + (1 << max_order) + data.draw(st.integers(0, 1 << max_order))
    seed = data.draw(st.integers(0, 1000))
    a = procfs.allocator_from_buddyinfo(row, nr_pages=nr_pages, pageblock_order=pb, seed=seed)
    a.check()
    assert a.buddyinfo().tolist() == row.tolist() and a.nr_pages == nr_pages
