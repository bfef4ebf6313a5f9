"""Workloads: what drives the simulator.

Two kinds, one section each: allocation patterns that age a machine (the churn of a
kernel build, through the buddy allocator's bulk path) and access traces (generators and
real traces recorded with valgrind's lackey) that the TLB simulation consumes.
"""
from __future__ import annotations

import gzip
import lzma
import re
from dataclasses import dataclass as _dataclass
from pathlib import Path

import numpy as np
import numpy as _np
import pandas as pd
import pandas as _pd

from thpbench._core import (
    MIGRATETYPE_NAMES as _MT_NAMES,
    OP_ALLOC as _OP_ALLOC,
    OP_FREE_SLOT as _OP_FREE_SLOT,
    OP_REPLACE_SLOT as _OP_REPLACE_SLOT,
    BuddyAllocator as _BuddyAllocator,
    PageBook as _PageBook,
)

__all__ = ["ChurnClass", "KERNEL_BUILD", "AllocationChurn", "churn_readout", "age", "aged_allocator",
           "uniform", "gups", "zipf_hotset", "strided", "pointer_chase", "streaming",
           "read_lackey", "read_lackey_df", "LACKEY_KINDS"]

# --- Allocation churn ---
#
# Memory that has run a kernel build, or served files for a while, is not a fresh
# zone: long-lived kernel allocations (slab, dentries and inodes) sit scattered among
# movable anon and page-cache pages, and free memory comes in small pieces.  Linus asked
# in 2010 for THP measurements "not directly after a clean reboot"; this section makes
# such a machine.  Everything runs through BuddyAllocator.run(): numpy draws whole arrays
# of OP_ALLOC / OP_REPLACE_SLOT / OP_FREE_SLOT operations, the core executes them.

_MT_NUMBER = {"unmovable": 0, "movable": 1, "reclaimable": 2}


@_dataclass(frozen=True)
class ChurnClass:
    """One kind of allocation in the churn.

    name : str
        A label (column ``live_pages_<name>`` of the read-outs).
    migratetype : str
        "unmovable", "movable" or "reclaimable", as ``gfp_migratetype()`` derives it
        (GFP_KERNEL, GFP_HIGHUSER_MOVABLE, __GFP_RECLAIMABLE for SLAB_RECLAIM_ACCOUNT caches).
    share : float
        Its share of the occupied memory (pages) in the steady state.
    lifetime : float
        Mean lifetime relative to the other classes (a class with lifetime 10 keeps an
        allocation ten times longer than one with lifetime 1).
    orders : tuple of float
        P(order k) for k = 0, 1, ... (normalised).
    """

    name: str
    migratetype: str
    share: float
    lifetime: float
    orders: tuple

    def __post_init__(self):
        if self.migratetype not in _MT_NUMBER:
            raise ValueError(f"ChurnClass {self.name!r}: migratetype {self.migratetype!r}; "
                             f"allowed: {', '.join(_MT_NUMBER)}")
        if not self.share >= 0 or not self.lifetime > 0:
            raise ValueError(f"ChurnClass {self.name!r}: share must be >= 0 and lifetime > 0 "
                             f"(got {self.share}, {self.lifetime})")
        p = _np.asarray(self.orders, dtype=float)
        if p.ndim != 1 or p.size == 0 or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"ChurnClass {self.name!r}: orders must be non-negative weights, got {self.orders!r}")


