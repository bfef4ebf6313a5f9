"""The procfs parsers on hostile input (issue 9, items 8, 12 and 15): linear-time line
parsing, values the kernel cannot print, truncated text, and save_thp_sysfs confined to
its directory."""
import signal
from contextlib import contextmanager

import pytest

import thpbench
from thpbench import procfs

HEADER = ("Page block order: 9\n"
          "Pages per block:  512\n"
          "\n"
          "Free pages count per migrate type at order       0      1      2      3      4      5      6      7"
          "      8      9     10 \n")
BLOCKS = ("\n"
          "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n"
          "Node 0, zone   Normal            1            2            0            0            0 \n")


@contextmanager
def watchdog(seconds=60):
    """Turn a hang into a test failure (a guard, not a timing assertion: the parsers
    here answer in milliseconds; the regex they replaced ran for minutes)."""
    def fire(*_):
        raise TimeoutError(f"still running after {seconds} s: a parser that does not end")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_pagetypeinfo_line_without_its_trailing_blank_parses():
    """Item 8: the old pattern backtracked exponentially on a stripped line (112 s at 11
    orders, 1 s at 9) and then rejected it; the line is the kernel's, minus one blank."""
    line = "Node    0, zone   Normal, type      Movable" + "".join("%7d" % n for n in range(11))
    with watchdog():
        pti = procfs.parse_pagetypeinfo(HEADER + line + "\n" + BLOCKS)
    assert pti.free["nr_free"].tolist() == list(range(11))
    with pytest.raises(ValueError, match=r"without a count for every migratetype.*'Unmovable'"):
        pti.zone_free("Normal")        # only Movable was listed: no NaN cast to a number


def test_buddyinfo_line_without_its_trailing_blank_parses():
    with watchdog():
        df = procfs.parse_buddyinfo("Node 0, zone   Normal      1      2      3\n")
    assert procfs.buddyinfo_row(df).tolist() == [1, 2, 3]


@pytest.mark.parametrize("line", [
    "Node    0, zone   Normal, type      Movable" + "      0" * 60 + " x",
    "Node    0, zone   Normal, type      Movable" + " " * 20000 + "0x",
    "Node    0, zone   Normal, type      Movable" + " >" * 5000,
    "Node    0, zone   Normal, type      Movable" + "      0" * 5000,
])
def test_pathological_lines_fail_at_once(line):
    with watchdog(), pytest.raises(ValueError, match="pagetypeinfo line 5"):
        procfs.parse_pagetypeinfo(HEADER + line + "\n" + BLOCKS)


@pytest.mark.parametrize("count, why", [
    (2**63, "does not fit the int64"),              # stored as -9223372036854775808 before
    (2**64 - 1, "does not fit the int64"),
    (2**64, "larger than the kernel prints with %lu"),
    (10**50, "larger than the kernel prints"),
])
def test_buddyinfo_counts_the_kernel_cannot_print_or_we_cannot_hold(count, why):
    """Item 15: a count of 2^63 became a negative number; now every count is checked
    against "%lu" (unsigned long) and the int64 column, naming the line."""
    text = "Node 0, zone      DMA      1 \nNode 0, zone   Normal      1 %6d \n" % count
    with pytest.raises(ValueError, match=f"buddyinfo line 2: .*{why}"):
        procfs.parse_buddyinfo(text)


def test_largest_count_is_kept_exactly():
    df = procfs.parse_buddyinfo("Node 0, zone   Normal %d \n" % (2**63 - 1))
    assert int(df["nr_free"].iloc[0]) == 2**63 - 1


