# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython core of thpbench: the kernel's hot state machines.

One extension module; its parts live in include files so that each mechanism can be
read on its own:

* ``_buddy.pxi`` -- the buddy allocator with migratetypes (mm/page_alloc.c).
* ``_compaction.pxi`` -- memory compaction (mm/compaction.c) and the PageBook mover.

Policy that a user might want to change arrives as parameters; the Python modules
(``mm.py``, ``tlb.py``, ``virt.py``) hold the rest.
"""

include "_buddy.pxi"
include "_compaction.pxi"
