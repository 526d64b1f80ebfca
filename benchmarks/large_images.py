"""Large images (issue 12, point 6): ``python -m engine predict`` on mosaics of a real sample image at 1k, 4k and
10k pixels a side, each run in its own process so that its peak RSS is its own.

Prints per size: the detections found against what the single image's count predicts for the mosaic's area
(mosaic counts), seconds per megapixel of the whole command (model load included: ~1 s) and of the prediction
alone, and the run's peak RSS (getrusage's ru_maxrss of the child). The model is the bundled one at pixel scale
(``python -m engine defaults --scale-factor F --detections N``: the detection cap is per tile).

    python benchmarks/large_images.py                   # 1k, 4k, 10k (the 10k run takes ~20 min on 2 CPU cores)
    python benchmarks/large_images.py --sizes 1000 4000

Measured 2026-12-02 on 2 shared CPU cores (load average ~6 from other jobs, so read the seconds as +-20 %),
pixel scale 1, tiles of 1024 network pixels overlapping by 128, cap 1000 per tile:

      size   found  expect  ratio  s/Mpx pred s/Mpx  peak RSS
      1000     401     427  0.939  20.98      14.11    1.24 GB   (1 tile)
      4000    6581    6836  0.963  14.86      14.45    1.59 GB   (25 tiles)
     10000   41086   42725  0.962  12.92      12.82    2.45 GB   (144 tiles; 1292 s)

"expect" scales the single image's 28 nuclei by area; the mosaics cut copies at their right and bottom edges,
whose partial nuclei the model finds less often, hence a ratio below 1 at every size, tiled or not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "resources" / "models" / "nuclei_r18_gn.safetensors"
# 256 x 256 fluorescence image with 28 well separated nuclei (resources/sample/ATTRIBUTION.md)
IMAGE = ROOT / "resources" / "sample" / "0e5edb072788c7b1da8829b02a49ba25668b09f7201cf2b70b111fc3b853d14f.png"

CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from engine.cli import predict
import engine.inference as inference
spent = {"predict": 0.0}
original = inference.Predictor.predict
def timed(self, *args, **kwargs):
    t = time.perf_counter()
    try:
        return original(self, *args, **kwargs)
    finally:
        spent["predict"] += time.perf_counter() - t
inference.Predictor.predict = timed
code = predict.main(sys.argv[1:])
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"code": code, "wall_s": time.perf_counter() - start, "predict_s": spent["predict"], "rss": rss}))
"""


def mosaic(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` repeated into a size x size mosaic (the last copies cut)."""
    h, w = image.shape[:2]
    reps = (-(-size // h), -(-size // w), 1)
    return np.ascontiguousarray(np.tile(image, reps)[:size, :size])


def run_predict(weights: Path, image: Path, out: Path) -> dict:
    command = [sys.executable, "-c", CHILD, "--weights", str(weights), "--images", str(image), "--out", str(out)]
    command += ["--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"predict failed on {image}:\n{done.stderr[-3000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    stats["detections"] = len(json.loads(out.read_text()))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--factor", type=float, default=1.0, help="pixel-scale factor of the model (default 1)")
    parser.add_argument("--detections", type=int, default=1000, help="detection cap per tile (default 1000)")
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    with tempfile.TemporaryDirectory(prefix="large_images_") as tmp:
        folder = Path(tmp)
        weights = folder / "model.safetensors"
        subprocess.run(
            [sys.executable, "-m", "engine", "defaults", "--weights", str(args.weights), "--out", str(weights)]
            + ["--scale-factor", str(args.factor), "--detections", str(args.detections)],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        single_path = folder / "single.png"
        Image.fromarray(pixels).save(single_path)
        single = run_predict(weights, single_path, folder / "single.json")
        per_pixel = single["detections"] / (pixels.shape[0] * pixels.shape[1])
        print(
            f"model: {args.weights.name} at pixel-scale {args.factor:g}, cap {args.detections} per tile; image "
            f"{args.image.name[:12]}... ({pixels.shape[1]}x{pixels.shape[0]}): {single['detections']} detections"
        )
        header = ("size", "found", "expect", "ratio", "s/Mpx", "pred s/Mpx", "peak RSS")
        print(" ".join(f"{h:>{w}s}" for h, w in zip(header, (6, 7, 7, 6, 6, 10, 9))))
        for size in args.sizes:
            path = folder / f"mosaic_{size}.png"
            start = time.perf_counter()
            Image.fromarray(mosaic(pixels, size)).save(path, compress_level=1)
            made = time.perf_counter() - start
            stats = run_predict(weights, path, folder / f"mosaic_{size}.json")
            mpx = size * size / 1e6
            expected = per_pixel * size * size
            print(
                f"{size:>6d} {stats['detections']:>7d} {expected:>7.0f} {stats['detections'] / expected:>6.3f} "
                f"{stats['wall_s'] / mpx:>6.2f} {stats['predict_s'] / mpx:>10.2f} {stats['rss'] / 1024**3:>7.2f} GB"
                f"   ({stats['wall_s']:.0f} s; mosaic written in {made:.0f} s)",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
