"""Pretrained weights by short name: torch's hub cache, downloaded through torchvision's weights API when absent.

``--weights imagenet`` (ImageNet ResNet-18; ``imagenet:resnet18``, ``imagenet:resnet34`` and ``imagenet:resnet50``
name each) and ``--weights coco`` (torchvision's COCO Mask R-CNN, ResNet-50 FPN) resolve to the files torchvision
itself keeps in ``torch.hub.get_dir()/checkpoints``. A file that is not there is downloaded from the address
torchvision's weights enum gives (``ResNet18_Weights.IMAGENET1K_V1.url``, ...), with a progress bar on stderr,
through ``torch.hub.download_url_to_file`` (a temporary file renamed into place, its hash prefix checked), so a
broken download never leaves a file that looks complete. A caller that shows the progress itself (the trainer's
``--events-jsonl`` for the app's Train panel) passes ``progress``: the file then comes through ``download_file`` here
(torch's downloader takes no callback), in chunks, with the same temporary file, hash check and rename. Without a
network the error names the file, the address and the folder to put it in. The file is then opened as any
torchvision state dict: ``torch.load(weights_only=True)`` in engine.interop, never unpickled code.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.interop import WeightsError


@dataclass(frozen=True)
class Pretrained:
    """One set of published weights: its torchvision weights enum and member, and what a user is told about it."""

    enum: str  # "torchvision.models.ResNet18_Weights" (imported only when the address is needed)
    member: str  # "IMAGENET1K_V1"
    title: str  # "ImageNet ResNet-18"

    def _weights(self):  # noqa: ANN202 - a torchvision WeightsEnum member
        module_name, _, class_name = self.enum.rpartition(".")
        module = __import__(module_name, fromlist=[class_name])
        return getattr(getattr(module, class_name), self.member)

    def url(self) -> str:
        """The address torchvision's weights API gives for these weights."""
        return self._weights().url

    @property
    def megabytes(self) -> float:
        """The download's size, as torchvision's metadata gives it (said before a long download)."""
        return float(self._weights().meta.get("_file_size", 0.0))

    @property
    def stem(self) -> str:
        """The file name before its hash: ``resnet18`` of ``resnet18-f37072fd.pth``."""
        return self.file_name.rsplit("-", 1)[0]

    @property
    def file_name(self) -> str:
        return self.url().rsplit("/", 1)[-1]


# The V1 ImageNet weights: torchvision's COCO Mask R-CNN was itself trained from ResNet-50 V1.
FILES = {
    "imagenet:resnet18": Pretrained("torchvision.models.ResNet18_Weights", "IMAGENET1K_V1", "ImageNet ResNet-18"),
    "imagenet:resnet34": Pretrained("torchvision.models.ResNet34_Weights", "IMAGENET1K_V1", "ImageNet ResNet-34"),
    "imagenet:resnet50": Pretrained("torchvision.models.ResNet50_Weights", "IMAGENET1K_V1", "ImageNet ResNet-50"),
    "coco": Pretrained(
        "torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights",
        "COCO_V1",
        "COCO Mask R-CNN (ResNet-50 FPN)",
    ),
}
ALIASES = {"imagenet": "imagenet:resnet18", "coco:maskrcnn_resnet50_fpn": "coco"}


class HubWeightsMissing(WeightsError):
    """A short name whose file is neither in the hub cache nor downloadable now (no network, say)."""


def is_alias(spec: str | Path) -> bool:
    """A short name (and no file of that name exists)."""
    name = str(spec).lower()
    return (name in FILES or name in ALIASES) and not Path(spec).exists()


def absolute_unless_alias(spec: str | Path) -> str:
    """A short name as it is, else the absolute path (for settings and for processes run in another folder)."""
    return str(spec) if is_alias(spec) else str(Path(spec).expanduser().resolve())


def resolve_if_alias(spec: str | Path, download: bool = True) -> str | Path:
    """``spec`` itself, or the hub-cache file a short name stands for (downloaded when absent; HubWeightsMissing
    when that fails)."""
    return resolve(spec, download) if is_alias(spec) else spec


