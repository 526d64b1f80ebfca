"""CPU fast paths chosen by measurement: each layout / kernel switch of the network timed on this machine, once.

The network has a few CPU-only fast paths (channels-last convolutions, BatchNorm folded into the convolution,
the box head's GEMM through oneDNN, a channels-last mask head). Whether one pays depends on the CPU: tuned on
an AVX-512 machine, some cost more than they save on an AVX2 one (issue 17, docs/PERFORMANCE.md). So at first
use each path is micro-benchmarked on and off on shapes taken from a ResNet-18 FPN Mask R-CNN, separately for
inference (no autograd) and for training (forward + backward), and the faster one is kept. The decision is
cached per machine in a small JSON file (key: CPU model, ATen capability, oneDNN / MKL ISA limits, torch
version, thread count); a corrupt or foreign file is measured again and rewritten atomically.

``use(name)`` is what the model asks, once per call site and forward; after the first decision it is a dict
lookup. Devices other than the CPU keep the paths that are not CPU-specific (folded BatchNorm) as before.

Environment:
- ``MASKRCNN_FASTPATHS``: unset or ``auto`` measures (or reads the cache); ``on`` / ``off`` forces every path;
  a comma list such as ``channels_last=0,fold_bn=1`` forces those paths (``training.channels_last=0`` for one
  mode only) and decides the rest as ``auto`` does.
- ``MASKRCNN_FASTPATHS_CACHE``: the cache file to use instead of the user cache folder's; ``none`` keeps the
  decision in this process only.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.data.io.atomic import atomic_write_text

ENV_VAR = "MASKRCNN_FASTPATHS"
CACHE_ENV_VAR = "MASKRCNN_FASTPATHS_CACHE"
MODES = ("inference", "training")
CACHE_VERSION = 2  # a new workload: decisions of an older one are measured again

PATHS: dict[str, str] = {
    "channels_last": "backbone and FPN convolutions channels-last",
    "fold_bn": "BatchNorm folded into the convolution before it",
    "onednn_linear": "box head fc6/fc7 through oneDNN's GEMM (no autograd only)",
    "mask_channels_last": "mask head convolutions channels-last",
}
# Paths that are not about the CPU's kernels: kept off the CPU as they were before measurement existed.
OFF_CPU = {"channels_last": False, "fold_bn": True, "onednn_linear": False, "mask_channels_last": False}
# Which paths a mode can use at all (oneDNN's linear has no backward: training never takes it).
MODE_PATHS = {"inference": tuple(PATHS), "training": ("channels_last", "fold_bn", "mask_channels_last")}


@dataclass
class Decision:
    """The paths one mode uses on this machine, and where that came from ("measured", "cache", "forced")."""

    paths: dict[str, bool]
    source: str
    timings_ms: dict[str, dict] = field(default_factory=dict)  # path -> {"on": ms, "off": ms, ...} or {"error": ...}


_lock = threading.Lock()
_decisions: dict[str, Decision] = {}


def use(name: str, device: torch.device | None = None) -> bool:
    """Whether fast path ``name`` runs now: on ``device`` (None: the CPU), in the current autograd mode."""
    if device is not None and device.type != "cpu":
        return OFF_CPU[name]
    if torch.jit.is_tracing() or torch.jit.is_scripting():  # an exported graph gets the plain ops
        return False
    mode = "training" if torch.is_grad_enabled() else "inference"
    decision = _decisions.get(mode) or decide(mode)
    return decision.paths.get(name, False)


def decide(mode: str) -> Decision:
    """The Decision for ``mode`` in this process: forced, cached, or measured now (and cached)."""
    with _lock:
        if mode in _decisions:
            return _decisions[mode]
        forced = parse_override(os.environ.get(ENV_VAR, ""), mode)
        free = [p for p in MODE_PATHS[mode] if p not in forced]
        paths = {p: False for p in PATHS}
        paths.update(forced)
        if not free:
            decision = Decision(paths, "forced")
        else:
            found = _measured_paths(mode, free)
            paths.update({p: found.paths[p] for p in free})
            source = found.source if not forced else f"{found.source}, {', '.join(sorted(forced))} forced"
            decision = Decision(paths, source, found.timings_ms)
        _decisions[mode] = decision
        return decision


def reset() -> None:
    """Forget this process's decisions (tests; a changed environment variable)."""
    with _lock:
        _decisions.clear()


