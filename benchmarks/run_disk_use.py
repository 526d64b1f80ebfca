"""Disk use of training runs as the app starts them (issue 13, bug 8): two short runs, the second from the first.

    python benchmarks/run_disk_use.py                       # this checkout's trainer
    python benchmarks/run_disk_use.py --code /tmp/before    # another copy of engine/ (e.g. `git archive` of an
                                                            # older commit), for a before / after comparison

A copy of the bundled sample's annotations and images (hard links) is a project folder; each run is
``python -m engine train`` with the flags the Train panel gives (``--events-jsonl``, ``--val-split 0.2``, the
second ``--weights`` the first's model), writing into ``<project>/models/run-N/``. Printed: every file each run
left, its size, and the total. The network is the default one (ResNet-18 GN FPN, what ships), so the sizes are a
real run's; the runs are short (``--iters``) and small (``--input-size``) so that it takes a few minutes on a CPU.

Figures (2 shared CPU cores, default flags): before (``git archive`` of 7125fdf), each run left model.safetensors,
model_best.safetensors and train_state.safetensors, 123.7 / 123.7 / 123.6 MB: 742.1 MB for the two runs; after,
each run leaves its model.safetensors in float16, 61.9 MB: 123.7 MB for the two (6.0x less). A cancelled run keeps
its float32 model and its state (247 MB) until it is resumed or deleted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample"


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in SAMPLE.iterdir():
        if path.is_file():
            try:
                os.link(path, folder / path.name)
            except OSError:
                shutil.copy2(path, folder / path.name)
    (folder / "annotations.json").unlink()
    shutil.copy2(SAMPLE / "annotations.json", folder / "annotations.json")  # not a link: the trainer only reads it
    return folder


def train(code: Path, project: Path, out: Path, iters: int, size: int, weights: Path | None) -> None:
    args = [sys.executable, "-m", "engine", "train", "--data", str(project / "annotations.json"), "--out", str(out)]
    args += ["--events-jsonl", "--subset", "annotated", "--device", "cpu", "--iters", str(iters)]
    args += ["--input-size", str(size), "--val-split", "0.2", "--batch-size", "1", "--threads", "1"]
    if weights is not None:
        args += ["--weights", str(weights)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(args, env=env, cwd=str(code), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", default=str(ROOT), help="the folder holding the engine package to run")
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--input-size", type=int, default=128)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "project")
        weights = None
        for n in (1, 2):
            out = project / "models" / f"run-{n}"
            train(Path(args.code), project, out, args.iters, args.input_size, weights)
            weights = out / "model.safetensors"
        total = 0
        for path in sorted((project / "models").rglob("*")):
            if path.is_file():
                size = path.stat().st_size
                total += size
                print(f"{path.relative_to(project)}  {size / 1e6:8.1f} MB")
        print(f"total of the two runs: {total / 1e6:.1f} MB ({args.code})")


if __name__ == "__main__":
    main()
