"""Figures.  Each takes data (an allocator, a DataFrame) and a matplotlib ``ax``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from thpbench._core import MIGRATETYPE_NAMES, BuddyAllocator

__all__ = [
    "MIGRATETYPE_COLORS",
    "memory_map",
    "fragmentation_indices",
    "plot_memory_map",
    "plot_buddyinfo",
    "plot_fragmentation_indices",
    "plot_churn_history",
]

# One colour per migratetype (Unmovable, Movable, Reclaimable, HighAtomic, Isolate)
MIGRATETYPE_COLORS = np.array([
    [0.84, 0.15, 0.16],   # Unmovable: red
    [0.12, 0.47, 0.71],   # Movable: blue
    [1.00, 0.50, 0.05],   # Reclaimable: orange
    [0.58, 0.40, 0.74],   # HighAtomic: purple
    [0.50, 0.50, 0.50],   # Isolate: grey
])
_FREE_TINT = 0.78     # a free frame: its pageblock's colour mixed this much with white


def memory_map(allocator: BuddyAllocator, *, max_pixels: int = 1 << 18, row_pageblocks: int | None = None):
    """The physical memory map as an RGB image (float array rows x columns x 3).

    Every frame is coloured by state and migratetype: an allocated frame in the colour
    of the migratetype it was requested with (``frame_migratetypes()``), a free frame in
    a pale tint of its pageblock's type (``pageblock_migratetypes()``).  So a red dot in a
    blue pageblock is an unmovable page that fell back into a movable pageblock, and a
    pale stripe is free memory.  Frames run left to right, then top to bottom, pfn 0 at
    the top left; each row holds ``row_pageblocks`` pageblocks (default: as many as keep
    the image near square).  With more than ``max_pixels`` frames a pixel averages
    ``2**k`` neighbouring frames' colours.  Frames past the zone end are white.
    """
    if not isinstance(allocator, BuddyAllocator):
        raise TypeError(f"memory_map takes a BuddyAllocator, got {type(allocator).__name__}")
    n = allocator.nr_pages
    pb = 1 << allocator.pageblock_order
    fm = allocator.frame_migratetypes()
    pbt = allocator.pageblock_migratetypes()
    free_rgb = MIGRATETYPE_COLORS * (1 - _FREE_TINT) + _FREE_TINT
    rgb = np.where((fm >= 0)[:, None], MIGRATETYPE_COLORS[np.maximum(fm, 0)],
                   free_rgb[pbt[np.arange(n) >> allocator.pageblock_order]])
    per_pixel = 1
    while n / per_pixel > max_pixels:
        per_pixel *= 2
    if row_pageblocks is None:
        # rows of whole pageblocks, about as many rows as columns
        cols_frames = pb
        while (n / cols_frames) > 2 * (cols_frames / per_pixel) and cols_frames < n:
            cols_frames *= 2
        row_frames = cols_frames
    else:
        if not isinstance(row_pageblocks, (int, np.integer)) or row_pageblocks < 1:
            raise ValueError(f"row_pageblocks must be an integer >= 1, got {row_pageblocks!r}")
        row_frames = int(row_pageblocks) * pb
    row_frames = max(row_frames, per_pixel)
    rows = -(-n // row_frames)
    padded = np.ones((rows * row_frames, 3))
    padded[:n] = rgb
    img = padded.reshape(rows, row_frames // per_pixel, per_pixel, 3).mean(axis=2)
    return img


def plot_memory_map(allocator, ax, *, title=None, legend=True, **kw):
    """Draw :func:`memory_map` on ``ax`` with a legend of migratetypes."""
    img = memory_map(allocator, **kw)
    ax.imshow(img, interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    frames_per_row = allocator.nr_pages / img.shape[0] if img.shape[0] else 0
    ax.set_ylabel(f"pfn (top: 0; a row = {frames_per_row * 4 / 1024:.0f} MiB)")
    if title:
        ax.set_title(title)
    if legend:
        from matplotlib.patches import Patch
        free_rgb = MIGRATETYPE_COLORS * (1 - _FREE_TINT) + _FREE_TINT
        handles = [Patch(color=MIGRATETYPE_COLORS[m], label=f"{MIGRATETYPE_NAMES[m]} (allocated)") for m in range(3)]
        handles += [Patch(color=free_rgb[m], label=f"free in {MIGRATETYPE_NAMES[m]} pageblock") for m in range(3)]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return ax


def fragmentation_indices(allocator: BuddyAllocator, label: str | None = None) -> pd.DataFrame:
    """Unusable free space index and fragmentation index per order (``mm/vmstat.c``), tidy.

    Columns: order, unusable_index, fragmentation_index (and ``source`` if ``label``).
    The kernel's debugfs ``extfrag/unusable_index`` and ``extfrag/extfrag_index`` print
    these values times 1000 as ``%d.%03d``.
    """
    orders = range(allocator.max_order + 1)
    df = pd.DataFrame({"order": list(orders),
                       "unusable_index": [allocator.unusable_index(o) for o in orders],
                       "fragmentation_index": [allocator.fragmentation_index(o) for o in orders]})
    if label is not None:
        df.insert(0, "source", label)
    return df


def plot_buddyinfo(series, ax, *, log=True, title="free blocks per order (/proc/buddyinfo)"):
    """Grouped bars of free blocks per order: ``series`` maps a label to counts per order."""
    if isinstance(series, BuddyAllocator):
        series = {"simulated": series.buddyinfo()}
    labels = list(series)
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        counts = np.asarray(series[label])
        x = np.arange(len(counts)) + (i - (len(labels) - 1) / 2) * width
        ax.bar(x, counts, width=width, label=label)
    ax.set_xlabel("order (block = 4 KiB * 2^order)")
    ax.set_ylabel("free blocks")
    if log:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(range(max(len(np.asarray(series[l])) for l in labels) if labels else 0))
    ax.set_title(title)
    if len(labels) > 1:
        ax.legend(fontsize="small")
    return ax


def plot_fragmentation_indices(df: pd.DataFrame, ax, *, title="fragmentation per order"):
    """Lines of unusable and fragmentation index per order from :func:`fragmentation_indices`.

    The fragmentation index is -1 where a free block of the order exists (the request
    would succeed); it is drawn only where it is defined.
    """
    groups = df.groupby("source", sort=False) if "source" in df else [(None, df)]
    for label, g in groups:
        suffix = f" ({label})" if label is not None else ""
        line, = ax.plot(g["order"], g["unusable_index"], marker="o", label="unusable index" + suffix)
        fi = g["fragmentation_index"].where(g["fragmentation_index"] >= 0)
        ax.plot(g["order"], fi, marker="s", linestyle="--", color=line.get_color(),
                label="fragmentation index" + suffix)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("order")
    ax.set_ylabel("index (kernel value / 1000)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_churn_history(history: pd.DataFrame, ax, *, columns=("unusable_index", "free_pageblocks_fraction")):
    """Read-outs of an allocation churn over its steps (x: memory turned over)."""
    h = history.copy()
    if "free_pageblocks_fraction" in columns and "free_pageblocks_fraction" not in h:
        pageblocks = h[[c for c in h if c.startswith("nr_pageblocks_")]].sum(axis=1)
        h["free_pageblocks_fraction"] = h["nr_free_pageblocks"] / pageblocks
    for col in columns:
        ax.plot(h["turnover"], h[col], marker=".", label=col)
    ax.set_xlabel("memory turned over (pages allocated / nr_pages)")
    ax.legend(fontsize="small")
    return ax
