"""The engine on a CUDA GPU (issue 16), and the CPU twins of what can be checked without one.

CUDA (skipped without a GPU): parity with torchvision in float32, detections under autocast (float16 and
bfloat16) within tolerances fit for them, the Predictor's staged cache on the device and its host reads
(each a device sync), AMP training (finite losses, a non-finite step skipped, resume), the bundled model's
held-out AP and ``python -m engine predict --device cuda``. ``scripts/gpu_check.sh`` runs this file first.

When the environment variable GPU_CHECK_FIGURES names a file, tests append their measured figures to it
(JSON lines: test, name, value) for the script's summary.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shared_data import SHARED_DATA
from test_parity import CASES, _build, assert_same_detections
from torch.overrides import TorchFunctionMode
from torchvision.ops import box_iou

from engine.cli.bench import randomise
from engine.inference import Predictor
from engine.interop import from_torchvision
from engine.structures import PredictSettings

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "resources" / "models" / "nuclei_r18_gn.safetensors"
bundled = pytest.mark.skipif(not BUNDLED.is_file(), reason="the bundled model is not in this checkout")
HAS_CUDA = torch.cuda.is_available()
cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
CPU_AND_CUDA = ["cpu", pytest.param("cuda", marks=cuda)]
AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
# Under autocast a detection may move a little and its score by a few hundredths; near-tied ones may
# swap in NMS or top-k. Matched: same label, box IoU >= 0.9, score within SCORE_TOLERANCE.
SCORE_TOLERANCE = {torch.float16: 0.03, torch.bfloat16: 0.08}


# ----- helpers -----
def record(test: str, name: str, value: float | int | str) -> None:
    """Append a figure for scripts/gpu_check.sh's summary (only when GPU_CHECK_FIGURES is set)."""
    path = os.environ.get("GPU_CHECK_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "name": name, "value": value}) + "\n")


class HostReads(TorchFunctionMode):
    """Counts the calls that read tensor values on the host or whose result size depends on them
    (``.item()``, ``.tolist()``, ``.cpu()``, ``int(t)``, ``nonzero``, boolean indexing, NMS): on CUDA each
    is a device sync. Runs on the CPU too, so the count is checked without a GPU."""

    NAMES = frozenset(
        {"item", "tolist", "cpu", "numpy", "__int__", "__float__", "__bool__", "__index__", "nonzero"}
        | {"masked_select", "unique", "nms"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", "")
        if (
            name in self.NAMES
            or (name == "where" and len(args) == 1)
            or (name == "__getitem__" and isinstance(args[1], torch.Tensor) and args[1].dtype == torch.bool)
        ):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))

    @property
    def count(self) -> int:
        return len(self.calls)


class CudaSyncs:
    """Counts host-device syncs on CUDA with torch.cuda.set_sync_debug_mode("warn"); 0 on the CPU."""

    def __init__(self, device: str) -> None:
        self.on = device.startswith("cuda")
        self.count = 0

    def __enter__(self) -> CudaSyncs:
        if self.on:
            torch.cuda.synchronize()
            self._catcher = warnings.catch_warnings(record=True)
            self._seen = self._catcher.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        if self.on:
            torch.cuda.set_sync_debug_mode("default")
            self._catcher.__exit__(*exc)
            self.count = sum("synchroniz" in str(w.message) for w in self._seen)


@pytest.fixture()
def exact_float32():
    """TF32 off (on by default for cuDNN convolutions on Ampere and later) for float32 comparisons."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def real_images() -> list[torch.Tensor]:
    """Three real images of different sizes: coco128's where ../shared is present (as test_parity), else the
    bundled nucleus samples (which travel to the device machine with the repository)."""
    coco = SHARED_DATA / "coco128" / "train2017"
    paths = sorted(coco.glob("*.jpg"))[:3] if coco.is_dir() else []
    if not paths:
        paths = sorted((REPO / "resources" / "sample").glob("*.png"))[:3]
    return [_load(p) for p in paths]


def _on(d: dict, device: str = "cpu") -> dict:
    return {k: v.to(device) for k, v in d.items()}


def loose_agreement(reference: dict, actual: dict, score_tolerance: float, min_score: float = 0.3) -> dict:
    """How well ``actual`` (reduced precision) reproduces ``reference`` (float32): each reference detection
    scoring >= min_score is matched to the same-label detection of highest box IoU. Returns the matched
    fraction (IoU >= 0.9 and score within ``score_tolerance``), the worst matched IoU, the largest matched
    score difference and the mean mask IoU of the matched, and both detection counts."""
    ref = {k: v.float().cpu() for k, v in reference.items()}
    act = {k: v.float().cpu() for k, v in actual.items()}
    keep = ref["scores"] >= min_score
    n = int(keep.sum())
    out = {"n_reference": n, "n_all_reference": len(ref["scores"]), "n_actual": len(act["scores"])}
    if n == 0 or len(act["scores"]) == 0:
        return {**out, "matched": 0.0, "min_iou": 0.0, "max_score_diff": math.inf, "mask_iou": 0.0}
    iou = box_iou(ref["boxes"][keep], act["boxes"])
    iou = iou * (ref["labels"][keep][:, None] == act["labels"][None, :])
    best_iou, best = iou.max(1)
    score_diff = (ref["scores"][keep] - act["scores"][best]).abs()
    matched = (best_iou >= 0.9) & (score_diff <= score_tolerance)
    ref_masks = ref["masks"][keep][:, 0] > 0.5
    act_masks = act["masks"][best][:, 0] > 0.5
    inter = (ref_masks & act_masks).flatten(1).sum(1).float()
    union = (ref_masks | act_masks).flatten(1).sum(1).float().clamp(min=1)
    mask_iou = (inter / union)[matched]
    return {
        **out,
        "matched": matched.float().mean().item(),
        "min_iou": best_iou[matched].min().item() if matched.any() else 0.0,
        "max_score_diff": score_diff[matched].max().item() if matched.any() else math.inf,
        "mask_iou": mask_iou.mean().item() if matched.any() else 0.0,
    }


# ----- parity with torchvision -----
@cuda
@pytest.mark.parametrize("case", list(CASES))
def test_float32_parity_with_torchvision_on_cuda(case, real_images, exact_float32):
    depth, kwargs = CASES[case]
    tv = _build(depth, **kwargs).cuda()
    ours = from_torchvision(tv).eval().cuda()
    images = [image.cuda() for image in real_images]
    with torch.no_grad():
        expected, actual = tv(images), ours(images)
    for e, a in zip(expected, actual):
        assert_same_detections(_on(e), _on(a))


AUTOCAST_MODEL = dict(num_classes=5, min_size=320, max_size=512)


def _autocast_check(device: str, dtype: torch.dtype, images: list[torch.Tensor], test: str) -> None:
    tv = _build("resnet18", **AUTOCAST_MODEL).to(device)
    ours = from_torchvision(tv).eval().to(device)
    images = [image.to(device) for image in images]
    with torch.no_grad():
        reference = tv(images)
        with torch.autocast(device, dtype=dtype):
            tv_amp = tv(images)
            ours_amp = ours(images)
    tolerance = SCORE_TOLERANCE[dtype]
    for i, (ref, theirs, mine) in enumerate(zip(reference, tv_amp, ours_amp)):
        for key in ("boxes", "scores", "masks"):
            assert torch.isfinite(mine[key].float()).all(), key
        baseline = loose_agreement(ref, theirs, tolerance)
        got = loose_agreement(ref, mine, tolerance)
        for name, value in got.items():
            record(test, f"image {i} ours {name}", value)
        record(test, f"image {i} torchvision matched", baseline["matched"])
        record(test, f"image {i} torchvision mask_iou", baseline["mask_iou"])
        assert got["n_reference"] >= 5, "the float32 reference found too little to compare"
        # torchvision's own autocast is the yardstick: near-tied detections swap in NMS and at the cap of
        # 100 (on a nucleus image under CPU bfloat16 both matched 0.68 of 100 detections, mask IoU 0.87)
        assert got["matched"] >= max(0.5, baseline["matched"] - 0.05), (got, baseline)
        assert got["mask_iou"] >= max(0.7, baseline["mask_iou"] - 0.05), (got, baseline)
        assert 0.8 * got["n_all_reference"] - 2 <= got["n_actual"] <= 1.25 * got["n_all_reference"] + 2, got


@cuda
@pytest.mark.parametrize("dtype", list(AUTOCAST_DTYPES))
def test_detections_under_autocast_on_cuda(dtype, real_images, exact_float32):
    _autocast_check("cuda", AUTOCAST_DTYPES[dtype], real_images, f"autocast cuda {dtype}")


def test_detections_under_autocast_on_cpu(real_images, monkeypatch):
    """The CPU twin: bfloat16 autocast (the CPU's), one image. RoIAlign on one thread: autocast is
    thread-local, and the threads of pooler.parallel_roi_align (CPU only) would hand bfloat16 features to
    torchvision's CPU kernel, which has none (training uses autocast on CUDA only)."""
    import engine.model.pooler

    monkeypatch.setattr(engine.model.pooler, "_MIN_ROIS_PER_THREAD", 10**9)
    _autocast_check("cpu", torch.bfloat16, real_images[:1], "autocast cpu bfloat16")


def test_loose_agreement_counts_what_moved():
    boxes = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]], dtype=torch.float32)
    masks = torch.zeros((3, 1, 80, 80))
    for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
        masks[i, 0, y1:y2, x1:x2] = 1
    ref = {"boxes": boxes, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 1, 2]), "masks": masks}
    same = loose_agreement(ref, ref, 0.03)
    assert same["matched"] == 1.0 and same["min_iou"] == pytest.approx(1.0) and same["mask_iou"] == 1.0
    moved = dict(ref, scores=torch.tensor([0.9, 0.7, 0.7]), labels=torch.tensor([1, 1, 1]))
    got = loose_agreement(ref, moved, 0.03)  # the second's score moved by 0.1, the third changed class
    assert got["matched"] == pytest.approx(1 / 3) and got["n_reference"] == 3


