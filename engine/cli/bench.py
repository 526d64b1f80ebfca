"""``python -m engine bench``: our network and torchvision's side by side, same weights and inputs.

Prints milliseconds per image for each and the ratio ours / torchvision last (lower is better), for
inference and for one training step (forward + backward), and checks that the outputs agree. The header
names the CPU, its capability and the fast paths ours used (engine.fastpaths: measured now, or from the
cache). ``--before`` also times ours with every fast path on (the network before issue 17), ``--predictor``
the app's first result (the Predictor on the bundled model and a sample image), ``--profile`` prints where the
time goes per stage and per op (torch.profiler), and ``--isa avx2`` runs the whole command again in a
process whose ATen, oneDNN and MKL kernels are limited to AVX2 (an AVX2-only CPU, reproduced on an AVX-512 one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from engine import fastpaths
from engine.interop import from_torchvision

BEFORE = "on"  # the fast paths as they were before issue 17: every one, whatever the CPU
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SIZES = {"800x1067": ((800, 1067), 800, 1333), "512x512": ((512, 512), 512, 512)}
QUICK_SIZES = {"quick 160x224": ((160, 224), 160, 224)}  # --quick: a smoke run (CI, scripts/gpu_check.sh on CPU)


def randomise(tv: torch.nn.Module, seed: int = 1, probe_hw: tuple[int, int] = (256, 320)) -> None:
    """Random BN statistics and affine parameters (so frozen BN matters), and the output layers rescaled
    on a probe image: class / objectness logits spread over a few units (decisive scores that neither
    saturate at 1, which ties them, nor sit near-equal, where float rounding could reorder them), box
    deltas small enough that boxes stay boxes rather than slivers, mask logits that are not all 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in tv.backbone.body.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn(buf.shape, generator=g))
            elif name.endswith("running_var"):
                buf.copy_(0.75 + 0.5 * torch.rand(buf.shape, generator=g))
            elif name.endswith("weight"):
                buf.copy_(0.75 + 0.5 * torch.rand(buf.shape, generator=g))
            elif name.endswith("bias"):
                buf.copy_(0.05 * torch.randn(buf.shape, generator=g))
        layers = {
            "cls": tv.roi_heads.box_predictor.cls_score,
            "rpn": tv.rpn.head.cls_logits,
            "box": tv.roi_heads.box_predictor.bbox_pred,  # deltas / (10,10,5,5): boxes move, stay boxes
            "rpn_box": tv.rpn.head.bbox_pred,
            "mask": tv.roi_heads.mask_predictor.mask_fcn_logits,
        }
        targets = {"cls": 4.0, "rpn": 3.0, "box": 1.0, "rpn_box": 0.1, "mask": 3.0}
        seen: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
        hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen[k].append(o.flatten())) for k, m in layers.items()]
        was_training = tv.training
        tv.eval()
        tv([torch.rand((3, *probe_hw), generator=g)])
        tv.train(was_training)
        for h in hooks:
            h.remove()
        for key, layer in layers.items():
            out = torch.cat(seen[key]) if seen[key] else torch.zeros(0)
            if out.numel() < 2:  # the probe produced no input for this layer (e.g. no detections)
                continue
            layer.weight.mul_(targets[key] / out.std().clamp(min=1e-6))
            layer.bias.zero_()


def build_pair(min_size: int, max_size: int, num_classes: int = 91, device: str = "cpu"):
    """A torchvision ResNet-18 FPN Mask R-CNN with random (but decisive) weights, and ours made from it."""
    from torchvision.models.detection import MaskRCNN as TVMaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    tv = TVMaskRCNN(backbone, num_classes=num_classes, min_size=min_size, max_size=max_size)
    randomise(tv)
    ours = from_torchvision(tv)
    return tv.to(device), ours.to(device)


