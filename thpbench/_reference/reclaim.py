"""A pure-Python reference of the LRU decisions of reclaim (for differential tests).

It replays one shrink_list() call on a snapshot of the four lists of order-0 folios:
shrink_active_list() for an active list, shrink_folio_list() with
folio_check_references() for an inactive one (mm/vmscan.c, Linux 6.18), written
plainly from the kernel's rules, independently of the Cython core.

A folio is a dict: ``pfn``, ``file`` (bool), ``referenced``, ``dirty``, ``reclaim``
(PG_* bits), ``young`` (mappings whose accessed bit is set: for a page-cache page
0 or 1).  Large folios (splitting, whole-THP swap) are not covered.
"""
from __future__ import annotations

import copy

INACTIVE_ANON, ACTIVE_ANON, INACTIVE_FILE, ACTIVE_FILE = range(4)


class RefLru:
    def __init__(self, lists, swap_free):
        # lists[L]: folios from head (newest) to tail (oldest)
        self.lists = [list(copy.deepcopy(l)) for l in lists]
        self.swap_free = swap_free
        self.freed = []
        self.c = {"pgscan": 0, "pgsteal": 0, "pgactivate": 0, "pgdeactivate": 0, "immediate": 0,
                  "written": 0, "pswpout": 0}

    def _isolate(self, L, n):
        # isolate_lru_folios(): from the tail, oldest first
        return list(reversed(self.lists[L]))[:n]

    def _move_to_head(self, f, src, dst):
        self.lists[src].remove(f)
        self.lists[dst].insert(0, f)

    def shrink_active(self, L, n):
        for f in self._isolate(L, n):
            f["young"] = 0
            f["workingset"] = True
            self._move_to_head(f, L, L - 1)
            self.c["pgdeactivate"] += 1

    def _references(self, f):
        refs = f["young"]
        f["young"] = 0
        ref_folio = f["referenced"]
        f["referenced"] = False
        if refs:
            f["referenced"] = True
            if ref_folio or refs > 1:
                return "activate"
            return "keep"
        if ref_folio and f["file"]:
            return "reclaim_clean"
        return "reclaim"

    def shrink_inactive(self, L, n, *, may_writepage=True, may_swap=True, is_kswapd=False):
        for f in self._isolate(L, n):
            self.c["pgscan"] += 1
            ref = self._references(f)
            if ref == "activate":
                self._move_to_head(f, L, L + 1)
                self.c["pgactivate"] += 1
                continue
            if ref == "keep":
                self._move_to_head(f, L, L)
                continue
            if f["file"]:
                if f["dirty"]:
                    if ref == "reclaim_clean":
                        self._move_to_head(f, L, L)
                        continue
                    if not (may_writepage and is_kswapd and f["reclaim"]):
                        # only kswapd writes, and only a folio it met before
                        f["reclaim"] = True
                        self.c["immediate"] += 1
                        self._move_to_head(f, L, L + 1)
                        self.c["pgactivate"] += 1
                        continue
                    f["dirty"] = False
                    f["reclaim"] = False
                    self.c["written"] += 1
            else:
                if not may_swap or self.swap_free == 0:
                    self._move_to_head(f, L, L + 1)
                    self.c["pgactivate"] += 1
                    continue
                self.swap_free -= 1
                self.c["pswpout"] += 1
            self.lists[L].remove(f)
            self.freed.append(f["pfn"])
            self.c["pgsteal"] += 1

    def shrink_list(self, L, n, **kw):
        if L in (ACTIVE_ANON, ACTIVE_FILE):
            self.shrink_active(L, n)
        else:
            self.shrink_inactive(L, n, **kw)
        return self
