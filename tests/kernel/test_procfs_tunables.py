"""Sysfs and sysctl writes parse as Linux 6.18 parses them (issue 9 item 13), and
``Kernel(thp=...)`` takes what reading the file gives (issue 8 item 8).

Each row is one write and the kernel's answer, worked out from the store function:
mm/huge_memory.c enabled_store / defrag_store (sysfs_streq: the word, one trailing
newline allowed), use_zero_page_store and khugepaged's defrag_store
(single_hugepage_flag_store: kstrtoul(buf, 10), above 1 -EINVAL),
split_underused_thp_store (kstrtobool: the first character decides);
mm/khugepaged.c pages_to_scan_store / *_sleep_millisecs_store (kstrtouint(buf, 10);
any error -EINVAL; pages_to_scan 0 -EINVAL), max_ptes_*_store (kstrtoul(buf, 10),
above HPAGE_PMD_NR - 1 -EINVAL); lib/kstrtox.c (an optional '+', no blanks, one
trailing newline, -ERANGE past 64 bits); mm/compaction.c vm_compaction[] through
kernel/sysctl.c proc_dointvec_minmax (blanks skipped, '-' allowed, '+' not, base 0:
"010" is 8 and "0x10" 16, the number ends at a blank, INT range, extra1..extra2; what
follows the blank is dropped under sysctl_writes_strict) and sysctl_compaction_handler
(only 1).  An empty write changes nothing: sysfs never calls the store function for 0
bytes, and proc_dointvec returns at once for an empty buffer.
"""
import pytest

import thpbench
from thpbench.kernel.tunables import kstrtobool, kstrtoull, proc_dointvec_minmax

UNCHANGED = "unchanged"

SYSFS = [
    # (file, bytes written, the kernel's answer: the new value, "-EINVAL"/"-ERANGE", or UNCHANGED)
    ("enabled", "always", "always"),
    ("enabled", "always\n", "always"),
    ("enabled", "never\n", "never"),
    ("enabled", " always", "-EINVAL"),
    ("enabled", "always ", "-EINVAL"),
    ("enabled", "Always", "-EINVAL"),
    ("enabled", "always\n\n", "-EINVAL"),
    ("enabled", "alw", "-EINVAL"),
    ("enabled", "always\0junk", "always"),            # kernfs NUL-terminates; the C string ends at the NUL
    ("enabled", "[always] madvise never", "-EINVAL"),  # a write is a word, not the file's text
    ("enabled", "", UNCHANGED),
    ("defrag", "defer+madvise", "defer+madvise"),
    ("defrag", "defer+madvise\n", "defer+madvise"),
    ("defrag", "defer+", "-EINVAL"),
    ("defrag", "madvise\t", "-EINVAL"),
    ("use_zero_page", "0\n", 0),
    ("use_zero_page", "+1", 1),
    ("use_zero_page", "01", 1),
    ("use_zero_page", "2", "-EINVAL"),
    ("use_zero_page", "y", "-EINVAL"),
    ("use_zero_page", "0x1", "-EINVAL"),
    ("use_zero_page", " 1", "-EINVAL"),
    ("use_zero_page", "1 ", "-EINVAL"),
    ("use_zero_page", "-0", "-EINVAL"),
    ("use_zero_page", "18446744073709551616", "-ERANGE"),   # kstrtoul's -ERANGE passed through
    ("shrink_underused", "y", 1),
    ("shrink_underused", "Yes", 1),
    ("shrink_underused", "no", 0),
    ("shrink_underused", "on", 1),
    ("shrink_underused", "off", 0),
    ("shrink_underused", "true", 1),
    ("shrink_underused", "F", 0),
    ("shrink_underused", "10", 1),                    # only the first character is read
    ("shrink_underused", "yes please", 1),
    ("shrink_underused", "2", "-EINVAL"),
    ("shrink_underused", " 1", "-EINVAL"),
    ("shrink_underused", "o", "-EINVAL"),
    ("khugepaged/defrag", "0", 0),
    ("khugepaged/defrag", "y", "-EINVAL"),
    ("khugepaged/pages_to_scan", "0", "-EINVAL"),
    ("khugepaged/pages_to_scan", "4294967295", 4294967295),
    ("khugepaged/pages_to_scan", "4294967296", "-EINVAL"),  # kstrtouint -ERANGE, the store says -EINVAL
    ("khugepaged/pages_to_scan", "010", 10),
    ("khugepaged/pages_to_scan", "+8\n", 8),
    ("khugepaged/pages_to_scan", "8 ", "-EINVAL"),
    ("khugepaged/pages_to_scan", "-1", "-EINVAL"),
    ("khugepaged/scan_sleep_millisecs", "0", 0),
    ("khugepaged/scan_sleep_millisecs", "0x10", "-EINVAL"),
    ("khugepaged/scan_sleep_millisecs", "1e3", "-EINVAL"),
    ("khugepaged/alloc_sleep_millisecs", "60001\n", 60001),
    ("khugepaged/max_ptes_none", "511", 511),
    ("khugepaged/max_ptes_none", "512", "-EINVAL"),
    ("khugepaged/max_ptes_none", "007", 7),
    ("khugepaged/max_ptes_swap", "", UNCHANGED),
    ("khugepaged/max_ptes_shared", "256\n", 256),
    ("khugepaged/max_ptes_shared", "2.5", "-EINVAL"),
]

