"""The training loop: one code path for the command line, the GUI and torchrun.

``train(...)`` is a generator of ``TrainEvent``s (progress, validation, checkpoints, warnings); the
caller decides how to show them (tqdm, a live plot) and may stop it between steps through ``cancel``.
Under torchrun (WORLD_SIZE > 1) it runs DistributedDataParallel, each process taking its share of
the global batch; per-image loss normalisation and per-sample seeds make N processes equal one.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import load_checkpoint, read_info, save_checkpoint
from engine.config import TrainConfig
from engine.data import Dataset
from engine.model.mask_rcnn import MaskRCNN
from engine.training.events import TrainEvent
from engine.training.samples import TrainingSamples, batch_indices, sample_seed
from engine.training.state import load_train_state, read_train_state_info, save_train_state

LAST = "model.safetensors"
BEST = "model_best.safetensors"
STATE = "train_state.safetensors"


class TrainingError(RuntimeError):
    """Training cannot go on (diverged, wrong classes, ...); the message says what to do."""


# Weights are "exploded" past this many times the largest parameter at the start of the run (at least 1). Training
# moves weights by small multiples at most (weight decay pulls them back; a step is at most lr x the clipped gradient
# norm): the trained models here stay within 3x of their start, while a diverged run is orders of magnitude out
# (lr 1e6: max |w| 3e5 after six steps, from 1.0) and its predictions are garbage or fail.
EXPLOSION_FACTOR = 100.0


def largest_weight(model: torch.nn.Module) -> float:
    """max |w| over the model's floating-point parameters (NaN when one is NaN)."""
    with torch.no_grad():
        peaks = [p.detach().abs().max().float() for p in model.parameters() if p.numel() and p.is_floating_point()]
    if not peaks:
        return 0.0
    stacked = torch.stack(peaks).cpu()  # one transfer from the device
    return float("nan") if torch.isnan(stacked).any() else float(stacked.max())