# A kernel build on a machine whose page cache holds its sources (a model of the mix,
# not a measurement; the shares of kernel memory match this repo's idle capture, where
# 55 of 1408 Normal pageblocks are Unmovable and 91 Reclaimable, about 10 % together):
KERNEL_BUILD = (
    # kmalloc and other slab caches: SLUB slabs of order 0..3 (slub_max_order = 3), long-lived
    ChurnClass("slab", "unmovable", 0.04, 40.0, (0.55, 0.15, 0.15, 0.15)),
    # per-process kernel memory: page tables (order 0) and kernel stacks (order 2,
    # THREAD_SIZE 16 KiB on x86-64); they live as long as a compiler process
    ChurnClass("pagetables_stacks", "unmovable", 0.02, 1.0, (0.75, 0.0, 0.25)),
    # dentry and inode caches (SLAB_RECLAIM_ACCOUNT): long-lived, reclaimable
    ChurnClass("dentry_inode", "reclaimable", 0.05, 20.0, (0.6, 0.2, 0.1, 0.1)),
    # compiler anon memory: short-lived, mostly 4 KiB, a few mTHP-sized folios
    ChurnClass("anon", "movable", 0.34, 1.0, (0.9, 0.0, 0.05, 0.0, 0.05)),
    # page cache of sources and objects: long-lived, large folios from readahead
    ChurnClass("page_cache", "movable", 0.55, 8.0, (0.6, 0.1, 0.15, 0.05, 0.1)),
)


def _scaled_classes(classes, unmovable_share):
    """Rescale shares so that non-movable classes hold ``unmovable_share`` of the occupied memory."""
    classes = tuple(classes)
    if not classes:
        raise ValueError("classes must name at least one ChurnClass")
    for c in classes:
        if not isinstance(c, ChurnClass):
            raise TypeError(f"classes must be ChurnClass objects, got {type(c).__name__}")
    if len({c.name for c in classes}) != len(classes):
        raise ValueError("ChurnClass names must be unique")
    if unmovable_share is None:
        return classes
    if not 0.0 <= unmovable_share <= 1.0:
        raise ValueError(f"unmovable_share {unmovable_share} out of range 0..1")
    kernel = sum(c.share for c in classes if c.migratetype != "movable")
    user = sum(c.share for c in classes if c.migratetype == "movable")
    out = []
    for c in classes:
        if c.migratetype == "movable":
            s = (1 - unmovable_share) * (c.share / user if user else 0.0)
        else:
            s = unmovable_share * (c.share / kernel if kernel else 0.0)
        out.append(ChurnClass(c.name, c.migratetype, s, c.lifetime, c.orders))
    if unmovable_share > 0 and kernel == 0:
        raise ValueError("unmovable_share > 0 but no class is unmovable or reclaimable")
    return tuple(out)


def churn_readout(allocator: _BuddyAllocator) -> dict:
    """Fragmentation read-outs of an allocator, as a flat dict (one row of a churn history).

    ``nr_free_pages``; ``free_blocks_order_k`` (buddyinfo); ``nr_free_pageblocks``:
    pageblocks that are entirely free, i.e. the order-``pageblock_order`` (2 MiB) requests
    that could succeed now without compaction (free blocks of that order or above,
    counted in pageblock units); ``unusable_index`` and
    ``fragmentation_index`` at pageblock_order (``mm/vmstat.c`` formulas / 1000);
    ``nr_pageblocks_<type>`` (pagetypeinfo's "Number of blocks type");
    ``nr_mixed_pageblocks``: pageblocks holding allocated pages of a migratetype other
    than their own (what pagetypeinfo's page_owner table counts); ``nr_polluted_pageblocks``:
    pageblocks holding any unmovable or reclaimable allocation (they cannot become a free
    2 MiB block without freeing kernel memory); the allocator's event counters
    (``alloc_fail``, ``extfrag``, ``claim``, ``steal``).
    """
    a = allocator
    pbo = a.pageblock_order
    info = a.buddyinfo()
    row = {"nr_free_pages": int(a.nr_free_pages)}
    for k, n in enumerate(info):
        row[f"free_blocks_order_{k}"] = int(n)
    row["nr_free_pageblocks"] = int(sum(int(info[k]) << (k - pbo) for k in range(pbo, a.max_order + 1)))
    row["unusable_index"] = a.unusable_index(pbo)
    row["fragmentation_index"] = a.fragmentation_index(pbo)
    pbt = a.pageblock_migratetypes()
    counts = _np.bincount(pbt, minlength=len(_MT_NAMES))
    for m, name in enumerate(_MT_NAMES):
        row[f"nr_pageblocks_{name.lower()}"] = int(counts[m])
    fm = a.frame_migratetypes()
    nr_pb = a.nr_pageblocks
    pad = nr_pb * (1 << pbo) - fm.size
    fm = _np.concatenate([fm, _np.full(pad, -1, _np.int8)]).reshape(nr_pb, 1 << pbo)
    used = fm >= 0
    row["nr_mixed_pageblocks"] = int((used & (fm != pbt[:, None].astype(_np.int8))).any(axis=1).sum())
    row["nr_polluted_pageblocks"] = int(((fm == 0) | (fm == 2)).any(axis=1).sum())
    c = a.counters()
    for key in ("alloc_fail", "extfrag", "claim", "steal"):
        row[key] = int(c[key])
    return row


