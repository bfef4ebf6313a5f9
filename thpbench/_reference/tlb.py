"""Pure-Python reference TLB: the slow, obviously correct twin of ``_tlb.pxi``.

Used only by the differential tests and as readable documentation of the model.
Each set of each structure is an ``OrderedDict`` in recency order (least recently
used first), so LRU is ``popitem(last=False)``; nothing here is optimised.
"""
from __future__ import annotations

from collections import OrderedDict

REGION_SHIFT = 21
PT_GPA_BASE = 1 << 51
PT_GPA_LEVEL_SHIFT = 48
HPT_BASE = 1 << 53
FLUSH_CEILING = 33  # arch/x86/mm/tlb.c: tlb_single_page_flush_ceiling


class RefCache:
    """A set-associative LRU cache of tags; ``geometry`` is ``(entries, ways)``,
    ``None`` means absent."""

    def __init__(self, geometry):
        self.present = geometry is not None
        entries, self.n_ways = geometry if geometry is not None else (0, 0)
        self.n_sets = entries // self.n_ways if self.n_ways else 0
        self.sets = [OrderedDict() for _ in range(self.n_sets)]
        self.hits = self.misses = self.fills = self.evictions = 0

    def _set(self, key):
        return self.sets[key % self.n_sets]

    def lookup(self, key, tag):
        """True on a hit (and the entry becomes most recent)."""
        if not self.present:
            return False
        s = self._set(key)
        if tag in s:
            s.move_to_end(tag)
            self.hits += 1
            return True
        self.misses += 1
        return False

    def fill(self, key, tag):
        if not self.present:
            return
        s = self._set(key)
        if len(s) == self.n_ways:
            s.popitem(last=False)
            self.evictions += 1
        s[tag] = True
        self.fills += 1

    def entries(self):
        return [t for s in self.sets for t in s]

    def invalidate_if(self, pred):
        n = 0
        for s in self.sets:
            for t in [t for t in s if pred(t)]:
                del s[t]
                n += 1
        return n


def tag_of(key, sub):
    return (key, sub)