def synthetic_batch(hw: tuple[int, int], n_images: int, device: str, n_objects: int = 8):
    """Deterministic images (3,H,W) in [0,1] and targets with rectangles as masks."""
    g = torch.Generator().manual_seed(2)
    h, w = hw
    images, targets = [], []
    for _ in range(n_images):
        images.append(torch.rand((3, h, w), generator=g).to(device))
        xy = torch.rand((n_objects, 2), generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = 20 + torch.rand((n_objects, 2), generator=g) * torch.tensor([w * 0.25, h * 0.25])
        boxes = torch.cat((xy, xy + wh), 1).floor()
        masks = torch.zeros((n_objects, h, w), dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        labels = torch.randint(1, 91, (n_objects,), generator=g)
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device), "masks": masks.to(device)})
    return images, targets


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_pair(run_tv: Callable, run_ours: Callable, repeats: int, device: str) -> tuple[list[float], list[float]]:
    """Alternate the two (so drift hits both alike); one warm-up each. Seconds per call."""
    times = time_many({"tv": run_tv, "ours": run_ours}, repeats, device)
    return times["tv"], times["ours"]


CLOCK = time.perf_counter  # --cpu-time: time.process_time (a loaded machine's wall times say who else ran)


def time_many(runs: dict[str, Callable], repeats: int, device: str) -> dict[str, list[float]]:
    """Alternate the runs (so drift hits all alike); one warm-up each. Seconds per call (``CLOCK``), by name."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            _sync(device)
            start = CLOCK()
            fn()
            _sync(device)
            times[name].append(CLOCK() - start)
    return times


def with_paths(spec: str | None, fn: Callable) -> Callable:
    """``fn`` run with the fast paths ``spec`` forced (None: as chosen for this machine)."""
    if spec is None:
        return fn

    def run():  # noqa: ANN202
        with fastpaths.overridden(spec):
            return fn()

    return run


def compare_detections(expected: list[dict], actual: list[dict]) -> str:
    """One line: detection counts, worst box IoU, score and mask differences between the two."""
    from torchvision.ops import box_iou

    worst_iou, worst_score, worst_mask, counts = 1.0, 0.0, 0.0, []
    for e, a in zip(expected, actual):
        counts.append(f"{len(e['boxes'])}/{len(a['boxes'])}")
        if len(e["boxes"]) != len(a["boxes"]) or not len(e["boxes"]):
            return f"DIFFERENT detection counts tv/ours {counts}"
        iou = box_iou(e["boxes"], a["boxes"])
        iou = iou * (e["labels"][:, None] == a["labels"][None, :])
        best = iou.argmax(1)
        worst_iou = min(worst_iou, iou.max(1).values.min().item())
        worst_score = max(worst_score, (e["scores"] - a["scores"][best]).abs().max().item())
        mad = (e["masks"].float() - a["masks"][best].float()).abs().flatten(1).mean(1).max().item()
        worst_mask = max(worst_mask, mad)
    ok = worst_iou > 0.999 and worst_score <= 1e-4 and worst_mask <= 1e-3
    verdict = "identical" if ok else "DIFFERENT"
    return (
        f"{verdict}: detections tv/ours {' '.join(counts)}, min box IoU {worst_iou:.6f}, "
        f"max score diff {worst_score:.1e}, max mask MAD {worst_mask:.1e}"
    )


def bench_inference(size: str, repeats: int, device: str, amp: bool, before: bool = False) -> dict:
    hw, min_size, max_size = {**SIZES, **QUICK_SIZES}[size]
    tv, ours = build_pair(min_size, max_size, device=device)
    tv.eval()
    ours.eval()
    images, _ = synthetic_batch(hw, 1, device)
    ctx = (lambda: torch.autocast(device.split(":")[0], dtype=torch.float16)) if amp else torch.no_grad
    with torch.no_grad():
        with ctx():
            expected, actual = tv(images), ours(images)
            agreement = compare_detections(expected, actual)
            runs = {"tv": lambda: tv(images), "ours": lambda: ours(images)}
            if before:
                runs["before"] = with_paths(BEFORE, runs["ours"])
            times = time_many(runs, repeats, device)
    return _row(f"inference {size}", times, len(images), agreement)


def bench_training(size: str, repeats: int, device: str, amp: bool, batch: int = 2, before: bool = False) -> dict:
    hw, min_size, max_size = {**SIZES, **QUICK_SIZES}[size]
    tv, ours = build_pair(min_size, max_size, device=device)
    tv.train()
    ours.train()
    images, targets = synthetic_batch(hw, batch, device)

    def step(model, seed=0):
        torch.manual_seed(seed)
        with torch.autocast(device.split(":")[0], dtype=torch.float16, enabled=amp):
            losses = model(images, [dict(t) for t in targets])
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)
        return losses

    l_tv, l_ours = step(tv), step(ours)
    rel = max(abs(l_tv[k].item() - l_ours[k].item()) / max(abs(l_tv[k].item()), 1e-8) for k in l_tv)
    # Same seed, same sampling code; float rounding may still reorder near-tied proposals, so the
    # randomly sampled RoIs (and the classifier loss) can differ slightly. tests/engine/test_parity.py
    # checks exact agreement with every RoI sampled.
    agreement = f"losses for the same seed: max relative difference {rel:.1e}"
    runs = {"tv": lambda: step(tv), "ours": lambda: step(ours)}
    if before:
        runs["before"] = with_paths(BEFORE, runs["ours"])
    times = time_many(runs, repeats, device)
    return _row(f"train step {size} (batch {batch})", times, batch, agreement)


def _row(name: str, times: dict[str, list[float]], n_images: int, agreement: str) -> dict:
    ms = {k: 1000 * statistics.median(v) / n_images for k, v in times.items()}
    row = {"name": name, "tv": ms["tv"], "ours": ms["ours"], "ratio": ms["ours"] / ms["tv"], "agreement": agreement}
    if "before" in ms:
        row["before"] = ms["before"]
    return row


def bench_predictor(repeats: int, device: str) -> str:
    """The app's first result: a new Predictor on the bundled model predicts one sample image (the image's
    backbone, RPN, heads and masks; the process already warm), with the chosen fast paths and with every one on
    (before issue 17), alternately. One line."""
    import numpy as np
    from PIL import Image

    from engine.checkpoint import load_checkpoint
    from engine.inference import Predictor

    root = Path(__file__).resolve().parents[2] / "resources"
    weights, images = root / "models" / "nuclei_r18_gn.safetensors", sorted((root / "sample").glob("*.png"))
    if not weights.is_file() or not images:
        return f"predictor: skipped (no bundled model or sample images under {root})"
    model, _ = load_checkpoint(weights, device)
    image = np.array(Image.open(images[0]).convert("RGB"))
    found = []

    def predict():  # noqa: ANN202
        found.append(len(Predictor(model, device).predict(image)))

    times = time_many({"chosen": predict, "before": with_paths(BEFORE, predict)}, repeats, device)
    chosen, old = (1000 * statistics.median(times[k]) for k in ("chosen", "before"))
    return (
        f"predictor, first result on {images[0].name[:12]}... ({image.shape[1]}x{image.shape[0]}, bundled model): "
        f"{chosen:.1f} ms with the chosen fast paths, {old:.1f} ms with every one on (before); "
        f"chosen / before {chosen / old:.2f}; detections {sorted(set(found))}"
    )


# ----- --profile: where the time goes, per stage and per op -----

# stage -> (torchvision's (module path, method), ours' (module path, method)); None: no such stage there
STAGES = {
    "preprocess": (("transform", "forward"), ("", "preprocess")),
    "resnet": (("backbone.body", "forward"), ("backbone.body", "features")),
    "fpn": (("backbone.fpn", "forward"), ("backbone.fpn", "forward")),
    "rpn": (("rpn", "forward"), ("rpn", "forward")),
    "box roi_align": (("roi_heads.box_roi_pool", "forward"), None),
    "box head (+ predictor in ours)": (("roi_heads.box_head", "forward"), ("roi_heads.box_head", "forward")),
    "box predictor": (("roi_heads.box_predictor", "forward"), None),
    "mask roi_align": (("roi_heads.mask_roi_pool", "forward"), None),
    "mask head (+ own-class logits in ours)": (
        ("roi_heads.mask_head", "forward"),
        ("roi_heads.mask_head", "class_logits"),
    ),
    "mask predictor": (("roi_heads.mask_predictor", "forward"), None),
    "postprocess (masks pasted)": (("transform", "postprocess"), ("", "postprocess")),
}


def _label_stages(model: torch.nn.Module, ours: bool) -> None:
    """Wrap each stage's method in a profiler label (instance attributes: the classes stay untouched)."""
    from torch.profiler import record_function

    from engine.model import roi_heads

    for stage, places in STAGES.items():
        place = places[1] if ours else places[0]
        if place is None:
            continue
        owner = model
        for part in filter(None, place[0].split(".")):
            owner = getattr(owner, part)
        fn = getattr(owner, place[1])

        def labelled(*a, _fn=fn, _stage=stage, **k):  # noqa: ANN002, ANN003, ANN202
            with record_function(f"stage: {_stage}"):
                return _fn(*a, **k)

        setattr(owner, place[1], labelled)
    if ours and not getattr(roi_heads, "_bench_labelled", False):  # ours pools box and mask RoIs in one function
        pool = roi_heads.multiscale_roi_align

        def pooled(*a, **k):  # noqa: ANN002, ANN003, ANN202
            with record_function("stage: roi_align (box + mask)"):
                return pool(*a, **k)

        roi_heads.multiscale_roi_align, roi_heads._bench_labelled = pooled, True


