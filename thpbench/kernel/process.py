"""VMAs and processes: an mm with VMAs over page tables in the core."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from thpbench._validate import as_int as _as_int
from thpbench._core import InvariantError, _mm_pin
from thpbench.units import (PAGE_SHIFT, PAGE_SIZE, HPAGE_PMD_SIZE, PROT_READ, PROT_WRITE, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
                            MADV_PAGEOUT, MADV_COLLAPSE, MADVISE_NAMES, VM_READ, VM_WRITE, VM_HUGEPAGE,
                            VM_NOHUGEPAGE)
from thpbench.kernel.errors import OutOfMemory, SegmentationFault

if TYPE_CHECKING:
    from thpbench.kernel.kernel import Kernel


_F_OK, _F_SEGV_MAPERR, _F_SEGV_ACCERR, _F_OOM = 0, 1, 2, 3


class PmdKind(IntEnum):
    """What :meth:`Process.pmd_kinds` returns per 2 MiB region (compare arrays with
    these: ``p.pmd_kinds(a, b) == PmdKind.THP``)."""
    NONE = 0            # pmd_none: nothing mapped
    TABLE = 1           # a page table of 512 PTEs
    THP = 2             # a PMD-mapped transparent huge page
    HUGE_ZERO = 3       # the huge zero page (a read fault under THP with use_zero_page)


class PageKind(IntEnum):
    """What :meth:`Process.peek` returns per page as its kinds array."""
    NONE = 0            # nothing mapped
    PAGE = 1            # a 4 KiB page (of a folio mapped by PTEs)
    ZERO = 2            # the 4 KiB zero page
    SWAPPED = 3         # a swap entry
    IN_THP = 4          # a page of a PMD-mapped THP
    HUGE_ZERO = 5       # a page of the huge zero page


class ProcessContext(Protocol):
    """What a process may read and call of its kernel."""

    core: object                 # the MMCore: page tables, faults, VMAs
    virtual_bytes: int

    def owns(self, pid: int, proc: "Process") -> bool: ...        # is proc the live process of pid?

    def after_op(self) -> None: ...

    def khugepaged_enter(self, pid: int, vmas: list) -> None: ...

    def madvise_collapse(self, pid: int, vmas: list, start: int, end: int) -> int: ...

    def new_process(self, family: int) -> "Process": ...

    def forked(self, parent_pid: int, child_pid: int) -> None: ...

    def release(self, pid: int) -> None: ...

    def retry_after_reclaim(self) -> bool: ...

@dataclass
class Vma:
    start: int           # bytes, page aligned
    end: int
    prot: int = PROT_READ | PROT_WRITE
    hugepage: int = 0    # 0 neither, 1 VM_HUGEPAGE, -1 VM_NOHUGEPAGE

    @property
    def vm_flags(self) -> int:
        f = 0
        if self.prot & PROT_READ:
            f |= VM_READ
        if self.prot & PROT_WRITE:
            f |= VM_WRITE | VM_READ
        if self.hugepage > 0:
            f |= VM_HUGEPAGE
        elif self.hugepage < 0:
            f |= VM_NOHUGEPAGE
        return f




class Process:
    """A simulated process: an mm with VMAs over page tables in the core.

    Addresses are byte addresses in a virtual window ``[0, kernel.virtual_bytes)``.
    Create with ``kernel.spawn()`` or ``proc.fork()``.
    """

    def __init__(self, kernel: "Kernel", pid: int, family: int, ctx: ProcessContext):
        self.kernel = kernel
        self.pid = pid
        self.family = family
        self.vmas: list[Vma] = []
        self.alive = True
        self._ctx = ctx

    def __repr__(self):
        if not self.alive:
            return f"Process(pid={self.pid}, exited)"
        return f"Process(pid={self.pid}, vmas={len(self.vmas)}, rss_anon_kb={self.rss_anon_kb})"

    # -- validation ---------------------------------------------------------------
    def _live(self):
        # a handle of an exited process must never reach the core (its mm is gone, or
        # its pid now belongs to another process)
        if not self.alive or not self._ctx.owns(self.pid, self):
            raise ValueError(f"process {self.pid} has exited (this handle is stale)")

    def _range(self, addr, length, what="range"):
        self._live()
        addr = _as_int(addr, "addr")
        length = _as_int(length, "length")
        if addr % PAGE_SIZE:
            raise ValueError(f"address {addr:#x} is not page aligned (multiple of {PAGE_SIZE})")
        if length <= 0:
            raise ValueError(f"length {length} must be > 0")
        length = -(-length // PAGE_SIZE) * PAGE_SIZE
        if addr < 0 or addr + length > self._ctx.virtual_bytes:
            raise ValueError(f"{what} [{addr:#x}, {addr + length:#x}) outside the virtual window "
                             f"[0, {self._ctx.virtual_bytes:#x})")
        return addr, addr + length

    def _require_mapped(self, start, end, what):
        pos = start
        for v in self.vmas:
            if v.end <= pos:
                continue
            if v.start > pos:
                break
            pos = v.end
            if pos >= end:
                return
        if pos < end:
            raise ValueError(f"{what}: [{start:#x}, {end:#x}) is not mapped (hole at {pos:#x}); "
                             f"mapped VMAs: {[(hex(v.start), hex(v.end)) for v in self.vmas]}")

    def find_vma(self, addr) -> Vma | None:
        """The VMA holding ``addr``, or None."""
        self._live()
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None

    # -- VMA bookkeeping ----------------------------------------------------------
    def _split_at(self, addr):
        """split_vma() at addr; a huge PMD straddling the cut is split (vma_adjust_trans_huge)."""
        for i, v in enumerate(self.vmas):
            if v.start < addr < v.end:
                self.vmas[i:i + 1] = [Vma(v.start, addr, v.prot, v.hugepage), Vma(addr, v.end, v.prot, v.hugepage)]
                break
        if addr % HPAGE_PMD_SIZE:
            self._ctx.core.split_huge_pmd(self.pid, addr >> PAGE_SHIFT)

    def _merge(self):
        """vma_merge(): adjacent VMAs with the same flags become one."""
        out = []
        for v in sorted(self.vmas, key=lambda v: v.start):
            if out and out[-1].end == v.start and out[-1].prot == v.prot and out[-1].hugepage == v.hugepage:
                out[-1] = Vma(out[-1].start, v.end, v.prot, v.hugepage)
            else:
                out.append(v)
        self.vmas = out

    def _push_vmas(self):
        self._merge()
        self._ctx.core.set_vmas(self.pid, np.array([v.start >> PAGE_SHIFT for v in self.vmas], dtype=np.int64),
                                  np.array([v.end >> PAGE_SHIFT for v in self.vmas], dtype=np.int64),
                                  np.array([v.vm_flags for v in self.vmas], dtype=np.uint32))

    def _apply(self, start, end, fn):
        """Split VMAs at start and end, then call fn(vma) on each VMA inside."""
        self._split_at(start)
        self._split_at(end)
        for v in self.vmas:
            if start <= v.start and v.end <= end:
                fn(v)
        self._push_vmas()

    # -- system calls -------------------------------------------------------------
    def mmap(self, length, prot=PROT_READ | PROT_WRITE, addr=None, *, fixed=False) -> int:
        """Anonymous private mmap; returns the address.

        Without ``addr`` the kernel picks the highest free gap, 2 MiB aligned when the
        length is a multiple of 2 MiB (thp_get_unmapped_area).  With ``addr`` and
        ``fixed=True`` (MAP_FIXED) an existing mapping there is replaced; with ``addr``
        alone it is a hint that must be free.
        """
        self._live()
        length = _as_int(length, "length")
        prot = _as_int(prot, "prot")
        if prot & ~(PROT_READ | PROT_WRITE):
            raise ValueError(f"prot {prot:#x} not supported; allowed PROT_NONE, PROT_READ, PROT_WRITE")
        if length <= 0:
            raise ValueError(f"length {length} must be > 0")
        length = -(-length // PAGE_SIZE) * PAGE_SIZE
        if addr is None:
            align = HPAGE_PMD_SIZE if length % HPAGE_PMD_SIZE == 0 else PAGE_SIZE
            addr = self._unmapped_area(length, align)
        else:
            addr, end = self._range(addr, length)
            busy = any(v.start < end and addr < v.end for v in self.vmas)
            if busy and not fixed:
                raise ValueError(f"mmap hint [{addr:#x}, {end:#x}) overlaps an existing mapping; use fixed=True")
            if busy:
                self._unmap(addr, end)
        self.vmas.append(Vma(addr, addr + length, prot, 0))
        self._push_vmas()
        self._ctx.khugepaged_enter(self.pid, self.vmas)
        return addr

    def _unmapped_area(self, length, align):
        top = self._ctx.virtual_bytes - HPAGE_PMD_SIZE   # leave a guard PMD
        for v in sorted(self.vmas, key=lambda v: -v.start):
            cand = (top - length) // align * align
            if cand >= v.end:
                return cand
            top = min(top, v.start)
        cand = (top - length) // align * align
        if cand < HPAGE_PMD_SIZE:
            raise MemoryError(f"no free virtual range of {length} bytes (ENOMEM)")
        return cand

    def _unmap(self, start, end):
        self._split_at(start)
        self._split_at(end)
        self._ctx.core.zap(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT, True)
        self.vmas = [v for v in self.vmas if not (start <= v.start and v.end <= end)]
        self._push_vmas()

    def munmap(self, addr, length) -> None:
        """Unmap [addr, addr+length): partial huge PMDs are split, the pages freed."""
        start, end = self._range(addr, length)
        if not any(v.start < end and start < v.end for v in self.vmas):
            raise ValueError(f"munmap: nothing is mapped in [{start:#x}, {end:#x})")
        self._unmap(start, end)
        self._ctx.after_op()

    def mprotect(self, addr, length, prot) -> None:
        start, end = self._range(addr, length)
        prot = _as_int(prot, "prot")
        if prot & ~(PROT_READ | PROT_WRITE):
            raise ValueError(f"prot {prot:#x} not supported; allowed PROT_NONE, PROT_READ, PROT_WRITE")
        self._require_mapped(start, end, "mprotect")

        def set_prot(v):
            v.prot = prot
        self._apply(start, end, set_prot)
        self._ctx.core.protect(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT, bool(prot & PROT_WRITE))
        self._ctx.after_op()

    def madvise(self, addr, length, advice) -> int:
        """madvise(2) for MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT and
        MADV_COLLAPSE (names or numbers).

        Returns 0, or for MADV_COLLAPSE the syscall's negative errno when some PMD
        could not be collapsed (-EAGAIN, -ENOMEM, -EINVAL), as the selftests test it.
        Bad arguments raise ValueError.
        """
        start, end = self._range(addr, length)
        if isinstance(advice, str):
            if advice.upper() not in MADVISE_NAMES:
                raise ValueError(f"unknown madvise advice {advice!r}; allowed: {', '.join(MADVISE_NAMES)}")
            advice = MADVISE_NAMES[advice.upper()]
        advice = _as_int(advice, "advice")
        if advice not in MADVISE_NAMES.values():
            raise ValueError(f"unknown madvise advice {advice}; allowed: "
                             + ", ".join(f"{k}={v}" for k, v in MADVISE_NAMES.items()))
        self._require_mapped(start, end, "madvise")
        core = self._ctx.core
        ret = 0
        if advice == MADV_DONTNEED:
            core.zap(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT, False)
        elif advice in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
            hp = 1 if advice == MADV_HUGEPAGE else -1

            def set_hp(v):
                v.hugepage = hp
            self._apply(start, end, set_hp)
            if advice == MADV_HUGEPAGE:
                self._ctx.khugepaged_enter(self.pid, self.vmas)
        elif advice == MADV_PAGEOUT:
            core.pageout(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT)
        elif advice == MADV_COLLAPSE:
            ret = self._ctx.madvise_collapse(self.pid, self.vmas, start, end)
        self._ctx.after_op()
        return ret

    def mremap(self, old_addr, old_len, new_len, new_addr=None) -> int:
        """mremap(2) with MREMAP_MAYMOVE (and MREMAP_FIXED when new_addr is given).

        The first min(old_len, new_len) bytes move (their page-table entries, so the
        pages and their content move with them); the rest of the old range is unmapped;
        growth is new, empty address space.  Returns the new address.

        All or nothing, as the kernel's move_vma(): when a page table for the new range
        cannot be allocated part-way, the entries already moved go back
        (move_page_tables(new_vma, new_addr, vma, old_addr, moved_len)), the new range is
        unmapped and OutOfMemory (-ENOMEM) is raised with the old mapping intact.  (With
        MREMAP_FIXED a mapping that was at the new address is gone, as in the kernel,
        which unmaps it first.)
        """
        start, end = self._range(old_addr, old_len, "old range")
        new_len = _as_int(new_len, "new_len")
        if new_len <= 0:
            raise ValueError(f"new_len {new_len} must be > 0")
        new_len = -(-new_len // PAGE_SIZE) * PAGE_SIZE
        self._require_mapped(start, end, "mremap")
        old = self.find_vma(start)
        if any(v.start < end and start < v.end and (v.prot, v.hugepage) != (old.prot, old.hugepage) for v in self.vmas):
            raise ValueError("mremap: the old range spans VMAs with different flags (EFAULT)")
        keep = min(end - start, new_len)
        if new_addr is None:
            dst = self._unmapped_area(new_len, PAGE_SIZE)
        else:
            dst, dst_end = self._range(new_addr, new_len, "new range")
            if dst < end and start < dst_end:
                raise ValueError("mremap: old and new ranges overlap (EINVAL)")
            if any(v.start < dst_end and dst < v.end for v in self.vmas):
                self._unmap(dst, dst_end)         # mremap_to(): do_munmap(new_addr) first
        core = self._ctx.core
        self._split_at(start)
        self._split_at(start + keep)
        self._split_at(end)
        if dst % HPAGE_PMD_SIZE:
            core.split_huge_pmd(self.pid, dst >> PAGE_SHIFT)
        before = [Vma(v.start, v.end, v.prot, v.hugepage) for v in self.vmas]
        # the destination VMA first, so the moved entries lie inside a VMA
        self.vmas.append(Vma(dst, dst + new_len, old.prot, old.hugepage))
        self.vmas.sort(key=lambda v: v.start)
        rc = core.move(self.pid, start >> PAGE_SHIFT, dst >> PAGE_SHIFT, keep >> PAGE_SHIFT)
        if rc == -1:
            self.vmas = before
            self._push_vmas()
            raise NotImplementedError("mremap of pages shared with another process (after fork) is not modelled")
        if rc == -2:
            # mm/mremap.c: move_vma(): "On error, move entries back from new area to old,
            # which will succeed since page tables still there"
            back = core.move(self.pid, dst >> PAGE_SHIFT, start >> PAGE_SHIFT, keep >> PAGE_SHIFT)
            core.zap(self.pid, dst >> PAGE_SHIFT, (dst + new_len) >> PAGE_SHIFT, True)
            self.vmas = before
            self._push_vmas()
            self._ctx.after_op()
            if back != 0:
                raise InvariantError(f"mremap: moving the entries back to {start:#x} failed ({back})")
            raise OutOfMemory(self.pid, dst)
        core.zap(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT, True)
        self.vmas = [v for v in self.vmas if not (start <= v.start and v.end <= end)]
        self._push_vmas()
        self._ctx.after_op()
        return dst

    def fork(self) -> "Process":
        """fork(2): a child sharing every anonymous page copy-on-write."""
        self._live()
        ctx = self._ctx
        child = ctx.new_process(self.family)
        child.vmas = [Vma(v.start, v.end, v.prot, v.hugepage) for v in self.vmas]
        child._push_vmas()
        if not ctx.core.fork(self.pid, child.pid):
            child._destroy()
            raise OutOfMemory(self.pid, 0)
        ctx.forked(self.pid, child.pid)           # khugepaged_fork()
        ctx.after_op()
        return child

    def exit(self) -> None:
        """exit_mmap(): free every page and page table.  Every later call on this
        handle raises ValueError (its pid may be reused by a new process)."""
        if not self.alive:
            return
        self._destroy()

    def _destroy(self):
        self.alive = False
        self.vmas = []
        self._ctx.release(self.pid)

    # -- memory accesses ------------------------------------------------------------
    def _raise_fault(self, status, vpn, done):
        addr = int(vpn) << PAGE_SHIFT
        if status == _F_OOM:
            raise OutOfMemory(self.pid, addr, done)
        raise SegmentationFault(self.pid, addr, "SEGV_MAPERR" if status == _F_SEGV_MAPERR else "SEGV_ACCERR", done)

    def _addr(self, addr):
        self._live()
        addr = _as_int(addr, "address")
        if not 0 <= addr < self._ctx.virtual_bytes:
            raise SegmentationFault(self.pid, addr, "SEGV_MAPERR")
        return addr

    def touch(self, addr, write=True, value=None) -> None:
        """One access to the page holding ``addr``; a write stores ``value`` (default:
        the page's address) as the page's content.  Raises SegmentationFault/OutOfMemory."""
        addr = self._addr(addr)
        vpn = np.array([addr >> PAGE_SHIFT], dtype=np.int64)
        vals = None if value is None else np.array([value], dtype=np.uint64)
        self._touch(vpn, write, vals)

    def touch_pages(self, addrs, write=True, values=None) -> int:
        """Bulk accesses: one per address of the array (in order), in the core without
        Python per page.  ``values`` (uint64 array) gives what each write stores."""
        self._live()
        a = np.ascontiguousarray(addrs, dtype=np.int64)
        if a.ndim != 1:
            raise ValueError("addrs must be one-dimensional")
        vals = None
        if values is not None:
            vals = np.ascontiguousarray(values, dtype=np.uint64)
            if vals.shape != a.shape:
                raise ValueError(f"values has shape {vals.shape}, addrs {a.shape}")
        outside = (a < 0) | (a >= self._ctx.virtual_bytes)
        if outside.any():
            # an address outside the window faults like any unmapped one, in order
            i = int(np.argmax(outside))
            self._touch(a[:i] >> PAGE_SHIFT, write, None if vals is None else vals[:i])
            raise SegmentationFault(self.pid, int(a[i]), "SEGV_MAPERR", i)
        return self._touch(a >> PAGE_SHIFT, write, vals)

    def _touch(self, vpns, write, vals):
        k = self._ctx
        k.khugepaged_enter(self.pid, self.vmas)
        done = 0
        while True:
            if vals is None:
                d, st = k.core.touch(self.pid, vpns[done:], bool(write), None, True)
            else:
                d, st = k.core.touch(self.pid, vpns[done:], bool(write), vals[done:], False)
            done += d
            k.after_op()
            # reclaim: a failed allocation runs direct reclaim, then the fault is retried
            if st == _F_OK and done < len(vpns):
                continue                # paused for kswapd (reclaim)
            if st == _F_OOM and k.retry_after_reclaim():
                continue
            break
        if st != _F_OK:
            self._raise_fault(st, vpns[done], done)
        return done

    def touch_range(self, addr, length, write=True, stride=PAGE_SIZE) -> int:
        """Touch every ``stride`` bytes of [addr, addr+length): the first-touch loop of
        a benchmark (one byte per 4 KiB page by default).  Writes store the address."""
        start, end = self._range(addr, length)
        stride = _as_int(stride, "stride")
        if stride <= 0 or stride % PAGE_SIZE:
            raise ValueError(f"stride {stride} must be a positive multiple of {PAGE_SIZE}")
        k = self._ctx
        k.khugepaged_enter(self.pid, self.vmas)
        done = 0
        while True:
            d, st = k.core.touch_range(self.pid, (start >> PAGE_SHIFT) + done * (stride >> PAGE_SHIFT),
                                       end >> PAGE_SHIFT, bool(write), stride >> PAGE_SHIFT)
            done += d
            k.after_op()
            if st == _F_OK and (start >> PAGE_SHIFT) + done * (stride >> PAGE_SHIFT) < end >> PAGE_SHIFT:
                continue                # paused for kswapd (reclaim)
            if st == _F_OOM and k.retry_after_reclaim():     # reclaim: direct reclaim, retry
                continue
            break
        if st != _F_OK:
            self._raise_fault(st, (start >> PAGE_SHIFT) + done * (stride >> PAGE_SHIFT), done)
        return done

    def read(self, addr) -> int:
        """A read access (faulting if needed), returning the page's content."""
        self.touch(addr, write=False)
        return int(self.peek([addr])[0][0])

    def peek(self, addrs):
        """Contents of the pages holding ``addrs`` without faulting: (values, kinds),
        kinds as :class:`PageKind`: 0 none, 1 page, 2 zero page, 3 swapped out, 4 in a
        PMD-mapped THP, 5 huge zero page."""
        self._live()
        a = np.ascontiguousarray(addrs, dtype=np.int64)
        if a.ndim != 1:
            a = a.reshape(-1)
        if a.size and (a.min() < 0 or a.max() >= self._ctx.virtual_bytes):
            raise ValueError(f"address outside the virtual window [0, {self._ctx.virtual_bytes:#x})")
        return self._ctx.core.peek(self.pid, a >> PAGE_SHIFT)

    def dontneed_pages(self, addrs) -> None:
        """MADV_DONTNEED of the 4 KiB page at each address (an allocator purging freed
        pages, as jemalloc does): one zap per page without the per-call Python work."""
        self._live()
        a = np.unique(np.ascontiguousarray(addrs, dtype=np.int64) // PAGE_SIZE * PAGE_SIZE)
        if a.size == 0:
            return
        starts = np.array([v.start for v in self.vmas], dtype=np.int64)
        ends = np.array([v.end for v in self.vmas], dtype=np.int64)
        i = np.searchsorted(starts, a, side="right") - 1
        ok = (i >= 0) & (a < ends[np.clip(i, 0, None)]) if len(starts) else np.zeros(a.size, bool)
        if not ok.all():
            raise ValueError(f"madvise: page {int(a[~ok][0]):#x} is not mapped")
        zap = self._ctx.core.zap
        for v in (a >> PAGE_SHIFT).tolist():
            zap(self.pid, v, v + 1, False)
        self._ctx.after_op()

    def pin_pages(self, addrs) -> None:
        """pin_user_pages(FOLL_PIN | FOLL_LONGTERM) of the pages at ``addrs`` (already
        faulted in): a pinned page cannot migrate or be split, as an RDMA or vfio
        buffer.  Model: a pin does not outlive the folio (unmapping its last mapping
        drops it).  Raises ValueError naming the first page that is not present (the
        pages before it stay pinned)."""
        self._pin(addrs, +1)

    def unpin_pages(self, addrs) -> None:
        """unpin_user_pages() of pages pinned with :meth:`pin_pages`."""
        self._pin(addrs, -1)

    def _pin(self, addrs, delta):
        self._live()
        a = np.ascontiguousarray(addrs, dtype=np.int64)
        if a.ndim != 1:
            raise ValueError("addrs must be one-dimensional")
        if a.size and (a.min() < 0 or a.max() >= self._ctx.virtual_bytes):
            raise ValueError(f"address outside the virtual window [0, {self._ctx.virtual_bytes:#x})")
        bad = _mm_pin(self._ctx.core, self.pid, a >> PAGE_SHIFT, delta)
        if bad >= 0:
            raise ValueError(f"page at {int(a[bad]):#x} is not present" if delta > 0
                             else f"page at {int(a[bad]):#x} is not pinned")

    def pageout(self, addr, length) -> int:
        """MADV_PAGEOUT: swap the range's exclusive pages out; returns pages written."""
        start, end = self._range(addr, length)
        self._require_mapped(start, end, "pageout")
        n = self._ctx.core.pageout(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT)
        self._ctx.after_op()
        return n

    def age(self, addr, length) -> None:
        """Clear the accessed (young) bits of a range, as reclaim's page_referenced() does."""
        start, end = self._range(addr, length)
        self._ctx.core.clear_young(self.pid, start >> PAGE_SHIFT, end >> PAGE_SHIFT)

    # -- read-outs ------------------------------------------------------------------
    def pmd_kinds(self, start, end) -> np.ndarray:
        """Per 2 MiB region of [start, end) (start rounded down, end up), as
        :class:`PmdKind`: 0 none, 1 PTE table, 2 PMD-mapped THP, 3 huge zero page."""
        self._live()
        start, end = _as_int(start, "start"), _as_int(end, "end")
        s = start // HPAGE_PMD_SIZE
        e = -(-end // HPAGE_PMD_SIZE)
        if start < 0 or e > self._ctx.virtual_bytes // HPAGE_PMD_SIZE or end < start:
            raise ValueError(f"range [{start:#x}, {end:#x}) outside the virtual window "
                             f"[0, {self._ctx.virtual_bytes:#x}) or reversed")
        return self._ctx.core.pmd_kinds(self.pid, s, e)

    def pmd_mapped(self, start, end) -> np.ndarray:
        """Per 2 MiB region of [start, end) (start rounded down, end up): True where a
        huge PMD maps it (a THP or the huge zero page: one 2 MiB TLB entry)."""
        return self.pmd_kinds(start, end) >= 2

    def folio_orders(self, addr, length):
        """Per page of the range: (pfn, order of its folio); -1 where nothing is mapped."""
        start, end = self._range(addr, length)
        return self._ctx.core.frame_info(np.arange(start >> PAGE_SHIFT, end >> PAGE_SHIFT, dtype=np.int64), self.pid)

    @property
    def rss_anon_kb(self) -> int:
        """RssAnon in kB (ValueError once the process has exited)."""
        self._live()
        return self._ctx.core.rss(self.pid)[0] * 4

    def status(self) -> dict:
        """/proc/<pid>/status memory lines (kB)."""
        self._live()
        rss, swap = self._ctx.core.rss(self.pid)
        return {"RssAnon": rss * 4, "VmSwap": swap * 4,
                "VmSize": sum(v.end - v.start for v in self.vmas) // 1024}

    def smaps(self) -> pd.DataFrame:
        """/proc/<pid>/smaps per VMA: start, end, Size, Rss, AnonHugePages, Swap (kB)."""
        self._live()
        rows = []
        core = self._ctx.core
        for v in self.vmas:
            vp = np.arange(v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT, dtype=np.int64)
            _, kinds = core.peek(self.pid, vp)
            pk = core.pmd_kinds(self.pid, v.start // HPAGE_PMD_SIZE, -(-v.end // HPAGE_PMD_SIZE))
            rows.append({"start": v.start, "end": v.end, "Size": (v.end - v.start) // 1024,
                         "Rss": int(((kinds == 1) | (kinds == 4)).sum()) * 4,
                         "AnonHugePages": int((pk == 2).sum()) * HPAGE_PMD_SIZE // 1024,
                         "Swap": int((kinds == 3).sum()) * 4})
        return pd.DataFrame(rows, columns=["start", "end", "Size", "Rss", "AnonHugePages", "Swap"])

    def smaps_vma(self, addr) -> dict:
        """The smaps entry of the VMA that starts at (or contains) addr."""
        df = self.smaps()
        hit = df[(df.start <= addr) & (addr < df.end)]
        if hit.empty:
            raise ValueError(f"no VMA at {addr:#x}")
        return hit.iloc[0].to_dict()

    def check_huge(self, addr, nr_hpages) -> bool:
        """The selftests' check_huge_anon(): AnonHugePages of the VMA at addr == nr_hpages * 2 MiB."""
        return self.smaps_vma(addr)["AnonHugePages"] == nr_hpages * HPAGE_PMD_SIZE // 1024


