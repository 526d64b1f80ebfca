"""Reading JSON annotation files with errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.data.errors import DatasetError

MAX_ID = 2**53
"""Integers read from a file (ids, sizes) must lie strictly between -MAX_ID and MAX_ID: every JSON reader
and numpy's int64 hold them exactly."""


def load_json(path: Path) -> Any:
    """Parse a JSON file; raises DatasetError naming the file, line and column when it is not valid JSON."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(path, f"not a UTF-8 text file ({error.reason} at byte {error.start})") from error
    except OSError as error:
        raise DatasetError(path, f"cannot read the file ({error.strerror or error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            path, f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}; fix or remove the file"
        ) from error
    except RecursionError as error:
        raise DatasetError(path, "its JSON is nested too deeply to be an annotation file") from error
    except ValueError as error:  # Python refuses integers of more than 4300 digits
        raise DatasetError(path, "holds a number with thousands of digits; not an annotation file") from error
    except MemoryError as error:
        raise DatasetError(path, "the file is too large to read into memory") from error


def json_kind(document: Any) -> str:
    """'coco', 'labelme' or 'other' for a parsed JSON document."""
    if not isinstance(document, dict):
        return "other"
    if "shapes" in document:
        return "labelme"
    if any(key in document for key in ("images", "annotations", "categories")):
        return "coco"
    return "other"


def require(mapping: Any, key: str, kinds: type | tuple[type, ...], path: Path, where: str) -> Any:
    """mapping[key] checked to be of ``kinds``; raises DatasetError naming ``where`` in the file otherwise."""
    if not isinstance(mapping, dict):
        raise DatasetError(path, f"{where} is not a JSON object")
    if key not in mapping or mapping[key] is None:
        raise DatasetError(path, f"{where} has no '{key}'")
    value = mapping[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise DatasetError(path, f"{where}: '{key}' must be {_kind_names(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise DatasetError(path, f"{where}: '{key}' must be {_kind_names(kinds)}, got {type(value).__name__}")
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_ID < value < MAX_ID:
        raise DatasetError(path, f"{where}: '{key}' is {len(str(abs(value)))} digits long, too large to be used")
    return value


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = [k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,))]
    readable = {"int": "an integer", "str": "a string", "list": "a list", "dict": "an object"}
    return " or ".join(readable.get(name, name) for name in names)
