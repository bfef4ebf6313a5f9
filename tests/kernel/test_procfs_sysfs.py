"""The THP sysfs tree: read a real one, configure the simulator from it, write the
simulator's back in the same layout (issue 3, item 1)."""
from pathlib import Path

import pytest

import thpbench
from thpbench.data import data_path
from thpbench import procfs

REAL = data_path("sysfs-thp")


def test_read_the_captured_tree():
    files = procfs.read_thp_sysfs(REAL)
    assert files["enabled"] == "always [madvise] never"
    assert files["defrag"] == "always defer defer+madvise [madvise] never"
    assert files["khugepaged/pages_to_scan"] == "4096"
    assert files["hpage_pmd_size"] == "2097152"


def test_the_kernels_defaults_match_the_real_machines():
    """The captured machine runs 6.18 with the build's defaults: the simulator must print
    the same text for every configuration file."""
    real = procfs.read_thp_sysfs(REAL)
    k = thpbench.Kernel(64 << 20)
    for name, text in real.items():
        if name.startswith("khugepaged/") and name.split("/")[1] in ("pages_collapsed", "full_scans"):
            continue
        assert k.sysfs[name] == text, name


def test_configure_from_a_tree_and_save_it_back(tmp_path):
    files = procfs.read_thp_sysfs(REAL)
    files["enabled"] = "[always] madvise never"
    files["khugepaged/max_ptes_none"] = "64"
    k = thpbench.Kernel(64 << 20, thp=procfs.thp_settings(files))
    assert k.sysfs["enabled"] == "[always] madvise never"
    assert k.sysfs.values()["khugepaged/max_ptes_none"] == 64
    out = procfs.save_thp_sysfs(k.sysfs, tmp_path / "thp")
    assert (out / "enabled").read_text() == "[always] madvise never\n"
    again = procfs.read_thp_sysfs(out)
    assert procfs.thp_settings(again) == procfs.thp_settings(files)
    assert again["khugepaged/pages_collapsed"] == "0"


def test_bad_trees_and_values(tmp_path):
    with pytest.raises(FileNotFoundError, match="no THP sysfs tree"):
        procfs.read_thp_sysfs(tmp_path)
    with pytest.raises(KeyError, match="unknown THP sysfs file"):
        procfs.thp_settings({"bogus": "1"})
    with pytest.raises(ValueError, match="invalid value"):
        thpbench.Kernel(64 << 20, thp=procfs.thp_settings({"enabled": "always [sometimes] never"}))


@pytest.mark.skipif(not Path(procfs.THP_SYSFS, "enabled").exists(), reason="no THP sysfs on this machine")
def test_this_machines_tree_configures_the_simulator():
    k = thpbench.Kernel(64 << 20, thp=procfs.thp_settings(procfs.read_thp_sysfs()))
    k.check()
