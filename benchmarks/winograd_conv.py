"""Winograd F(2x2,3x3) / F(4x4,3x3) against oneDNN's direct convolution on the network's 3x3 256-channel convs.

    python benchmarks/winograd_conv.py [--threads 2] [--repeats 5] [--cpu-time] [--isa avx2] [--shapes mask,512,800]

Issue 17 asked whether Winograd's fewer multiply-adds beat ``F.conv2d`` (oneDNN) on the convolutions both our
model and torchvision's spend their time in: the mask head's four 3x3 convs (100 RoIs, 256->256, 14x14) and the
FPN output / RPN head convs on P2..P5 (256 channels, 1/4 .. 1/32 of the padded input). The Winograd convolution
here is plain torch ops (strided views, adds into preallocated buffers, one ``torch.mm`` per transformed
position), inference only. For each shape the script prints, medians of ``--repeats`` runs alternated in one
process after a warm-up: ``F.conv2d`` on NCHW and on channels-last input, Winograd F(2x2) and F(4x4) (the
whole call, then its three stages: input transform, GEMMs, output transform), their ratios to the faster
``F.conv2d``, and the largest error of each against a float64 reference (absolute, and relative to the
reference's largest magnitude) beside ``F.conv2d``'s own float32 error. ``--cpu-time`` times the process's
CPU time instead of wall time (steadier on a loaded machine; with 2 threads it includes OpenMP's
spin-waiting). ``--isa avx2`` runs the same again in a process limited to AVX2 kernels, as
``python -m engine bench --isa avx2`` does. Results: docs/PERFORMANCE.md, issue-17 section, "Winograd".
The model does not use it: it lost to ``F.conv2d`` on every shape measured.

The Winograd algorithm (Lavin & Gray, 2015): each m x m output tile from an (m+2) x (m+2) input tile with
(m+2)^2 instead of 9 m^2 multiplications per channel pair; input and weights transformed (V = B^T d B,
U = G g G^T), (m+2)^2 independent GEMMs over channels, output transform (A^T M A). The transforms are
separable, so each is two passes over strided views of the whole map (rows, then columns), no per-tile copy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}

# (Bᵀ, G, Aᵀ) per output tile size m.
MATRICES: dict[int, tuple[tuple, tuple, tuple]] = {
    2: (
        ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
        ((1, 1, 1, 0), (0, 1, -1, -1)),
    ),
    4: (
        (
            (4, 0, -5, 0, 1, 0),
            (0, -4, -4, 1, 1, 0),
            (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0),
            (0, 2, -1, -2, 1, 0),
            (0, 4, 0, -5, 0, 1),
        ),
        (
            (1 / 4, 0, 0),
            (-1 / 6, -1 / 6, -1 / 6),
            (-1 / 6, 1 / 6, -1 / 6),
            (1 / 24, 1 / 12, 1 / 6),
            (1 / 24, -1 / 12, 1 / 6),
            (0, 0, 1),
        ),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
    ),
}


def transform_weight(weight: Tensor, m: int = 2) -> Tensor:
    """(K,C,3,3) -> ((m+2)², C, K): U = G g Gᵀ per (K,C); position (column b, row a) at b*(m+2) + a."""
    g = torch.tensor(MATRICES[m][1], dtype=torch.float64, device=weight.device)
    u = torch.einsum("ai,kcij,bj->back", g, weight.double(), g)  # exact-ish in float64, rounded once
    return u.reshape((m + 2) ** 2, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


_cache: dict[tuple[int, int], tuple[weakref.ref, tuple, Tensor]] = {}


def cached_weight(weight: Tensor, m: int = 2) -> Tensor:
    """``transform_weight(weight, m)``, kept per parameter until its storage or version changes (an optimiser
    step, ``load_state_dict`` and in-place copies bump ``_version``; a new tensor has a new ``data_ptr``).

    A weak reference checks that the cached entry is this very tensor: ``id`` and ``data_ptr`` alone are not
    enough, since a freed weight's successor of the same shape is often allocated at the same address with the
    same ``_version`` 0 (this benchmark hit that: one shape's transformed weight served the next's)."""
    key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype, weight.device)
    found = _cache.get((id(weight), m))
    if found is not None and found[0]() is weight and found[1] == key:
        return found[2]
    with torch.no_grad():
        u = transform_weight(weight.detach(), m)
    _cache[(id(weight), m)] = (weakref.ref(weight), key, u)
    return u


def _apply(matrix: tuple, views: list[Tensor], out: Tensor) -> None:
    """out[i] = Σ_j matrix[i][j] · views[j], one add per nonzero coefficient."""
    for i, row in enumerate(matrix):
        terms = [(coef, views[j]) for j, coef in enumerate(row) if coef]
        (c0, v0), rest = terms[0], terms[1:]
        if c0 == 1:
            out[i].copy_(v0) if not rest else None
        else:
            torch.mul(v0, c0, out=out[i])
        if rest:
            (c1, v1), rest = rest[0], rest[1:]
            if c0 == 1:
                torch.add(v0, v1, alpha=c1, out=out[i])
            else:
                out[i].add_(v1, alpha=c1)
        for coef, v in rest:
            out[i].add_(v, alpha=coef)


def input_transform(x: Tensor, m: int) -> tuple[Tensor, int, int]:
    """(N,C,H,W) -> V ((m+2)², N*th*tw, C), th, tw: Bᵀ d B of every tile."""
    n, c, h, w = x.shape
    a = m + 2
    bt = MATRICES[m][0]
    th, tw = -(-h // m), -(-w // m)
    # NHWC view padded to m*th+2 x m*tw+2 (one zero row / column before, the rest after).
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, m * tw + 1 - w, 1, m * th + 1 - h))
    t = x.new_empty((a, n, th, xp.shape[2], c))  # Bᵀ along rows: tile row i reads padded rows m*i .. m*i+a-1
    _apply(bt, [xp[:, j : j + m * th : m] for j in range(a)], t)
    v = x.new_empty((a, a, n, th, tw, c))  # B along columns: (col b, row a, N, th, tw, C)
    _apply(bt, [t[:, :, :, j : j + m * tw : m] for j in range(a)], v)
    return v.reshape(a * a, n * th * tw, c), th, tw


def output_transform(mat: Tensor, m: int, n: int, th: int, tw: int, h: int, w: int) -> Tensor:
    """M ((m+2)², P, K) -> (N,K,H,W) channels-last: Aᵀ M A of every tile, cropped to H x W."""
    a, k = m + 2, mat.shape[-1]
    at = MATRICES[m][2]
    mat = mat.reshape(a, a, n, th, tw, k)
    s = mat.new_empty((a, m, n, th, tw, k))  # Aᵀ along rows: (col b, out row, ...)
    _apply(at, [mat[:, j] for j in range(a)], s.transpose(0, 1))
    y = mat.new_empty((n, th, m, tw, m, k))
    _apply(at, [s[j] for j in range(a)], y.permute(4, 2, 0, 1, 3, 5))  # (out col, out row, N, th, tw, K) view
    y = y.reshape(n, m * th, m * tw, k)
    if m * th != h or m * tw != w:
        y = y[:, :h, :w].contiguous()
    return y.permute(0, 3, 1, 2)


def gemms(v: Tensor, u: Tensor, bias: Tensor | None, m: int) -> Tensor:
    """The (m+2)² products V[i] (P,C) @ U[i] (C,K); separate mm calls (MKL's bmm was slower than a loop here).
    The bias goes onto position (col 1, row 1): column 1 of Aᵀ is all ones, so Aᵀ·e·A spreads it to every
    output of the tile once."""
    out = v.new_empty((v.shape[0], v.shape[1], u.shape[2]))
    for i in range(v.shape[0]):
        torch.mm(v[i], u[i], out=out[i])
    if bias is not None:
        out[m + 3] += bias
    return out


def conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None = None, m: int = 2) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a (K,C,3,3) weight by Winograd F(m x m, 3x3), m = 2 or 4,
    without autograd; float32 CPU tensors; the output is channels-last (NHWC memory) whatever the input's
    layout."""
    n, _, h, w = x.shape
    with torch.no_grad():
        u = cached_weight(weight, m)
        v, th, tw = input_transform(x, m)
        return output_transform(gemms(v, u, bias, m), m, n, th, tw, h, w)


# ----- measuring -----


def shapes(which: list[str]) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(label, (N, C, H, W)): the mask head, and P2..P5 of a 512x512 and an 800x1067 input (padded to 32)."""
    out = []
    if "mask" in which:
        out.append(("mask head, 100 RoIs", (100, 256, 14, 14)))
    for name, (h, w) in (("512", (512, 512)), ("800", (800, 1088))):
        if name in which:
            for level in range(2, 6):
                s = 2**level
                out.append((f"{name}: P{level}", (1, 256, h // s, w // s)))
    return out


clock = time.perf_counter  # --cpu-time: time.process_time


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def measure(shape: tuple[int, int, int, int], repeats: int) -> dict:
    n, c, h, w = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    weight = torch.randn((c, c, 3, 3), generator=g) * (2 / (9 * c)) ** 0.5
    bias = torch.randn(c, generator=g) * 0.1
    x_cl = x.contiguous(memory_format=torch.channels_last)
    ref = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    scale = ref.abs().max().item()

    def stages(m: int) -> dict[str, float]:
        start = clock()
        u = cached_weight(weight, m)
        v, th, tw = input_transform(x_cl, m)
        t1 = clock()
        mat = gemms(v, u, bias, m)
        t2 = clock()
        output_transform(mat, m, n, th, tw, h, w)
        t3 = clock()
        return {"input": t1 - start, "gemm": t2 - t1, "output": t3 - t2}

    runs = {
        "conv2d NCHW": lambda: F.conv2d(x, weight, bias, padding=1),
        "conv2d channels-last": lambda: F.conv2d(x_cl, weight, bias, padding=1),
        "winograd F(2x2)": lambda: conv3x3(x_cl, weight, bias, m=2),
        "winograd F(4x4)": lambda: conv3x3(x_cl, weight, bias, m=4),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    parts: dict[int, dict[str, list[float]]] = {m: {"input": [], "gemm": [], "output": []} for m in (2, 4)}
    with torch.no_grad():
        errors = {}
        for name, run in runs.items():  # warm-up, and the errors
            out = run().double()
            errors[name] = ((out - ref).abs().max().item(), (out - ref).abs().max().item() / scale)
        for _ in range(repeats):
            for name, run in runs.items():
                start = clock()
                run()
                times[name].append(clock() - start)
            for m in (2, 4):
                for k, v in stages(m).items():
                    parts[m][k].append(v)
    return {
        "ms": {k: median_ms(v) for k, v in times.items()},
        "parts": {m: {k: median_ms(v) for k, v in p.items()} for m, p in parts.items()},
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", default="mask,512,800", help="comma list of mask, 512, 800")
    parser.add_argument(
        "--cpu-time", action="store_true", help="CPU time of this process instead of wall time (a loaded machine)"
    )
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = parser.parse_args(argv)
    if args.isa == "avx2" and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":
        env = {**os.environ, **AVX2_ENV}
        return subprocess.call([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env=env)
    torch.set_num_threads(args.threads)
    global clock
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(
        f"torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
        f"{'CPU' if args.cpu_time else 'wall'} ms, medians of {args.repeats} alternated runs; "
        "ratio = / the faster conv2d"
    )
    for label, shape in shapes(args.shapes.split(",")):
        r = measure(shape, args.repeats)
        ms, best = r["ms"], min(r["ms"]["conv2d NCHW"], r["ms"]["conv2d channels-last"])
        print(f"{label} {tuple(shape)}")
        for name, t in ms.items():
            abs_err, rel_err = r["errors"][name]
            line = f"  {name:22s} {t:9.1f} ms  ratio {t / best:5.2f}  max err {abs_err:.1e} abs, {rel_err:.1e} rel"
            if name.startswith("winograd"):
                p = r["parts"][2 if "2x2" in name else 4]
                line += f"  [input {p['input']:.1f}, gemm {p['gemm']:.1f}, output {p['output']:.1f}]"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