# ----- the Predictor on the device -----
@pytest.fixture(scope="module")
def model():
    from torchvision.models.detection import MaskRCNN as TVMaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    tv = TVMaskRCNN(
        resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=4, min_size=160, max_size=256
    )
    randomise(tv, seed=2, probe_hw=(120, 160))
    return from_torchvision(tv).eval()


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(4)
    return (torch.rand((120, 150, 3), generator=g) * 255).to(torch.uint8).numpy()


def _predictor(model, device: str) -> Predictor:  # noqa: ANN001
    """Predictor moves its model to the device: a copy, so the module-wide model stays on the CPU."""
    return Predictor(model if device == "cpu" else copy.deepcopy(model), device)


def _as_dict(pred) -> dict:  # noqa: ANN001
    return {
        "boxes": torch.from_numpy(pred.boxes),
        "scores": torch.from_numpy(pred.scores),
        "labels": torch.from_numpy(pred.labels),
        "masks": torch.from_numpy(np.stack([m.full(pred.height, pred.width) for m in pred.masks])).float(),
    }


@cuda
def test_predictor_on_cuda_matches_the_cpu(model, image, exact_float32):
    settings = PredictSettings(score_threshold=0.05)
    on_cpu = _predictor(model, "cpu").predict(image, settings)
    on_gpu = _predictor(model, "cuda").predict(image, settings)
    assert_same_detections(_as_dict(on_cpu), _as_dict(on_gpu))
    np.testing.assert_allclose(on_gpu.proposals, on_cpu.proposals, atol=1e-2)