def weights_problem(model: torch.nn.Module, start_largest: float) -> str:
    """Why the weights must not be saved as the model, '' when they may: a parameter or buffer that is not finite,
    or a parameter beyond EXPLOSION_FACTOR x the largest at the start (``start_largest``, taken as at least 1)."""
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return f"{name} is not finite"
    largest, limit = largest_weight(model), EXPLOSION_FACTOR * max(1.0, start_largest)
    if not largest <= limit:
        return (
            f"the largest weight is {largest:.3g}, over {EXPLOSION_FACTOR:g}x the largest at the start "
            f"({start_largest:.3g})"
        )
    return ""


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str | torch.device) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(device)
    if world <= 1:
        return _Dist(0, 1, device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(rank, world, device)


def scale_jitter_sizes(size: int, jitter: float) -> tuple[int, ...]:
    """The network's input short sides for scale jitter ``jitter`` (AugmentConfig.scale_jitter): from (1 - jitter) *
    size up in steps of 32, ``size`` last (the model draws one per training image and uses the last at test time)."""
    if jitter <= 0:
        return (size,)
    low = int(size * (1 - jitter)) // 32 * 32
    return tuple(range(max(low, 32), size, 32)) + (size,)


def lr_factor(cfg: TrainConfig, iteration: int) -> float:
    """Linear warm-up from ``warmup_factor``, then cosine to 0 or x0.1 steps at ``lr_steps`` fractions."""
    if iteration < cfg.warmup_iters:
        alpha = iteration / max(1, cfg.warmup_iters)
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if cfg.schedule == "cosine":
        progress = min(1.0, iteration / max(1, cfg.iterations))
        return warm * 0.5 * (1 + math.cos(math.pi * progress))
    drops = sum(iteration >= int(f * cfg.iterations) for f in cfg.lr_steps)
    return warm * 0.1**drops


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be sgd or adamw, got {cfg.optimizer!r}")


def _check_classes(model: MaskRCNN, class_names: Sequence[str]) -> None:
    if model.config.num_classes != len(class_names) + 1:
        raise TrainingError(
            f"the model has {model.config.num_classes - 1} classes but the data has {len(class_names)} "
            f"({', '.join(class_names[:8])}); start from scratch or from a checkpoint with the same classes "
            "(the command line re-initialises the class layers when the counts differ)"
        )


def train(
    model: MaskRCNN,
    dataset: Dataset,
    cfg: TrainConfig,
    out_dir: str | Path,
    train_ids: Sequence[int] | None = None,
    val_ids: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    cancel: Callable[[], bool] | None = None,
    resume: bool = False,
    val_dataset: Dataset | None = None,
    half: bool = True,
    keep_best: bool = False,
) -> Iterator[TrainEvent]:
    """Train ``model`` in place on ``dataset``; yields TrainEvents; checkpoints go to ``out_dir``.

    What a run leaves (issue 13, bug 8: three ~118 MB files a run filled the data folder): while it runs, and when
    it stops before its end (cancelled, diverged, killed), ``model.safetensors`` in float32 with the optimiser's
    state beside it, so ``resume`` continues it exactly; once it ends normally, the one model file, in float16
    (``half``; loading restores float32: half the size, detections the same within float16's rounding) and the
    state deleted (there is nothing left to resume). ``keep_best`` also keeps the best validation's weights as
    ``model_best.safetensors`` (float16).

    Validation runs on ``val_ids`` of ``val_dataset`` (default: ``dataset``). Scale jitter
    (``cfg.augment.scale_jitter``) is the network's own: the model's ``config.min_size`` becomes
    ``scale_jitter_sizes`` of its largest size, drawn per image in training and saved with the weights. A
    pixel-scale model trains on random crops of ``cfg.crop_size`` (default: its tile size) network pixels at its
    ``scale_factor``, its scale jitter drawn per crop (engine.training.samples); its scale policy is saved with it.
    """
    dist = _setup_distributed(device)
    out_dir = Path(out_dir)
    train_ids = [im.id for im in dataset.images] if train_ids is None else list(train_ids)
    if cfg.batch_size % dist.world:
        raise TrainingError(f"batch size {cfg.batch_size} does not split over {dist.world} processes")
    pixel = model.config.scale_policy == "pixel-scale"  # crops at the model's scale (engine.training.samples)
    if cfg.augment.scale_jitter and not pixel:
        model.config = model.config.replace(
            min_size=scale_jitter_sizes(max(model.config.min_size), cfg.augment.scale_jitter)
        )
    mc = model.config
    samples = TrainingSamples(
        dataset,
        train_ids,
        max(mc.min_size),
        mc.max_size,
        cfg.augment,
        scale_factor=mc.scale_factor if pixel else None,
        crop_size=cfg.crop_size or mc.tile_size,
    )
    if len(samples) == 0:
        raise TrainingError("no training images: annotate (or mark as reviewed) at least one image")
    class_names = samples.class_names
    _check_classes(model, class_names)
    history: list[dict[str, Any]] = []
    start = 0
    resuming = resume and _resume_pair(out_dir)
    start_largest = largest_weight(model)
    if resuming:
        saved, info = load_checkpoint(out_dir / LAST)
        model.load_state_dict(saved.state_dict())
        history = info.history
        start_largest = float(info.extra.get("start_largest_weight", largest_weight(model)))
    model.to(dist.device).train()
    net: torch.nn.Module = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
    use_amp = cfg.amp and dist.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if resuming:
        start, _ = load_train_state(out_dir / STATE, optimizer, scaler)
    loop = _Loop(model, net, optimizer, scaler, samples, cfg, dist, use_amp, out_dir, class_names, history)
    loop.start_largest, loop.half, loop.keep_best = start_largest, half, keep_best
    loop.meta = {
        "train_config": cfg.to_dict(),
        "train_images": _paths(dataset, train_ids),
        "start_largest_weight": start_largest,
    }
    val_dataset = val_dataset or dataset
    if val_ids:
        loop.meta["val_images"] = _paths(val_dataset, val_ids)
    yield from loop.run(start, val_dataset, val_ids, cancel)


def _resume_pair(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a run to resume: its model and training state written by the same save (each save
    stamps both with one token; a kill between the two writes leaves them apart). Neither file: False (a new run);
    one without the other or two saves apart: TrainingError, nothing is loaded."""
    model_file, state_file = out_dir / LAST, out_dir / STATE
    if not model_file.is_file() and not state_file.is_file():
        return False
    if model_file.is_file() and not state_file.is_file() and "state_stamp" not in read_info(model_file).extra:
        # a finished run keeps no state (nothing was left to do): not a damaged one
        raise TrainingError(
            f"cannot resume: the run in {out_dir} has finished (a finished run keeps its model only); to train on, "
            f"fine-tune from it: --weights {model_file} --out another folder"
        )
    if not (model_file.is_file() and state_file.is_file()):
        have, lack = (LAST, STATE) if model_file.is_file() else (STATE, LAST)
        raise TrainingError(
            f"cannot resume: {out_dir} has {have} but no {lack}; "
            "start a new run (without --resume or in another folder)"
        )
    extra = read_info(model_file).extra  # WeightsError (a user error) when damaged
    try:
        state_iteration, state_extra = read_train_state_info(state_file)
    except ValueError as error:
        raise TrainingError(f"cannot resume: {error}; start a new run without --resume") from error
    model_stamp, state_stamp = extra.get("state_stamp"), state_extra.get("stamp")
    model_iteration = extra.get("iteration", state_iteration)
    if model_stamp != state_stamp or model_iteration != state_iteration:
        raise TrainingError(
            f"cannot resume: {model_file} (iteration {model_iteration}) and {STATE} (iteration {state_iteration}) "
            "are not from the same save (was the run stopped while saving?); start a new run without --resume, "
            f"or fine-tune from --weights {model_file} in another folder"
        )
    return True


def _paths(dataset: Dataset, ids: Sequence[int]) -> list[str]:
    by_id = {im.id: im for im in dataset.images}
    return [str(by_id[i].path) for i in ids]


class _Loop:
    """The state of one run; ``run`` is the iteration loop."""

    def __init__(self, model, net, optimizer, scaler, samples, cfg, dist, use_amp, out_dir, class_names, history):  # noqa: ANN001
        self.model, self.net, self.optimizer, self.scaler = model, net, optimizer, scaler
        self.samples, self.cfg, self.dist, self.use_amp = samples, cfg, dist, use_amp
        self.out_dir, self.class_names, self.history = out_dir, class_names, history
        self.meta: dict[str, Any] = {}
        self.start_largest = largest_weight(model)  # max |w| when the run started (weights_problem)
        self.saved_at: int | None = None  # the iteration of the last model + state written
        self.half = True  # the finished model in float16
        self.keep_best = False  # model_best.safetensors written at each better validation
        self.best_ap = max((h.get("val_mask_AP", -1.0) for h in history), default=-1.0)

    def batch(self, iteration: int) -> tuple[list[torch.Tensor], list[dict]]:
        cfg, dist = self.cfg, self.dist
        indices = batch_indices(len(self.samples), cfg.batch_size, iteration, cfg.seed)
        per_rank = cfg.batch_size // dist.world
        images, targets = [], []
        for slot in range(dist.rank * per_rank, (dist.rank + 1) * per_rank):
            image, target = self.samples.sample(indices[slot], sample_seed(cfg.seed, iteration, slot))
            images.append(image.to(dist.device))
            targets.append({k: v.to(dist.device) if isinstance(v, torch.Tensor) else v for k, v in target.items()})
        return images, targets

    def all_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.dist.world > 1:
            torch.distributed.all_reduce(values)
            values /= self.dist.world
        return values

    def step(self, iteration: int) -> dict[str, float] | None:
        """One optimiser step; None when the loss was not finite (the step is skipped on every process)."""
        lr = self.cfg.lr * lr_factor(self.cfg, iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images, targets = self.batch(iteration)
        with torch.autocast(self.dist.device.type, dtype=torch.float16, enabled=self.use_amp):
            losses = self.net(images, targets)
        total = sum(losses.values())
        names = sorted(losses)
        report = torch.stack([losses[n].detach().float() for n in names] + [total.detach().float()])
        finite = torch.isfinite(report).all().float().reshape(1)
        if self.dist.world > 1:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() < 1:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.grad is not None], self.cfg.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        report = self.all_mean(report).tolist()
        return {**dict(zip(names, report[:-1])), "loss": report[-1], "lr": lr}

    def run(self, start: int, dataset: Dataset, val_ids, cancel) -> Iterator[TrainEvent]:  # noqa: ANN001
        cfg = self.cfg
        total, bad, t0, done_here = cfg.iterations, 0, time.perf_counter(), 0
        for it in range(start, total):
            if cancel is not None and self._agree(cancel()):
                path = self.save(it, state=True, stopped="cancelled")
                yield TrainEvent("cancelled", it, total, message="cancelled; the last checkpoint is kept", path=path)
                return
            record = self.step(it)
            if record is None:
                bad += 1
                yield TrainEvent(
                    "warning", it + 1, total, message=f"non-finite loss at iteration {it + 1}: step skipped"
                )
                if bad >= cfg.max_bad_steps:
                    self.save(it, state=True, stopped="failed")  # a TrainingError of its own when they diverged too
                    raise TrainingError(
                        f"the loss was not finite {bad} times in a row: lower the learning rate (now {cfg.lr}) "
                        "or check the annotations; the weights before the divergence are saved"
                    )
                continue
            bad, done_here = 0, done_here + 1
            elapsed = time.perf_counter() - t0
            rate = done_here * cfg.batch_size / elapsed
            self.history.append({"iteration": it + 1, **record})
            yield TrainEvent(
                "step",
                it + 1,
                total,
                epoch=(it + 1) * cfg.batch_size / len(self.samples),
                losses={k: v for k, v in record.items() if k.startswith("loss")},
                lr=record["lr"],
                images_per_s=rate,
                eta_s=(total - it - 1) * cfg.batch_size / max(rate, 1e-9),
            )
            last = it + 1 == total
            if val_ids and ((cfg.val_every and (it + 1) % cfg.val_every == 0) or last):
                yield self.validate(it + 1, dataset, val_ids)
            if last:
                path = self.finish(total)
                if path:
                    yield TrainEvent("checkpoint", total, total, path=path)
            elif cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0:
                path = self.save(it + 1, state=True)
                if path:
                    yield TrainEvent("checkpoint", it + 1, total, path=path)
        if self.saved_at != total and start < total:  # the last step was skipped (non-finite loss)
            path = self.finish(total)
            if path:
                yield TrainEvent("checkpoint", total, total, path=path)
        yield TrainEvent("done", total, total, path=str(self.out_dir / LAST))

    def finish(self, iteration: int) -> str:
        """The run ended normally: its one model file (float16 unless ``half`` is off) replaces the checkpoint, and
        the optimiser's state, which only a run stopped early needs, goes."""
        path = self.save(iteration, final=True)
        if self.dist.main:
            (self.out_dir / STATE).unlink(missing_ok=True)
        return path

    def _agree(self, flag: bool) -> bool:
        if self.dist.world == 1:
            return bool(flag)
        t = torch.tensor([float(flag)], device=self.dist.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def validate(self, iteration: int, dataset: Dataset, val_ids) -> TrainEvent:  # noqa: ANN001
        from engine.evaluate import evaluate_model

        metrics: dict[str, float] = {}
        if self.dist.main:
            self.model.eval()
            result = evaluate_model(self.model, dataset, val_ids, self.class_names, self.dist.device)
            self.model.train()
            metrics = {f"mask_{k}": v for k, v in result["segm"].items()}
            metrics.update({f"box_{k}": v for k, v in result["bbox"].items()})
            self.history.append(
                {"iteration": iteration, "val_mask_AP": metrics["mask_AP"], "val_mask_AP50": metrics["mask_AP50"]}
            )
            if metrics["mask_AP"] > self.best_ap:
                self.best_ap = metrics["mask_AP"]
                if self.keep_best:
                    self.save(iteration, name=BEST, final=True)
        if self.dist.world > 1:
            torch.distributed.barrier()
        return TrainEvent("validation", iteration, self.cfg.iterations, metrics=metrics)

    def save(
        self, iteration: int, state: bool = False, name: str = LAST, final: bool = False, stopped: str = ""
    ) -> str:
        """Weights (+ optimiser state, both stamped with one token) on the main process; returns the path ('' on the
        others). ``final``: a finished model (float16 when ``half``; no state pairs with it). ``stopped``: why the run
        stops here ("cancelled", "failed"), recorded for the model list. Weights that are not finite or exploded
        (weights_problem) are a TrainingError on every process, and nothing is written: the last good model stays."""
        problem = weights_problem(self.model, self.start_largest)
        if problem:
            raise TrainingError(self._diverged(problem, iteration))
        if state or (final and name == LAST):
            self.saved_at = iteration
        if not self.dist.main:
            return ""
        extra = {**self.meta, "iteration": iteration}
        stamp = f"{iteration}-{uuid.uuid4().hex}"
        if state:
            extra["state_stamp"] = stamp
        if stopped:
            extra["stopped"] = stopped
        half = final and self.half
        path = save_checkpoint(self.model, self.out_dir / name, self.class_names, self.history, extra, half=half)
        if state:
            save_train_state(self.out_dir / STATE, self.optimizer, iteration, self.scaler, extra={"stamp": stamp})
        return str(path)

    def _diverged(self, problem: str, iteration: int) -> str:
        last = self.out_dir / LAST
        try:
            kept = f"{last} of iteration {checkpoint_iteration(last)} is kept" if last.is_file() else "no model written"
        except (OSError, ValueError):
            kept = f"{last} is left as it was"
        return (
            f"training diverged by iteration {iteration} ({problem}); these weights are not saved ({kept}): "
            f"lower the learning rate (now {self.cfg.lr:g}) or check the annotations"
        )


def checkpoint_iteration(path: str | Path) -> int:
    """The iteration a checkpoint of ours was saved at (0 if unknown)."""
    return int(read_info(path).extra.get("iteration", 0))