def hub_checkpoints() -> Path:
    """The folder torchvision downloads weights into (``$TORCH_HOME/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def pretrained(spec: str | Path) -> Pretrained:
    """The Pretrained a short name stands for; KeyError naming the known names otherwise."""
    name = ALIASES.get(str(spec).lower(), str(spec).lower())
    if name not in FILES:
        raise KeyError(f"{spec}: not a known weights name ({', '.join(sorted(FILES))})")
    return FILES[name]


def cached(spec: str | Path) -> Path | None:
    """The hub-cache file of a short name when it is there (any version of it: the hash after "-" varies)."""
    stem = pretrained(spec).stem
    folder = hub_checkpoints()
    found = sorted(folder.glob(f"{stem}-*.pth")) if folder.is_dir() else []
    return found[-1] if found else None


Progress = Callable[[int, int], None]  # (bytes done, total bytes; 0 when the server does not say)


def resolve(spec: str | Path, download: bool = True, progress: Progress | None = None) -> Path:
    """A short name (``imagenet``, ``imagenet:resnet50``, ``coco``) -> its file in the hub cache, downloaded into it
    first when absent (``download``); HubWeightsMissing, naming the file, address and folder, when it cannot be had.
    ``progress``: called as the download goes (see download_file) instead of torch's bar on stderr."""
    weights = pretrained(spec)
    found = cached(spec)
    if found is not None:
        return found
    folder = hub_checkpoints()
    target = folder / weights.file_name
    url = weights.url()
    advice = f"download {url} into that folder (or pass the file's path to --weights)"
    if not download:
        raise HubWeightsMissing(f"{spec}: no {weights.stem}-*.pth in the torch hub cache {folder}; {advice}")
    print(f"downloading {weights.title} ({weights.megabytes:.0f} MB) from {url} to {target}", file=sys.stderr)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if progress is None:
            # torch.hub's own downloader (as load_state_dict_from_url uses): a temporary file in the folder, the
            # hash prefix in the file name checked, then a rename; progress on stderr.
            torch.hub.download_url_to_file(url, str(target), hash_prefix=_hash_prefix(weights.file_name), progress=True)
        else:
            download_file(url, target, _hash_prefix(weights.file_name), progress)
    except (urllib.error.URLError, OSError, RuntimeError) as error:  # RuntimeError: torch.hub's hash mismatch
        reason = getattr(error, "reason", None) or error
        raise HubWeightsMissing(
            f"{spec}: {weights.file_name} is not in the torch hub cache {folder} and could not be downloaded "
            f"({type(error).__name__}: {reason}); {advice}"
        ) from error
    if not target.is_file():
        raise HubWeightsMissing(f"{spec}: the download did not leave {target}; {advice}")
    return target


CHUNK = 1 << 16  # bytes read at a time


def download_file(
    url: str, target: Path, hash_prefix: str | None, progress: Progress, min_interval_s: float = 0.5, timeout_s=60.0
) -> None:
    """``url`` -> ``target``: read in chunks into a temporary file in target's folder, its sha256 checked against
    ``hash_prefix`` (torch's convention: the digest starts with it) and only then renamed into place, so an
    interrupted or corrupt download leaves no file (RuntimeError on a mismatch, as torch's). ``progress(done, total)``
    is called with 0 first, then at most every ``min_interval_s`` or 1 % of ``total`` (one line per call goes to the
    app: a call per 64 KiB chunk would be 2,700 for COCO), and with ``total`` at the end."""
    target = Path(target)
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - torchvision's https address
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else 0
        step = max(1, total // 100)
        digest = hashlib.sha256()
        done, last_done, last_time = 0, 0, time.monotonic()
        handle = tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
        )
        try:
            with handle:
                progress(0, total)
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if done - last_done >= step or now - last_time >= min_interval_s:
                        progress(done, total)
                        last_done, last_time = done, now
            if total and done != total:
                raise OSError(f"the download stopped at {done} of {total} bytes")
            if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
                raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{digest.hexdigest()}")')
            os.replace(handle.name, target)
        except BaseException:  # Ctrl+C or a cancelled trainer included: no partial file stays behind
            Path(handle.name).unlink(missing_ok=True)
            raise
    if done != last_done or done == 0:  # the end, said once (a server that gave no length: the size now known)
        progress(done, total or done)


def _hash_prefix(file_name: str) -> str | None:
    """The sha256 prefix torchvision writes into its file names (``resnet18-f37072fd.pth`` -> ``f37072fd``)."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match else None