@cuda
def test_slider_moves_reuse_the_cache_on_cuda(model, image):
    predictor = _predictor(model, "cuda")
    first = predictor.predict(image, PredictSettings(score_threshold=0.05, max_detections=300))
    assert predictor.model.rpn.head.cls_logits.weight.is_cuda
    fewer = predictor.predict(settings=PredictSettings(score_threshold=0.8, max_detections=300))
    assert 0 < len(fewer) < len(first) and set(fewer.keys) <= set(first.keys)
    assert predictor.stage_runs["mask_head"] == 1  # every mask came from the cache
    predictor.predict(settings=PredictSettings(score_threshold=0.05, box_nms_iou=0.3))
    predictor.predict(settings=PredictSettings(score_threshold=0.05, mask_threshold=0.7))
    assert predictor.stage_runs["rpn_post"] == 1 and predictor.stage_runs["backbone"] == 1
    settings = PredictSettings(score_threshold=0.05, rpn_nms_iou=0.5, num_proposals=200)
    cached = predictor.predict(settings=settings)
    assert predictor.stage_runs["rpn_post"] == 2 and predictor.stage_runs["backbone"] == 1
    fresh = _predictor(model, "cuda").predict(image, settings)
    np.testing.assert_allclose(cached.boxes, fresh.boxes, atol=1e-4)
    np.testing.assert_allclose(cached.scores, fresh.scores, atol=1e-5)
    np.testing.assert_array_equal(cached.keys, fresh.keys)
    timings = predictor.predict(settings=PredictSettings(score_threshold=0.3)).timings_ms
    record("predictor cuda", "score-only move ms", round(timings["total"], 3))


