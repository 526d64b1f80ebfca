"""The resumable part of a run besides the weights: optimizer, LR schedule, AMP scaler, iteration.

Stored as safetensors (tensors) + JSON header metadata (everything else), so no pickle is involved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from engine.data.io.atomic import atomic_write_bytes

FORMAT = "maskrcnn-studio-train-state/1"


def save_train_state(
    path: str | Path,
    optimizer: torch.optim.Optimizer,
    iteration: int,
    scaler: torch.amp.GradScaler | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the optimizer's tensors and scalars, the iteration and the scaler state atomically."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    metadata = {
        "format": FORMAT,
        "iteration": str(iteration),
        "param_groups": json.dumps(state["param_groups"]),
        "scalars": json.dumps(scalars),
        "scaler": json.dumps(scaler.state_dict() if scaler is not None and scaler.is_enabled() else {}),
        "extra": json.dumps(extra or {}),
    }
    if not tensors:  # safetensors needs at least one tensor
        tensors["_empty"] = torch.zeros(1)
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def read_train_state_info(path: str | Path) -> tuple[int, dict[str, Any]]:
    """(iteration, extra) of a training state file, from its header only; ValueError when it is not one."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except SafetensorError as error:
        raise ValueError(f"{path}: not a readable training state file ({error})") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training state file")
    try:
        return int(meta["iteration"]), dict(json.loads(meta.get("extra", "{}")))
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: damaged training state ({error})") from error


def load_train_state(
    path: str | Path, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None
) -> tuple[int, dict[str, Any]]:
    """Restore optimizer (and scaler) state; returns (iteration, extra)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a training state file")
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "_empty"}
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in json.loads(meta["scalars"]).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    scaler_state = json.loads(meta.get("scaler", "{}"))
    if scaler is not None and scaler_state:
        scaler.load_state_dict(scaler_state)
    return int(meta["iteration"]), json.loads(meta.get("extra", "{}"))
