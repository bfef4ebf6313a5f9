"""Workloads that press on reclaim: a kernel-build-like mix of anonymous memory, page
cache and slab objects, and Avi Kivity's 2010 ``sort`` experiment (page cache against a
THP-backed buffer).  They drive a :class:`~thpbench.kernel.Kernel` through its public API."""
from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

from thpbench.kernel.kernel import Kernel
from thpbench.units import PAGE_SIZE

__all__ = ["kernel_build_mix", "kivity_sort"]

# kernel_build_mix's state per kernel (the shared headers, the objects built so far)
_KBUILD: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

# ---------------------------------------------------------------------------
# Workloads: page cache and slab pressure
# ---------------------------------------------------------------------------

MiB = 1 << 20


def _row(k, **extra) -> dict:
    vs = k.vmstat()
    mi = k.meminfo()
    return {"t_ns": k.now_ns, **extra,
            "free_mib": k.buddy.nr_free_pages * PAGE_SIZE / MiB,
            "cached_mib": mi["Cached"] / 1024, "anon_mib": mi["AnonPages"] / 1024,
            "anon_huge_mib": mi["AnonHugePages"] / 1024,
            "slab_reclaimable_mib": mi["SReclaimable"] / 1024, "slab_unreclaimable_mib": mi["SUnreclaim"] / 1024,
            "slab_pageblocks": len({p >> k.buddy.pageblock_order for p in k.slab.all_pages()}),
            **{c: vs[c] for c in ("thp_fault_alloc", "thp_fault_fallback", "pgscan_kswapd", "pgscan_direct",
                                  "pgsteal_kswapd", "pgsteal_direct", "pswpout", "allocstall_normal",
                                  "workingset_refault_file", "slabs_scanned", "nr_free_pages")}}