@pytest.mark.parametrize("device", CPU_AND_CUDA)
def test_score_moves_read_the_device_a_fixed_number_of_times(model, image, device):
    """Moving the score slider within what is cached (all masks known) reads the device a fixed number of
    times (selection sizes, detection keys, the result arrays), however many detections there are: no
    read per detection. On CUDA the syncs are counted by torch itself (set_sync_debug_mode)."""
    predictor = _predictor(model, device)
    predictor.predict(image, PredictSettings(score_threshold=0.05, max_detections=300))
    counts = {}
    for threshold in (0.8, 0.3, 0.05):
        with HostReads() as reads, CudaSyncs(device) as syncs:
            pred = predictor.predict(settings=PredictSettings(score_threshold=threshold, max_detections=300))
        counts[threshold] = (len(pred), reads.count, syncs.count)
        record(
            f"predictor {device}", f"score {threshold}: detections / host reads / CUDA syncs", str(counts[threshold])
        )
    assert predictor.stage_runs["mask_head"] == 1
    assert counts[0.8][0] < counts[0.05][0]
    assert len({reads for _, reads, _ in counts.values()}) == 1, counts
    assert counts[0.8][1] <= 20, counts
    if device == "cuda":
        assert len({syncs for _, _, syncs in counts.values()}) == 1, counts
        assert counts[0.8][2] <= 30, counts


def test_mask_threshold_moves_read_the_device_a_fixed_number_of_times(model, image):
    predictor = _predictor(model, "cpu")
    predictor.predict(image, PredictSettings(score_threshold=0.05, max_detections=300))
    counts = []
    for score, mask_threshold in ((0.8, 0.6), (0.05, 0.7)):
        with HostReads() as reads:
            settings = PredictSettings(score_threshold=score, mask_threshold=mask_threshold, max_detections=300)
            pred = predictor.predict(settings=settings)
        counts.append((len(pred), reads.count))
    assert counts[0][0] < counts[1][0]
    assert counts[0][1] == counts[1][1], counts


# ----- training with AMP -----
@pytest.fixture()
def dataset(tmp_path):
    from synthetic import make_dataset

    return make_dataset(tmp_path / "data", n_images=3)


def _tiny_model(seed: int = 0):  # noqa: ANN202
    from test_training import TINY

    from engine import MaskRCNN

    torch.manual_seed(seed)
    return MaskRCNN(TINY)


def _amp_config():  # noqa: ANN202
    from engine.config import TrainConfig

    return TrainConfig(iterations=4, batch_size=2, lr=0.01, warmup_iters=2, amp=True)


