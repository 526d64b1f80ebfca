"""Helpers shared by the command-line commands: argument parsing, device choice, user-error handling.

A user error (a wrong path, an unreadable file, weights of the wrong kind, classes that do not match)
ends a command with exit status 2 and one line on stderr that starts with ``error:`` and says what to
do; no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import torch

from engine import devices
from engine.data.errors import DatasetError, ImageLoadError
from engine.evaluate import ClassMismatchError
from engine.interop import WeightsError

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem the user can fix; its message is printed as ``error: <message>``."""


USER_ERRORS = (UserError, DatasetError, ImageLoadError, WeightsError, ClassMismatchError, OSError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a UserError (one ``error:`` line) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see python -m engine {self.prog.split()[-1]} --help)")


def make_parser(command: str, description: str) -> ArgumentParser:
    """Parser for ``python -m engine <command>``."""
    return ArgumentParser(prog=f"python -m engine {command}", description=description)


def number(
    kind: type, low: float | None = None, high: float | None = None, above: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: the text as ``kind`` (int or float) within ``low``..``high`` (``above``: ``low`` itself
    refused); NaN and anything else is argparse's one-line error naming the flag."""
    bounds = {"range": (low, high), "above": above}

    def parse(text: str) -> float:
        from engine.config import in_range, range_text

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not in_range(value, bounds):
            raise argparse.ArgumentTypeError(f"{text} is out of range (allowed {range_text(bounds)})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device auto|cpu|cuda (auto: CUDA when available, else the CPU)."""
    parser.add_argument(
        "--device",
        default="auto",
        choices=devices.DEVICE_CHOICES,
        help="where the model runs: auto (CUDA when available, else CPU), cpu or cuda (default: auto)",
    )


def choose_device(name: str) -> torch.device:
    """engine.devices.choose_device, its DeviceError as a UserError (one ``error:`` line)."""
    try:
        return devices.choose_device(name, "--device")
    except devices.DeviceError as exc:
        raise UserError(str(exc)) from None


def existing_path(path: str | Path, flag: str, kind: str = "any") -> Path:
    """``path`` as a Path when it exists (kind 'file' | 'dir' | 'any'), else a UserError naming ``flag``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{flag} {path}: no such file or folder; check the path")
    if kind == "file" and not path.is_file():
        raise UserError(f"{flag} {path}: is a folder; give the file itself")
    if kind == "dir" and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file; give a folder")
    return path


def output_file(path: str | Path, flag: str) -> Path:
    """A file path to write (its folder is made when written); a UserError when it names an existing folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name such as {path / 'out.json'}")
    return path


TORCH_FILE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: zip archive (current) or raw pickle (legacy)


def load_model(path: str | Path, device: torch.device):  # noqa: ANN201 - (MaskRCNN, CheckpointInfo)
    """``--weights path`` -> (model in eval mode on ``device``, CheckpointInfo); UserError for another kind of file."""
    from engine import hub
    from engine.checkpoint import load_weights

    try:
        path = hub.resolve_if_alias(path)
    except hub.HubWeightsMissing as error:
        raise UserError(str(error)) from error
    path = existing_path(path, "--weights", "file")
    if path.suffix.lower() != ".safetensors":
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith(TORCH_FILE_MAGIC):
            raise UserError(
                f"--weights {path}: not a model weights file (neither a .safetensors checkpoint nor a torch.save "
                "state dict); give a checkpoint written by `python -m engine train` or a torchvision Mask R-CNN .pth"
            )
    try:
        return load_weights(path, device)
    except WeightsError as error:
        raise UserError(
            f"{one_line(error)} (--weights takes a checkpoint written by `python -m engine train` "
            "or a torchvision Mask R-CNN state dict)"
        ) from error


def one_line(message: object) -> str:
    """A message folded onto one line."""
    return " ".join(str(message).split())


def describe_error(error: BaseException) -> str:
    """The one-line text for a user error (OSError messages get the file name and a hint)."""
    if isinstance(error, OSError) and not isinstance(error, (DatasetError, ImageLoadError)):
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or str(error)
        hint = "; check the path and its permissions" if isinstance(error, (PermissionError, FileNotFoundError)) else ""
        return one_line(f"{where}{reason}{hint}")
    return one_line(error)


def run(command: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """Run ``command(argv)``; user errors -> ``error: ...`` on stderr and exit status 2, --help -> 0."""
    try:
        return int(command(list(sys.argv[1:] if argv is None else argv)) or 0)
    except USER_ERRORS as error:
        print(f"error: {describe_error(error)}", file=sys.stderr)
        return USER_ERROR_EXIT
    except SystemExit as exit_request:  # argparse's --help
        code = exit_request.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def warn(message: str, write: Callable[[str], None] | None = None) -> None:
    """One ``warning:`` line on stderr (through tqdm.write when a progress bar is showing)."""
    line = f"warning: {one_line(message)}"
    if write is not None:
        write(line)
    else:
        print(line, file=sys.stderr)


def imply_pixel_scale(changes: dict) -> dict:
    """A scale factor is the factor of pixel-scale: given alone, it switches the model to pixel-scale (the one
    rule for ``train`` and ``defaults``); with --scale short-side it is a contradiction, said as such."""
    if "scale_factor" in changes and changes.setdefault("scale_policy", "pixel-scale") != "pixel-scale":
        raise UserError("--scale-factor is the factor of --scale pixel-scale; leave it out with short-side")
    return changes
