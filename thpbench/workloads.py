"""Workloads: access traces and allocation patterns that drive the simulator."""
from __future__ import annotations

# --- Access traces ---
# Generators return uint64 numpy arrays of virtual addresses (one per memory access),
# each from a seed; the importer reads `valgrind --tool=lackey --trace-mem=yes` output.
# The TLB (thpbench.tlb.MMU.run) consumes them directly.

import gzip
import lzma
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["uniform", "gups", "zipf_hotset", "strided", "pointer_chase", "streaming",
           "read_lackey", "read_lackey_df", "LACKEY_KINDS", "data_path"]

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


def data_path(name: str) -> Path:
    """Path of a file shipped in the repository's ``data/`` directory."""
    here = Path(__file__).resolve().parent
    for d in (here.parent / "data", here / "data"):
        if (d / name).exists():
            return d / name
    raise FileNotFoundError(f"data file {name!r} not found beside the package")
