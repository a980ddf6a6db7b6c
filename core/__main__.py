"""`python -m core`: the PetLab command line."""

import os
import sys

# Quiet TensorFlow's C++ start-up logs before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from core.cli import main  # noqa: E402

sys.exit(main())