@contextlib.contextmanager
def overridden(spec: str) -> Iterator[None]:
    """Within the block the paths ``spec`` names (``MASKRCNN_FASTPATHS`` syntax) are forced and the rest keep this
    process's decisions (measured first when needed); afterwards the decisions are as before. For benchmarks that
    alternate configurations in one process."""
    chosen = {mode: decide(mode) for mode in MODES}
    with _lock:
        saved = dict(_decisions)
        for mode in MODES:
            forced = parse_override(spec, mode)
            _decisions[mode] = Decision({**chosen[mode].paths, **forced}, f"forced {spec}")
    try:
        yield
    finally:
        with _lock:
            _decisions.clear()
            _decisions.update(saved)


def parse_override(text: str, mode: str) -> dict[str, bool]:
    """``MASKRCNN_FASTPATHS``'s forced paths for ``mode``; a bad entry is a ValueError naming it."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return {}
    if text in ("on", "off", "1", "0"):
        return {p: text in ("on", "1") and p in MODE_PATHS[mode] for p in PATHS}
    forced: dict[str, bool] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        scope, dot, name = key.rpartition(".")
        if not sep or name not in PATHS or (dot and scope not in MODES) or value not in ("0", "1", "on", "off"):
            raise ValueError(
                f"{ENV_VAR}={text!r}: cannot read {item!r}; use auto, on, off, or a list such as "
                f"channels_last=0,training.fold_bn=1 with paths {', '.join(PATHS)}"
            )
        if not dot or scope == mode:
            forced[name] = value in ("1", "on") and name in MODE_PATHS[mode]
    return forced


# ----- the cache -----


def machine_key() -> str:
    """What the decision depends on: CPU model, the ISA limits in force, torch version, thread count."""
    isa = ",".join(f"{v}={os.environ[v]}" for v in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if v in os.environ)
    return (
        f"{cpu_model()} | {torch.backends.cpu.get_cpu_capability()}{' ' + isa if isa else ''} | "
        f"torch {torch.__version__} | {torch.get_num_threads()} threads"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_path() -> Path | None:
    """The cache file: ``MASKRCNN_FASTPATHS_CACHE``, else the user cache folder's; None: do not cache."""
    given = os.environ.get(CACHE_ENV_VAR)
    if given is not None:
        return None if given.strip().lower() in ("", "none") else Path(given)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "maskrcnn-studio" / "fastpaths.json"


def read_cache(path: Path | None) -> dict:
    """The cache document, or an empty one when missing, unreadable or not ours (it is then measured again)."""
    if path is None:
        return {"version": CACHE_VERSION, "machines": {}}
    try:
        document = json.loads(path.read_text())
        machines = document["machines"]
        if document.get("version") != CACHE_VERSION or not isinstance(machines, dict):
            raise ValueError("another version")
        return document
    except (OSError, ValueError, KeyError, TypeError):
        return {"version": CACHE_VERSION, "machines": {}}


def cached_entry(document: dict, key: str, mode: str, names: list[str]) -> dict | None:
    """The cached {"paths": {name: bool}, "timings_ms": ...} of ``mode`` when it holds every name as a bool."""
    entry = document["machines"].get(key, {})
    found = entry.get(mode) if isinstance(entry, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("paths"), dict):
        return None
    if not all(isinstance(found["paths"].get(n), bool) for n in names):
        return None
    return found


def write_cache(path: Path | None, key: str, mode: str, decision: Decision) -> None:
    """Add ``mode``'s decision for ``key`` to the cache file (atomically; a failure only loses the cache)."""
    if path is None:
        return
    document = read_cache(path)
    entry = document["machines"].get(key)
    entry = entry if isinstance(entry, dict) else {}
    entry[mode] = {"paths": decision.paths, "timings_ms": decision.timings_ms, "when": time.strftime("%Y-%m-%d")}
    document["machines"][key] = entry
    try:
        atomic_write_text(path, json.dumps(document, indent=1))
    except OSError as error:  # a read-only home still runs, measuring once per process
        print(f"warning: could not write the fast-path cache {path}: {error}", file=sys.stderr)


