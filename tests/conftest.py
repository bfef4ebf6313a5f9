import os

import matplotlib
from hypothesis import settings

matplotlib.use("Agg")

# CI runs a fixed sequence of examples so that a red run can be replayed exactly.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