class AllocationChurn:
    """An allocation-churn workload bound to one ``BuddyAllocator``.

    The live allocations are a fixed population of slots (``slots``, an int64 array of
    pfns, -1 empty), each belonging to one :class:`ChurnClass`.  Class ``c`` has
    ``fill * nr_pages * share_c / E[2**order]`` slots; a churn step frees a random slot
    of a random class and allocates a new block of that class in it (``OP_REPLACE_SLOT``),
    classes chosen in proportion to ``slots_c / lifetime_c``, so a class's allocations
    live ``lifetime_c`` times as long as a lifetime-1 class's.  Allocation failures
    leave the slot empty until its next turn (there is no reclaim or compaction here:
    the allocator alone).

    Parameters
    ----------
    allocator : BuddyAllocator
    classes : tuple of ChurnClass, default :data:`KERNEL_BUILD`
    fill : float
        Occupied fraction of memory in the steady state (default 0.97: a page cache
        fills memory).
    unmovable_share : float, optional
        Rescale the classes so that unmovable + reclaimable ones hold this share of
        the occupied memory (default: the classes' own shares).
    seed : int
    book : PageBook, optional
        A :class:`~thpbench._core.PageBook` of the same allocator: after every step
        (``fill``, ``run``, ``release``) the churn calls ``book.track(slots)``, so the
        book's owners are the slots and compaction with this book rewrites ``slots``
        when it moves a block.

    Attributes
    ----------
    history : DataFrame
        One row per recorded step (``fill``, ``run`` steps, ``release``): ``step``,
        ``phase``, ``ops`` (cumulative; a replace counts 2 as in ``run()``), ``turnover``
        (pages allocated so far / nr_pages), ``live_pages_<class>``, ``allocs_<class>``
        (allocations attempted so far) and
        :func:`churn_readout`'s columns.
    """

    def __init__(self, allocator, classes=KERNEL_BUILD, *, fill=0.97, unmovable_share=None, seed=0, book=None):
        if not isinstance(allocator, _BuddyAllocator):
            raise TypeError(f"allocator must be a BuddyAllocator, got {type(allocator).__name__}")
        if book is not None and (not isinstance(book, _PageBook) or book.allocator is not allocator):
            raise ValueError("book must be a PageBook of the same allocator")
        self.book = book
        if not 0.0 < fill <= 1.0:
            raise ValueError(f"fill {fill} out of range (0, 1]")
        self.allocator = allocator
        self.classes = _scaled_classes(classes, unmovable_share)
        self.fill_fraction = float(fill)
        self.rng = _np.random.default_rng(seed)
        k = allocator.max_order + 1
        probs = []
        for c in self.classes:
            p = _np.zeros(k)
            w = _np.asarray(c.orders, dtype=float)
            if w.size > k and w[k:].any():
                raise ValueError(f"ChurnClass {c.name!r} asks for orders above max_order {allocator.max_order}")
            p[:min(k, w.size)] = w[:k]
            probs.append(p / p.sum())
        self._order_cdf = _np.cumsum(_np.array(probs), axis=1)
        self._order_cdf[:, -1] = 1.0
        mean_pages = _np.array([(p * (1 << _np.arange(k))).sum() for p in probs])
        shares = _np.array([c.share for c in self.classes], dtype=float)
        if shares.sum() <= 0:
            raise ValueError("the classes' shares sum to 0")
        shares = shares / shares.sum()
        self.nr_slots = _np.maximum(_np.round(fill * allocator.nr_pages * shares / mean_pages), 0).astype(_np.int64)
        self.nr_slots[(shares > 0) & (self.nr_slots == 0)] = 1
        self.slot_offset = _np.concatenate([[0], _np.cumsum(self.nr_slots)[:-1]]).astype(_np.int64)
        self.slots = _np.full(int(self.nr_slots.sum()), -1, dtype=_np.int64)
        self.slot_class = _np.repeat(_np.arange(len(self.classes)), self.nr_slots)
        self._mts = _np.array([_MT_NUMBER[c.migratetype] for c in self.classes], dtype=_np.int8)
        lifetimes = _np.array([c.lifetime for c in self.classes], dtype=float)
        rate = self.nr_slots / lifetimes
        self._class_p = rate / rate.sum()
        self._mean_pages = mean_pages
        self._pages_per_replace = float((self._class_p * mean_pages).sum())
        self.ops = 0
        self.pages_allocated = 0
        self.allocs_by_class = _np.zeros(len(self.classes), dtype=_np.int64)
        self._rows = []
        self._filled = False

    # -- the op arrays ---------------------------------------------------------------
    def _orders_for(self, cls):
        u = self.rng.random(cls.size)
        out = _np.empty(cls.size, dtype=_np.int8)
        for c in range(len(self.classes)):
            sel = cls == c
            # inverse CDF; min() guards u against rounding past the last step
            out[sel] = _np.minimum(_np.searchsorted(self._order_cdf[c], u[sel], side="right"),
                                   self._order_cdf.shape[1] - 1)
        return out

    def _run(self, ops, orders, slot_idx, cls):
        res = self.allocator.run(ops, orders, slot_idx, self._mts[cls], self.slots)
        if self.book is not None:
            # run() moved frames behind the book's back: rebuild its owners from the slots
            self.book.track(self.slots)
        allocating = ops != _OP_FREE_SLOT
        self.allocs_by_class += _np.bincount(cls[allocating], minlength=len(self.classes))
        self.ops += int(ops.size + (ops == _OP_REPLACE_SLOT).sum())
        self.pages_allocated += int(((res >= 0) & allocating).astype(_np.int64) @ (1 << orders.astype(_np.int64)))
        return res

    def fill(self):
        """Allocate every slot once, all classes interleaved at random (boot and warm-up)."""
        if self._filled:
            raise RuntimeError("fill() runs once, on the fresh allocator")
        idx = self.rng.permutation(self.slots.size)
        cls = self.slot_class[idx]
        self._run(_np.full(idx.size, _OP_ALLOC, _np.int8), self._orders_for(cls), idx, cls)
        self._filled = True
        return self._record("fill")

    def run(self, turnover=1.0, steps=10):
        """Churn until ``turnover * nr_pages`` pages were allocated, in ``steps`` recorded steps.

        Returns the rows of these steps (also appended to :attr:`history`).
        """
        if not turnover >= 0:
            raise ValueError(f"turnover {turnover} must be >= 0")
        if not isinstance(steps, (int, _np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if not self._filled:
            self.fill()
        total = int(round(turnover * self.allocator.nr_pages / self._pages_per_replace))
        first = len(self._rows)
        for s in range(steps):
            n = total * (s + 1) // steps - total * s // steps
            cls = self.rng.choice(len(self.classes), size=n, p=self._class_p)
            slot = self.slot_offset[cls] + (self.rng.random(n) * self.nr_slots[cls]).astype(_np.int64)
            self._run(_np.full(n, _OP_REPLACE_SLOT, _np.int8), self._orders_for(cls), slot, cls)
            self._record("churn")
        return _pd.DataFrame(self._rows[first:])

    def release(self, *names, fraction=1.0):
        """Free the live allocations of the named classes (processes exit, caches dropped).

        ``fraction`` < 1 frees that fraction of each class's slots, chosen at random (a
        partial drop of caches; the kernel's reclaim would follow its LRU lists, which
        this model does not keep).  Returns the number of pages freed.  The slots stay
        empty until churn refills them.
        """
        known = {c.name: i for i, c in enumerate(self.classes)}
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"unknown churn classes {bad}; allowed: {', '.join(known)}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction {fraction} out of range 0..1")
        before = self.allocator.nr_free_pages
        for n in names:
            i = known[n]
            idx = _np.arange(self.slot_offset[i], self.slot_offset[i] + self.nr_slots[i])
            if fraction < 1.0:
                idx = _np.sort(self.rng.choice(idx, size=int(round(fraction * idx.size)), replace=False))
            cls = _np.full(idx.size, i)
            self._run(_np.full(idx.size, _OP_FREE_SLOT, _np.int8), _np.zeros(idx.size, _np.int8), idx, cls)
        self._record("release " + ",".join(names) + ("" if fraction == 1.0 else f" ({fraction:.0%})"))
        return int(self.allocator.nr_free_pages - before)

    # -- read-outs -------------------------------------------------------------------
    def live_pages(self):
        """Pages held by each class now (dict name -> pages)."""
        ab = self.allocator.allocated_blocks()
        order_at = _np.zeros(self.allocator.nr_pages, dtype=_np.int64)
        order_at[ab["pfn"]] = ab["order"]
        live = self.slots >= 0
        pages = _np.zeros(self.slots.size, dtype=_np.int64)
        pages[live] = _np.left_shift(1, order_at[self.slots[live]])
        sums = _np.bincount(self.slot_class, weights=pages, minlength=len(self.classes))
        return {c.name: int(sums[i]) for i, c in enumerate(self.classes)}

    def _record(self, phase):
        row = {"step": len(self._rows), "phase": phase, "ops": self.ops,
               "turnover": self.pages_allocated / self.allocator.nr_pages}
        row.update({f"live_pages_{k}": v for k, v in self.live_pages().items()})
        row.update({f"allocs_{c.name}": int(n) for c, n in zip(self.classes, self.allocs_by_class)})
        row.update(churn_readout(self.allocator))
        self._rows.append(row)
        return _pd.DataFrame([row])

    @property
    def history(self):
        return _pd.DataFrame(self._rows)


def age(allocator, turnover=4.0, *, steps=8, classes=KERNEL_BUILD, fill=0.97, unmovable_share=None,
        release=("anon", "pagetables_stacks"), seed=0):
    """Age a (fresh) allocator: fill it, churn ``turnover`` times its memory, then release.

    The default ends as a kernel build leaves a machine: the compiler processes have
    exited (``release`` frees their anon memory, page tables and stacks), the page cache,
    slab and dentry/inode caches stay.  Returns the :class:`AllocationChurn` (its
    ``history`` DataFrame has one row per step; its slots can be churned further).
    """
    w = AllocationChurn(allocator, classes, fill=fill, unmovable_share=unmovable_share, seed=seed)
    w.fill()
    if turnover > 0:
        w.run(turnover, steps)
    names = {c.name for c in w.classes}
    rel = [n for n in release if n in names]
    if rel:
        w.release(*rel)
    return w


def aged_allocator(nr_pages, *, turnover=4.0, grouping=True, max_order=10, pageblock_order=9, steps=8,
                   classes=KERNEL_BUILD, fill=0.97, unmovable_share=None, release=("anon", "pagetables_stacks"),
                   seed=0):
    """A new ``BuddyAllocator(nr_pages, ...)`` aged by :func:`age`; returns ``(allocator, churn)``.

    The fresh counterpart is simply ``BuddyAllocator(nr_pages, ...)``.
    """
    a = _BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=pageblock_order, grouping=grouping)
    w = age(a, turnover, steps=steps, classes=classes, fill=fill, unmovable_share=unmovable_share,
            release=release, seed=seed)
    return a, w

