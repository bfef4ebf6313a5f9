"""What a simulated process sees go wrong: SIGSEGV and the OOM killer."""


class SegmentationFault(Exception):
    """A simulated SIGSEGV: the access hit no VMA (SEGV_MAPERR) or one that forbids it
    (SEGV_ACCERR).  Pages before the faulting one (in a bulk touch) were handled."""

    def __init__(self, pid, address, code, done=0):
        super().__init__(f"SIGSEGV ({code}) in pid {pid} at address {address:#x}")
        self.pid, self.address, self.code, self.done = pid, address, code, done


class OutOfMemory(MemoryError):
    """A fault could not be satisfied (VM_FAULT_OOM): the simulated OOM killer's moment."""

    def __init__(self, pid, address, done=0):
        super().__init__(f"out of memory: pid {pid} faulting at {address:#x}")
        self.pid, self.address, self.done = pid, address, done

