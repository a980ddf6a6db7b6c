"""A 12-setting sweep against 12 reference runs: `python benchmarks/sweep_speed.py` (issue 12's benchmark).

Every figure is a whole `python -m core …` process, as a person runs it:
- the reference: one head run of the reference pipeline (`train --no-feature-cache`: the frozen
  backbone runs over every image in every epoch), timed once and multiplied by 12 (stated as such);
- the sweep with a cold cache (a new workspace: images decoded, features computed, 12 heads trained);
- the same sweep again with a warm cache.
Targets: cold < 2 reference runs, warm < 1/10 of one. Both sides use the reference early stopping
(validation loss, patience 5) and the same data, backbone, image size and weights.

Data: the 370-photo sample in ../shared/pets-sample/images (no fallback: the figures are about it).
Weights are random (`--weights none`: no network here), which costs the same as ImageNet's.
Progress goes to stderr; the table to stdout. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` and `core` import

from benchmarks import REPO
from benchmarks.measure import log, machine_line, started_now

SAMPLE = REPO.parent / "shared" / "pets-sample" / "images"
GRID = {"--lr": "1e-4,3e-4,1e-3", "--dropout": "0.1,0.2,0.3,0.4"}  # 3 × 4 = 12 settings
MEMBERS = 12
COLD_TARGET = 2.0  # reference runs
WARM_TARGET = 0.1  # of one reference run


def core_command(workspace: Path, command: str, *arguments: str) -> float:
    """Run `python -m core <command> …` to its end; its wall time in seconds (a failure ends the script)."""
    argv = [sys.executable, "-m", "core", command, "--workspace", str(workspace), *arguments]
    log(" ".join(argv[2:]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{command} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    log(f"{command}: {seconds:.1f} s; {done.stdout.strip().splitlines()[-1]}")
    return seconds


def data_arguments(args: argparse.Namespace) -> list[str]:
    source = ["--source", "oxford-files", "--path", str(args.path)]
    model = ["--backbone", args.backbone, "--weights", "none", "--image-size", str(args.image_size)]
    return [*source, *model, "--patience", "5"]


def measure(args: argparse.Namespace, root: Path) -> dict[str, float]:
    data = data_arguments(args)
    sweep = [part for flag, values in GRID.items() for part in (flag, values)]
    reference = core_command(root / "reference", "train", *data, "--no-feature-cache", "--epochs", "25")
    cold = core_command(root / "sweep", "sweep", *data, *sweep)
    warm = core_command(root / "sweep", "sweep", *data, *sweep)
    return {"reference": reference, "cold": cold, "warm": warm}


def report(times: dict[str, float], args: argparse.Namespace) -> None:
    reference, cold, warm = times["reference"], times["cold"], times["warm"]
    twelve = MEMBERS * reference
    what = f"{args.backbone}, {args.image_size} px"
    print(f"# A {MEMBERS}-setting sweep against {MEMBERS} reference runs ({what})\n")
    print(machine_line(started_now(), {}))
    print(f"grid: {' '.join(f'{k} {v}' for k, v in GRID.items())}; early stopping on val_loss, patience 5\n")
    print("| measure | seconds | in reference runs | target | met |")
    print("|---|---|---|---|---|")
    print(f"| one reference run (measured) | {reference:.1f} s | 1 | | |")
    print(f"| {MEMBERS} reference runs (one × {MEMBERS}, not measured so) | {twelve:.1f} s | {MEMBERS} | | |")
    met_cold = "yes" if cold < COLD_TARGET * reference else "no"
    met_warm = "yes" if warm < WARM_TARGET * reference else "no"
    print(f"| sweep, cold cache | {cold:.1f} s | {cold / reference:.2f} | < {COLD_TARGET:g} | {met_cold} |")
    print(f"| sweep, warm cache | {warm:.1f} s | {warm / reference:.3f} | < {WARM_TARGET:g} | {met_warm} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=SAMPLE, help="Oxford-named photos")
    parser.add_argument("--backbone", default="resnet50v2")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    if not args.path.is_dir():
        raise SystemExit(f"{args.path} does not exist; give the Oxford-named sample photos with --path.")
    with tempfile.TemporaryDirectory(prefix="petlab-sweep-speed-") as folder:
        report(measure(args, Path(folder)), args)


if __name__ == "__main__":
    main()