# --- Access traces ---
# Generators return uint64 numpy arrays of virtual addresses (one per memory access),
# each from a seed; the importer reads `valgrind --tool=lackey --trace-mem=yes` output.
# The TLB (thpbench.tlb.MMU.run) consumes them directly.




_PAGE = 4096


def _check(n, footprint_bytes, base):
    if int(n) < 0:
        raise ValueError(f"n={n}: the number of accesses must be >= 0")
    if int(footprint_bytes) < 1:
        raise ValueError(f"footprint_bytes={footprint_bytes}: must be >= 1")
    if int(base) < 0 or int(base) + int(footprint_bytes) > 2**64:
        raise ValueError(f"base={base:#x} + footprint does not fit in 64 bits")


def uniform(n: int, footprint_bytes: int, seed: int, base: int = 0, align: int = 8) -> np.ndarray:
    """Uniformly random accesses over ``[base, base + footprint_bytes)`` (``align``-byte words)."""
    _check(n, footprint_bytes, base)
    rng = np.random.default_rng(seed)
    words = max(1, int(footprint_bytes) // align)
    return (rng.integers(0, words, size=int(n), dtype=np.uint64) * np.uint64(align)
            + np.uint64(base))


def gups(n: int, footprint_bytes: int, seed: int, base: int = 0) -> np.ndarray:
    """HPCC RandomAccess (GUPS): read-modify-write of random 8-byte words of a table,
    i.e. a uniform trace in which each update touches its word twice (load, store)."""
    u = uniform((int(n) + 1) // 2, footprint_bytes, seed, base)
    return np.repeat(u, 2)[: int(n)]


def zipf_hotset(n: int, footprint_bytes: int, s: float, seed: int, base: int = 0,
                page_bytes: int = _PAGE) -> np.ndarray:
    """Pages drawn from a Zipf law of exponent ``s`` (rank r has weight r^-s), ranks
    scattered over the footprint by a random permutation; a random offset in the page.
    ``s = 0`` is uniform; larger ``s`` concentrates the accesses on a small hot set."""
    _check(n, footprint_bytes, base)
    if s < 0:
        raise ValueError(f"s={s}: the Zipf exponent must be >= 0")
    rng = np.random.default_rng(seed)
    pages = max(1, int(footprint_bytes) // page_bytes)
    w = np.arange(1, pages + 1, dtype=np.float64) ** (-float(s))
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(int(n)), side="right")
    ranks = np.minimum(ranks, pages - 1)
    perm = rng.permutation(pages).astype(np.uint64)
    offs = rng.integers(0, page_bytes // 8, size=int(n), dtype=np.uint64) * np.uint64(8)
    return perm[ranks] * np.uint64(page_bytes) + offs + np.uint64(base)


def strided(n: int, footprint_bytes: int, stride_bytes: int, base: int = 0, start: int = 0) -> np.ndarray:
    """``base + (start + i*stride) mod footprint``: a strided sweep that wraps around."""
    _check(n, footprint_bytes, base)
    if stride_bytes < 1:
        raise ValueError(f"stride_bytes={stride_bytes}: must be >= 1")
    i = np.arange(int(n), dtype=np.uint64)
    return ((np.uint64(start) + i * np.uint64(stride_bytes)) % np.uint64(footprint_bytes)
            + np.uint64(base))


def pointer_chase(n: int, footprint_bytes: int, seed: int, base: int = 0, node_bytes: int = 64) -> np.ndarray:
    """Following a linked list laid out as one random cycle through all nodes of
    ``node_bytes`` (a single-cycle permutation, Sattolo's algorithm): every node is
    visited once per lap, each next node at a random place."""
    _check(n, footprint_bytes, base)
    rng = np.random.default_rng(seed)
    nodes = max(1, int(footprint_bytes) // node_bytes)
    order = rng.permutation(nodes)          # a random cycle: order[0] -> order[1] -> ...
    laps = -(-int(n) // nodes) if n else 0
    seq = np.tile(order, max(laps, 0))[: int(n)].astype(np.uint64)
    return seq * np.uint64(node_bytes) + np.uint64(base)


def streaming(n: int, footprint_bytes: int, elem_bytes: int = 8, base: int = 0) -> np.ndarray:
    """A sequential scan of ``elem_bytes`` elements, restarting at the beginning."""
    return strided(n, footprint_bytes, elem_bytes, base)


# -- valgrind lackey --------------------------------------------------------------

#: Lackey's access kinds: instruction fetch, load, store, modify (load + store).
LACKEY_KINDS = ("I", "L", "S", "M")
_LACKEY_LINE = re.compile(rb"^ ?([ILSM]) +([0-9a-fA-F]{1,16}),(\d{1,4})[ \t\r]*$", re.M)
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _parse_numbers(fields, base: int) -> np.ndarray:
    """Vectorised int(x, base) of up to 16 ASCII digits each (a Python loop over
    millions of lackey lines would dominate the import time)."""
    a = np.array(fields, dtype="S16")
    u = a.view(np.uint8).reshape(-1, 16)             # digits left-aligned, NUL-padded
    val = np.zeros(u.shape[0], dtype=np.uint64)
    b = np.uint64(base)
    for j in range(16):                              # Horner, one column at a time
        col = u[:, j]
        live = col != 0
        if not live.any():
            break
        val = np.where(live, val * b + _HEX[col].astype(np.uint64), val)
    return val


def _open_bytes(path) -> bytes:
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(6)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(p, "rb") as f:
            return f.read()
    if head[:6] == b"\xfd7zXZ\x00":
        with lzma.open(p, "rb") as f:
            return f.read()
    return p.read_bytes()


def read_lackey_df(path) -> pd.DataFrame:
    """Parse ``valgrind --tool=lackey --trace-mem=yes`` output (plain, .gz or .xz).

    Lackey writes one line per access: ``I  addr,size`` for an instruction fetch and
    `` L addr,size``, `` S addr,size``, `` M addr,size`` for a load, store or modify;
    lines starting with ``==pid==`` are valgrind's own messages and are skipped.
    Returns a DataFrame with columns ``kind`` (category I/L/S/M), ``addr`` (uint64) and
    ``size`` (uint8).  Raises ValueError if no access line is found.
    """
    data = _open_bytes(path)
    m = _LACKEY_LINE.findall(data)
    if not m:
        raise ValueError(f"{path}: no lackey access lines ('I|L|S|M addr,size') found")
    kinds, addrs, sizes = zip(*m)
    addr = _parse_numbers(addrs, 16)
    size = _parse_numbers(sizes, 10).astype(np.uint16)
    codes = np.searchsorted(np.frombuffer(b"ILMS", dtype=np.uint8),
                            np.frombuffer(b"".join(kinds), dtype=np.uint8))
    order = np.array([LACKEY_KINDS.index(k) for k in "ILMS"])   # I L M S -> I L S M codes
    kind = pd.Categorical.from_codes(order[codes], categories=list(LACKEY_KINDS))
    return pd.DataFrame({"kind": kind, "addr": addr, "size": size})


def read_lackey(path, kinds: str = "LSM") -> np.ndarray:
    """The data addresses of a lackey trace as a uint64 array (``kinds`` selects among
    I, L, S, M; a modify counts once), ready for :meth:`thpbench.tlb.MMU.run`."""
    bad = set(kinds) - set(LACKEY_KINDS)
    if bad or not kinds:
        raise ValueError(f"kinds={kinds!r}: choose from {''.join(LACKEY_KINDS)}")
    df = read_lackey_df(path)
    return df.loc[df["kind"].isin(list(kinds)), "addr"].to_numpy(dtype=np.uint64)