SYSCTL = [
    ("extfrag_threshold", "010", 8),                  # base 0: octal
    ("extfrag_threshold", "0x10", 16),
    ("extfrag_threshold", "0X1f", 31),
    ("extfrag_threshold", "08", "-EINVAL"),           # "0" then '8' is not a blank
    ("extfrag_threshold", "+5", "-EINVAL"),
    ("extfrag_threshold", "  7\n", 7),
    ("extfrag_threshold", "\t500\t", 500),
    ("extfrag_threshold", "7 junk", 7),               # the rest after the blank is dropped
    ("extfrag_threshold", "7junk", "-EINVAL"),
    ("extfrag_threshold", "-0", 0),
    ("extfrag_threshold", "-1", "-EINVAL"),
    ("extfrag_threshold", "1001", "-EINVAL"),
    ("extfrag_threshold", "1000\n", 1000),
    ("extfrag_threshold", "\n", "-EINVAL"),
    ("extfrag_threshold", "", UNCHANGED),
    ("extfrag_threshold", "2147483648", "-EINVAL"),   # above INT_MAX
    ("extfrag_threshold", "0" * 22 + "5", "-EINVAL"),  # 21 characters or more (TMPBUFLEN)
    ("extfrag_threshold", "1\x002", "-EINVAL"),
    ("compaction_proactiveness", "100", 100),
    ("compaction_proactiveness", "101", "-EINVAL"),
    ("compaction_proactiveness", "0\n", 0),
    ("compaction_proactiveness", "-5", "-EINVAL"),
    ("compaction_proactiveness", "20 30", 20),
]


@pytest.mark.parametrize("name, written, answer", SYSFS, ids=lambda x: repr(x))
def test_sysfs_writes_parse_as_the_kernel(name, written, answer):
    k = thpbench.Kernel(64 << 20)
    k.sysfs["enabled"] = "madvise"
    before = k.sysfs.values()[name]
    if isinstance(answer, str) and answer.startswith("-E"):
        with pytest.raises(ValueError, match=f"invalid value .* for {name}: .*{answer}"):
            k.sysfs[name] = written
        assert k.sysfs.values()[name] == before          # -EINVAL leaves the setting as it was
    else:
        k.sysfs[name] = written
        assert k.sysfs.values()[name] == (before if answer == UNCHANGED else answer)
    k.check()


