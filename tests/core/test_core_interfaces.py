"""The Cython core's parts and their declared interfaces (issue 8 item 4).

The core is one extension module built from include files, one per kernel file it
follows.  As mm/internal.h does for mm/, ``_core.pxd`` declares every function that one
part calls in another, grouped under ``# in _X.pxi:`` headers.  These tests parse the
sources (no build needed) and fail on a call from one part to a cdef function or method
defined in another part that ``_core.pxd`` does not declare, and on a declaration filed
under the wrong part.
"""
import pathlib
import re

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "thpbench"

# module-level cdef functions: "cdef [inline] <type> [*]name(" at column 0
_DEF_FUNC = re.compile(r"^cdef\s+(?:inline\s+)?(?:const\s+)?\w+[\s*]+(\w+)\s*\(", re.M)
# cdef methods: 4-space indented "cdef <type> name(self"
_DEF_METHOD = re.compile(r"^    cdef\s+(?:inline\s+)?(?:const\s+)?\w+[\s*]+(\w+)\s*\(\s*self\b", re.M)
_PXD_FUNC = _DEF_FUNC
_PXD_METHOD = re.compile(r"^    cdef\s+(?:inline\s+)?(?:const\s+)?\w+[\s*]+(\w+)\s*\(", re.M)
_GROUP = re.compile(r"^# in (_\w+\.pxi):", re.M)


def _strip(text):
    """Source without comments and string literals (docstrings mention names)."""
    text = re.sub(r'"""[\s\S]*?"""', '""', text)
    text = re.sub(r"'''[\s\S]*?'''", "''", text)
    text = re.sub(r'f?"(?:[^"\\\n]|\\.)*"', '""', text)
    text = re.sub(r"f?'(?:[^'\\\n]|\\.)*'", "''", text)
    return re.sub(r"#[^\n]*", "", text)


def parts():
    return {p.name: _strip(p.read_text()) for p in sorted(PKG.glob("_*.pxi"))}


def definitions(srcs):
    """name -> part for module-level cdef functions, and for cdef methods."""
    funcs, methods = {}, {}
    for part, text in srcs.items():
        for m in _DEF_FUNC.finditer(text):
            funcs.setdefault(m.group(1), part)
        for m in _DEF_METHOD.finditer(text):
            methods.setdefault(m.group(1), part)
    return funcs, methods


def pxd_declarations(pxd_text):
    """(functions: name -> the part its "# in _X.pxi:" group names, or None; methods)."""
    funcs, methods = {}, set()
    group = None
    for line in pxd_text.splitlines():
        g = _GROUP.match(line)
        if g:
            group = g.group(1)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith((" ", "\t")) and not line.startswith("cdef ") and group is not None:
            group = None
        m = _PXD_FUNC.match(line)
        if m:
            if not line.rstrip().endswith(":"):     # an inline helper defined in the pxd is no declaration
                funcs[m.group(1)] = group
            continue
        m = _PXD_METHOD.match(line)
        if m:
            methods.add(m.group(1))
    return funcs, methods


def cross_part_calls(srcs):
    """(caller part, callee, callee part, kind) for every call across parts."""
    funcs, methods = definitions(srcs)
    out = set()
    for part, text in srcs.items():
        for name, home in funcs.items():
            if home != part and re.search(r"(?<![\w.])" + name + r"\s*\(", text):
                out.add((part, name, home, "function"))
        for name, home in methods.items():
            if home != part and re.search(r"\." + name + r"\s*\(", text):
                out.add((part, name, home, "method"))
    return sorted(out)


def test_parts_are_named_after_kernel_files():
    names = {p.name for p in PKG.glob("_*.pxi")}
    for part in ("_page_alloc.pxi", "_memory.pxi", "_rmap.pxi", "_huge_memory.pxi", "_khugepaged.pxi",
                 "_migrate.pxi", "_compaction.pxi", "_vmscan.pxi", "_tlb.pxi"):
        assert part in names
    pyx = (PKG / "_core.pyx").read_text()
    included = re.findall(r'^include "(\w+\.pxi)"', pyx, re.M)
    assert sorted(included) == sorted(names), "every part is included once, and nothing else"


