"""The compiled core must never be older than its sources (a stale .so is the costliest
bug of a Cython research repo).  meson-python's editable install rebuilds on import; this
test catches any other way of ending up with an old build."""
from pathlib import Path

import thpbench
import thpbench._core as core


def test_core_is_newer_than_its_sources():
    src = Path(thpbench.__file__).parent
    sources = [p for pat in ("_core.pyx", "*.pxi", "_core.pxd") for p in src.glob(pat)]
    so = Path(core.__file__)
    if not sources:      # an installed wheel carries no sources to compare with
        return
    newest = max(sources, key=lambda p: p.stat().st_mtime)
    assert so.stat().st_mtime >= newest.stat().st_mtime, (
        f"{so} is older than {newest}: rebuild with pip install --no-build-isolation -e .")


def test_every_part_is_compiled_in():
    # each .pxi included by _core.pyx contributes names to the module
    assert hasattr(core, "BuddyAllocator")


# --- the bounds-checked build ---------------------------------------------------------
# The core runs without bounds checks.  Once per test run, this builds a second copy of
# the extension with THPBENCH_CYTHON_DEBUG=1 (boundscheck and initializedcheck on, set in
# meson.build: the only place directives live) and runs the fuzz and differential tests
# against it in a child process, so that an out-of-range index in the core raises
# IndexError there instead of corrupting memory silently.  The build directory is
# build/boundscheck-<python tag> beside meson-python's own (ninja rebuilds only what
# changed; $THPBENCH_BOUNDSCHECK_BUILD_DIR overrides it).

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time

import pytest

ROOT = Path(__file__).resolve().parents[2]
SELECT = "fuzz or differential"


def _say(capsys, msg):
    with capsys.disabled():
        print(f"\n[bounds-checked build] {msg}", flush=True)


def _run(cmd, env, capsys, what, cwd=None, timeout=1200):
    t0 = time.monotonic()
    _say(capsys, f"{what}: {' '.join(map(str, cmd))}")
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    _say(capsys, f"{what}: exit {proc.returncode} after {time.monotonic() - t0:.0f} s")
    return proc


def _debug_env():
    env = dict(os.environ)
    env["THPBENCH_CYTHON_DEBUG"] = "1"
    # meson finds ninja and cython beside the interpreter (a venv need not be activated)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def debug_build(capsys_module):
    """(build directory, importable package root) of the bounds-checked extension."""
    if not (ROOT / "meson.build").exists() or not (ROOT / "thpbench" / "_core.pyx").exists():
        pytest.skip("no source tree beside the tests (an installed wheel): nothing to build")
    capsys = capsys_module
    tag = sys.implementation.cache_tag
    bdir = Path(os.environ.get("THPBENCH_BOUNDSCHECK_BUILD_DIR", ROOT / "build" / f"boundscheck-{tag}"))
    env = _debug_env()
    meson = [sys.executable, "-m", "mesonbuild.mesonmain"]
    if not (bdir / "build.ninja").exists():
        if bdir.exists():
            shutil.rmtree(bdir)
        p = _run(meson + ["setup", str(bdir), str(ROOT), "-Dbuildtype=release", "-Db_ndebug=if-release"],
                 env, capsys, "meson setup (THPBENCH_CYTHON_DEBUG=1)")
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    p = _run(meson + ["compile", "-C", str(bdir)], env, capsys, "meson compile")
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    so = bdir / f"_core{ext}"
    assert so.exists(), f"the debug build made no {so.name} in {bdir}"
    # an importable copy of the package around the debug extension
    pkgroot = bdir / "pkgroot"
    if pkgroot.exists():
        shutil.rmtree(pkgroot)
    shutil.copytree(ROOT / "thpbench", pkgroot / "thpbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyx", "*.pxi", "*.pxd", "*.c"))
    shutil.copy2(so, pkgroot / "thpbench" / so.name)
    return bdir, pkgroot


@pytest.fixture(scope="module")
def capsys_module(request):
    """capsys for a module-scoped fixture: progress lines go to the terminal."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    class _Cap:
        def disabled(self):
            return capman.global_and_fixture_disabled() if capman else _nullcontext()
    return _Cap()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _generated_c(bdir):
    found = sorted(bdir.rglob("_core.pyx.c")) or sorted(bdir.rglob("_core*.c"))
    assert found, f"no generated C for _core in {bdir}"
    return found[0].read_text(errors="replace")


def test_debug_build_has_bounds_checks_and_release_build_has_none(debug_build):
    """The directive reaches Cython: the bounds-checked build raises on an index past a
    memoryview's end, the release build has no such check.  (A `# cython:` header in
    _core.pyx used to override meson's flags, so the "debug" build had none.)"""
    bdir, _ = debug_build
    ninja = (bdir / "build.ninja").read_text()
    assert "boundscheck=True" in ninja and "initializedcheck=True" in ninja
    assert "__Pyx_RaiseBufferIndexError" in _generated_c(bdir)
    release = [d for d in sorted((ROOT / "build").glob("cp3*")) if list(d.rglob("_core.pyx.c"))]
    if release:     # the editable install's build (absent in other installs)
        assert "__Pyx_RaiseBufferIndexError" not in _generated_c(release[0])


_CHILD = textwrap.dedent("""
    import sys
    # meson-python's editable install puts a finder before sys.path: drop it, so that
    # `import thpbench` finds the bounds-checked copy
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "MesonpyMetaFinder"]
    sys.path_hooks[:] = [h for h in sys.path_hooks
                         if type(getattr(h, "__self__", None)).__name__ != "MesonpyMetaFinder"]
    sys.path_importer_cache.clear()
    sys.path.insert(0, sys.argv[1])
    import thpbench._core as core
    assert core.__file__.startswith(sys.argv[1]), core.__file__
    print("bounds-checked core:", core.__file__, flush=True)
    import pytest
    sys.exit(pytest.main(sys.argv[2:]))
""")


def test_fuzz_and_differential_tests_pass_on_the_bounds_checked_build(debug_build, capsys):
    bdir, pkgroot = debug_build
    env = _debug_env()
    env.setdefault("THPBENCH_DATA", str(ROOT / "data"))
    # an IndexError inside a noexcept (nogil) core function cannot propagate: Cython
    # reports it as unraisable, which pytest turns into a warning; here it fails the run
    cmd = [sys.executable, "-c", _CHILD, str(pkgroot), "-m", SELECT, "-q", "-p", "no:cacheprovider",
           "-W", "error::pytest.PytestUnraisableExceptionWarning",
           "-p", "no:randomly", "--rootdir", str(ROOT), "-o", "addopts=", str(ROOT / "tests")]
    p = _run(cmd, env, capsys, f'pytest -m "{SELECT}" on the bounds-checked build', cwd=ROOT)
    tail = (p.stdout[-6000:] + "\n" + p.stderr[-3000:])
    _say(capsys, "\n".join(p.stdout.strip().splitlines()[-3:]))
    assert "bounds-checked core: " + str(pkgroot) in p.stdout, tail
    assert p.returncode == 0, tail
    assert " passed" in p.stdout and " deselected" in p.stdout, tail


def test_fuzz_and_differential_files_carry_their_marker():
    """The bounds-checked run selects by marker: a new test_*fuzz* / test_*differential*
    file without it would silently run only on the unchecked build."""
    unmarked = []
    for f in sorted((ROOT / "tests").rglob("test_*.py")):
        for kind in ("fuzz", "differential"):
            if kind in f.name and f"pytest.mark.{kind}" not in f.read_text():
                unmarked.append(f"{f.relative_to(ROOT)} lacks pytest.mark.{kind}")
    assert not unmarked, unmarked
