"""The THP configuration under its sysfs names, and /proc/sys/vm."""
from __future__ import annotations



import operator
from typing import TYPE_CHECKING

from thpbench.units import HPAGE_PMD_NR, HPAGE_PMD_SIZE

if TYPE_CHECKING:
    from thpbench.kernel.kernel import Kernel

ENABLED_MODES = ("never", "madvise", "always")          # index = core code
DEFRAG_MODES = ("always", "defer", "defer+madvise", "madvise", "never")
_ENABLED_ORDER = ("always", "madvise", "never")          # as sysfs prints them




# ---------------------------------------------------------------------------
# The THP configuration under its sysfs names
# ---------------------------------------------------------------------------

_SYSFS_ROOT = "/sys/kernel/mm/transparent_hugepage/"

UINT_MAX = 2**32 - 1
ULONG_MAX = 2**64 - 1                     # x86-64: unsigned long is 64 bits
INT_MAX = 2**31 - 1
PAGE_SIZE_BYTES = 4096

# name -> (default, kind); kind: a tuple of words, "bool", ("int", lo, hi) or "ro"
_SYSFS_SPEC = {
    "enabled": ("madvise", ENABLED_MODES),
    "defrag": ("madvise", DEFRAG_MODES),
    "use_zero_page": (1, "bool"),
    "shrink_underused": (1, "bool"),
    "khugepaged/defrag": (1, "bool"),
    "khugepaged/pages_to_scan": (4096, ("int", 1, UINT_MAX)),
    "khugepaged/scan_sleep_millisecs": (10000, ("int", 0, UINT_MAX)),
    "khugepaged/alloc_sleep_millisecs": (60000, ("int", 0, UINT_MAX)),
    "khugepaged/max_ptes_none": (511, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/max_ptes_swap": (64, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/max_ptes_shared": (256, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/pages_collapsed": (0, "ro"),
    "khugepaged/full_scans": (0, "ro"),
    "hpage_pmd_size": (HPAGE_PMD_SIZE, "ro"),
}

# How each store function parses the bytes written (Linux 6.18):
#   ("streq", words)     sysfs_streq() against each word: exact, one trailing newline allowed
#   ("kstrtoul", lo, hi) kstrtoul(buf, 10) then the store's own range check
#   ("kstrtouint", lo, hi) kstrtouint(buf, 10) (-ERANGE above UINT_MAX), then the range
#   ("kstrtobool",)      kstrtobool(): the first character decides ("1yYtT" / "0nNfF", "on"/"of")
_SYSFS_STORE = {
    # mm/huge_memory.c: enabled_store -> sysfs_streq("always"/"madvise"/"never")
    "enabled": ("streq", ENABLED_MODES),
    # mm/huge_memory.c: defrag_store -> sysfs_streq() per word (sysfs_match_string semantics)
    "defrag": ("streq", DEFRAG_MODES),
    # mm/huge_memory.c: use_zero_page_store -> single_hugepage_flag_store: kstrtoul(buf, 10), > 1 is -EINVAL
    "use_zero_page": ("kstrtoul", 0, 1),
    # mm/huge_memory.c: split_underused_thp_store (file "shrink_underused") -> kstrtobool()
    "shrink_underused": ("kstrtobool",),
    # mm/khugepaged.c: defrag_store -> single_hugepage_flag_store: kstrtoul(buf, 10), > 1 is -EINVAL
    "khugepaged/defrag": ("kstrtoul", 0, 1),
    # mm/khugepaged.c: pages_to_scan_store: kstrtouint(buf, 10), 0 is -EINVAL
    "khugepaged/pages_to_scan": ("kstrtouint", 1, UINT_MAX),
    # mm/khugepaged.c: scan_sleep_millisecs_store / alloc_sleep_millisecs_store: kstrtouint(buf, 10)
    "khugepaged/scan_sleep_millisecs": ("kstrtouint", 0, UINT_MAX),
    "khugepaged/alloc_sleep_millisecs": ("kstrtouint", 0, UINT_MAX),
    # mm/khugepaged.c: max_ptes_{none,swap,shared}_store: kstrtoul(buf, 10), > HPAGE_PMD_NR - 1 is -EINVAL
    "khugepaged/max_ptes_none": ("kstrtoul", 0, HPAGE_PMD_NR - 1),
    "khugepaged/max_ptes_swap": ("kstrtoul", 0, HPAGE_PMD_NR - 1),
    "khugepaged/max_ptes_shared": ("kstrtoul", 0, HPAGE_PMD_NR - 1),
}


# ---------------------------------------------------------------------------
# The kernel's string-to-number rules, on the bytes a write(2) would pass
# ---------------------------------------------------------------------------

class _Einval(ValueError):
    """A parse the kernel answers with -EINVAL (or -ERANGE: ``errno`` says which)."""

    def __init__(self, why, errno="EINVAL"):
        super().__init__(why)
        self.errno = errno


def _write_bytes(key, value) -> bytes:
    """What ``echo -n VALUE > file`` passes to the kernel: a str as UTF-8, bytes as they
    are, an int in decimal (a bool as 1/0)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as e:
            raise ValueError(f"invalid value {value!r} for {key}: {e.reason} at position {e.start}, "
                             f"not text a file can be written") from None
    if isinstance(value, bool):
        return b"1" if value else b"0"
    try:
        return str(operator.index(value)).encode()
    except TypeError:
        raise TypeError(f"value for {key} must be a str, bytes or an int, got {type(value).__name__} "
                        f"{value!r}") from None


def _cstr(buf: bytes) -> bytes:
    """The C string a store function sees: kernfs NUL-terminates the buffer, so the
    string ends at the first NUL (fs/kernfs/file.c: kernfs_fop_write_iter)."""
    return buf.split(b"\0", 1)[0]


_KSPACE = b" \t\n\v\f\r\xa0"          # lib/ctype.c: the characters isspace() accepts


def _parse_integer(s: bytes, base: int):
    """lib/kstrtox.c: _parse_integer_fixup_radix + _parse_integer: (value, digits used,
    overflowed).  Linear in len(s): past 2^64 only the digits are counted."""
    if base == 0:
        if s[:1] == b"0":
            base = 16 if s[1:2] in (b"x", b"X") and s[2:3] and s[2:3] in b"0123456789abcdefABCDEF" else 8
        else:
            base = 10
    skip = 0
    if base == 16 and s[:1] == b"0" and s[1:2] in (b"x", b"X"):
        skip = 2
    value, n, overflow = 0, 0, False
    for c in s[skip:]:
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            break
        if d >= base:
            break
        if not overflow:
            value = value * base + d
            if value > ULONG_MAX:
                overflow = True
        n += 1
    return value, skip + n, overflow


def kstrtoull(buf: bytes, base: int = 10) -> int:
    """lib/kstrtox.c: kstrtoull(): an optional '+', digits of ``base``, one optional
    trailing newline and nothing else (no blanks, no '-')."""
    s = _cstr(buf)
    if s[:1] == b"+":
        s = s[1:]
    value, used, overflow = _parse_integer(s, base)
    if overflow:
        raise _Einval("above the 64-bit range", "ERANGE")
    if used == 0 or (base == 16 and used == 2 and s[:2].lower() == b"0x"):
        raise _Einval("not an integer")
    rest = s[used:]
    if rest[:1] == b"\n":
        rest = rest[1:]
    if rest:
        raise _Einval(f"trailing {rest[:20]!r}")
    return value


def kstrtouint(buf: bytes, base: int = 10) -> int:
    """lib/kstrtox.c: kstrtouint(): kstrtoull(), -ERANGE above UINT_MAX."""
    value = kstrtoull(buf, base)
    if value > UINT_MAX:
        raise _Einval(f"{value} is above UINT_MAX ({UINT_MAX})", "ERANGE")
    return value


def kstrtobool(buf: bytes) -> bool:
    """lib/kstrtox.c: kstrtobool(): the first character decides ('1', 'y', 'Y', 't', 'T'
    true; '0', 'n', 'N', 'f', 'F' false), 'o'/'O' the second ('n'/'N' on, 'f'/'F' off);
    the rest of the string is not looked at ("yes please" is true)."""
    s = _cstr(buf)
    c = s[:1]
    if c and c in b"1yYtT":
        return True
    if c and c in b"0nNfF":
        return False
    if c and c in b"oO" and s[1:2]:
        if s[1:2] in b"nN":
            return True
        if s[1:2] in b"fF":
            return False
    raise _Einval("not a boolean (1/0, y/n, t/f, on/off)")


def sysfs_streq(buf: bytes, word: str) -> bool:
    """lib/string.c: sysfs_streq(): equal, or equal but for one trailing newline."""
    s, w = _cstr(buf), word.encode()
    return s == w or s == w + b"\n"


def proc_dointvec_minmax(buf: bytes, lo=None, hi=None):
    """kernel/sysctl.c: the write half of __do_proc_dointvec() with
    do_proc_dointvec_minmax_conv(), for a single int.  Returns the int, or None for an
    empty write (``!*lenp``: nothing happens).

    Blanks (isspace) before the number are skipped; a '-' sign is allowed, a '+' is not;
    the base is the C one (``strtoul_lenient(p, &p, 0)``: "010" is 8, "0x10" is 16);
    the number ends at the end of the write or at a ' ', '\\t' or '\\n'
    (``proc_wspace_sep``); 21 characters or more are refused (``TMPBUFLEN``); the value
    must fit an int and lie in [lo, hi] (extra1/extra2).  Whatever follows the blank
    after the number is not parsed: the write ends short there, and under the default
    ``kernel.sysctl_writes_strict`` = 1 the retry at a non-zero offset is ignored
    (``proc_first_pos_non_zero_ignore``), so the value is set and the rest dropped.
    """
    if not buf:
        return None
    left = min(len(buf), PAGE_SIZE_BYTES - 1)
    p = 0
    while left and buf[p] in _KSPACE:                        # proc_skip_spaces
        p, left = p + 1, left - 1
    if not left:
        raise _Einval("no integer")
    # proc_get_long(): at most TMPBUFLEN - 1 = 21 characters are looked at
    tmp = _cstr(buf[p:p + min(left, 21)])
    neg = tmp[:1] == b"-" and left > 1
    q = 1 if neg else 0
    if not (tmp[q:q + 1] and tmp[q:q + 1] in b"0123456789"):
        raise _Einval("not an integer" + (" (a '+' sign is not accepted)" if tmp[:1] == b"+" else ""))
    value, used, overflow = _parse_integer(tmp[q:], 0)
    if overflow:
        raise _Einval("above the 64-bit range")
    end = q + used
    if end == 21:
        raise _Einval("21 characters or more")
    if end < left and buf[p + end:p + end + 1] not in (b" ", b"\t", b"\n"):
        raise _Einval(f"{buf[p + end:p + end + 10]!r} after the number")
    # do_proc_dointvec_conv(): the value must fit an int
    if neg:
        if value > INT_MAX + 1:
            raise _Einval(f"-{value} is below INT_MIN")
        value = -value
    elif value > INT_MAX:
        raise _Einval(f"{value} is above INT_MAX")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Einval(f"{value} out of range {lo}..{hi}")
    return value


_RULE_NAMES = {"streq": "sysfs_streq", "kstrtobool": "kstrtobool", "kstrtouint": "kstrtouint",
               "kstrtoul": "kstrtoul"}


#: the THP sysfs files the simulator models: name -> (default, kind) (read-only for users)
SYSFS_SPEC = _SYSFS_SPEC


class _Knobs:
    """A directory of kernel tunables read and written as text by path (sysfs, sysctl):
    the path handling, integer parsing and the membership tests both trees share."""

    _ROOT = ""
    _SPEC: dict = {}
    _WHAT = "file"

    @classmethod
    def _key(cls, path) -> str:
        if not isinstance(path, str):
            raise TypeError(f"{cls._WHAT} path must be a str, got {type(path).__name__}")
        key = path[len(cls._ROOT):] if path.startswith(cls._ROOT) else path.strip("/")
        key = cls._alias(key)
        if key not in cls._SPEC:
            raise KeyError(f"no such {cls._WHAT} {path!r}; known: {', '.join(cls._SPEC)}")
        return key

    @staticmethod
    def _alias(key: str) -> str:
        return key

    @staticmethod
    def _parse_sysfs(key, value, current):
        """What the store function of THP sysfs file ``key`` makes of a write of ``value``
        (see ``_SYSFS_STORE``): the new setting, ``current`` for an empty write (sysfs
        never calls the store function for 0 bytes: fs/sysfs/file.c sysfs_kf_write), or
        ValueError naming the file, the value, the kernel's rule and errno."""
        buf = _write_bytes(key, value)
        if not buf:
            return current
        rule = _SYSFS_STORE[key]
        try:
            if rule[0] == "streq":
                for word in rule[1]:
                    if sysfs_streq(buf, word):
                        return word
                raise _Einval(f"allowed: {', '.join(rule[1])} (one trailing newline allowed)")
            if rule[0] == "kstrtobool":
                return int(kstrtobool(buf))
            num = (kstrtouint if rule[0] == "kstrtouint" else kstrtoull)(buf, 10)
            if not rule[1] <= num <= rule[2]:
                raise _Einval(f"{num} out of range {rule[1]}..{rule[2]}")
            return num
        except _Einval as e:
            # single_hugepage_flag_store returns kstrtoul's error as it is (-ERANGE or
            # -EINVAL); the khugepaged stores answer -EINVAL for any parse error
            errno = e.errno if key in ("use_zero_page", "khugepaged/defrag") else "EINVAL"
            raise ValueError(f"invalid value {value!r} for {key}: {e} ({_RULE_NAMES[rule[0]]}: "
                             f"-{errno})") from None

    @staticmethod
    def _parse_sysctl(key, value, current, lo=None, hi=None):
        """What proc_dointvec_minmax() makes of a write of ``value`` to /proc/sys/vm/``key``:
        the int, ``current`` for an empty write, or ValueError (-EINVAL)."""
        buf = _write_bytes(key, value)
        try:
            num = proc_dointvec_minmax(buf, lo, hi)
        except _Einval as e:
            rng = f" in {lo}..{hi}" if lo is not None else ""
            raise ValueError(f"invalid value {value!r} for vm.{key}: {e} (proc_dointvec_minmax: an int{rng}; "
                             f"-EINVAL)") from None
        return current if num is None else num

    @staticmethod
    def _parse_setting(key, value):
        """A setting given to ``Kernel(thp=...)``: as a write, or as the text a read of the
        file gives ("always [madvise] never" selects madvise)."""
        kind = _SYSFS_SPEC.get(key, (None, None))[1]
        if isinstance(kind, tuple) and kind[0] != "int" and isinstance(value, str) and "[" in value:
            text = value[:-1] if value.endswith("\n") else value
            words = text.split(" ")
            order = _ENABLED_ORDER if key == "enabled" else DEFRAG_MODES
            picked = [w[1:-1] for w in words if w.startswith("[") and w.endswith("]")]
            if len(picked) == 1 and [w.strip("[]") for w in words] == list(order):
                return picked[0]
            raise ValueError(f"invalid value {value!r} for {key}: not the file's text (one bracketed word "
                             f"among {' '.join(order)}) nor a word")
        return value

    def __contains__(self, path) -> bool:
        try:
            self._key(path)
            return True
        except (KeyError, TypeError):
            return False

    def keys(self):
        return list(self._SPEC)


class ThpSysfs(_Knobs):
    """``/sys/kernel/mm/transparent_hugepage``: read and write as text, by path.

    ``sysfs["enabled"]`` reads ``"always [madvise] never"``; ``sysfs["enabled"] =
    "always"`` writes.  Paths may be relative (``"khugepaged/max_ptes_none"``) or
    absolute.  Writes are validated as the kernel's store functions do (an unknown
    word or a number out of range raises ValueError, the kernel's -EINVAL).
    ``values()`` gives the parsed settings as a dict.
    """

    def __init__(self, kernel: "Kernel", overrides: dict | None = None):
        self._k = kernel
        self._v = {k: d for k, (d, _) in _SYSFS_SPEC.items() if _ != "ro"}
        self._ready = False
        for k, val in (overrides or {}).items():
            self[k] = self._parse_setting(self._key(k), val)
        self._ready = True

    _ROOT = _SYSFS_ROOT
    _SPEC = _SYSFS_SPEC
    _WHAT = "THP sysfs file"

    def __getitem__(self, path: str) -> str:
        key = self._key(path)
        kind = _SYSFS_SPEC[key][1]
        if key == "khugepaged/pages_collapsed":
            return str(self._k.pages_collapsed)
        if key == "khugepaged/full_scans":
            return str(self._k.full_scans)
        if key == "hpage_pmd_size":
            return str(HPAGE_PMD_SIZE)
        v = self._v[key]
        if isinstance(kind, tuple) and kind[0] != "int":
            order = _ENABLED_ORDER if key == "enabled" else DEFRAG_MODES
            return " ".join(f"[{w}]" if w == v else w for w in order)
        return str(int(v))

    def __setitem__(self, path: str, value) -> None:
        key = self._key(path)
        kind = _SYSFS_SPEC[key][1]
        if kind == "ro":
            raise PermissionError(f"{key} is read-only")
        self._v[key] = self._parse_sysfs(key, value, self._v[key])
        if self._ready:
            self._k.apply_policy()


    def values(self) -> dict:
        """The parsed settings (words for enabled/defrag, ints for the rest)."""
        out = dict(self._v)
        out["khugepaged/pages_collapsed"] = self._k.pages_collapsed
        out["khugepaged/full_scans"] = self._k.full_scans
        return out

    def text(self) -> str:
        """Every file as ``path: content`` lines (what ``grep -r . <dir>`` prints)."""
        return "\n".join(f"{_SYSFS_ROOT}{k}:{self[k]}" for k in _SYSFS_SPEC) + "\n"

    def write_text(self, text: str) -> None:
        """Apply ``path: value`` lines (the format of text())."""
        for line in text.splitlines():
            if not line.strip():
                continue
            path, _, val = line.partition(":")
            key = self._key(path.strip())
            if _SYSFS_SPEC[key][1] == "ro":
                continue
            val = val.strip()
            if "[" in val:
                val = val[val.index("[") + 1:val.index("]")]
            self[key] = val

    def __repr__(self):
        return f"ThpSysfs({self.values()})"


# ---------------------------------------------------------------------------
# /proc/sys/vm: the compaction tunables
# ---------------------------------------------------------------------------

_SYSCTL_ROOT = "/proc/sys/vm/"
# name -> (default, lo, hi); compact_memory is write-only (a trigger)
_SYSCTL_SPEC = {
    # mm/compaction.c vm_compaction[]: compaction_proactiveness_sysctl_handler ->
    # proc_dointvec_minmax, extra1 SYSCTL_ZERO, extra2 SYSCTL_ONE_HUNDRED
    "compaction_proactiveness": (20, 0, 100),
    # mm/compaction.c vm_compaction[]: proc_dointvec_minmax, SYSCTL_ZERO..SYSCTL_ONE_THOUSAND
    "extfrag_threshold": (500, 0, 1000),
    "compact_memory": (None, 1, 1),               # sysctl_compaction_handler: any write compacts
}


class VmSysctl(_Knobs):
    """``/proc/sys/vm`` entries of compaction: ``compaction_proactiveness`` (0..100,
    default 20), ``extfrag_threshold`` (0..1000, default 500), and the write-only
    ``compact_memory`` (writing 1 runs :meth:`Kernel.compact_memory`).  Reads give the
    text the kernel prints; writes are validated (out of range: ValueError, the
    kernel's -EINVAL).  ``values()`` gives the tunables as ints."""

    def __init__(self, kernel: "Kernel", overrides: dict | None = None):
        self._k = kernel
        self._v = {k: d for k, (d, _, _) in _SYSCTL_SPEC.items() if d is not None}
        self._ready = False
        for k, val in (overrides or {}).items():
            if self._key(k) == "compact_memory":
                raise ValueError("compact_memory is a trigger, not a setting")
            self[k] = val
        self._ready = True

    _ROOT = _SYSCTL_ROOT
    _SPEC = _SYSCTL_SPEC
    _WHAT = "vm sysctl"

    @staticmethod
    def _alias(key: str) -> str:
        return key.replace("vm.", "", 1) if key.startswith("vm.") else key     # sysctl's vm.name

    def __getitem__(self, path) -> str:
        key = self._key(path)
        if key == "compact_memory":
            raise PermissionError("compact_memory is write-only")
        return str(self._v[key])

    def __setitem__(self, path, value) -> None:
        key = self._key(path)
        _, lo, hi = _SYSCTL_SPEC[key]
        if key == "compact_memory":
            # mm/compaction.c: sysctl_compaction_handler: proc_dointvec(), then anything but 1
            # is -EINVAL (an empty write does nothing)
            num = self._parse_sysctl(key, value, None)
            if num is None:
                return
            if num != 1:
                raise ValueError(f"invalid value {value!r} for vm.compact_memory: only 1 is accepted "
                                 f"(sysctl_compaction_handler: -EINVAL)")
            self._k.compact_memory()
            return
        self._v[key] = self._parse_sysctl(key, value, self._v[key], lo, hi)
        if self._ready:
            self._k.apply_policy()


    def values(self) -> dict:
        return dict(self._v)

    def __repr__(self):
        return f"VmSysctl({self.values()})"


# ---------------------------------------------------------------------------
# VMAs and processes
# ---------------------------------------------------------------------------
