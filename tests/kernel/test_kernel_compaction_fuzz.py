"""Random sequences of faults, frees, forks, pins, THP faults with direct compaction,
kcompactd and compact_memory against a plain model of what every process wrote:
after every step check() holds and every page reads back what its process wrote."""
import numpy as np
import pytest

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE
from thpbench.kernel import Kernel, OutOfMemory

pytestmark = pytest.mark.fuzz

MiB = 1 << 20


def verify(procs, model):
    for pid, p in procs.items():
        m = model[pid]
        if not m:
            continue
        addrs = np.fromiter(m.keys(), dtype=np.int64)
        got, kinds = p.peek(addrs)
        assert np.isin(kinds, (1, 4)).all()
        np.testing.assert_array_equal(got, np.fromiter(m.values(), dtype=np.uint64))


@pytest.mark.parametrize("seed", range(8))
def test_random_operations_with_compaction(seed):
    rng = np.random.default_rng(seed)
    k = Kernel(64 * MiB, thp={"enabled": "madvise", "defrag": str(rng.choice(["always", "defer", "madvise"]))},
               vm={"compaction_proactiveness": int(rng.choice([0, 20, 60]))})
    root = k.spawn()
    region = 24 * MiB
    base = root.mmap(region)
    procs = {root.pid: root}
    model = {root.pid: {}}
    pinned = {root.pid: set()}
    for step in range(40):
        pid = int(rng.choice(list(procs)))
        p = procs[pid]
        op = rng.choice(["write", "write", "free", "fork", "compact", "thp", "pin", "advance", "exit"])
        if op == "write":
            n = int(rng.integers(1, 2000))
            addrs = base + rng.integers(0, region // PAGE_SIZE, n) * PAGE_SIZE
            vals = rng.integers(1, 2**63, n, dtype=np.uint64)
            try:
                p.touch_pages(addrs, values=vals)
            except OutOfMemory as e:
                addrs, vals = addrs[:e.done], vals[:e.done]
            for a, v in zip(addrs.tolist(), vals.tolist()):
                model[pid][a] = v
        elif op == "free" and model[pid]:
            cand = [a for a in model[pid] if a not in pinned[pid]]
            if cand:
                sel = rng.choice(cand, size=min(len(cand), int(rng.integers(1, 1500))), replace=False)
                p.dontneed_pages(sel)
                for a in sel.tolist():
                    del model[pid][a]
        elif op == "fork" and len(procs) < 4:
            try:
                c = p.fork()
            except OutOfMemory:
                continue
            procs[c.pid] = c
            model[c.pid] = dict(model[pid])
            pinned[c.pid] = set()
        elif op == "compact":
            k.compact_memory()
        elif op == "thp":
            q = k.spawn()
            b = q.mmap(8 * MiB)
            q.madvise(b, 8 * MiB, "MADV_HUGEPAGE")
            try:
                q.touch_range(b, 8 * MiB)
                ok = True
            except OutOfMemory:
                ok = False
            k.check()
            if ok:
                got, _ = q.peek(np.arange(b, b + 8 * MiB, PAGE_SIZE))
                np.testing.assert_array_equal(got, np.arange(b, b + 8 * MiB, PAGE_SIZE).astype(np.uint64))
            q.exit()
        elif op == "pin" and model[pid]:
            cand = list(model[pid])
            sel = rng.choice(cand, size=min(len(cand), 20), replace=False)
            new = [a for a in sel.tolist() if a not in pinned[pid]]
            if new:
                p.pin_pages(new)
                pinned[pid].update(new)
        elif op == "advance":
            k.advance(int(rng.integers(1, 1500)) * 1_000_000)
        elif op == "exit" and pid != root.pid:
            p.exit()
            del procs[pid], model[pid], pinned[pid]
        k.check()
        verify(procs, model)
    assert k.vmstat()["pgmigrate_success"] > 0
