"""Slow, obviously correct pure-Python twins of the core's state machines, one module per
machine (buddy, compaction, mm, reclaim, tlb), for the differential tests."""
