"""Where the engine runs: the one device chooser and the one thread-count rule, for the CLI and the app.

- ``choose_device``: "auto" takes the GPU when torch sees one; asking for CUDA without one is a
  ``DeviceError`` that says what to do (the CLI prints it as one ``error:`` line, the app as a banner).
- ``worker_threads``: torch threads for work that runs beside a GUI (inference, a training process
  started by the app): every core but one, so the GUI thread always has a core of its own
  (benchmarks/gui_stall.py measured that this, not a lower priority, keeps the event loop smooth).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device that cannot be used here; the message says what to choose instead."""


def choose_device(name: str, option: str = "Device") -> torch.device:
    """'auto' | 'cpu' | 'cuda' (or 'cuda:N') -> torch.device; ``option`` names the choice in messages
    (the CLI passes "--device", the app its Device box)."""
    import torch  # here, not at the top: the app imports this module before it needs torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "this PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"{option} {name} was asked for, but {build}; use {option} cpu (or auto)")
        return torch.device(name)
    if name != "cpu":
        raise DeviceError(f"{option}: unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")
    return torch.device("cpu")


def worker_threads(cores: int | None = None) -> int:
    """Torch threads for work beside a GUI: all cores but one (at least one)."""
    return max(1, (cores if cores is not None else os.cpu_count() or 2) - 1)