def kernel_build_mix(k, *, jobs=40, seed=0, anon_mib=(4, 32), headers=200, header_kib=(8, 64),
                     source_kib=(8, 96), headers_per_job=30, job_ns=50_000_000,
                     keep_unmovable=0.1, unlink_objects=0.3, negative_dentries=(100, 400)) -> pd.DataFrame:
    """A kernel-build-like mix on Kernel ``k``: each job (a compiler process) maps and
    touches short-lived anon memory, reads its source file and a set of shared headers
    through the page cache (dentry + inode objects for every new file, lookups of the
    cached ones), kmallocs unmovable objects (``keep_unmovable`` of them outlive the job:
    the long-lived ones that pin pageblocks), writes its object file (dirty page cache)
    and exits; some object files are later unlinked.  The include-path search leaves
    ``negative_dentries`` (a range per job) in the dcache: reclaimable slab that grows
    until the shrinker trims it, page by partly-freed page.  Returns one row per job."""
    rng = np.random.default_rng(seed)
    pc, slab = k.page_cache, k.slab
    state = _KBUILD.get(k)
    if state is None:
        state = _KBUILD[k] = {"headers": [], "n": 0, "objects": [], "dentries": {}}
        for i in range(headers):
            f = pc.create(f"include/h{i}.h", int(rng.integers(*header_kib)) * 1024)
            state["headers"].append(f)
            state["dentries"][f.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
    rows = []
    for _ in range(jobs):
        j = state["n"]
        state["n"] += 1
        p = k.spawn()
        size = int(rng.integers(*anon_mib)) * MiB
        a = p.mmap(size)
        p.touch_range(a, size)
        src = pc.create(f"src/f{j}.c", int(rng.integers(*source_kib)) * 1024)
        # path walk: a dentry per component, an inode per file (d_alloc, alloc_inode)
        state["dentries"][src.name] = slab["dentry"].alloc(3) + slab["inode_cache"].alloc(1)
        src.read()
        for h in rng.choice(len(state["headers"]), size=min(headers_per_job, len(state["headers"])), replace=False):
            f = state["headers"][int(h)]
            handles = state["dentries"].get(f.name)
            if handles and all(x in slab["dentry"].live or x in slab["inode_cache"].live for x in handles):
                slab["dentry"].touch(handles)                  # dcache hit
            else:
                state["dentries"][f.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
            f.read()
        slab["dentry"].alloc(int(rng.integers(*negative_dentries)))     # failed lookups: negative dentries
        km = slab["kmalloc-256"].alloc(int(rng.integers(50, 400)))
        keep = int(len(km) * keep_unmovable)
        slab["kmalloc-256"].free(km[keep:])
        obj = pc.create(f"obj/f{j}.o", max(src.nr_pages * 2, 1) * PAGE_SIZE)
        obj.write(0, rng.integers(1, 2**62, size=obj.nr_pages, dtype=np.uint64))
        state["dentries"][obj.name] = slab["dentry"].alloc(1) + slab["inode_cache"].alloc(1)
        state["objects"].append(obj)
        p.exit()
        if state["objects"] and rng.random() < unlink_objects:
            victim = state["objects"].pop(int(rng.integers(len(state["objects"]))))
            victim.unlink()
        k.advance(job_ns)
        rows.append(_row(k, job=j, phase="kbuild"))
    return pd.DataFrame(rows)


def kivity_sort(*, mem_bytes=2 << 30, file_bytes=1 << 30, sort_bytes=1200 * MiB, chunk_bytes=32 * MiB,
                thp=None, aged=False, aging_jobs=60, cached_input=True, seed=0, kernel=None):
    """Avi Kivity's April 2010 experiment (anchors A0): ``sort -S 1200M`` of a 1 GB file
    on a 2 GB machine.  sort reads the file through the page cache into a 1200 MB anon
    buffer (THP allowed), sorts it in place and writes a 1 GB output file.  The page
    cache competes with the buffer for memory; huge pages need free 2 MiB blocks.
    ``aged`` first runs :func:`kernel_build_mix` (``aging_jobs`` jobs) so the machine is
    not "directly after a clean reboot"; ``cached_input`` means the input was just
    generated (written, then flushed), so its pages fill the page cache when sort starts.  Returns (kernel, DataFrame of samples: phase,
    MiB read/written, anon_huge_mib, cached_mib, free_mib, counters)."""
    k = kernel
    if k is None:
        k = Kernel(mem_bytes, thp=thp or {"enabled": "always"})
    rows = []
    if aged:
        kernel_build_mix(k, jobs=aging_jobs, seed=seed)
        rows.append(_row(k, phase="aged", mib=0))
    inp = k.page_cache.create(f"sort.in.{seed}", file_bytes)
    out = k.page_cache.create(f"sort.out.{seed}", file_bytes)
    rng = np.random.default_rng(seed)
    if cached_input:
        for off in range(0, file_bytes, chunk_bytes):
            n = min(chunk_bytes, file_bytes - off)
            inp.write(off, rng.integers(1, 2**62, size=n // PAGE_SIZE, dtype=np.uint64))
        inp.fsync()
        rows.append(_row(k, phase="generated", mib=file_bytes / MiB))
    p = k.spawn()
    buf = p.mmap(sort_bytes)
    done = 0
    while done < file_bytes:
        n = min(chunk_bytes, file_bytes - done)
        inp.read(done, n)                                  # read(2) into the page cache...
        if done < sort_bytes:
            m = min(n, sort_bytes - done)
            p.touch_range(buf + done, m)                   # ...and copied into sort's buffer
        done += n
        rows.append(_row(k, phase="read", mib=done / MiB))
    used = min(file_bytes, sort_bytes)
    p.touch_range(buf, used)                               # the sort: every page rewritten
    rows.append(_row(k, phase="sort", mib=used / MiB))
    done = 0
    while done < file_bytes:
        n = min(chunk_bytes, file_bytes - done)
        out.write(done, rng.integers(1, 2**62, size=n // PAGE_SIZE, dtype=np.uint64))
        done += n
        rows.append(_row(k, phase="write", mib=done / MiB))
    k.advance(10_000_000_000)                              # 10 s: khugepaged may collapse
    rows.append(_row(k, phase="after 10 s", mib=0))
    return k, pd.DataFrame(rows)
