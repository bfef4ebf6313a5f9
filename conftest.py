"""Session-wide test settings (tests/ and the notebooks run by nbval)."""
import os
from pathlib import Path

# Pin the cost model to the calibration shipped with the repository, so that a user who
# runs benchmarks/calibrate.py on their own machine does not change the outputs the
# notebooks are checked against.  (nbval's kernels inherit this environment.)
REFERENCE_CALIBRATION = Path(__file__).resolve().parent / "data" / "calibration" / "2026-11-26-vm.json"
os.environ.setdefault("THPBENCH_CALIBRATION", str(REFERENCE_CALIBRATION))
