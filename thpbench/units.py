"""The kernel's units and ABI constants, in one home (include/linux/mm.h, huge_mm.h,
include/uapi/asm-generic/mman-common.h).  The core's enums in ``_core.pxd`` carry the same
values; ``tests/core/test_units.py`` holds the two together."""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
HPAGE_PMD_SIZE = PAGE_SIZE * HPAGE_PMD_NR

# include/uapi/asm-generic/mman-common.h
PROT_NONE, PROT_READ, PROT_WRITE = 0x0, 0x1, 0x2
MADV_DONTNEED = 4
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_PAGEOUT = 21
MADV_COLLAPSE = 25
MADVISE_NAMES = {"MADV_DONTNEED": MADV_DONTNEED, "MADV_HUGEPAGE": MADV_HUGEPAGE,
                 "MADV_NOHUGEPAGE": MADV_NOHUGEPAGE, "MADV_PAGEOUT": MADV_PAGEOUT,
                 "MADV_COLLAPSE": MADV_COLLAPSE}

# VMA flags shared with the core (_core.pxd)
VM_READ, VM_WRITE, VM_HUGEPAGE, VM_NOHUGEPAGE = 0x1, 0x2, 0x4, 0x8