@cuda
def test_amp_training_steps_on_cuda(dataset, tmp_path):
    from engine.checkpoint import load_checkpoint
    from engine.training.loop import LAST, train

    model = _tiny_model()
    dtypes = set()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))
    events = list(train(model, dataset, _amp_config(), tmp_path / "run", device="cuda"))
    steps = [e for e in events if e.kind == "step"]
    assert [e.iteration for e in steps] == [1, 2, 3, 4] and events[-1].kind == "done"
    assert torch.float16 in dtypes, "the forward did not run under float16 autocast"
    for e in steps:
        assert all(math.isfinite(v) for v in e.losses.values()), e.losses
        record("amp training cuda", f"iteration {e.iteration} loss", e.losses["loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    saved, _ = load_checkpoint(tmp_path / "run" / LAST)
    assert all(v.dtype == torch.float32 for v in saved.state_dict().values() if v.is_floating_point())


@cuda
def test_amp_non_finite_loss_skips_the_step_on_cuda(dataset, tmp_path, monkeypatch):
    from engine import MaskRCNN
    from engine.training.loop import train

    forward = MaskRCNN.forward
    count = {"n": 0}

    def flaky(self, images, targets=None):
        losses = forward(self, images, targets)
        count["n"] += 1
        if count["n"] == 2:
            losses["loss_mask"] = losses["loss_mask"] * float("nan")
        return losses

    monkeypatch.setattr(MaskRCNN, "forward", flaky)
    model = _tiny_model()
    events = list(train(model, dataset, _amp_config(), tmp_path / "run", device="cuda"))
    kinds = [e.kind for e in events]
    assert kinds.count("warning") == 1 and kinds.count("step") == 3 and kinds[-1] == "done", kinds
    assert all(torch.isfinite(p).all() for p in model.parameters())


@cuda
def test_amp_resume_continues_on_cuda(dataset, tmp_path):
    """Resumed after two steps, the last two repeat the uninterrupted run's (float16 loss scaling state
    included). Tolerances, not equality: CUDA's RoIAlign backward adds with atomics, in any order."""
    from engine.checkpoint import load_checkpoint
    from engine.training.loop import LAST, train

    cfg = _amp_config()
    full = [e for e in train(_tiny_model(), dataset, cfg, tmp_path / "full", device="cuda") if e.kind == "step"]
    stop_after = iter([False, False, True])
    first = list(train(_tiny_model(), dataset, cfg, tmp_path / "part", device="cuda", cancel=lambda: next(stop_after)))
    assert first[-1].kind == "cancelled"
    rest = [
        e
        for e in train(_tiny_model(seed=123), dataset, cfg, tmp_path / "part", device="cuda", resume=True)
        if e.kind == "step"
    ]
    assert [e.iteration for e in rest] == [3, 4]
    for a, b in zip(full[2:], rest):
        record(
            "amp resume cuda",
            f"iteration {a.iteration} loss full / resumed",
            f"{a.losses['loss']:.6f} / {b.losses['loss']:.6f}",
        )
        for name in a.losses:
            assert b.losses[name] == pytest.approx(a.losses[name], rel=2e-3, abs=1e-5), name
    ref, _ = load_checkpoint(tmp_path / "full" / LAST)
    resumed, _ = load_checkpoint(tmp_path / "part" / LAST)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4), k


# ----- the bundled model and the command line on CUDA -----
@cuda
@bundled
def test_bundled_model_scores_the_same_on_cuda():
    from engine.checkpoint import load_checkpoint
    from engine.data import read_dataset
    from engine.evaluate import evaluate_model

    weights = BUNDLED
    val = read_dataset(REPO / "resources" / "sample" / "splits" / "val.json")
    model, info = load_checkpoint(weights)
    on_cpu = evaluate_model(copy.deepcopy(model), val, class_names=info.class_names)
    on_gpu = evaluate_model(model, val, class_names=info.class_names, device="cuda")
    for kind in ("segm", "bbox"):
        for name in ("AP", "AP50"):
            record("bundled model", f"{kind} {name} cpu / cuda", f"{on_cpu[kind][name]:.4f} / {on_gpu[kind][name]:.4f}")
            assert on_gpu[kind][name] == pytest.approx(on_cpu[kind][name], abs=0.005), (kind, name)


@cuda
@bundled
def test_predict_command_on_cuda(tmp_path):
    from engine.__main__ import main

    weights = BUNDLED
    image = sorted((REPO / "resources" / "sample").glob("*.png"))[0]
    out = tmp_path / "preds.json"
    assert (
        main(["predict", "--weights", str(weights), "--images", str(image), "--out", str(out), "--device", "cuda"]) == 0
    )
    results = json.loads(out.read_text())
    assert len(results) > 10 and all(r["score"] >= 0.5 for r in results)