def _measured_paths(mode: str, names: list[str]) -> Decision:
    path, key = cache_path(), machine_key()
    found = cached_entry(read_cache(path), key, mode, names)
    if found is not None:
        return Decision({n: found["paths"][n] for n in names}, "cache", found.get("timings_ms", {}))
    decision = measure(mode, names)
    write_cache(path, key, mode, decision)
    return decision


# ----- measuring -----

Workload = Callable[[bool], None]  # runs the workload with the path on (True) or off (False)


MARGIN = 0.03  # a path must save this share of the time to be taken; closer than that, the plain ops win


def cpu_clock() -> float:
    """Seconds of CPU time this work used: the calling thread's when torch runs on it alone, else the process's.

    CPU time rather than wall time: on a machine shared with other jobs the wall time of a run depends on who
    else had the core, its CPU time much less (measured here: wall times of the same call 30 % apart, CPU times
    a few %)."""
    return time.thread_time() if torch.get_num_threads() == 1 else time.process_time()


def choose(workloads: dict[str, Workload], repeats: int = 3, clock: Callable[[], float] = cpu_clock) -> Decision:
    """Time each workload with its path on and off, alternating (one warm-up each); a path is taken when its
    least time is at least ``MARGIN`` below the plain ops' (the least: the run the rest of the machine disturbed
    least)."""
    paths, timings = {}, {}
    for name, run in workloads.items():
        try:  # a path this torch build cannot run (no oneDNN, say) is simply not taken
            run(True)
        except RuntimeError as error:
            paths[name], timings[name] = False, {"error": str(error)[:200]}
            continue
        run(False)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for on in (True, False):
                start = clock()
                run(on)
                times[on].append(clock() - start)
        best_on, best_off = min(times[True]), min(times[False])
        paths[name] = best_on < best_off * (1 - MARGIN)
        timings[name] = {
            "on": round(1000 * best_on, 3),
            "off": round(1000 * best_off, 3),
            "on_median": round(1000 * statistics.median(times[True]), 3),
            "off_median": round(1000 * statistics.median(times[False]), 3),
        }
    return Decision(paths, "measured", timings)