def _profile(fn: Callable) -> dict[str, dict[str, float]]:
    """{"stages": {label: ms}, "ops": {op: self ms}} of one call of ``fn`` (after a warm-up)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fn()
        total = 1000 * (time.perf_counter() - start)
    stages, ops = {"total (wall)": total}, {}
    for event in prof.key_averages():
        if event.key.startswith("stage: "):
            stages[event.key[7:]] = stages.get(event.key[7:], 0.0) + event.cpu_time_total / 1000
        elif event.key.startswith("autograd::engine::evaluate_function: "):
            stages["backward (autograd)"] = stages.get("backward (autograd)", 0.0) + event.self_cpu_time_total / 1000
        if not event.key.startswith(("stage: ", "autograd::engine")):
            ops[event.key] = event.self_cpu_time_total / 1000
    return {"stages": stages, "ops": ops}


def _print_profile(title: str, tv: dict, ours: dict, top: int = 14) -> None:
    """Both profiles side by side: ms and the share of that model's total, per stage then per op."""

    def cell(found: dict, group: str, key: str) -> str:
        value = found[group].get(key)
        if value is None:
            return f"{'':>17s}"
        return f"{value:9.1f} {100 * value / found['stages']['total (wall)']:5.1f}%"

    print(f"\n{title}: per stage, ms and share of the total (profiler CPU time with children; backward: autograd's)")
    print(f"  {'':38s} {'torchvision':>17s} {'ours':>17s}")
    for name in dict.fromkeys([*tv["stages"], *ours["stages"]]):
        print(f"  {name:38s} {cell(tv, 'stages', name)} {cell(ours, 'stages', name)}")
    print(f"{title}: ops by self CPU time, the {top} largest of either")
    ranked = sorted(set(tv["ops"]) | set(ours["ops"]), key=lambda k: -max(tv["ops"].get(k, 0), ours["ops"].get(k, 0)))
    for op in ranked[:top]:
        print(f"  {op[:38]:38s} {cell(tv, 'ops', op)} {cell(ours, 'ops', op)}")


