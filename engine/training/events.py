"""What a training run reports, as typed ``TrainEvent``s, and their one-line JSON form (``train --events-jsonl``).

No torch here: the app reads the trainer process's lines back into TrainEvents without loading it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

# Each kind and the fields it fills (written to JSON even when at their default).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("train_images", "val_images", "class_names"),
    "step": ("iteration", "total", "epoch", "losses", "lr", "images_per_s", "eta_s"),
    "validation": ("iteration", "total", "metrics"),
    "checkpoint": ("iteration", "total", "path"),
    "warning": ("iteration", "total", "message"),
    "done": ("iteration", "total", "path"),
    "cancelled": ("iteration", "total", "message", "path"),
    # before "start", while --weights coco / imagenet downloads into the hub cache: message is the weights' title
    "download": ("message", "path", "bytes_done", "bytes_total"),
}
EVENT_KINDS = tuple(KIND_FIELDS)


@dataclass(frozen=True)
class TrainEvent:
    """One thing that happened in a run; ``kind`` is one of KIND_FIELDS, which names the fields it fills.

    start (written by the command line before the first step): the image counts and class names; step: losses
    ({"loss": total, "loss_<part>": ...}), lr, speed and ETA; validation: metrics (mask_AP, mask_AP50, box_AP, ...);
    checkpoint, done: the model's path; warning, cancelled: a message for the user; download (before start): the
    pretrained weights being downloaded (message: their title, path: the file, bytes_done / bytes_total; the total
    is 0 when the server does not say). An app of an earlier version skips the download kind (from_json: None).
    """

    kind: str
    iteration: int = 0
    total: int = 0
    epoch: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    images_per_s: float = 0.0
    eta_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    path: str = ""
    train_images: int = 0
    val_images: int = 0
    class_names: list[str] = field(default_factory=list)
    bytes_done: int = 0
    bytes_total: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown training event kind {self.kind!r} (one of {', '.join(EVENT_KINDS)})")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``kind``, the fields of its kind, and any other field not at its default."""
        blank, own = TrainEvent(self.kind), KIND_FIELDS[self.kind]
        names = [f.name for f in dataclasses.fields(self)]
        keep = [n for n in names if n == "kind" or n in own or getattr(self, n) != getattr(blank, n)]
        return {name: getattr(self, name) for name in keep}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainEvent:
        """``to_dict``'s form back (fields it left out take their defaults); keys of other versions are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, line: str | bytes) -> TrainEvent | None:
        """One line of ``train --events-jsonl`` -> its TrainEvent; None for a line that is not one (a library's
        print, a kind of a later version)."""
        try:
            data = json.loads(line)
            return cls.from_dict(data) if isinstance(data, dict) else None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError):
            return None
