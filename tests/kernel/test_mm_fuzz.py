"""Random operation sequences (seeded) on the simulated kernel: after every operation,
check() must hold (no frame lost, none mapped twice, RSS and counters consistent with
the page tables), and every page must hold what was last written to it."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from thpbench.units import HPAGE_PMD_SIZE, PAGE_SIZE, PROT_READ, PROT_WRITE
from thpbench.kernel import Kernel, OutOfMemory, SegmentationFault

pytestmark = pytest.mark.fuzz

MiB = 1 << 20


def run_ops(seed, nops=120):
    rng = np.random.default_rng(seed)
    k = Kernel(48 * MiB, swap_bytes=8 * MiB,
               thp={"enabled": str(rng.choice(["always", "madvise"])),
                    "defrag": str(rng.choice(["always", "never"])),
                    "use_zero_page": int(rng.integers(2)),
                    "khugepaged/max_ptes_none": int(rng.choice([0, 64, 511])),
                    "khugepaged/scan_sleep_millisecs": 10})
    procs = [k.spawn()]
    # model of the expected content: (pid, page address) -> value; absent = 0
    expect = {}
    for _ in range(nops):
        p = procs[int(rng.integers(len(procs)))]
        op = rng.choice(["mmap", "munmap", "touch", "touch_many", "read", "mprotect", "madvise", "fork", "exit",
                         "pageout", "collapse", "split", "shrink", "advance", "mremap", "migrate"],
                        p=[.12, .06, .16, .1, .05, .05, .1, .03, .02, .05, .06, .05, .03, .04, .05, .03])
        vmas = [v for v in p.vmas]
        try:
            if op == "mmap" or not vmas:
                size = int(rng.choice([1, 3, 512, 1024, 1536])) * PAGE_SIZE
                p.mmap(size)
            else:
                v = vmas[int(rng.integers(len(vmas)))]
                npg = (v.end - v.start) // PAGE_SIZE
                s = v.start + int(rng.integers(npg)) * PAGE_SIZE
                ln = int(rng.integers(1, npg + 1)) * PAGE_SIZE
                ln = min(ln, v.end - s)
                if op == "munmap":
                    p.munmap(s, ln)
                    for a in range(s, s + ln, PAGE_SIZE):
                        expect.pop((p.pid, a), None)
                elif op in ("touch", "touch_many"):
                    addrs = np.arange(s, s + ln, PAGE_SIZE) if op == "touch_many" else np.array([s])
                    vals = rng.integers(0, 3, size=len(addrs)).astype(np.uint64)
                    if v.prot & PROT_WRITE:
                        try:
                            done = p.touch_pages(addrs, values=vals)
                        except OutOfMemory as e:
                            done = e.done
                        for a, x in zip(addrs[:done].tolist(), vals[:done].tolist()):
                            expect[(p.pid, a)] = x
                    else:
                        with pytest.raises(SegmentationFault):
                            p.touch_pages(addrs, values=vals)
                elif op == "read":
                    if v.prot & PROT_READ:
                        assert p.read(s) == expect.get((p.pid, s), 0)
                elif op == "mprotect":
                    p.mprotect(s, ln, int(rng.choice([PROT_READ, PROT_READ | PROT_WRITE])))
                elif op == "madvise":
                    adv = str(rng.choice(["MADV_DONTNEED", "MADV_HUGEPAGE", "MADV_NOHUGEPAGE"]))
                    p.madvise(s, ln, adv)
                    if adv == "MADV_DONTNEED":
                        for a in range(s, s + ln, PAGE_SIZE):
                            expect.pop((p.pid, a), None)
                elif op == "fork" and len(procs) < 4:
                    c = p.fork()
                    procs.append(c)
                    for (pid, a), x in list(expect.items()):
                        if pid == p.pid:
                            expect[(c.pid, a)] = x
                elif op == "exit" and len(procs) > 1:
                    p.exit()
                    procs.remove(p)
                    expect = {key: x for key, x in expect.items() if key[0] != p.pid}
                elif op == "pageout":
                    p.pageout(s, ln)
                elif op == "collapse":
                    p.madvise(s, ln, "MADV_COLLAPSE")
                elif op == "split":
                    k.split_huge_pages(p.pid, s, s + ln, int(rng.choice([0, 2, 4])))
                elif op == "shrink":
                    k.shrink()
                elif op == "advance":
                    k.advance(int(rng.integers(1, 50)) * 10_000_000)
                elif op == "migrate":
                    pfns, _ = p.folio_orders(s, ln)
                    pfns = pfns[pfns >= 0]
                    if len(pfns):
                        k.migrate_folio(int(rng.choice(pfns)))
                elif op == "mremap":
                    newlen = int(rng.integers(1, 2 * npg + 1)) * PAGE_SIZE
                    try:
                        dst = p.mremap(s, ln, newlen)
                    except NotImplementedError:
                        pass
                    else:
                        moved = {}
                        for a in range(s, s + ln, PAGE_SIZE):
                            x = expect.pop((p.pid, a), None)
                            if x is not None and a - s < newlen:
                                moved[(p.pid, dst + a - s)] = x
                        expect.update(moved)
        except OutOfMemory:
            # (a read fault, a fork or an mremap ran out of memory): the state must
            # still be consistent, nothing was written
            pass
        k.check()
    # every page holds what was last written (zero if never written or dropped)
    for q in procs:
        for v in q.vmas:
            addrs = np.arange(v.start, v.end, PAGE_SIZE)
            vals, kinds = q.peek(addrs)
            want = np.array([expect.get((q.pid, a), 0) for a in addrs.tolist()], dtype=np.uint64)
            bad = np.nonzero(vals != want)[0]
            assert bad.size == 0, (q.pid, hex(int(addrs[bad[0]])), int(vals[bad[0]]), int(want[bad[0]]), kinds[bad[0]])
    for q in procs:
        q.exit()
    k.check()
    assert k.meminfo()["AnonPages"] == 0 and k.meminfo()["PageTables"] == 0
    return {**k.vmstat(), **k.core.stats(), "pages_collapsed": k.pages_collapsed}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_operation_sequences_keep_invariants(seed):
    run_ops(seed)