def measure(mode: str, names: list[str], repeats: int = 2) -> Decision:
    """Micro-benchmark ``names`` for ``mode`` on this machine (about a second or two per mode on 2 cores)."""
    training = mode == "training"
    factories = {
        "channels_last": _backbone_workload,
        "fold_bn": _fold_bn_workload,
        "onednn_linear": _linear_workload,
        "mask_channels_last": _mask_head_workload,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        workloads = {n: factories[n](training) for n in names}
        with torch.set_grad_enabled(training):
            return choose(workloads, repeats)


# The workloads: the layers where each path acts, at the sizes of a ResNet-18 FPN Mask R-CNN on a 512x512
# image (batch 1) - a quarter of the 800x1067 image's pixels, enough to be in the same kernel regime.


def _backward(out: torch.Tensor, training: bool) -> None:
    if training:
        out.float().sum().backward()


def _backbone_workload(training: bool) -> Workload:
    """Stem, one block per stage and the FPN's laterals / outputs, NCHW against channels-last."""
    g = torch.Generator().manual_seed(0)
    hw = 128

    def conv(cin: int, cout: int, k: int) -> torch.Tensor:
        w = torch.randn((cout, cin, k, k), generator=g) * (2 / (cin * k * k)) ** 0.5
        return w.requires_grad_(training)

    stem = conv(3, 64, 7)
    stages = [(conv(64, 64, 3), conv(64, 64, 3))]
    stages += [(conv(c // 2, c, 3), conv(c, c, 3)) for c in (128, 256, 512)]
    laterals = [conv(c, 256, 1) for c in (64, 128, 256, 512)]
    outputs = [conv(256, 256, 3) for _ in range(4)]
    image = torch.randn((1, 3, hw, hw), generator=g)

    def run(on: bool) -> None:
        x = image.contiguous(memory_format=torch.channels_last) if on else image
        x = F.max_pool2d(F.relu(F.conv2d(x, stem, stride=2, padding=3)), 3, 2, 1)
        feats = []
        for i, (w1, w2) in enumerate(stages):
            x = F.relu(F.conv2d(x, w1, stride=1 if i == 0 else 2, padding=1))
            x = F.relu(F.conv2d(x, w2, padding=1))
            feats.append(x)
        merged, total = None, 0
        for feat, lat, out in reversed(list(zip(feats, laterals, outputs))):
            lateral = F.conv2d(feat, lat)
            merged = lateral if merged is None else lateral + F.interpolate(merged, size=lateral.shape[-2:])
            p = F.conv2d(merged, out, padding=1)
            total = total + p.float().sum() if on else total + p.sum()
            if not training:
                p.contiguous()  # RoIAlign reads NCHW: the copy is part of the channels-last cost
        _backward(total, training)

    return run


def _fold_bn_workload(training: bool) -> Workload:
    """A 3x3 convolution + frozen BatchNorm at stage 1's size: folded weights against a separate affine."""
    g = torch.Generator().manual_seed(1)
    w = (torch.randn((64, 64, 3, 3), generator=g) * 0.06).requires_grad_(training)
    scale, shift = 0.5 + torch.rand(64, generator=g), torch.randn(64, generator=g) * 0.1
    x = torch.randn((1, 64, 64, 64), generator=g)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(on: bool) -> None:
        out = 0
        for inp in (x, x_cl):  # whichever layout the backbone runs in
            if on:
                y = F.conv2d(inp, w * scale.reshape(-1, 1, 1, 1), shift, padding=1)
            else:
                y = F.conv2d(inp, w, padding=1) * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
            out = out + F.relu(y).sum()
        _backward(out, training)

    return run


def _linear_workload(training: bool) -> Workload:
    """fc6 for 64 RoIs (64x12544 @ 12544x1024): BLAS sgemm against oneDNN's matmul with its conversions."""
    g = torch.Generator().manual_seed(2)
    layer = torch.nn.Linear(12544, 1024)
    x = torch.randn((64, 12544), generator=g)

    def run(on: bool) -> None:
        with torch.no_grad():
            if on:  # as engine.model.roi_heads.onednn_linear (not imported: the model imports this module)
                torch._C._nn.mkldnn_linear(x.contiguous().to_mkldnn(), layer.weight, layer.bias).to_dense()
            else:
                layer(x)

    return run


def _mask_head_workload(training: bool) -> Workload:
    """The mask head (4 x conv3x3 256 on 14x14, deconv 2x2/2) for 16 RoIs, NCHW against channels-last.

    Not fewer: with 4 RoIs the two layouts tied on both ISAs here, with 32 channels-last was 10 % faster, as in the
    whole network with 100 detections (docs/PERFORMANCE.md)."""
    g = torch.Generator().manual_seed(3)
    convs = [(torch.randn((256, 256, 3, 3), generator=g) * 0.03).requires_grad_(training) for _ in range(4)]
    deconv = (torch.randn((256, 256, 2, 2), generator=g) * 0.03).requires_grad_(training)
    pooled = torch.randn((16, 256, 14, 14), generator=g)
    own = torch.randn((16, 256), generator=g)

    def run(on: bool) -> None:
        x = pooled.contiguous(memory_format=torch.channels_last) if on else pooled
        for w in convs:
            x = F.relu(F.conv2d(x, w, padding=1))
        x = F.relu(F.conv_transpose2d(x, deconv, stride=2))
        _backward(torch.einsum("nchw,nc->nhw", x, own), training)

    return run


def describe(mode: str) -> str:
    """One line for a header: the paths ``mode`` uses and where the choice came from."""
    decision = decide(mode)
    on = [p for p in MODE_PATHS[mode] if decision.paths.get(p)]
    return f"{mode}: {', '.join(on) if on else 'no fast path'} ({decision.source})"