@pytest.mark.parametrize("name, written, answer", SYSCTL, ids=lambda x: repr(x))
def test_sysctl_writes_parse_as_the_kernel(name, written, answer):
    k = thpbench.Kernel(64 << 20)
    k.vm_sysctl[name] = 3
    if isinstance(answer, str) and answer.startswith("-E"):
        with pytest.raises(ValueError, match=f"invalid value .* for vm.{name}: .*-EINVAL"):
            k.vm_sysctl[name] = written
        assert k.vm_sysctl.values()[name] == 3
    else:
        k.vm_sysctl[name] = written
        assert k.vm_sysctl.values()[name] == (3 if answer == UNCHANGED else answer)


@pytest.mark.parametrize("written, ok", [("1", True), ("1\n", True), (" 1", True), ("2", False), ("0", False),
                                         ("one", False), ("+1", False)])
def test_compact_memory_accepts_only_1(written, ok):
    """mm/compaction.c: sysctl_compaction_handler: proc_dointvec, then only 1 compacts."""
    k = thpbench.Kernel(64 << 20)
    if ok:
        k.vm_sysctl["compact_memory"] = written
    else:
        with pytest.raises(ValueError, match="invalid value .* for vm.compact_memory"):
            k.vm_sysctl["compact_memory"] = written


def test_the_two_examples_of_the_issue():
    k = thpbench.Kernel(64 << 20, vm={"extfrag_threshold": "010"}, thp={"shrink_underused": "y"})
    assert k.vm_sysctl.values()["extfrag_threshold"] == 8
    assert k.sysfs.values()["shrink_underused"] == 1


def test_non_text_values():
    k = thpbench.Kernel(64 << 20)
    k.sysfs["khugepaged/max_ptes_none"] = 64               # an int is written in decimal
    k.sysfs["use_zero_page"] = False
    k.sysfs["khugepaged/defrag"] = b"0\n"                   # bytes as they are
    assert [k.sysfs.values()[n] for n in ("khugepaged/max_ptes_none", "use_zero_page", "khugepaged/defrag")] \
        == [64, 0, 0]
    with pytest.raises(TypeError, match="must be a str, bytes or an int, got float"):
        k.sysfs["khugepaged/max_ptes_none"] = 1.0
    with pytest.raises(TypeError, match="got list"):
        k.vm_sysctl["extfrag_threshold"] = [1]
    with pytest.raises(ValueError, match="invalid value .* for enabled: surrogates not allowed"):
        k.sysfs["enabled"] = "\ud800"
    assert k.sysfs.values()["khugepaged/max_ptes_none"] == 64


def test_the_parsers_directly():
    assert kstrtoull(b"+42\n") == 42 and kstrtobool(b"Off") is False and kstrtobool(b"ON") is True
    assert proc_dointvec_minmax(b"") is None and proc_dointvec_minmax(b" -2147483648 ") == -2**31
    with pytest.raises(ValueError):
        proc_dointvec_minmax(b"-2147483649")
    with pytest.raises(ValueError):
        kstrtoull(b"1" * 10000)                              # linear, and -ERANGE


# ---------------------------------------------------------------------------
# Kernel(thp=...) takes the text a read of the file gives (issue 8 item 8)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, word", [
    ("enabled", "always [madvise] never", "madvise"),
    ("enabled", "[always] madvise never\n", "always"),
    ("enabled", "always", "always"),
    ("defrag", "always defer [defer+madvise] madvise never", "defer+madvise"),
    ("defrag", "[always] defer defer+madvise madvise never", "always"),
])
def test_kernel_takes_the_sysfs_text(name, text, word):
    k = thpbench.Kernel(64 << 20, thp={name: text})
    assert k.sysfs.values()[name] == word


@pytest.mark.parametrize("text", ["[always] [madvise] never", "always madvise never [sometimes]",
                                  "[never] madvise always", "always [madvise]"])
def test_kernel_refuses_text_that_is_not_the_files(text):
    with pytest.raises(ValueError, match="invalid value .* for enabled: not the file's text"):
        thpbench.Kernel(64 << 20, thp={"enabled": text})
