"""min_free_kbytes, the watermarks and lowmem_reserve as Linux 6.18 computes them for an
x86-64 zone layout (issue 8 item 7h), checked against every zone of the captures in
data/procfs, and the one pooled zone the simulator keeps."""
import pytest

import thpbench
from thpbench import procfs
from thpbench.data import data_path
from thpbench.kernel import watermarks as W

SNAPSHOTS = sorted(p for p in data_path("procfs").iterdir() if p.is_dir() and (p / "zoneinfo").exists())


@pytest.mark.parametrize("snap", SNAPSHOTS, ids=lambda p: p.name)
def test_every_zone_of_the_captures(snap):
    """mm/page_alloc.c __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve,
    calculate_min_free_kbytes and mm/khugepaged.c set_recommended_min_free_kbytes give
    zoneinfo's min/low/high/promo and protection to the page, for DMA, DMA32, Normal,
    Movable and Device.  The machine runs THP enabled=madvise (data/sysfs-thp), so
    min_free_kbytes is khugepaged's 512 * 3 zones * 11 pages = 67584 kB."""
    zi = procfs.parse_zoneinfo((snap / "zoneinfo").read_text())
    layout = W.zone_watermarks({r.zone: int(r.managed) for r in zi.itertuples()},
                               present={r.zone: int(r.present) for r in zi.itertuples()})
    assert layout["min_free_kbytes"] == 67584
    for r in zi.itertuples():
        z = layout["zones"][r.zone]
        assert (z["min"], z["low"], z["high"], z["promo"]) == (r.min, r.low, r.high, r.promo), r.zone
        assert z["protection"] == r.protection, r.zone


def test_calculate_min_free_kbytes_without_thp():
    """calculate_min_free_kbytes(): clamp(int_sqrt(16 * lowmem_kB), 128, 262144)."""
    assert W.zone_watermarks(W.x86_64_zones(262144), thp_enabled=False)["min_free_kbytes"] == 4096
    assert W.zone_watermarks(W.x86_64_zones(2048), thp_enabled=False)["min_free_kbytes"] == 362
    assert W.zone_watermarks(W.x86_64_zones(1 << 30), thp_enabled=False)["min_free_kbytes"] == 262144
    assert W.zone_watermarks({"DMA": 10}, thp_enabled=False)["min_free_kbytes"] == 128


def test_x86_64_layout():
    assert W.x86_64_zones(16384) == {"DMA": 4096, "DMA32": 12288, "Normal": 0, "Movable": 0, "Device": 0}
    z = W.x86_64_zones(24 << 18)                            # 24 GiB: 3 GiB below the MMIO gap
    assert (z["DMA"], z["DMA32"], z["Normal"]) == (4096, 786432 - 4096, (24 << 18) - 786432)
    with pytest.raises(ValueError, match="nr_pages -1"):
        W.x86_64_zones(-1)


def test_recommended_counts_populated_zones_and_is_capped():
    """set_recommended_min_free_kbytes(): pageblock_nr_pages * nr_zones * 11, nr_zones the
    populated zones up to Normal, at most nr_free_buffer_pages() / 20."""
    big = W.zone_watermarks(W.x86_64_zones(8 << 18))        # 8 GiB: DMA, DMA32, Normal
    assert big["min_free_kbytes"] == 512 * 3 * 11 * 4
    mid = W.zone_watermarks(W.x86_64_zones(1 << 18))        # 1 GiB: DMA, DMA32
    assert mid["min_free_kbytes"] == 512 * 2 * 11 * 4
    small = W.zone_watermarks(W.x86_64_zones(16384))        # 64 MiB: the 5% cap
    boot_high = W.setup_per_zone_wmarks([4096, 12288, 0, 0, 0], 1024)
    assert small["min_free_kbytes"] == (16384 - boot_high[0]["high"] - boot_high[1]["high"]) // 20 * 4


def test_lowmem_reserve_matters_for_the_lower_zones_only():
    z = W.zone_watermarks(W.x86_64_zones(8 << 18))["zones"]
    assert z["DMA"]["protection"][1] == z["DMA32"]["managed"] // 256
    assert z["DMA32"]["protection"][3] == z["Normal"]["managed"] // 256
    assert z["Normal"]["protection"] == (0, 0, 0, 0, 0)     # no Movable zone above it


def test_the_kernels_pooled_zone():
    """The simulator's one zone: the sum over the zones of mark + lowmem_reserve for a
    user allocation, each at most the zone's size; DMA on a big machine is all reserve."""
    k = thpbench.Kernel(64 << 20)
    layout = W.zone_watermarks(W.x86_64_zones(k.nr_pages), pageblock_order=k.buddy.pageblock_order)
    assert k.min_free_kbytes == layout["min_free_kbytes"] == 3200
    z = layout["zones"]
    for mark in ("min", "low", "high"):
        assert k.watermarks[mark] == (z["DMA"][mark] + z["DMA"]["protection"][3]) + z["DMA32"][mark]
    big = W.pooled_watermarks(W.zone_watermarks(W.x86_64_zones(24 << 18)))
    bz = W.zone_watermarks(W.x86_64_zones(24 << 18))["zones"]
    assert big["min"] == 4096 + bz["DMA32"]["min"] + bz["DMA32"]["protection"][3] + bz["Normal"]["min"]


def test_thp_off_and_a_user_value():
    k = thpbench.Kernel(1 << 30, thp={"enabled": "never"})
    assert k.min_free_kbytes == 4096
    k.sysfs["enabled"] = "always"                           # start_stop_khugepaged
    assert k.min_free_kbytes == 45056
    u = thpbench.Kernel(1 << 30, min_free_kbytes=100000)
    assert u.min_free_kbytes == 100000 and u.watermarks["min"] > 25000
    with pytest.raises(ValueError, match="min_free_kbytes -5"):
        thpbench.Kernel(64 << 20, min_free_kbytes=-5)
    with pytest.raises((TypeError, ValueError), match="min_free_kbytes"):
        thpbench.Kernel(64 << 20, min_free_kbytes="1")


def test_bad_layouts():
    with pytest.raises(ValueError, match="unknown zones \\['HighMem'\\]"):
        W.zone_watermarks({"HighMem": 5})
    with pytest.raises(ValueError, match="managed pages of zone DMA must be an int >= 0, got -1"):
        W.zone_watermarks({"DMA": -1})
    with pytest.raises(TypeError, match="must be a dict"):
        W.zone_watermarks([1, 2])
