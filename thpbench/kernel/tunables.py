"""The THP configuration under its sysfs names, and /proc/sys/vm."""
from __future__ import annotations



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

# name -> (default, kind); kind: a tuple of words, "bool", ("int", lo, hi) or "ro"
_SYSFS_SPEC = {
    "enabled": ("madvise", ENABLED_MODES),
    "defrag": ("madvise", DEFRAG_MODES),
    "use_zero_page": (1, "bool"),
    "shrink_underused": (1, "bool"),
    "khugepaged/defrag": (1, "bool"),
    "khugepaged/pages_to_scan": (4096, ("int", 1, 2**31 - 1)),
    "khugepaged/scan_sleep_millisecs": (10000, ("int", 0, 2**31 - 1)),
    "khugepaged/alloc_sleep_millisecs": (60000, ("int", 0, 2**31 - 1)),
    "khugepaged/max_ptes_none": (511, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/max_ptes_swap": (64, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/max_ptes_shared": (256, ("int", 0, HPAGE_PMD_NR - 1)),
    "khugepaged/pages_collapsed": (0, "ro"),
    "khugepaged/full_scans": (0, "ro"),
    "hpage_pmd_size": (HPAGE_PMD_SIZE, "ro"),
}


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
    def _parse_int(key, value, lo, hi) -> int:
        """The kernel's kstrtoint-and-range check: ValueError (-EINVAL) otherwise."""
        if isinstance(value, bool):
            value = int(value)
        try:
            num = int(str(value).strip(), 10)
        except ValueError:
            raise ValueError(f"invalid value {value!r} for {key}: not an integer") from None
        if not lo <= num <= hi:
            raise ValueError(f"value {num} for {key} out of range {lo}..{hi}")
        return num

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
            self[k] = val
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
        if isinstance(kind, tuple) and kind[0] != "int":
            word = str(value).strip()
            if word not in kind:
                raise ValueError(f"invalid value {value!r} for {key}; allowed: {', '.join(kind)}")
            self._v[key] = word
        else:
            lo, hi = (0, 1) if kind == "bool" else kind[1:]
            self._v[key] = self._parse_int(key, value, lo, hi)
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
    "compaction_proactiveness": (20, 0, 100),     # mm/compaction.c: sysctl_compaction_proactiveness
    "extfrag_threshold": (500, 0, 1000),          # sysctl_extfrag_threshold
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
            if self._parse_int(key, value, -2**31, 2**31 - 1) != 1:
                raise ValueError(f"compact_memory accepts 1, got {value!r}")
            self._k.compact_memory()
            return
        self._v[key] = self._parse_int(key, value, lo, hi)
        if self._ready:
            self._k.apply_policy()


    def values(self) -> dict:
        return dict(self._v)

    def __repr__(self):
        return f"VmSysctl({self.values()})"


# ---------------------------------------------------------------------------
# VMAs and processes
# ---------------------------------------------------------------------------
