"""Atomic file writes: a reader (or a crash) never sees a half-written target.

A write goes to a temp file in the target's folder (``.<name>.<random>.tmp``), is flushed and fsynced,
then renamed over the target. The temp file is locked (``flock``) while it is in use, so that
``remove_stale_temp_files`` can tell the leftovers of a killed writer from a write under way.
A target whose permissions forbid writing (e.g. mode 444) is refused (``ReadOnlyFileError``), not
replaced: the rename alone would ignore the file's permission.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there anyway
    fcntl = None  # type: ignore[assignment]

PROCESS_START = time.time()  # temp files older than this were left by an earlier process
STALE_AFTER_S = 60.0  # ...or by any writer that has not touched them for this long and holds no lock
JSON_ITEMS_PER_CHUNK = 1000
WRITE_SIZE = 1 << 20  # chunks are gathered into writes of about this many bytes


class ReadOnlyFileError(PermissionError):
    """The target exists and its permissions do not allow writing; it was left as it is."""

    def __init__(self, path: Path) -> None:
        self.message = f"{path.name} is read-only (its permissions do not allow writing)"
        super().__init__(errno.EACCES, self.message, str(path))

    def __str__(self) -> str:
        return self.message


def check_writable(path: str | Path) -> None:
    """Raise ``ReadOnlyFileError`` when ``path`` exists and may not be written (no write permission bit
    at all, or none for this user); a missing file is fine (the folder decides when it is created)."""
    target = Path(path)
    try:
        mode = target.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and (not mode & 0o222 or not os.access(target, os.W_OK)):
        raise ReadOnlyFileError(target)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, flush, fsync, os.replace."""
    atomic_write_chunks(path, (data,))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see atomic_write_bytes)."""
    atomic_write_chunks(path, (text,), encoding)


def atomic_write_chunks(path: str | Path, chunks: Iterable[str | bytes], encoding: str = "utf-8") -> None:
    """Write the concatenation of ``chunks`` (str encoded with ``encoding``, or bytes) atomically.

    Chunks are written as they come: a big file is never one big string, and a writer thread that
    produces it piece by piece lets other threads have the GIL in between."""
    target = Path(path)
    check_writable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    lock = _lock(file_descriptor)  # held until the rename: the temp file is in use
    try:
        with os.fdopen(file_descriptor, "wb") as temp_file:
            pending, size = [], 0  # gathered into writes of about WRITE_SIZE bytes
            for chunk in chunks:
                data = chunk.encode(encoding) if isinstance(chunk, str) else bytes(chunk)
                pending.append(data)
                size += len(data)
                if size >= WRITE_SIZE:
                    temp_file.write(b"".join(pending))
                    pending, size = [], 0
            if pending:
                temp_file.write(b"".join(pending))
            temp_file.flush()
            os.fsync(temp_file.fileno())
        _copy_permissions(target, temp_name)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    finally:
        if lock is not None:
            with contextlib.suppress(OSError):
                os.close(lock)
    _fsync_folder(target.parent)


def atomic_write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` as compact JSON atomically, the same bytes as ``json.dumps(document,
    separators=(",", ":"))``, serialised in pieces (``json_chunks``)."""
    atomic_write_chunks(path, json_chunks(document))


class EncodedJSON(str):
    """JSON text already encoded (compact, as ``json_chunks`` writes it): an item of a top-level array that
    ``json_chunks`` writes as it is instead of encoding it again (the autosave's memo of each annotation's
    text, engine/data/io/writers.py)."""

    __slots__ = ()


def json_chunks(document: dict[str, Any], items_per_chunk: int = JSON_ITEMS_PER_CHUNK) -> Iterator[str]:
    """``json.dumps(document, separators=(",", ":"))`` in pieces, joined: the same text. A top-level value
    may also be an iterator (written as a JSON array), made as it is written; an item of a top-level array
    that is an ``EncodedJSON`` is written as it is.

    The arrays at the top level (COCO's images and annotations) are encoded a few items at a time: one
    ``json.dumps`` of a 100 MB document holds the GIL for seconds (the C encoder never lets go), which
    froze the GUI while the autosave thread wrote; small calls let the GUI thread in between them."""
    plain = json.JSONEncoder(separators=(",", ":")).encode

    def encode(item: Any) -> str:
        return item if type(item) is EncodedJSON else plain(item)

    yield "{"
    for index, (key, value) in enumerate(document.items()):
        yield ("," if index else "") + encode(str(key)) + ":"
        if not isinstance(value, (list, Iterator)):
            yield encode(value)
            continue
        items = iter(value)
        yield "["
        first = True
        while batch := list(itertools.islice(items, items_per_chunk)):
            yield ("" if first else ",") + ",".join(map(encode, batch))
            first = False
        yield "]"
    yield "}"


def temp_files(path: str | Path) -> list[Path]:
    """The temp files of atomic writes to ``path`` (``.<name>.*.tmp`` next to it), in use or left over."""
    target = Path(path)
    prefix = f".{target.name}."
    try:
        with os.scandir(target.parent) as entries:
            names = [entry.name for entry in entries if entry.name.startswith(prefix) and entry.name.endswith(".tmp")]
    except OSError:
        return []
    return sorted(target.parent / name for name in names)


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete the temp files that killed writes to ``path`` left behind; returns those deleted.

    Stale: not locked by a writer (where locks exist) and last written before this process started or
    more than STALE_AFTER_S ago. A write under way in this or another process holds its lock; one that
    has just created its file and not locked it yet has a fresh modification time."""
    removed = []
    for temp in temp_files(path):
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime >= max(PROCESS_START, time.time() - STALE_AFTER_S):
                continue
            with open(temp, "rb") as handle:
                if fcntl is not None:
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a writer holds it
                temp.unlink()  # while holding the lock, so no writer can take it in between
                removed.append(temp)
    return removed


def _lock(file_descriptor: int) -> int | None:
    """Lock the temp file (a duplicate descriptor keeps the lock until closed); None where unsupported."""
    if fcntl is None:
        return None
    try:
        duplicate = os.dup(file_descriptor)
    except OSError:
        return None
    try:
        fcntl.flock(duplicate, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks: the age rule alone protects the file
        pass
    return duplicate


def _copy_permissions(target: Path, temp_name: str) -> None:
    """Keep the mode of an existing target; mkstemp creates files readable by the owner only."""
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(temp_name, mode)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable on POSIX; a no-op where folders cannot be opened (Windows)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        folder_descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_descriptor)
        finally:
            os.close(folder_descriptor)