def test_every_cross_part_call_is_declared_in_core_pxd():
    srcs = parts()
    funcs, methods = pxd_declarations((PKG / "_core.pxd").read_text())
    missing = [f"{caller} calls {name}() of {home}" for caller, name, home, kind in cross_part_calls(srcs)
               if (name not in funcs if kind == "function" else name not in methods)]
    assert not missing, "not declared in _core.pxd:\n" + "\n".join(missing)


def test_declarations_are_filed_under_the_part_that_defines_them():
    srcs = parts()
    defined, _ = definitions(srcs)
    funcs, _ = pxd_declarations((PKG / "_core.pxd").read_text())
    wrong = [f"{name}: declared under {group}, defined in {defined.get(name)}"
             for name, group in funcs.items() if group is None or defined.get(name) != group]
    assert not wrong, "\n".join(wrong)


def test_no_aliased_cimports():
    """One name per C function: no `free as c_free2` next to `free as c_free`."""
    aliases = {}
    for p in sorted(PKG.glob("_*.p*")):
        for mod, names in re.findall(r"^from (\S+) cimport (.+)$", p.read_text(), re.M):
            for item in names.split(","):
                bits = item.split(" as ")
                if len(bits) == 2:
                    aliases.setdefault((mod, bits[0].strip()), set()).add(bits[1].strip())
    assert all(len(v) == 1 for v in aliases.values()), aliases


def test_directives_live_in_meson_build_only():
    """A `# cython:` header would override meson's -X flags (and the debug build)."""
    for p in sorted(PKG.glob("_*.p*")):
        head = p.read_text().splitlines()[:5]
        assert not any(re.match(r"#\s*cython\s*:", line) for line in head), p.name


@pytest.mark.parametrize("kind", ["function", "method"])
def test_checker_sees_an_undeclared_call(kind):
    """The checker itself: a call to a function of another part that the pxd lacks."""
    srcs = {"_a.pxi": "cdef int helper_x(int v) noexcept nogil:\n    return v\n"
                      "cdef class K:\n    cdef int meth_y(self) noexcept:\n        return 1\n",
            "_b.pxi": "cdef int user(K k) noexcept:\n    return helper_x(1) + k.meth_y()\n"}
    calls = cross_part_calls(srcs)
    assert ("_b.pxi", "helper_x" if kind == "function" else "meth_y", "_a.pxi", kind) in calls


def test_name_tuples_match_the_enum_counts():
    """Every Python-visible name tuple has exactly as many names as its enum has values,
    and the C array it names is sized by that enum (stat[40] held 39 names, unbounded)."""
    from thpbench import _core
    bad = {name: sizes for name, (n, count, arr) in _core._NAME_TUPLES.items()
           for sizes in [(n, count, arr)] if n != count or (arr is not None and arr != count)}
    assert not bad, bad
    assert _core._mm_stat_array_len() == len(_core.MM_STAT_NAMES)


def test_array_sizes_in_core_pxd_are_named():
    """No bare number sizes a struct's array in _core.pxd: each comes from an enum."""
    pxd = _strip((PKG / "_core.pxd").read_text())
    bare = re.findall(r"^\s+(?:cdef\s+)?[\w *]+?\b\w+\[\d+\]", pxd, re.M)
    assert not bare, bare


def test_loops_over_arrays_use_the_enum_bounds():
    """A loop bound written as a number drifts from the array it walks (range(20) over
    the 19 TlbSim cache slots read past the end): loops use the enum that sizes it."""
    bare = [(part, m.group(0)) for part, text in parts().items()
            for m in re.finditer(r"\brange\((\d+)\)", text) if int(m.group(1)) > 2]
    assert not bare, bare
