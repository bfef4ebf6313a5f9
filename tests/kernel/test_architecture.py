"""The package's architecture, checked on its source: subsystems talk through narrow
contexts (no module sets attributes on, or reads private names of, another module's
objects) and the import graph has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import thpbench

ROOT = Path(thpbench.__file__).resolve().parent
PKG = "thpbench"

# The whole allowlist, each entry with its reason: (module, names it may use on objects
# that are not its own).
ALLOWED_PRIVATE = {
    # compaction.py is the Python half of the core's CompactionState (_compaction.pxi): the
    # deferral and counter helpers are the interface between the two halves of one subsystem
    "thpbench/kernel/compaction.py": {"_count", "_defer", "_deferred", "_defer_reset", "_set_blockskip_flush"},
    # the reference twin of mm/compaction.c calls the twin of mm/page_alloc.c's internal
    # helpers, as the kernel's compaction does through mm/internal.h
    "thpbench/_reference/compaction.py": {"_head_of", "_contig", "_del_from_free_list", "_move_freepages_block",
                                          "_find_suitable_fallback", "_free_one_page", "nr_free_pages"},
    # a dashboard function sets last_result on the ipywidgets.VBox it has just built (a
    # third-party object of its own; the name is also an attribute of widgets.py's classes)
    "thpbench/tlb.py": {"last_result"},
    "thpbench/mm_scenarios.py": {"last_result"},
}


def _modules():
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        rel = f.relative_to(ROOT.parent)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (rel.as_posix(), ast.parse(f.read_text(), filename=str(f)))
    return out


MODULES = _modules()


def _defined_names(tree) -> set[str]:
    """Names a module defines: functions, classes, module/class variables, self.x stores."""
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)
              and n.value.id in ("self", "cls")):
            names.add(n.attr)
    return names


def _attribute_names(tree) -> set[str]:
    """Attributes a module's classes own: self.x stores and names in class bodies."""
    names = set()
    for n in ast.walk(tree):
        if (isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)
                and n.value.id in ("self", "cls")):
            names.add(n.attr)
        elif isinstance(n, ast.ClassDef):
            for m in n.body:
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(m.name)
                elif isinstance(m, (ast.Assign, ast.AnnAssign)):
                    for t in (m.targets if isinstance(m, ast.Assign) else [m.target]):
                        if isinstance(t, ast.Name):
                            names.add(t.id)
    return names


DEFINED = {mod: _defined_names(tree) for mod, (_, tree) in MODULES.items()}
ATTRIBUTES = {mod: _attribute_names(tree) for mod, (_, tree) in MODULES.items()}


def _is_self(node) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _violations(mod) -> list[str]:
    path, tree = MODULES[mod]
    own = DEFINED[mod]
    others = set().union(*(d for m, d in ATTRIBUTES.items() if m != mod))
    allowed = ALLOWED_PRIVATE.get(path, set())
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and not _is_self(n.value):
            what = f"{path}:{n.lineno}: {ast.unparse(n)}"
            if n.attr in own or n.attr in allowed:
                continue
            if isinstance(n.ctx, (ast.Store, ast.Del)) and n.attr in others:
                out.append(f"{what}: sets an attribute another module's objects own")
            elif n.attr.startswith("_") and not n.attr.startswith("__"):
                out.append(f"{what}: reads a private name of an object this module does not own")
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("setattr", "delattr")
              and n.args and not _is_self(n.args[0])):
            out.append(f"{path}:{n.lineno}: {ast.unparse(n)}: sets an attribute on another object")
        elif isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(PKG) and n.module != "thpbench._core":
            # (the core's module-level _mm_* functions are its declared interface)
            for a in n.names:
                if a.name.startswith("_") and f"{n.module}.{a.name}" not in MODULES and a.name not in allowed:
                    out.append(f"{path}:{n.lineno}: imports the private name {a.name} of {n.module}")
    return out


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_no_module_reaches_into_another_modules_objects(mod):
    assert _violations(mod) == []


def test_the_checker_catches_what_it_should(monkeypatch):
    src = ("def f(kernel, kc):\n"
           "    kernel._after_op()\n"          # a private call on another's object
           "    kc.kswapd_running = True\n"    # an attribute Kcompactd owns
           "    setattr(kernel, 'x', 1)\n"
           "from thpbench.kernel.tunables import _SYSFS_SPEC\n")
    monkeypatch.setitem(MODULES, "thpbench._probe", ("thpbench/_probe.py", ast.parse(src)))
    monkeypatch.setitem(DEFINED, "thpbench._probe", _defined_names(ast.parse(src)))
    monkeypatch.setitem(ATTRIBUTES, "thpbench._probe", set())
    got = _violations("thpbench._probe")
    assert len(got) == 4, got


# -- the import graph ------------------------------------------------------------------------

def _type_checking_lines(tree) -> set[int]:
    lines = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            for m in n.body:
                lines.update(range(m.lineno, (m.end_lineno or m.lineno) + 1))
    return lines


def _resolve(mod, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PKG]
    base = node.module or ""
    if node.level:
        pkg = mod.split(".")
        if not MODULES[mod][0].endswith("__init__.py"):
            pkg = pkg[:-1]
        pkg = pkg[:len(pkg) - node.level + 1]
        base = ".".join(pkg + ([base] if base else []))
    if base.split(".")[0] != PKG:
        return []
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        out.append(sub if sub in MODULES else base)       # "from pkg import submodule"
    return out


def import_graph() -> dict[str, set[str]]:
    """Every static import between thpbench modules, at any level of the module (a
    function-level import is still a dependency), except under ``if TYPE_CHECKING``."""
    graph = {}
    for mod, (_, tree) in MODULES.items():
        skip = _type_checking_lines(tree)
        deps = set()
        for n in ast.walk(tree):
            if isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno not in skip:
                deps.update(d for d in _resolve(mod, n) if d in MODULES and d != mod)
        graph[mod] = deps
    return graph


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def test_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_kernel_modules_are_in_the_graph():
    g = import_graph()
    for m in ("thpbench.kernel.kernel", "thpbench.kernel.khugepaged", "thpbench.kernel.clock",
              "thpbench.kernel.reclaim", "thpbench.kernel.compaction"):
        assert m in g
    # the kernel builds its subsystems; none of them imports the kernel
    assert "thpbench.kernel.reclaim" in g["thpbench.kernel.kernel"]
    for sub in ("thpbench.kernel.reclaim", "thpbench.kernel.khugepaged", "thpbench.kernel.compaction",
                "thpbench.kernel.clock"):
        assert "thpbench.kernel.kernel" not in g[sub] and "thpbench.kernel" not in g[sub]