def profile_pair(size: str, device: str, inference: bool = True, training: bool = True, batch: int = 2) -> None:
    """Print where the time of one inference and one training step goes, torchvision's and ours side by side."""
    hw, min_size, max_size = {**SIZES, **QUICK_SIZES}[size]
    tv, ours = build_pair(min_size, max_size, device=device)
    _label_stages(tv, False)
    _label_stages(ours, True)
    images, targets = synthetic_batch(hw, batch, device)
    if inference:
        tv.eval()
        ours.eval()
        with torch.no_grad():
            found = [_profile(lambda m=m: m(images[:1])) for m in (tv, ours)]
        _print_profile(f"inference {size}", *found)
    if training:
        tv.train()
        ours.train()

        def step(model):  # noqa: ANN001, ANN202
            torch.manual_seed(0)
            losses = model(images, [dict(t) for t in targets])
            with torch.profiler.record_function("stage: backward"):
                sum(losses.values()).backward()
            model.zero_grad(set_to_none=True)

        found = [_profile(lambda m=m: step(m)) for m in (tv, ours)]
        _print_profile(f"train step {size} (batch {batch}, per step)", *found)


def header(device: str, amp: bool) -> list[str]:
    """The run's conditions: device, CPU and capability, and the fast paths each mode uses (and from where)."""
    clock = "CPU time" if CLOCK is time.process_time else "wall time"
    lines = [f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, amp {amp}, {clock}"]
    limits = ", ".join(f"{k}={os.environ[k]}" for k in AVX2_ENV if k in os.environ)
    lines.append(
        f"CPU {fastpaths.cpu_model()}, capability {torch.backends.cpu.get_cpu_capability()}"
        + (f" (forced: {limits})" if limits else "")
    )
    for mode in fastpaths.MODES:
        start = time.perf_counter()
        line = fastpaths.describe(mode)
        took = time.perf_counter() - start
        lines.append(f"fast paths, {line}" + (f" in {took:.1f} s" if "measured" in line else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine bench", description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast float16 (CUDA)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one 160x224 image, one repeat (replaces --sizes, --repeats)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process's CPU seconds instead of wall time (a machine shared with other jobs; use --threads 1)",
    )
    parser.add_argument(
        "--fastpaths",
        default=None,
        help=f"force fast paths for this run, as {fastpaths.ENV_VAR} does: on, off, or e.g. channels_last=0,fold_bn=1",
    )
    parser.add_argument(
        "--before", action="store_true", help="also time ours with every fast path on (as before issue 17)"
    )
    parser.add_argument(
        "--predictor", action="store_true", help="also time the app's first result (Predictor, bundled model)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print per-stage and per-op times (torch.profiler) instead of timing"
    )
    parser.add_argument(
        "--isa",
        choices=("native", "avx2"),
        default="native",
        help="avx2: run again in a process limited to AVX2 kernels (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL)",
    )
    args = parser.parse_args(argv)
    if args.isa == "avx2" and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":
        rest = list(sys.argv[1:] if argv is None else argv)
        rest = [a for i, a in enumerate(rest) if a != "--isa" and not (i and rest[i - 1] == "--isa")]
        rest = [a for a in rest if not a.startswith("--isa=")]
        done = subprocess.run([sys.executable, "-m", "engine", "bench", *rest], env={**os.environ, **AVX2_ENV})
        return done.returncode
    if args.quick:
        args.sizes, args.repeats = list(QUICK_SIZES), 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda asked for, but torch sees no CUDA GPU; run with --device cpu")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    if args.fastpaths is not None:
        try:
            fastpaths.parse_override(args.fastpaths, "inference")
        except ValueError as error:
            print(f"error: --fastpaths: {error}")
            return 2
        os.environ[fastpaths.ENV_VAR] = args.fastpaths
        fastpaths.reset()
    for line in header(args.device, args.amp):
        print(line, flush=True)
    if args.profile:
        for size in args.sizes:
            profile_pair(size, args.device, not args.skip_inference, not args.skip_training)
        return 0
    print(f"{'what':34s} {'torchvision ms/img':>18s} {'ours ms/img':>12s} {'ours/tv':>8s}")
    for size in args.sizes:
        runs = (
            []
            if args.skip_inference
            else [lambda s=size: bench_inference(s, args.repeats, args.device, args.amp, args.before)]
        )
        if not args.skip_training:
            runs.append(lambda s=size: bench_training(s, args.repeats, args.device, args.amp, before=args.before))
        for run in runs:  # each row printed as soon as it is measured
            r = run()
            print(
                f"{r['name']:34s} {r['tv']:18.1f} {r['ours']:12.1f} {r['ratio']:8.2f}   [{r['agreement']}]", flush=True
            )
            if "before" in r:
                print(
                    f"  ours with every fast path on (before): {r['before']:.1f} ms/img, ratio to tv "
                    f"{r['before'] / r['tv']:.2f}; chosen / before {r['ours'] / r['before']:.2f}",
                    flush=True,
                )
    if args.predictor:
        print(bench_predictor(args.repeats, args.device), flush=True)
    return 0
