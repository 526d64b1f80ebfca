"""Errors raised while reading annotations and images; both are ValueErrors so callers can catch either."""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """An annotation file or folder that cannot be read; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ImageLoadError(ValueError):
    """An image that cannot be opened or decoded; the message names the file and what to do."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot load image '{self.path}': {reason}")