class ReferenceTLB:
    """Same constructor, mapping contract and counters as ``_core.TlbSim``: geometry
    ``{name: (entries, ways)}``; ``walk_model=False`` counts a walk per last-level
    miss and models none."""

    def __init__(self, geometry, mode="native", levels=4, host_levels=4, walk_model=True):
        g = dict(geometry)
        self.mode, self.levels, self.host_levels = mode, levels, host_levels
        self.walk_model = walk_model
        self.structs = {name: RefCache(geo) for name, geo in g.items()}
        absent = RefCache(None)

        def get(name):
            return self.structs.get(name, absent)

        self.l1 = [get("l1"), get("l1")] if "l1" in g else [get("l1_4k"), get("l1_2m")]
        self.l2 = [get("l2"), get("l2")] if "l2" in g else [get("l2_4k"), get("l2_2m")]
        self.pwc = {l: (get("pwc") if "pwc" in g else get(f"pwc{l}")) for l in range(2, 6)}
        self.hpwc = {l: (get("hpwc") if "hpwc" in g else get(f"hpwc{l}")) for l in range(2, 6)}
        self.ntlb = get("ntlb")
        self.ptcache = get("ptcache")
        self.walks = [0, 0]
        self.guest_refs = self.host_refs = 0
        self.flush_one = self.flush_all_count = 0
        self.set_mapping()

    def set_mapping(self, guest_huge=None, base_va=0, default_guest_huge=False,
                    gpa_region=None, host_huge=None, default_host_huge=False, host_pt_huge=None):
        self.guest_huge = [bool(x) for x in guest_huge] if guest_huge is not None else []
        self.base_va = base_va
        self.default_guest_huge = bool(default_guest_huge)
        self.gpa_region = [int(x) for x in gpa_region] if gpa_region is not None else None
        self.host_huge = [bool(x) for x in host_huge] if host_huge is not None else []
        self.default_host_huge = bool(default_host_huge)
        self.host_pt_huge = self.default_host_huge if host_pt_huge is None else bool(host_pt_huge)

    # -- translation --------------------------------------------------------------
    def _mapping(self, va):
        gh, gpa = self.default_guest_huge, va
        if va >= self.base_va:
            r = (va - self.base_va) >> REGION_SHIFT
            if r < len(self.guest_huge):
                gh = self.guest_huge[r]
                greg = self.gpa_region[r] if self.gpa_region is not None else r
                gpa = (greg << REGION_SHIFT) | (va & ((1 << REGION_SHIFT) - 1))
        hh = self.default_host_huge
        if (gpa >> REGION_SHIFT) < len(self.host_huge):
            hh = self.host_huge[gpa >> REGION_SHIFT]
        return int(gh), gpa, int(hh)

    @staticmethod
    def _entry_addr(base, addr, level):
        return (base + ((level - 1) << PT_GPA_LEVEL_SHIFT) + ((addr >> (12 + 9 * level)) << 12)
                + (((addr >> (12 + 9 * (level - 1))) & 511) << 3))

    def _pt_ref(self, entry_addr):
        line = entry_addr >> 6
        if not self.ptcache.lookup(line, tag_of(line, 0)):
            self.ptcache.fill(line, tag_of(line, 0))

    def _walk_1d(self, pwc, addr, levels, leaf, tbase=PT_GPA_BASE):
        """Deepest walk-cache hit at level l leaves l - leaf references."""
        hit_level = levels + 1
        for l in range(leaf + 1, levels + 1):
            key = addr >> (12 + 9 * (l - 1))
            if pwc[l].lookup(key, tag_of(key, l)):
                hit_level = l
                break
        for l in range(hit_level - 1, leaf - 1, -1):
            self._pt_ref(self._entry_addr(tbase, addr, l))
        for l in range(leaf + 1, hit_level):
            key = addr >> (12 + 9 * (l - 1))
            pwc[l].fill(key, tag_of(key, l))
        return hit_level - leaf

    def _host_translate(self, gpa, hh):
        key = gpa >> (12 + 9 * hh)
        if self.ntlb.lookup(key, tag_of(key, hh)):
            return 0
        refs = self._walk_1d(self.hpwc, gpa, self.host_levels, 1 + hh, HPT_BASE)
        self.ntlb.fill(key, tag_of(key, hh))
        return refs

    def _nested_walk(self, va, gpa, gh, hh):
        gleaf = 1 + gh
        hit_level = self.levels + 1
        for l in range(gleaf + 1, self.levels + 1):
            key = va >> (12 + 9 * (l - 1))
            if self.pwc[l].lookup(key, tag_of(key, l)):
                hit_level = l
                break
        guest = host = 0
        for l in range(hit_level - 1, gleaf - 1, -1):
            table_gpa = (PT_GPA_BASE + ((l - 1) << PT_GPA_LEVEL_SHIFT)
                         + ((va >> (12 + 9 * l)) << 12))
            host += self._host_translate(table_gpa, int(self.host_pt_huge))
            self._pt_ref(self._entry_addr(PT_GPA_BASE, va, l))
            guest += 1
        for l in range(gleaf + 1, hit_level):
            key = va >> (12 + 9 * (l - 1))
            self.pwc[l].fill(key, tag_of(key, l))
        host += self._host_translate(gpa, hh)
        return guest, host

    def access(self, va):
        va = int(va)
        gh, gpa, hh = self._mapping(va)
        cls = gh if self.mode == "native" else (gh & hh)
        key = va >> (12 + 9 * cls)
        tag = tag_of(key, cls)
        if self.l1[cls].lookup(key, tag):
            return
        if self.l2[cls].lookup(key, tag):
            self.l1[cls].fill(key, tag)
            return
        if not self.walk_model:
            g = h = 0
        elif self.mode == "nested":
            g, h = self._nested_walk(va, gpa, gh, hh)
        else:
            g, h = self._walk_1d(self.pwc, va, self.levels, 1 + cls), 0
        self.guest_refs += g
        self.host_refs += h
        self.walks[cls] += 1
        self.l2[cls].fill(key, tag)
        self.l1[cls].fill(key, tag)

    def run(self, trace):
        for va in trace:
            self.access(va)

    # -- flushes --------------------------------------------------------------------
    def flush_all(self):
        for name, c in self.structs.items():
            if name != "ptcache":
                c.invalidate_if(lambda t: True)
        self.flush_all_count += 1

    def flush_range(self, va, nbytes, stride_shift=12):
        if nbytes == 0:
            return
        end = va + nbytes
        nr = ((end - 1) >> stride_shift) - (va >> stride_shift) + 1
        if nr > FLUSH_CEILING:
            for name, c in self.structs.items():
                if name not in ("ntlb", "ptcache"):
                    c.invalidate_if(lambda t: True)
            self.flush_all_count += 1
            return
        self.flush_one += nr
        for cls in (0, 1):
            lo, hi = va >> (12 + 9 * cls), (end - 1) >> (12 + 9 * cls)
            for c in {id(self.l1[cls]): self.l1[cls], id(self.l2[cls]): self.l2[cls]}.values():
                c.invalidate_if(lambda t, cls=cls, lo=lo, hi=hi: t[1] == cls and lo <= t[0] <= hi)
        for l in range(2, 6):
            lo, hi = va >> (12 + 9 * (l - 1)), (end - 1) >> (12 + 9 * (l - 1))
            self.pwc[l].invalidate_if(lambda t, l=l, lo=lo, hi=hi: t[1] == l and lo <= t[0] <= hi)

    # -- results ----------------------------------------------------------------------
    def cache_stats(self):
        return {name: {"hits": c.hits, "misses": c.misses, "fills": c.fills,
                       "evictions": c.evictions} for name, c in self.structs.items()}

    def counters(self):
        return {
            "dtlb_load_misses.walk_completed_4k": self.walks[0],
            "dtlb_load_misses.walk_completed_2m_4m": self.walks[1],
            "walk_refs": self.guest_refs + self.host_refs,
            "walk_refs_cached": self.ptcache.hits,
            "guest_walk_refs": self.guest_refs,
            "host_walk_refs": self.host_refs,
            "nr_tlb_local_flush_one": self.flush_one,
            "nr_tlb_local_flush_all": self.flush_all_count,
        }
