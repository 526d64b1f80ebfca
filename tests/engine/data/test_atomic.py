"""engine/data/io/atomic.py: a read-only target is refused, not replaced; JSON written in pieces is the
same text; the temp files of killed writes are removed and those in use are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data.io import atomic
from engine.data.io.atomic import (
    ReadOnlyFileError,
    atomic_write_chunks,
    atomic_write_json,
    atomic_write_text,
    json_chunks,
    remove_stale_temp_files,
    temp_files,
)
from engine.data.io.writers import coco_document, write_coco
from tests.engine.data.test_data_writers import studio_dataset

LONG_AGO = atomic.PROCESS_START - 3600


def test_a_read_only_file_is_refused_and_left_as_it_is(tmp_path):
    target = tmp_path / "annotations.json"
    atomic_write_text(target, "old")
    os.chmod(target, 0o444)  # in a writable folder: the rename alone would replace it (even as root)
    with pytest.raises(ReadOnlyFileError, match=r"annotations\.json is read-only") as caught:
        atomic_write_text(target, "new")
    assert isinstance(caught.value, PermissionError) and caught.value.filename == str(target)
    assert target.read_text() == "old" and (target.stat().st_mode & 0o777) == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.json"]  # no temp file either
    os.chmod(target, 0o644)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o644


def test_chunks_are_written_as_they_come(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_chunks(target, iter(["ab", b"cd", "é"]))
    assert target.read_bytes() == b"abcd" + "é".encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), json_values | st.lists(json_values, max_size=7), max_size=5), st.integers(1, 4)
)
def test_json_in_pieces_is_the_same_text_as_json_dumps(document, items_per_chunk):
    text = "".join(json_chunks(document, items_per_chunk))
    assert text == json.dumps(document, separators=(",", ":"))


def test_a_top_level_iterator_is_written_as_an_array_as_it_is_made():
    made = []

    def annotations():  # noqa: ANN202
        for i in range(5):
            made.append(i)
            yield {"id": i}

    pieces = json_chunks({"images": [], "annotations": annotations(), "n": 1}, items_per_chunk=2)
    assert next(pieces) == "{" and made == []  # nothing made before it is written
    text = "{" + "".join(pieces)
    assert text == json.dumps(
        {"images": [], "annotations": [{"id": i} for i in range(5)], "n": 1}, separators=(",", ":")
    )


def test_write_coco_streams_the_same_bytes_as_the_whole_document(tmp_path):
    dataset = studio_dataset(tmp_path / "project")
    write_coco(dataset, tmp_path / "a.json")
    whole = json.dumps(coco_document(dataset, tmp_path), separators=(",", ":"))
    assert (tmp_path / "a.json").read_text() == whole


def test_atomic_write_json_reads_back(tmp_path):
    document = {"images": [{"id": i} for i in range(2500)], "info": {"a": [1, 2]}, "empty": []}
    atomic_write_json(tmp_path / "a.json", document)
    assert json.loads((tmp_path / "a.json").read_text()) == document


def make_temp(folder, name: str, age_from=None):  # noqa: ANN001, ANN201
    path = folder / name
    path.write_bytes(b"{half a fi")
    if age_from is not None:
        os.utime(path, (age_from, age_from))
    return path


def test_stale_temp_files_are_removed_and_others_kept(tmp_path):
    target = tmp_path / "annotations.json"
    target.write_text("{}")
    left_by_a_killed_run = make_temp(tmp_path, ".annotations.json.k1ll3d.tmp", LONG_AGO)
    just_created = make_temp(tmp_path, ".annotations.json.fr3sh.tmp")  # a writer's, not locked yet
    other_file = make_temp(tmp_path, ".other.json.old.tmp", LONG_AGO)
    not_ours = make_temp(tmp_path, "annotations.json.bak", LONG_AGO)
    assert temp_files(target) == sorted([left_by_a_killed_run, just_created])
    assert remove_stale_temp_files(target) == [left_by_a_killed_run]
    assert not left_by_a_killed_run.exists()
    assert just_created.exists() and other_file.exists() and not_ours.exists() and target.exists()
    assert remove_stale_temp_files(tmp_path / "missing" / "annotations.json") == []


@pytest.mark.skipif(atomic.fcntl is None, reason="no flock on this platform")
def test_a_temp_file_in_use_is_locked_and_never_removed(tmp_path):
    """Even when it looks old: a write under way in another process holds its temp file's lock."""
    target = tmp_path / "annotations.json"
    seen = []

    def chunks():  # noqa: ANN202
        yield "{"
        (temp,) = temp_files(target)
        os.utime(temp, (LONG_AGO, LONG_AGO))  # as old as a leftover
        seen.append(remove_stale_temp_files(target))
        seen.append(temp.exists())
        yield "}"

    atomic_write_chunks(target, chunks())
    assert seen == [[], True] and target.read_text() == "{}" and temp_files(target) == []


def test_the_temp_file_of_a_killed_writer_is_removed_by_the_next_process(tmp_path):
    """A writer killed with SIGKILL mid-write leaves its temp file; a later process removes it (older
    than that process, and its lock died with the writer)."""
    target = tmp_path / "annotations.json"
    atomic_write_text(target, '{"old": 1}')
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from engine.data.io.atomic import atomic_write_chunks\n"
            "def chunks():\n"
            "    yield '{\"new\":'\n"
            "    print('writing', flush=True)\n"
            "    time.sleep(60)\n"
            "    yield '1}'\n"
            "atomic_write_chunks(sys.argv[1], chunks())\n",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        (temp,) = temp_files(target)
        assert remove_stale_temp_files(target) == []  # in use (locked, and newer than this process)
    finally:
        writer.kill()
        writer.wait()
    assert temp.exists() and target.read_text() == '{"old": 1}'  # the kill left the old file whole
    time.sleep(0.05)
    cleaner = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom engine.data.io.atomic import remove_stale_temp_files\n"
            "print(len(remove_stale_temp_files(sys.argv[1])))",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert cleaner.stdout.strip() == "1" and temp_files(target) == []
