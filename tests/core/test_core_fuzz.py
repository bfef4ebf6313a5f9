"""Property-based fuzz of the core's entry points (issue 9): hypothesis draws real
operation sequences, valid and invalid (not a seed), so that a failure shrinks to the
shortest sequence that shows it.  After every step the structure's check() holds; an
operation that raises leaves the state exactly as it was; a bulk operation that fails
at op i leaves the state of running ops[:i] alone (all-or-nothing per operation).

Bounded: small zones, a fixed number of examples and steps (a few seconds each); the
run is repeated on the bounds-checked build (tests/core/test_build.py)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from thpbench import BuddyAllocator
from thpbench._core import (OP_ALLOC, OP_FREE, OP_FREE_SLOT, OP_REPLACE_SLOT, BulkOpError, CompactionState,
                            PageBook)
from thpbench.kernel import compaction

pytestmark = pytest.mark.fuzz

ERRORS = (ValueError, TypeError, OverflowError)
# integers that are wrong in every way the core has to survive
WILD = st.one_of(st.integers(-3, 3), st.integers(-2**63, 2**63 - 1), st.sampled_from([2**31, 2**32, -2**31, 2**64]))
MIGRATETYPES = st.one_of(st.sampled_from(["movable", "unmovable", "reclaimable", "Movable", "highatomic",
                                          "bogus", "", 0, 1, 2, 3, 4, -1, 9]), st.booleans(), st.none())


def state_of(a):
    pti = a.pagetypeinfo()
    return (a.nr_free_pages, a.buddyinfo().tolist(), {k: np.asarray(v).tolist() for k, v in pti.items()},
            a.allocated_blocks().tolist(), a.free_blocks().tolist(), a.pageblock_migratetypes().tolist(),
            a.frame_migratetypes().tolist())


class BuddyFuzz(RuleBasedStateMachine):
    """One allocator and a twin that replays only what must have happened."""

    @initialize(nr_pages=st.integers(1, 3000), max_order=st.integers(0, 11), pb=st.integers(0, 11),
                grouping=st.booleans())
    def make(self, nr_pages, max_order, pb, grouping):
        pb = min(pb, max_order)
        self.args = dict(max_order=max_order, pageblock_order=pb, grouping=grouping)
        self.a = BuddyAllocator(nr_pages, **self.args)
        self.twin = BuddyAllocator(nr_pages, **self.args)
        self.n = nr_pages
        self.blocks = {}                # pfn -> order of what we allocated (and not split)
        self.slots = np.full(8, -1, dtype=np.int64)
        self.twin_slots = self.slots.copy()

    def _pfn(self, data):
        pool = list(self.blocks)
        choices = [st.integers(0, self.n - 1), st.integers(self.n - 2, self.n + 2), WILD]
        if pool:
            choices = [st.sampled_from(pool)] * 3 + choices
        return data.draw(st.one_of(*choices))

    def _expect(self, fn, *args):
        """Run fn on the allocator; on an error the state must be unchanged."""
        before = state_of(self.a)
        try:
            out = fn(self.a, *args)
        except ERRORS:
            assert state_of(self.a) == before
            return False, None
        fn(self.twin, *args)
        return True, out

    @rule(order=st.one_of(st.integers(-1, 12), WILD), mt=MIGRATETYPES)
    def alloc(self, order, mt):
        ok, pfn = self._expect(lambda a, o, m: a.alloc(o, m), order, mt)
        if ok and pfn is not None:
            assert pfn not in self.blocks
            self.blocks[pfn] = order

    @rule(data=st.data(), order=st.one_of(st.none(), st.integers(-1, 12), WILD))
    def free(self, data, order):
        pfn = self._pfn(data)
        if order is None:
            order = self.blocks.get(pfn, 0)
        ok, _ = self._expect(lambda a, p, o: a.free(p, o), pfn, order)
        if ok:
            assert self.blocks.pop(pfn, None) == order or order == 0

    @rule(data=st.data())
    def split(self, data):
        pfn = self._pfn(data)
        order = data.draw(st.one_of(st.just(self.blocks.get(pfn, 0)), st.integers(-1, 12)))
        ok, _ = self._expect(lambda a, p, o: a.split(p, o), pfn, order)
        if ok:
            o = self.blocks.pop(pfn, 0)
            for i in range(1 << o):
                self.blocks[pfn + i] = 0

    @rule(data=st.data(), mt=MIGRATETYPES)
    def set_pageblock(self, data, mt):
        self._expect(lambda a, p, m: a.set_pageblock_migratetype(p, m), self._pfn(data), mt)

    @rule(data=st.data(), n=st.integers(0, 40))
    def run(self, data, n):
        ops = data.draw(st.lists(st.one_of(st.sampled_from([OP_ALLOC, OP_FREE, OP_FREE_SLOT, OP_REPLACE_SLOT]),
                                           st.integers(-2, 6)), min_size=n, max_size=n))
        orders = data.draw(st.lists(st.integers(-2, 13), min_size=n, max_size=n))
        args = [self._pfn(data) % (2**63) if op == OP_FREE else data.draw(st.integers(-2, 9)) for op in ops]
        mts = data.draw(st.lists(st.integers(-1, 4), min_size=n, max_size=n))
        # slots may hold garbage too: a pfn past the zone, a stale pfn
        if data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(self.slots) - 1))
            self.slots[i] = self.twin_slots[i] = data.draw(st.one_of(st.integers(-3, self.n + 3),
                                                                     st.integers(-2**63, 2**63 - 1)))
        try:
            res = self.a.run(ops, orders, args, mts, slots=self.slots)
            done = n
        except BulkOpError as e:
            done = e.index
            assert len(e.results) == done
        except ERRORS:
            done = None                 # refused before any op ran (e.g. an arg beyond int64)
        if done:
            self.twin.run(ops[:done], orders[:done], args[:done], mts[:done], slots=self.twin_slots)
        assert state_of(self.a) == state_of(self.twin), "a failed bulk op changed the state"
        assert self.slots.tolist() == self.twin_slots.tolist()
        # the bulk path may have freed or allocated anything: resynchronise the model
        self.blocks = {int(b["pfn"]): int(b["order"]) for b in self.a.allocated_blocks()}

    @invariant()
    def consistent(self):
        if hasattr(self, "a"):
            self.a.check()
            assert state_of(self.a) == state_of(self.twin)


BuddyFuzz.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_buddy_allocator_fuzz = BuddyFuzz.TestCase


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nr_pages=st.integers(64, 2048), pb=st.integers(0, 6), ops=st.lists(st.tuples(st.integers(0, 4), st.booleans()),
                                                                           max_size=200),
       order=st.one_of(st.integers(-1, 7), WILD), mode=st.sampled_from(["async", "sync_light", "sync", "bogus"]),
       pins=st.lists(st.integers(0, 4096), max_size=8))
def test_compaction_fuzz(nr_pages, pb, ops, order, mode, pins):
    """compact_zone on a fragmented zone with a PageBook mover (some frames pinned), any
    order and mode: it runs or refuses, and every structure checks afterwards."""
    a = BuddyAllocator(nr_pages, max_order=6, pageblock_order=pb)
    held = []
    for o, keep in ops:
        p = a.alloc(o)
        if p >= 0:
            held.append((p, o))
    for i, (p, o) in enumerate(held):
        if i % 2:
            a.free(p, o)
    book = PageBook(a)
    kept = [p for i, (p, o) in enumerate(held) if not i % 2]
    for i in pins:
        if kept:
            book.pinned[kept[i % len(kept)]] = 1      # a pin is an extra reference on an allocated page
    st_ = CompactionState(a)
    before = state_of(a)
    try:
        compaction.compact_zone(a, order, mode, book, state=st_)
    except ERRORS:
        assert state_of(a) == before
    a.check()
    book.check()
    # the state of another geometry is refused, not used
    other = BuddyAllocator(nr_pages, max_order=6, pageblock_order=max(0, pb - 1))
    if pb > 0:
        with pytest.raises(ValueError):
            compaction.compact_zone(other, state=st_)
    other.check()


CORE_CALLS = ["rss", "pmd_kinds", "peek", "frame_info", "entries", "touch_range", "zap", "protect", "clear_young",
              "split_huge_pmd", "scan_pmd", "collapse", "split_folio", "split_range", "pageout", "move",
              "deferred_split_scan"]


@settings(max_examples=40, stateful_step_count=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(CORE_CALLS), st.integers(-1, 5),
                                st.lists(st.one_of(st.integers(-600, 70000), st.integers(-2**63, 2**63 - 1)),
                                         min_size=3, max_size=3)),
                      max_size=25))
def test_kernel_core_calls_fuzz(steps):
    """Sequences of raw k.core calls with any arguments, valid or not: each returns or
    raises a ValueError / TypeError / OverflowError; the kernel checks after every step.
    (fork and exit change which mms exist: the kernel's own fuzz covers them.)"""
    from thpbench.kernel import Kernel
    k = Kernel(32 << 20, thp={"enabled": "always"})
    procs = [k.spawn() for _ in range(2)]
    for p in procs:
        a = p.mmap(6 << 20)
        p.touch(a)
        p.touch(a + (2 << 20) + 8192, value=5)
    c = k.core
    for name, mm, (x, y, z) in steps:
        mm = procs[mm % 2].pid if mm >= 0 else mm
        args = {"rss": (mm,), "pmd_kinds": (mm, x, y), "peek": (mm, np.array([x, y], dtype=np.int64)),
                "frame_info": (np.array([x], dtype=np.int64), mm), "entries": (mm, x, x + (y % 600)),
                "touch_range": (mm, x, x + (y % 600), True, z % 5), "zap": (mm, x, y, bool(z & 1)),
                "protect": (mm, x, y, bool(z & 1)), "clear_young": (mm, x, y), "split_huge_pmd": (mm, x),
                "scan_pmd": (mm, x, True), "collapse": (mm, x, 3, True), "split_folio": (x, z % 11),
                "split_range": (mm, x, y, z % 11), "pageout": (mm, x, y), "move": (mm, x, y, z % 1100),
                "deferred_split_scan": (z % 100,)}[name]
        try:
            getattr(c, name)(*args)
        except ERRORS:
            pass
        k.check()