@pytest.mark.parametrize("text, why", [
    ("Node 2147483648, zone   Normal      1 \n", "node 2147483648 is larger than the kernel prints with %d"),
    ("Node 0, zone   Normal      +1 \n", "'\\+1' is not a decimal number"),
    ("Node 0, zone   Normal      1_0 \n", "'1_0' is not a decimal number"),
    ("Node 0, zone   Normal      \u0661 \n", "is not a decimal number"),       # int() reads it as 1
    ("Node 0, zone   Normal      1 \nNode 0, zone   Normal      2 \n", "a second line for this zone"),
    ("Node 0, zone   Normal      12", "cut short"),                            # truncated mid-number
    ("", "no 'Node N, zone NAME counts...' line"),
])
def test_buddyinfo_rejects(text, why):
    with pytest.raises(ValueError, match=why):
        procfs.parse_buddyinfo(text)


@pytest.mark.parametrize("old, new, why", [
    ("Movable      1 ", "Movable      %d " % 2**64, "larger than the kernel prints"),
    ("Pages per block:  512", "Pages per block:  500", "not 2\\^pageblock_order"),
    ("Page block order: 9", "Page block order: 99", "larger than the kernel prints with %d"),
    ("Movable      1 ", "Movable      \u0661 ", "not a decimal number"),
])
def test_pagetypeinfo_rejects(old, new, why):
    text = HEADER + "Node    0, zone   Normal, type      Movable" + "      1" * 11 + " \n" + BLOCKS
    procfs.parse_pagetypeinfo(text)
    with pytest.raises(ValueError, match=why):
        procfs.parse_pagetypeinfo(text.replace(old, new, 1))


def test_pagetypeinfo_duplicate_rows_and_truncation():
    row = "Node    0, zone   Normal, type      Movable" + "      1" * 11 + " \n"
    with pytest.raises(ValueError, match="line 6: a second row"):
        procfs.parse_pagetypeinfo(HEADER + row + row + BLOCKS)
    text = HEADER + row + BLOCKS
    with pytest.raises(ValueError, match="cut short"):
        procfs.parse_pagetypeinfo(text[:-2])


def test_zoneinfo_numbers_are_checked_and_protection_is_read():
    text = ("Node 0, zone   Normal\n"
            "  pages free     5\n"
            "        min      1\n"
            "        managed  10\n"
            "        protection: (0, 3019, 5835)\n")
    zi = procfs.parse_zoneinfo(text)
    assert zi.iloc[0]["protection"] == (0, 3019, 5835) and zi.iloc[0]["min"] == 1
    with pytest.raises(ValueError, match="line 3: min .* larger than the kernel prints"):
        procfs.parse_zoneinfo(text.replace("min      1", "min      %d" % 2**64))
    with pytest.raises(ValueError, match="no 'Node N, zone NAME' line"):
        procfs.parse_zoneinfo("hello\n")
    with pytest.raises(ValueError, match="line 5: protection"):
        procfs.parse_zoneinfo(text.replace("(0, 3019, 5835)", "(0, x)"))


# ---------------------------------------------------------------------------
# save_thp_sysfs writes only the THP tree, inside its directory (item 12)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["../escaped", "khugepaged/../../escaped", "/tmp/thpbench-escaped", "bogus", 3])
def test_save_thp_sysfs_refuses_paths_outside_the_tree(tmp_path, key):
    target = tmp_path / "tree"
    files = {"enabled": "always [madvise] never", key: "x"}
    with pytest.raises(ValueError, match="is not a THP sysfs file"):
        procfs.save_thp_sysfs(files, target)
    assert not (tmp_path / "escaped").exists()
    assert not target.exists()                      # nothing written: checked before any write


def test_save_thp_sysfs_refuses_a_symlink_out(tmp_path):
    target = tmp_path / "tree"
    target.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (target / "khugepaged").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside"):
        procfs.save_thp_sysfs({"khugepaged/defrag": "1"}, target)
    assert not (tmp_path / "elsewhere" / "defrag").exists()


def test_save_thp_sysfs_still_writes_a_kernels_tree(tmp_path):
    k = thpbench.Kernel(64 << 20)
    out = procfs.save_thp_sysfs(k.sysfs, tmp_path / "thp")
    assert (out / "khugepaged" / "max_ptes_none").read_text() == "511\n"
