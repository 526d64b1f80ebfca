"""Batch prediction throughput: images/s of our ResNet-18 FPN Mask R-CNN for batch sizes 1, 2, 4, ... N.

    python benchmarks/predict_throughput.py --device cuda --amp --sizes 800x1333 --max-batch 64 --profile

The model is the one ``python -m engine bench`` times (torchvision's architecture with random but decisive
weights, 91 classes, up to 100 detections per image, converted by ``from_torchvision``), so detections
and their full-image masks are as many as a trained model's. One call is ``model(list_of_images)``: the
whole pipeline from (3,H,W) float tensors already on the device (decoding and upload are not counted) to
pasted (N,1,H,W) masks. Batches double until ``--max-batch`` or until the device runs out of memory.
Each line: ``batch B: X images/s (Y ms per batch)``; the last: ``best: X images/s at batch B``.
``--profile`` prints a torch.profiler table (top operators by device time, or CPU time on the CPU) for
one call at the best batch size. ``--torchvision`` times torchvision's model on the same inputs too.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from engine.cli.bench import build_pair  # noqa: E402

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def batch_sizes(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to max_batch, max_batch itself last when it is no power of two."""
    out, b = [], 1
    while b < max_batch:
        out.append(b)
        b *= 2
    return out + [max_batch]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def time_batch(model, images: list[torch.Tensor], repeats: int, autocast) -> tuple[float, int]:  # noqa: ANN001
    """Median seconds per call (one warm-up call first) and the detections per image of the last call."""
    device = images[0].device
    times, found = [], 0
    with torch.inference_mode(), autocast():
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            out = model(images)
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
            found = sum(len(o["scores"]) for o in out) // len(out)
            del out
    return statistics.median(times), found


def profile_table(model, images: list[torch.Tensor], autocast, rows: int) -> str:  # noqa: ANN001
    from torch.profiler import ProfilerActivity, profile

    device = images[0].device
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode(), autocast():
        model(images)  # warm-up outside the trace
        _sync(device)
        with profile(activities=activities) as prof:
            model(images)
            _sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda asked for, but torch sees no CUDA GPU; run with --device cpu")
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dtype = AMP_DTYPES[args.amp_dtype]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if args.amp else contextlib.nullcontext
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"device {device} ({name}), torch {torch.__version__}, amp {args.amp_dtype if args.amp else 'off'}, "
        f"channels-last {args.channels_last}"
    )
    best_overall = (0.0, 0)
    for h, w in (parse_size(s) for s in args.sizes):
        tv, ours = build_pair(min(h, w), max(h, w), device=str(device))
        models = {"ours": ours.eval()}
        if args.torchvision:
            models["torchvision"] = tv.eval()
        else:
            del tv
        for label, model in models.items():
            if args.channels_last:
                model.to(memory_format=torch.channels_last)
            print(f"{label} {h}x{w}:", flush=True)
            best = (0.0, 0)
            g = torch.Generator().manual_seed(0)
            for b in batch_sizes(args.max_batch):
                images = [torch.rand((3, h, w), generator=g).to(device) for _ in range(b)]
                try:
                    seconds, found = time_batch(model, images, args.repeats, autocast)
                except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
                    if not _is_oom(error):
                        raise
                    print(f"  batch {b}: out of memory; stopping at batch {best[1]}", flush=True)
                    del images
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    break
                rate = b / seconds
                ms = 1000 * seconds
                print(f"  batch {b}: {rate:.2f} images/s ({ms:.1f} ms per batch, {found} detections/image)", flush=True)
                if rate > best[0]:
                    best = (rate, b)
                del images
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                print(f"  peak device memory {peak:.1f} GiB")
                torch.cuda.reset_peak_memory_stats(device)
            print(f"{label} best: {best[0]:.2f} images/s at batch {best[1]}", flush=True)
            if args.profile and best[1]:
                images = [torch.rand((3, h, w), generator=g).to(device) for _ in range(best[1])]
                print(profile_table(model, images, autocast, args.profile_rows))
                del images
            if label == "ours" and best[0] > best_overall[0]:
                best_overall = best
        del models, ours
    print(f"best: {best_overall[0]:.2f} images/s at batch {best_overall[1]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="autocast (see --amp-dtype)")
    p.add_argument("--amp-dtype", choices=list(AMP_DTYPES), default="fp16")
    p.add_argument("--sizes", nargs="+", default=["800x1333"], help="input sizes HxW (default 800x1333)")
    p.add_argument("--max-batch", type=int, default=32, help="largest batch tried (doubling from 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per batch size, after one warm-up")
    p.add_argument("--channels-last", action="store_true", help="the model in channels-last memory format")
    p.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms per shape (the engine does not)"
    )
    p.add_argument("--torchvision", action="store_true", help="time torchvision's model on the same inputs too")
    p.add_argument("--profile", action="store_true", help="torch.profiler table of one call at the best batch")
    p.add_argument("--profile-rows", type=int, default=25)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
