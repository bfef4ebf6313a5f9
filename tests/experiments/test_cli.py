from pathlib import Path

import pytest

from thpbench.data import data_path
from thpbench import procfs
from thpbench.cli import main

DATA = data_path("procfs")


def test_buddyinfo_fresh_prints_the_kernel_layout(capsys):
    assert main(["buddyinfo", "--mib", "8"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    # 8 MiB = two free order-10 blocks, in frag_show_print()'s layout
    assert first == "Node 0, zone   Normal " + "".join(f"{n:6d} " for n in [0] * 10 + [2])
    parsed = procfs.parse_buddyinfo(first + "\n")
    assert parsed.loc[parsed["order"] == 10, "nr_free"].tolist() == [2]
    assert "extfrag_index" in out and "unusable_index" in out


def test_buddyinfo_aged_with_pagetypeinfo(capsys):
    assert main(["buddyinfo", "--mib", "16", "--aged", "--pagetypeinfo", "--turnover", "1"]) == 0
    out = capsys.readouterr().out
    assert "Free pages count per migrate type at order" in out
    assert "Number of blocks type" in out


def test_snapshot_of_a_saved_capture(capsys, tmp_path):
    snap_dir = sorted(p for p in DATA.iterdir() if (p / "buddyinfo").exists())[0]
    assert main(["snapshot", "--proc", str(snap_dir), "--save", str(tmp_path / "copy")]) == 0
    out = capsys.readouterr().out
    assert out.startswith((snap_dir / "buddyinfo").read_text())
    assert "zone Normal" in out
    assert (tmp_path / "copy" / "buddyinfo").read_text() == (snap_dir / "buddyinfo").read_text()


@pytest.mark.parametrize("argv", [["buddyinfo", "--mib", "0"], ["buddyinfo", "--mib", "x"], ["nope"], []])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_snapshot_of_a_missing_proc_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["snapshot", "--proc", str(tmp_path)])
    assert e.value.code == 2
    assert "not readable" in capsys.readouterr().err


def test_thp_sysfs_compares_a_tree_with_the_simulator(capsys):
    root = DATA.parent / "sysfs-thp"
    assert main(["thp-sysfs", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "always [madvise] never" in out
    # the captured machine runs the kernel's defaults: nothing but the counters differs
    assert "<- differs" not in out and out.count("(a counter)") == 2


def test_a1_prints_the_table_in_published_order(capsys):
    assert main(["a1", "--processes", "2", "--sample", "40000"]) == 0
    out = capsys.readouterr().out
    assert out.count("predicted") == 4 and out.count("fitted") >= 3
    assert "shadow exit" in out


def test_a1_unknown_cpu_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["a1", "--cpu", "pentium"])
    assert e.value.code == 2 and "unknown CPU preset" in capsys.readouterr().err
