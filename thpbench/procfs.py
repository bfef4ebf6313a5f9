"""The kernel's own text formats: /proc/buddyinfo, /proc/pagetypeinfo, /proc/zoneinfo.

Parsers turn the files into tidy pandas DataFrames; formatters print them back in the
kernel's exact layout (``mm/vmstat.c``, Linux 6.18), so that ``format(parse(text)) ==
text`` byte for byte.  The same formatters print a simulated :class:`BuddyAllocator`
as a zone of those files, so a user can ``diff`` the simulator against their machine.

Layouts (``mm/vmstat.c``):

* ``frag_show_print``: ``"Node %d, zone %8s "`` then ``"%6lu "`` per order, ``\\n``.
* ``pagetypeinfo_show``: ``"Page block order: %d\\n"``, ``"Pages per block:  %lu\\n"``,
  ``"\\n"``; ``pagetypeinfo_showfree``: ``"%-43s "`` + ``"%6d "`` per order, then per
  zone and migratetype ``"Node %4d, zone %8s, type %12s "`` + ``"%s%6lu "`` (a list of
  100000 blocks or more prints ``>100000``: the kernel stops counting there);
  ``pagetypeinfo_showblockcount``: ``"\\n%-23s"`` + ``"%12s "`` per type, then per zone
  ``"Node %d, zone %8s "`` + ``"%12lu "``; with ``CONFIG_PAGE_OWNER`` and page_owner on,
  ``pagetypeinfo_showmixedcount`` adds a "Number of mixed blocks" table of the same shape.
  The whole text repeats per NUMA node.

The THP configuration lives in sysfs, one file per knob under
``/sys/kernel/mm/transparent_hugepage``: :func:`read_thp_sysfs` reads such a tree (the
machine's own, or a saved one), :func:`save_thp_sysfs` writes a simulated kernel's
``kernel.sysfs`` as the same tree, and :func:`thp_settings` turns the files into the
settings ``thpbench.Kernel(thp=...)`` takes.

Also: :func:`snapshot` reads the running machine, :func:`load_snapshot` a saved one
(``data/procfs/*``), and :func:`allocator_from_buddyinfo` builds a ``BuddyAllocator``
whose ``buddyinfo()`` equals a real zone's row (and, given pagetypeinfo, whose free
blocks per migratetype and pageblocks per migratetype equal it as well).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from thpbench._core import MIGRATETYPE_NAMES, OP_ALLOC, OP_FREE, BuddyAllocator

__all__ = [
    "PageTypeInfo",
    "ProcSnapshot",
    "parse_buddyinfo",
    "format_buddyinfo",
    "buddyinfo_row",
    "parse_pagetypeinfo",
    "format_pagetypeinfo",
    "parse_zoneinfo",
    "allocator_buddyinfo",
    "allocator_pagetypeinfo",
    "buddyinfo_text",
    "pagetypeinfo_text",
    "snapshot",
    "load_snapshot",
    "allocator_from_buddyinfo",
    "allocator_from_snapshot",
    "THP_SYSFS",
    "read_thp_sysfs",
    "save_thp_sysfs",
    "thp_settings",
]

# pagetypeinfo_showfree_print(): the kernel stops walking a free list at this count
PAGETYPEINFO_FREE_CAP = 100000

# The line heads.  Only the head is matched by a regex, and each has one way to match
# (no nested quantifiers): the counts after it are split on blanks, so a line is parsed
# in time linear in its length whatever it holds.  (The old whole-line patterns,
# "((?: *>? *\d+ )+)$", backtracked exponentially on a line whose trailing blank had been
# stripped: 112 s for one pagetypeinfo line of 11 orders.)
_BUDDY_HEAD = re.compile(r"Node ([0-9]+), zone +(\S+) ")
_FREE_HEAD = re.compile(r"Node +([0-9]+), zone +(\S+), type +(\S+) ")
_COUNT_HEAD = _BUDDY_HEAD
_DIGITS = re.compile(r"[0-9]+")

# What the kernel can print: "%lu" (unsigned long, 64 bits on x86-64) for counts, "%d"
# (int) for node ids and orders.  The DataFrames hold int64, so a count must also fit
# there (no machine has 2^63 free blocks: 2^52 bytes of physical address space at most).
ULONG_MAX = 2**64 - 1
INT_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


def _check_text(text, what):
    if not isinstance(text, str):
        raise TypeError(f"{what} must be the text of the file (str), got {type(text).__name__}")


def _number(tok, bad, what="count", limit=ULONG_MAX, fmt="%lu"):
    """A decimal the kernel printed with ``fmt``: ASCII digits only (``int()`` would also
    take '+', '_', blanks and other scripts' digits), at most ``limit``; ``bad(why)``
    makes the ValueError that names the line."""
    if not _DIGITS.fullmatch(tok):
        raise bad(f"{what} {tok!r} is not a decimal number")
    if len(tok) > 40:                      # no int() of a huge string: it is out of range anyway
        raise bad(f"{what} {tok[:20]}... ({len(tok)} digits) is larger than the kernel prints with {fmt} "
                  f"(at most {limit})")
    value = int(tok)
    if value > limit:
        raise bad(f"{what} {value} is larger than the kernel prints with {fmt} (at most {limit})")
    if value > _INT64_MAX:
        raise bad(f"{what} {value} does not fit the int64 columns (at most {_INT64_MAX})")
    return value


def _show(line, limit=120):
    """A line for an error message: repr, cut to ``limit`` characters."""
    return repr(line) if len(line) <= limit else repr(line[:limit]) + f"... ({len(line)} characters)"


def _complete_lines(text, what):
    """The lines of a file the kernel printed.  Every line it prints ends in a newline; a
    last line without one is accepted only when it ends in the blank the kernel prints
    after each count, so that a text cut in the middle of a number is an error rather
    than a smaller number."""
    lines = text.split("\n")
    last = lines.pop()
    if last:
        if not last.endswith(" "):
            raise ValueError(f"{what} line {len(lines) + 1} is cut short (no newline at the end of the "
                             f"text): {_show(last)}")
        lines.append(last)
    return lines


def _counts(rest, bad, capped=False):
    """The blank-separated counts after a line's head (trailing blank optional)."""
    out = []
    for tok in rest.split(" "):
        if not tok:
            continue
        cap = capped and tok.startswith(">")
        out.append((_number(tok[1:] if cap else tok, bad), cap))
    if not out:
        raise bad("no counts after the zone")
    return out


# ---------------------------------------------------------------------------
# /proc/buddyinfo (mm/vmstat.c: frag_show_print)
# ---------------------------------------------------------------------------

def parse_buddyinfo(text: str) -> pd.DataFrame:
    """Parse /proc/buddyinfo into a tidy DataFrame: node, zone, order, nr_free.

    One row per zone and order, in the file's order; ``nr_free`` is
    ``zone->free_area[order].nr_free`` (free blocks of that order, all migratetypes).
    Raises ValueError naming the first line that is not in the kernel's layout.
    """
    _check_text(text, "buddyinfo")
    rows = []
    seen = set()
    for lineno, line in enumerate(_complete_lines(text, "buddyinfo"), 1):
        if not line:
            continue

        def bad(why, lineno=lineno, line=line):
            return ValueError(f"buddyinfo line {lineno}: {why}: {_show(line)}")
        m = _BUDDY_HEAD.match(line)
        if m is None:
            raise bad("not 'Node N, zone NAME counts...'")
        node, zone = _number(m.group(1), bad, "node", INT_MAX, "%d"), m.group(2)
        if (node, zone) in seen:
            raise bad("a second line for this zone")
        seen.add((node, zone))
        for order, (count, _) in enumerate(_counts(line[m.end():], bad)):
            rows.append((node, zone, order, count))
    if not rows:
        raise ValueError("buddyinfo text has no 'Node N, zone NAME counts...' line")
    df = pd.DataFrame(rows, columns=["node", "zone", "order", "nr_free"])
    return df.astype({"node": np.int64, "order": np.int64, "nr_free": np.int64})


def format_buddyinfo(df: pd.DataFrame) -> str:
    """Print a buddyinfo DataFrame (as :func:`parse_buddyinfo` returns) as the kernel does."""
    _require_columns(df, ("node", "zone", "order", "nr_free"), "buddyinfo")
    out = []
    for (node, zone), rows in _groups(df, ["node", "zone"]):
        counts = rows.sort_values("order")["nr_free"]
        out.append("Node %d, zone %8s " % (node, zone) + "".join("%6d " % c for c in counts) + "\n")
    return "".join(out)


def buddyinfo_row(df: pd.DataFrame, zone: str = "Normal", node: int = 0) -> np.ndarray:
    """One zone's free blocks per order (int64 array), as ``BuddyAllocator.buddyinfo()`` gives."""
    _require_columns(df, ("node", "zone", "order", "nr_free"), "buddyinfo")
    rows = df[(df["node"] == node) & (df["zone"] == zone)]
    if rows.empty:
        have = sorted({f"node {n} {z}" for n, z in zip(df["node"], df["zone"])})
        raise ValueError(f"no zone {zone!r} on node {node} in buddyinfo; have: {', '.join(have)}")
    return rows.sort_values("order")["nr_free"].to_numpy(dtype=np.int64)


# ---------------------------------------------------------------------------
# /proc/pagetypeinfo (mm/vmstat.c: pagetypeinfo_show and its helpers)
# ---------------------------------------------------------------------------

@dataclass
class PageTypeInfo:
    """/proc/pagetypeinfo, parsed.

    Attributes
    ----------
    pageblock_order, pages_per_block : int
        The header lines.
    migratetypes : tuple of str
        ``migratetype_names`` as the file lists them (a ``CONFIG_CMA`` kernel adds "CMA").
    free : DataFrame
        node, zone, migratetype, order, nr_free, capped.  ``capped`` marks a count the
        kernel printed as ``>100000`` (it stops walking the list there).
    pageblocks : DataFrame
        node, zone, migratetype, nr_pageblocks ("Number of blocks type").
    mixed : DataFrame or None
        The same for "Number of mixed blocks" (page_owner kernels only), else None.
    """

    pageblock_order: int
    pages_per_block: int
    migratetypes: tuple
    free: pd.DataFrame
    pageblocks: pd.DataFrame
    mixed: pd.DataFrame | None = None
    nr_orders: int = 11

    def zone_free(self, zone="Normal", node=0) -> np.ndarray:
        """Free blocks [migratetype, order] of one zone (int64 array, rows in ``migratetypes`` order)."""
        rows = self.free[(self.free["node"] == node) & (self.free["zone"] == zone)]
        if rows.empty:
            raise ValueError(f"no zone {zone!r} on node {node} in pagetypeinfo")
        table = rows.pivot(index="migratetype", columns="order", values="nr_free")
        return _complete(table.reindex(list(self.migratetypes)), zone, node).to_numpy(dtype=np.int64)

    def zone_capped(self, zone="Normal", node=0) -> np.ndarray:
        rows = self.free[(self.free["node"] == node) & (self.free["zone"] == zone)]
        if rows.empty:
            raise ValueError(f"no zone {zone!r} on node {node} in pagetypeinfo")
        table = rows.pivot(index="migratetype", columns="order", values="capped")
        return _complete(table.reindex(list(self.migratetypes)), zone, node).to_numpy(dtype=bool)

    def zone_pageblocks(self, zone="Normal", node=0) -> np.ndarray:
        """Pageblocks per migratetype of one zone (int64 array in ``migratetypes`` order)."""
        rows = self.pageblocks[(self.pageblocks["node"] == node) & (self.pageblocks["zone"] == zone)]
        if rows.empty:
            raise ValueError(f"no zone {zone!r} on node {node} in pagetypeinfo's block counts")
        counts = rows.set_index("migratetype")["nr_pageblocks"].reindex(list(self.migratetypes))
        return _complete(counts, zone, node).to_numpy(dtype=np.int64)


def _complete(table, zone, node):
    """A zone's table with a value for every migratetype (and order), or ValueError:
    the kernel prints every migratetype of a populated zone, so a gap means the text was
    not the kernel's (a NaN cast to int64 would be a wrong number)."""
    if table.isna().to_numpy().any():
        raise ValueError(f"pagetypeinfo lists zone {zone!r} of node {node} without a count for every "
                         f"migratetype (and order): {table.index[table.isna().to_numpy().reshape(len(table), -1).any(axis=1)].tolist()}")
    return table


def parse_pagetypeinfo(text: str) -> PageTypeInfo:
    """Parse /proc/pagetypeinfo (all nodes) into a :class:`PageTypeInfo`.

    Raises ValueError naming the first line that does not fit the kernel's layout.
    """
    _check_text(text, "pagetypeinfo")
    lines = _complete_lines(text, "pagetypeinfo")
    free_rows, block_rows, mixed_rows = [], [], []
    pageblock_order = pages_per_block = None
    migratetypes = None
    nr_orders = None
    table = None
    seen = set()
    for lineno, line in enumerate(lines, 1):
        def bad(why, lineno=lineno, line=line):
            return ValueError(f"pagetypeinfo line {lineno}: {why}: {_show(line)}")
        if line.startswith("Page block order: "):
            # pagetypeinfo_show(): "Page block order: %d" (pageblock_order, an int)
            value = _number(line[len("Page block order: "):], bad, "pageblock order", 63, "%d")
            if pageblock_order not in (None, value):
                raise bad("pageblock order differs between nodes")
            pageblock_order, table = value, None
        elif line.startswith("Pages per block:  "):
            value = _number(line[len("Pages per block:  "):], bad, "pages per block")
            if pageblock_order is None or value != 1 << pageblock_order:
                raise bad(f"pages per block {value} is not 2^pageblock_order ({pageblock_order})")
            pages_per_block = value
        elif line == "":
            table = None
        elif line.startswith("Free pages count per migrate type at order"):
            orders = [_number(x, bad, "order", INT_MAX, "%d") for x in line[42:].split()]
            if not orders or orders != list(range(len(orders))):
                raise bad("orders are not 0, 1, 2, ...")
            if nr_orders not in (None, len(orders)):
                raise bad("the number of orders differs between nodes")
            nr_orders, table = len(orders), "free"
        elif line.startswith("Number of blocks type ") or line.startswith("Number of mixed blocks "):
            names = tuple(line[23:].split())
            if not names:
                raise bad("no migratetype names")
            if migratetypes not in (None, names):
                raise bad("migratetype names differ between tables")
            migratetypes = names
            table = "blocks" if line.startswith("Number of blocks") else "mixed"
        elif table == "free":
            m = _FREE_HEAD.match(line)
            if m is None:
                raise bad("not 'Node N, zone NAME, type TYPE counts...'")
            counts = _counts(line[m.end():], bad, capped=True)
            if len(counts) != nr_orders:
                raise bad(f"{len(counts)} counts for {nr_orders} orders")
            node = _number(m.group(1), bad, "node", INT_MAX, "%d")
            key = ("free", node, m.group(2), m.group(3))
            if key in seen:
                raise bad("a second row for this zone and migratetype")
            seen.add(key)
            for order, (c, cap) in enumerate(counts):
                free_rows.append((node, m.group(2), m.group(3), order, c, cap))
        elif table in ("blocks", "mixed"):
            m = _COUNT_HEAD.match(line)
            if m is None:
                raise bad("not 'Node N, zone NAME counts...'")
            counts = _counts(line[m.end():], bad)
            if len(counts) != len(migratetypes):
                raise bad(f"{len(counts)} counts for {len(migratetypes)} migratetypes")
            node = _number(m.group(1), bad, "node", INT_MAX, "%d")
            key = (table, node, m.group(2))
            if key in seen:
                raise bad("a second row for this zone")
            seen.add(key)
            rows = block_rows if table == "blocks" else mixed_rows
            for name, (c, _) in zip(migratetypes, counts):
                rows.append((node, m.group(2), name, c))
        else:
            raise bad("unexpected line")
    if pageblock_order is None or pages_per_block is None or nr_orders is None or migratetypes is None:
        raise ValueError("pagetypeinfo text lacks its headers (Page block order, Pages per block, "
                         "Free pages count..., Number of blocks type)")
    free = pd.DataFrame(free_rows, columns=["node", "zone", "migratetype", "order", "nr_free", "capped"])
    free = free.astype({"node": np.int64, "order": np.int64, "nr_free": np.int64, "capped": bool})
    cols = ["node", "zone", "migratetype", "nr_pageblocks"]
    blocks = pd.DataFrame(block_rows, columns=cols).astype({"node": np.int64, "nr_pageblocks": np.int64})
    mixed = (pd.DataFrame(mixed_rows, columns=cols).astype({"node": np.int64, "nr_pageblocks": np.int64})
             if mixed_rows else None)
    return PageTypeInfo(pageblock_order, pages_per_block, migratetypes, free, blocks, mixed, nr_orders)


def format_pagetypeinfo(info: PageTypeInfo) -> str:
    """Print a :class:`PageTypeInfo` in the kernel's layout (one section per node)."""
    if not isinstance(info, PageTypeInfo):
        raise TypeError(f"format_pagetypeinfo takes a PageTypeInfo, got {type(info).__name__}")
    out = []
    nodes = list(dict.fromkeys(list(info.free["node"]) + list(info.pageblocks["node"])))
    for node in nodes:
        out.append("Page block order: %d\n" % info.pageblock_order)
        out.append("Pages per block:  %d\n" % info.pages_per_block)
        out.append("\n")
        out.append("%-43s " % "Free pages count per migrate type at order")
        out.append("".join("%6d " % o for o in range(info.nr_orders)) + "\n")
        free = info.free[info.free["node"] == node]
        for (_, zone, mt), rows in _groups(free, ["node", "zone", "migratetype"]):
            rows = rows.sort_values("order")
            out.append("Node %4d, zone %8s, type %12s " % (node, zone, mt))
            out.append("".join("%s%6d " % (">" if cap else "", n)
                               for n, cap in zip(rows["nr_free"], rows["capped"])) + "\n")
        for title, table in (("Number of blocks type ", info.pageblocks), ("Number of mixed blocks ", info.mixed)):
            if table is None:
                continue
            table = table[table["node"] == node]
            if table.empty:
                continue
            out.append("\n%-23s" % title + "".join("%12s " % n for n in info.migratetypes) + "\n")
            for (_, zone), rows in _groups(table, ["node", "zone"]):
                counts = rows.set_index("migratetype")["nr_pageblocks"].reindex(list(info.migratetypes))
                out.append("Node %d, zone %8s " % (node, zone) + "".join("%12d " % c for c in counts) + "\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# /proc/zoneinfo (mm/vmstat.c: zoneinfo_show_print), the numbers we need
# ---------------------------------------------------------------------------

_ZONE_HEAD = re.compile(r"Node ([0-9]+), zone +(\S+)")
_ZONEINFO_KEYS = ("pages free", "boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma")


def parse_zoneinfo(text: str) -> pd.DataFrame:
    """The per-zone numbers of /proc/zoneinfo: one row per zone.

    Columns: node, zone, ``pages_free``, ``boost``, ``min``, ``low``, ``high``,
    ``promo``, ``spanned``, ``present``, ``managed``, ``cma``, ``start_pfn`` (absent
    for unpopulated zones: NA) and the zone's vmstat items (``nr_free_pages``,
    ``nr_zone_active_anon``, ...) and ``protection`` (the zone's ``lowmem_reserve[]``,
    a tuple with one entry per zone of the node).  The per-node stats and per-cpu pagesets are left
    out.  Not a round-trip parser: zoneinfo is read for sizes and watermarks only.
    """
    _check_text(text, "zoneinfo")
    zones = []
    cur = None
    section = None
    lines = _complete_lines(text, "zoneinfo") if text else []
    for lineno, line in enumerate(lines, 1):
        def bad(why, lineno=lineno, line=line):
            return ValueError(f"zoneinfo line {lineno}: {why}: {_show(line)}")
        m = _ZONE_HEAD.fullmatch(line)
        if m:
            cur = {"node": _number(m.group(1), bad, "node", INT_MAX, "%d"), "zone": m.group(2)}
            if any(z["node"] == cur["node"] and z["zone"] == cur["zone"] for z in zones):
                raise bad("a second section for this zone")
            zones.append(cur)
            section = "zone"
            continue
        if cur is None:
            continue
        s = line.strip()
        if s == "per-node stats":
            section = "node"
            continue
        if s == "pagesets":
            section = "pagesets"
            continue
        if s.startswith("pages free"):
            section = "zone"
            cur["pages_free"] = _number(s[len("pages free"):].strip(), bad, "pages free")
            continue
        if s.startswith("start_pfn:"):
            cur["start_pfn"] = _number(s[len("start_pfn:"):].strip(), bad, "start_pfn")
            continue
        if section != "zone":
            continue
        if s.startswith("protection:"):
            # zoneinfo_show_print(): "protection: (%ld, %ld, ...)", lowmem_reserve[] per zone
            inner = s[len("protection:"):].strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise bad("protection is not '(N, N, ...)'")
            cur["protection"] = tuple(_number(x.strip(), bad, "protection") for x in inner[1:-1].split(","))
            continue
        parts = s.split()
        if len(parts) == 2 and _DIGITS.fullmatch(parts[1]):
            cur[parts[0]] = _number(parts[1], bad, parts[0])
    if not zones:
        raise ValueError("zoneinfo text has no 'Node N, zone NAME' line")
    df = pd.DataFrame(zones)
    if "start_pfn" not in df:
        df["start_pfn"] = pd.NA
    return df


# ---------------------------------------------------------------------------
# A simulated allocator in the kernel's formats
# ---------------------------------------------------------------------------

def allocator_buddyinfo(allocator: BuddyAllocator, zone: str = "Normal", node: int = 0) -> pd.DataFrame:
    """A simulated allocator's free blocks per order as a buddyinfo DataFrame (one zone)."""
    counts = allocator.buddyinfo()
    return pd.DataFrame({"node": np.int64(node), "zone": zone, "order": np.arange(len(counts), dtype=np.int64),
                         "nr_free": counts.astype(np.int64)})


def allocator_pagetypeinfo(allocator: BuddyAllocator, zone: str = "Normal", node: int = 0) -> PageTypeInfo:
    """A simulated allocator as /proc/pagetypeinfo (one zone, the five 6.18 migratetypes, no CMA).

    Counts of 100000 blocks or more print as ``>100000``, as the kernel caps its walk.
    """
    pti = allocator.pagetypeinfo()
    names = tuple(pti["migratetypes"])
    free = pti["free"]
    rows = []
    for m, name in enumerate(names):
        for o in range(free.shape[1]):
            n = int(free[m, o])
            rows.append((node, zone, name, o, min(n, PAGETYPEINFO_FREE_CAP), n >= PAGETYPEINFO_FREE_CAP))
    free_df = pd.DataFrame(rows, columns=["node", "zone", "migratetype", "order", "nr_free", "capped"])
    free_df = free_df.astype({"node": np.int64, "order": np.int64, "nr_free": np.int64, "capped": bool})
    blocks = pd.DataFrame({"node": np.int64(node), "zone": zone, "migratetype": list(names),
                           "nr_pageblocks": pti["pageblocks"].astype(np.int64)})
    return PageTypeInfo(allocator.pageblock_order, 1 << allocator.pageblock_order, names, free_df, blocks,
                        None, allocator.max_order + 1)


def buddyinfo_text(allocator: BuddyAllocator, zone: str = "Normal", node: int = 0) -> str:
    """A simulated allocator printed as its /proc/buddyinfo line (diff it against the real file)."""
    return format_buddyinfo(allocator_buddyinfo(allocator, zone, node))


def pagetypeinfo_text(allocator: BuddyAllocator, zone: str = "Normal", node: int = 0) -> str:
    """A simulated allocator printed as /proc/pagetypeinfo (one node, one zone)."""
    return format_pagetypeinfo(allocator_pagetypeinfo(allocator, zone, node))


# ---------------------------------------------------------------------------
# Snapshots of a machine
# ---------------------------------------------------------------------------

@dataclass
class ProcSnapshot:
    """The buddy allocator's files of one machine at one moment.

    ``buddyinfo`` (DataFrame), ``pagetypeinfo`` (:class:`PageTypeInfo` or None when
    unreadable: the file is 0400 root), ``zoneinfo`` (DataFrame or None), the raw
    ``texts`` by file name, and ``meta`` (``captured_utc``, ``uname_r``, ...).
    """

    buddyinfo: pd.DataFrame
    pagetypeinfo: PageTypeInfo | None
    zoneinfo: pd.DataFrame | None
    texts: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def zone_names(self, node=0):
        return list(dict.fromkeys(self.buddyinfo.loc[self.buddyinfo["node"] == node, "zone"]))

    def zone(self, zone="Normal", node=0) -> dict:
        """One zone's numbers: buddyinfo row, free [migratetype, order], pageblocks, sizes."""
        out = {"node": node, "zone": zone, "buddyinfo": buddyinfo_row(self.buddyinfo, zone, node)}
        if self.pagetypeinfo is not None:
            out["migratetypes"] = self.pagetypeinfo.migratetypes
            out["free"] = self.pagetypeinfo.zone_free(zone, node)
            out["capped"] = self.pagetypeinfo.zone_capped(zone, node)
            out["pageblocks"] = self.pagetypeinfo.zone_pageblocks(zone, node)
            out["pageblock_order"] = self.pagetypeinfo.pageblock_order
        if self.zoneinfo is not None:
            row = self.zoneinfo[(self.zoneinfo["node"] == node) & (self.zoneinfo["zone"] == zone)]
            if not row.empty:
                for key in ("spanned", "present", "managed", "start_pfn", "pages_free", "min", "low", "high"):
                    if key in row and not pd.isna(row.iloc[0][key]):
                        out[key] = int(row.iloc[0][key])
        return out

    def save(self, directory) -> Path:
        """Write the raw files and ``capture.txt`` (key: value lines) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, text in self.texts.items():
            (d / name).write_text(text)
        (d / "capture.txt").write_text("".join(f"{k}: {v}\n" for k, v in self.meta.items()))
        return d


_PROC_FILES = ("buddyinfo", "pagetypeinfo", "zoneinfo")


def _from_texts(texts, meta):
    if "buddyinfo" not in texts:
        raise ValueError("a snapshot needs at least buddyinfo")
    return ProcSnapshot(
        buddyinfo=parse_buddyinfo(texts["buddyinfo"]),
        pagetypeinfo=parse_pagetypeinfo(texts["pagetypeinfo"]) if "pagetypeinfo" in texts else None,
        zoneinfo=parse_zoneinfo(texts["zoneinfo"]) if "zoneinfo" in texts else None,
        texts=dict(texts), meta=dict(meta))


def snapshot(proc: str | os.PathLike = "/proc") -> ProcSnapshot:
    """Read the running machine's /proc/buddyinfo, /proc/pagetypeinfo and /proc/zoneinfo.

    ``proc`` points elsewhere for tests (a directory holding those files).
    pagetypeinfo is readable by root only; without it the snapshot has
    ``pagetypeinfo=None``.  The three files are read one after the other, not
    atomically, so their numbers may disagree by the allocations in between.
    """
    root = Path(proc)
    texts = {}
    for name in _PROC_FILES:
        try:
            texts[name] = (root / name).read_text()
        except (FileNotFoundError, PermissionError):
            if name == "buddyinfo":
                raise FileNotFoundError(f"{root / name} is not readable: not a Linux /proc?") from None
    meta = {"captured_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "uname_r": platform.release(), "uname_m": platform.machine(), "source": str(root)}
    return _from_texts(texts, meta)


def load_snapshot(directory: str | os.PathLike) -> ProcSnapshot:
    """Load a snapshot saved by :meth:`ProcSnapshot.save` (or captured as in ``data/README.md``)."""
    d = Path(directory)
    if not (d / "buddyinfo").exists():
        raise FileNotFoundError(f"{d} holds no buddyinfo file")
    texts = {name: (d / name).read_text() for name in _PROC_FILES if (d / name).exists()}
    meta = {}
    if (d / "capture.txt").exists():
        for line in (d / "capture.txt").read_text().splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                meta[key] = value
    return _from_texts(texts, meta)


# ---------------------------------------------------------------------------
# An allocator in the state of a real zone
# ---------------------------------------------------------------------------

def _reconcile(target_free, free_mt, capped):
    """Per-migratetype free counts that sum to buddyinfo's per-order counts.

    buddyinfo and pagetypeinfo are read at different moments (and pagetypeinfo caps
    long lists at 100000), so their totals can differ; buddyinfo wins and the
    difference goes to the type with the most blocks at that order.
    """
    free_mt = free_mt.copy()
    for o in range(len(target_free)):
        diff = int(target_free[o]) - int(free_mt[:, o].sum())
        if diff > 0:
            if capped is not None and capped[:, o].any():
                m = int(np.flatnonzero(capped[:, o])[0])
            elif free_mt[:, o].any():
                m = int(np.argmax(free_mt[:, o]))
            else:
                m = 1   # Movable
            free_mt[m, o] += diff
        while diff < 0:
            m = int(np.argmax(free_mt[:, o]))
            step = min(-diff, int(free_mt[m, o]))
            free_mt[m, o] -= step
            diff += step
    return free_mt


def _assign_pageblock_types(nr_pageblocks, pageblocks_per_type, blocks_per_chunk, rng):
    """Pageblock types laid out chunk by chunk (a max-order block = ``blocks_per_chunk``
    pageblocks) in a seeded random chunk order, so that most max-order blocks are of
    one type and order-``max_order`` free blocks can exist in every type."""
    seq = np.repeat(np.arange(len(pageblocks_per_type)), pageblocks_per_type)
    nr_chunks = -(-nr_pageblocks // blocks_per_chunk)
    sizes = np.full(nr_chunks, blocks_per_chunk)
    sizes[-1] = nr_pageblocks - blocks_per_chunk * (nr_chunks - 1)
    pb = np.empty(nr_pageblocks, dtype=np.int64)
    pos = 0
    for c in rng.permutation(nr_chunks):
        first = c * blocks_per_chunk
        pb[first:first + sizes[c]] = seq[pos:pos + sizes[c]]
        pos += sizes[c]
    return pb


def _plan_free_blocks(nr_pages, max_order, pageblock_order, pb_types, free_mt, rng):
    """Place free blocks so that exactly ``free_mt[mt, order]`` exist, none mergeable.

    A planner in the buddy allocator's own image: regions of the zone are split in
    halves, and every split leaves one half "pinned" (it keeps at least one allocated
    frame) so the other half may be free whole without merging with its buddy.
    Returns a list of (pfn, order) per migratetype.
    """
    nr_types = free_mt.shape[0]
    pb_size = 1 << pageblock_order
    # pool[mt][order] = ([safe regions], [pinned regions]); safe = may be freed whole
    pool = [[([], []) for _ in range(max_order + 1)] for _ in range(nr_types)]
    # Two halves of a max-order region whose pageblocks differ in type: at most one of
    # them may be freed whole (Unmovable, Movable and Reclaimable merge with each other),
    # so freeing one whole pins its partner; splitting one frees the partner of that rule.
    partner = {}

    def type_of(start, order):
        first = start >> pageblock_order
        types = pb_types[first:((start + (1 << order) - 1) >> pageblock_order) + 1]
        return int(types[0]) if (types == types[0]).all() else -1

    def add(start, order):
        """Put a region in the pool; returns False for a mixed region (split instead)."""
        mt = type_of(start, order)
        if mt < 0:
            half = 1 << (order - 1)
            lo_whole = add(start, order - 1)
            hi_whole = add(start + half, order - 1)
            if lo_whole and hi_whole:
                partner[start] = (start + half, order - 1)
                partner[start + half] = (start, order - 1)
            return False
        pool[mt][order][0].append(start)
        return True

    # memblock_free_all(): the zone in its largest aligned pieces
    start = 0
    while start < nr_pages:
        o = max_order
        while start & ((1 << o) - 1) or start + (1 << o) > nr_pages:
            o -= 1
        add(start, o)
        start += 1 << o

    def take(lst):
        i = int(rng.integers(len(lst)))
        lst[i], lst[-1] = lst[-1], lst[i]
        return lst.pop()

    def used_whole(region):
        other = partner.pop(region, None)
        if other is not None:
            partner.pop(other[0], None)
            ostart, oorder = other
            safe = pool[type_of(ostart, oorder)][oorder][0]
            if ostart in safe:
                safe.remove(ostart)
                pool[type_of(ostart, oorder)][oorder][1].append(ostart)

    def split(region):
        other = partner.pop(region, None)
        if other is not None:
            partner.pop(other[0], None)

    placed = [[] for _ in range(nr_types)]
    for mt in range(nr_types):
        for order in range(max_order, -1, -1):
            for _ in range(int(free_mt[mt, order])):
                safe = pool[mt][order][0]
                if safe:
                    region = take(safe)
                    used_whole(region)
                    placed[mt].append((region, order))
                    continue
                # the smallest larger region (safe or pinned) is split down to `order`
                src = None
                for o in range(order + 1, max_order + 1):
                    cands = [lst for lst in pool[mt][o] if lst]
                    if cands:
                        src = (o, cands[int(rng.integers(len(cands)))])
                        break
                if src is None:
                    free_pages = int((free_mt[mt] << np.arange(max_order + 1)).sum())
                    raise ValueError(
                        f"cannot place {MIGRATETYPE_NAMES[mt] if mt < len(MIGRATETYPE_NAMES) else mt} free blocks "
                        f"of order {order}: {free_pages} free pages of that type do not fit, unmerged, into its "
                        f"{int((pb_types == mt).sum())} pageblocks of {pb_size} pages (nr_pages {nr_pages})")
                o, lst = src
                region = take(lst)
                split(region)
                while o > order:
                    o -= 1
                    half = 1 << o
                    lo, hi = region, region + half
                    if rng.integers(2):
                        lo, hi = hi, lo
                    # `lo` keeps an allocated frame, `hi` goes on
                    pool[mt][o][1].append(lo)
                    region = hi
                placed[mt].append((region, order))
    return placed


def allocator_from_buddyinfo(buddyinfo, nr_pages=None, *, free_per_migratetype=None, pageblocks=None,
                             max_order=None, pageblock_order=9, grouping=True, seed=0, zoneinfo=None):
    """A ``BuddyAllocator`` whose ``buddyinfo()`` equals a real zone's row.

    Parameters
    ----------
    buddyinfo : array of int
        Free blocks per order (``buddyinfo_row(...)``); its length sets ``max_order``.
    nr_pages : int, optional
        Frames of the simulated zone.  Default: the pageblock counts times the pageblock
        size when ``pageblocks`` is given (the zone's online memory, as pagetypeinfo
        counts it), else ``zoneinfo["managed"]`` (pages the buddy allocator manages:
        reserved pages never enter it, and a lazily initialised zone's ``present``
        pages are not all managed yet) or ``zoneinfo["present"]``, else the smallest
        number of max-order blocks holding the free pages at 2/3 free.
    free_per_migratetype : array [migratetype, order], optional
        pagetypeinfo's free counts (rows in ``MIGRATETYPE_NAMES`` order, or 6 rows with
        CMA after HighAtomic: CMA is folded into Movable).  Default: all Movable.
    pageblocks : array [migratetype], optional
        pagetypeinfo's pageblock counts (same row order).  Default: Movable, except the
        pageblocks needed by the other types' free pages.
    grouping : bool
        With grouping by mobility off, every pageblock is Unmovable (the migratetype
        split of the snapshot cannot be reproduced and is ignored).
    seed : int
        Where the free blocks and the pageblock types go (the files do not say).
    zoneinfo : dict, optional
        ``{"managed": ..., "present": ...}`` of the zone, for the default ``nr_pages``.

    HighAtomic and Isolate pageblocks and free blocks are reproduced as such (their
    allocated frames are Movable requests); a CMA row is folded into Movable.
    Planning is Python per free block (about 0.1 s for 25000 blocks).

    The construction: allocate every frame (order 0), set the pageblock types, give the
    frames of Unmovable and Reclaimable pageblocks back and re-allocate them with their
    pageblock's type, then free exactly the planned free blocks, each one's buddy
    keeping an allocated frame so that nothing merges.  Allocated memory is left as
    order-0 pages of its pageblock's migratetype (the files do not tell allocated
    orders or mixing).  The result is checked against the targets before it is returned.
    """
    target = np.asarray(buddyinfo, dtype=np.int64)
    if target.ndim != 1 or target.size == 0 or (target < 0).any():
        raise ValueError(f"buddyinfo must be a 1-d array of free-block counts >= 0, got {buddyinfo!r}")
    if max_order is None:
        max_order = target.size - 1
    if target.size != max_order + 1:
        raise ValueError(f"buddyinfo has {target.size} orders but max_order is {max_order}")
    orders = np.arange(max_order + 1)
    nr_types = len(MIGRATETYPE_NAMES)
    rng = np.random.default_rng(seed)

    def fold(arr, what):
        arr = np.asarray(arr, dtype=np.int64)
        if arr.shape[0] == nr_types + 1:          # CMA kernel: ..., HighAtomic, CMA, Isolate
            arr = arr.copy()
            arr[1] += arr[4]
            arr = np.delete(arr, 4, axis=0)
        if arr.shape[0] != nr_types:
            raise ValueError(f"{what} needs {nr_types} rows ({', '.join(MIGRATETYPE_NAMES)}), got {arr.shape[0]}")
        if (arr < 0).any():
            raise ValueError(f"{what} has negative counts")
        return arr

    if free_per_migratetype is None:
        free_mt = np.zeros((nr_types, max_order + 1), dtype=np.int64)
        free_mt[1] = target
    else:
        free_mt = fold(free_per_migratetype, "free_per_migratetype")
        if free_mt.shape[1] != max_order + 1:
            raise ValueError(f"free_per_migratetype has {free_mt.shape[1]} orders, buddyinfo {max_order + 1}")
        free_mt = _reconcile(target, free_mt, None)
    pb_size = 1 << pageblock_order
    if pageblocks is not None:
        pageblocks = fold(pageblocks, "pageblocks")
    if nr_pages is None:
        if pageblocks is not None:
            nr_pages = int(pageblocks.sum()) * pb_size
        elif zoneinfo is not None and zoneinfo.get("managed"):
            nr_pages = int(zoneinfo["managed"])
        elif zoneinfo is not None and zoneinfo.get("present"):
            nr_pages = int(zoneinfo["present"])
        else:
            free_pages = int((target << orders).sum())
            nr_pages = max(1, -(-(free_pages * 3 // 2) >> max_order)) << max_order
    nr_pages = int(nr_pages)
    free_pages = int((target << orders).sum())
    if free_pages > nr_pages:
        raise ValueError(f"the snapshot has {free_pages} free pages, more than nr_pages {nr_pages}")
    alloc = BuddyAllocator(nr_pages, max_order=max_order, pageblock_order=pageblock_order, grouping=grouping)
    nr_pb = alloc.nr_pageblocks
    if not grouping:
        free_mt = np.zeros_like(free_mt)
        free_mt[0] = target
        pageblocks = np.zeros(nr_types, dtype=np.int64)
        pageblocks[0] = nr_pb
    elif pageblocks is None:
        need = -(-(free_mt << orders).sum(axis=1) * 3 // 2 // pb_size)
        need[1] = 0
        pageblocks = need
        pageblocks[1] = nr_pb - need.sum()
    if int(pageblocks.sum()) != nr_pb:
        raise ValueError(f"pageblock counts sum to {int(pageblocks.sum())} but {nr_pages} pages make {nr_pb} "
                         f"pageblocks of {pb_size}")
    pb_types = _assign_pageblock_types(nr_pb, pageblocks, 1 << (max_order - pageblock_order), rng)
    placed = _plan_free_blocks(nr_pages, max_order, pageblock_order, pb_types, free_mt, rng)

    # 1. every frame allocated, order 0, Movable (no fallback: every pageblock is Movable yet)
    n = nr_pages
    res = alloc.run(np.full(n, OP_ALLOC, np.int8), np.zeros(n, np.int8), np.full(n, -1, np.int64),
                    np.full(n, 1 if grouping else 0, np.int8))
    if (res < 0).any():
        raise RuntimeError("internal: filling the zone failed")
    # 2. pageblock types (nothing is free: only the types change)
    for b in np.flatnonzero(pb_types != (1 if grouping else 0)):
        alloc.set_pageblock_migratetype(int(b) << pageblock_order, int(pb_types[b]))
    # 3. Unmovable and Reclaimable pageblocks hold pages of their own type
    if grouping:
        for mt in (0, 2):
            blocks = np.flatnonzero(pb_types == mt)
            if blocks.size == 0:
                continue
            pfns = (blocks[:, None] * pb_size + np.arange(pb_size)).ravel()
            pfns = pfns[pfns < nr_pages]
            alloc.run(np.full(pfns.size, OP_FREE, np.int8), np.zeros(pfns.size, np.int8), pfns)
            res = alloc.run(np.full(pfns.size, OP_ALLOC, np.int8), np.zeros(pfns.size, np.int8),
                            np.full(pfns.size, -1, np.int64), np.full(pfns.size, mt, np.int8))
            if (res < 0).any() or alloc.nr_free_pages != 0:
                raise RuntimeError("internal: re-typing the pageblocks' pages failed")
    # 4. free the planned blocks, frame by frame, in a seeded random order of blocks
    blocks = [blk for per_type in placed for blk in per_type]
    if blocks:
        starts = np.array([b[0] for b in blocks], dtype=np.int64)
        sizes = np.array([1 << b[1] for b in blocks], dtype=np.int64)
        perm = rng.permutation(len(blocks))
        starts, sizes = starts[perm], sizes[perm]
        pfns = np.repeat(starts, sizes) + (np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes))
        alloc.run(np.full(pfns.size, OP_FREE, np.int8), np.zeros(pfns.size, np.int8), pfns)
    got = alloc.buddyinfo()
    if not np.array_equal(got, target):
        raise RuntimeError(f"internal: built buddyinfo {got.tolist()} != target {target.tolist()}")
    if grouping:
        pti = alloc.pagetypeinfo()
        if not np.array_equal(pti["free"], free_mt) or not np.array_equal(pti["pageblocks"], pageblocks):
            raise RuntimeError("internal: built pagetypeinfo differs from the target")
    return alloc


def allocator_from_snapshot(snap: ProcSnapshot, zone: str = "Normal", node: int = 0, *, nr_pages=None,
                            grouping=True, seed=0):
    """:func:`allocator_from_buddyinfo` fed with one zone of a :class:`ProcSnapshot`.

    Uses pagetypeinfo's free blocks per migratetype and pageblocks per migratetype when
    the snapshot has them, zoneinfo's sizes otherwise.
    """
    z = snap.zone(zone, node)
    kw = {}
    if "free" in z:
        kw["free_per_migratetype"] = z["free"]
        kw["pageblocks"] = z["pageblocks"]
        kw["pageblock_order"] = z["pageblock_order"]
        if list(z["migratetypes"]) not in (list(MIGRATETYPE_NAMES),
                                          list(MIGRATETYPE_NAMES[:4]) + ["CMA", "Isolate"]):
            raise ValueError(f"unknown migratetype set {z['migratetypes']}")
        if z["capped"].any():
            kw["free_per_migratetype"] = _reconcile(z["buddyinfo"], z["free"], z["capped"])
    return allocator_from_buddyinfo(z["buddyinfo"], nr_pages, grouping=grouping, seed=seed,
                                    zoneinfo={k: z[k] for k in ("managed", "present") if k in z}, **kw)


# ---------------------------------------------------------------------------
# The THP sysfs tree (mm/huge_memory.c hugepage_attr_group, mm/khugepaged.c
# khugepaged_attr_group)
# ---------------------------------------------------------------------------

#: Where the kernel puts it.
THP_SYSFS = "/sys/kernel/mm/transparent_hugepage"


def _thp_files():
    from thpbench.kernel.tunables import SYSFS_SPEC as _SYSFS_SPEC       # the simulator's knobs, by sysfs path
    return list(_SYSFS_SPEC)


def read_thp_sysfs(root: str | os.PathLike = THP_SYSFS) -> dict:
    """The THP sysfs files the simulator knows, as the kernel prints them (stripped).

    ``{"enabled": "always [madvise] never", "khugepaged/max_ptes_none": "511", ...}``;
    a file the tree lacks (an older kernel: ``shrink_underused`` is 6.12+,
    ``khugepaged/max_ptes_shared`` 5.8+) is left out.
    """
    root = Path(root)
    if not (root / "enabled").exists():
        raise FileNotFoundError(f"{root} holds no THP sysfs tree (no 'enabled' file)")
    out = {}
    for name in _thp_files():
        f = root / name
        if f.exists():
            out[name] = f.read_text().strip()
    return out


def save_thp_sysfs(sysfs, directory: str | os.PathLike) -> Path:
    """Write a THP sysfs tree: ``sysfs`` is a simulated kernel's ``kernel.sysfs`` (or a
    dict of file contents as :func:`read_thp_sysfs` returns).  Each file holds its text
    and a newline, as sysfs shows it."""
    d = Path(directory)
    known = _thp_files()
    names = known if not isinstance(sysfs, dict) else list(sysfs)
    # Every name is checked before anything is written: only the files of the THP tree,
    # by their relative sysfs path, so that no key ("../x", "/etc/x") can point the
    # write outside `directory`.
    for name in names:
        if not isinstance(name, str) or name not in known:
            raise ValueError(f"save_thp_sysfs: {name!r} is not a THP sysfs file; allowed: {', '.join(known)}")
    root = d.resolve()
    for name in names:
        f = (d / name).resolve()
        if root not in f.parents:                          # a symlink inside `directory`
            raise ValueError(f"save_thp_sysfs: {d / name} resolves to {f}, outside {root}")
    for name in names:
        f = d / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"{sysfs[name]}\n")
    return d


def thp_settings(files: dict) -> dict:
    """Writable settings from sysfs file contents: the bracketed word of a choice
    ("always [madvise] never" -> "madvise"), numbers as they are; read-only files
    (counters, hpage_pmd_size) are dropped.  ``Kernel(thp=thp_settings(read_thp_sysfs()))``
    configures the simulator as this machine is configured."""
    from thpbench.kernel.tunables import SYSFS_SPEC as _SYSFS_SPEC
    out = {}
    for name, text in files.items():
        if name not in _SYSFS_SPEC:
            raise KeyError(f"unknown THP sysfs file {name!r}; known: {', '.join(_SYSFS_SPEC)}")
        if _SYSFS_SPEC[name][1] == "ro":
            continue
        m = re.search(r"\[([^\]]+)\]", text)
        out[name] = m.group(1) if m else text.strip()
    return out


# ---------------------------------------------------------------------------

def _require_columns(df, cols, what):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} DataFrame lacks columns {missing}")


def _groups(df, keys):
    """groupby in order of first appearance (the file's order)."""
    return df.groupby(keys, sort=False)
