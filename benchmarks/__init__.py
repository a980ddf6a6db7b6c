"""PetLab's speed measurements (not tests): scripts run from the repo root as `python benchmarks/<name>.py`.

`measure` holds what any such benchmark can reuse (phases, memory, medians, the machine line); the other
modules belong to the script named in their docstring.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the repository root: the subprocesses' cwd and PYTHONPATH
