"""The AutoSaver on its own (no window): a read-only file is not replaced and Save As writes elsewhere;
a success clears a failure and a failure reported late never comes back; opening a project removes the
temp files of killed saves; the snapshot. Steady editing and kills: test_autosave_pressure.py."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from engine.data import Category, Dataset, ImageRecord, Instance, read_dataset, write_coco
from engine.data.io import atomic
from gui.session.project import Project
from gui.workers import autosave
from gui.workers.autosave import AutoSaver


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".annotations.json.*.tmp"))


def small_dataset(folder: Path) -> Dataset:
    """One 100x100 image with one polygon instance; saved to ``folder``/annotations.json."""
    folder.mkdir(parents=True, exist_ok=True)
    record = ImageRecord("a.png", 100, 100, [Instance(1, [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]])])
    return Dataset(
        folder, [record], [Category(1, "cell")], source_format="coco", source_path=folder / "annotations.json"
    )


def add_instance(dataset: Dataset, saver: AutoSaver) -> None:
    """An edit as the editor makes it: a new instance list on the record, then ``edited()``."""
    record = dataset.images[0]
    x = 5.0 + len(record.instances)
    record.instances = [*record.instances, Instance(1, [[x, 50.0, x + 20, 50.0, x + 20, 70.0]])]
    saver.edited()


@pytest.fixture
def saver(qtbot):  # noqa: ANN001
    autosaver = AutoSaver()
    events: list[tuple[str, object]] = []
    autosaver.saved.connect(lambda path: events.append(("saved", path)))
    autosaver.failed.connect(lambda message: events.append(("failed", message)))
    autosaver.dirty_changed.connect(lambda dirty: events.append(("dirty", dirty)))
    autosaver.events = events
    yield autosaver
    autosaver.shutdown()


def annotations_in(path: Path) -> int:
    return len(json.loads(path.read_text())["annotations"])


def test_a_read_only_annotations_file_is_not_replaced_and_save_as_writes_elsewhere(qtbot, tmp_path, saver):
    dataset = small_dataset(tmp_path / "project")
    path = dataset.source_path
    write_coco(dataset, path)
    os.chmod(path, 0o444)  # read-only file in a writable folder (the rename used to replace it, mode and all)
    old_bytes = path.read_bytes()
    saver.attach(dataset, path)
    add_instance(dataset, saver)

    assert not saver.flush()
    assert path.read_bytes() == old_bytes and (path.stat().st_mode & 0o777) == 0o444
    assert "annotations.json" in saver.last_error and "read-only" in saver.last_error
    assert "Save As" in saver.last_error and "chmod" in saver.last_error  # what to do
    assert saver.events[-1] == ("failed", saver.last_error) and saver.dirty
    assert len(dataset.images[0].instances) == 2  # the edits stay in memory
    assert temp_files(path.parent) == []

    add_instance(dataset, saver)  # the autosave of the next edit fails the same way, at once
    qtbot.waitUntil(lambda: saver.events[-1][0] == "failed" and len(saver.events) > 3, timeout=5000)
    assert path.read_bytes() == old_bytes

    elsewhere = tmp_path / "copy" / "mine.json"
    assert saver.save_as(elsewhere)
    assert saver.path == elsewhere and not saver.dirty and saver.last_error == ""
    assert saver.events[-2:] == [("saved", str(elsewhere)), ("dirty", False)]  # clears the failure
    assert annotations_in(elsewhere) == 3 and path.read_bytes() == old_bytes
    assert Project.from_dataset(dataset).annotation_path() == elsewhere  # the project saves there now
    reread = read_dataset(elsewhere)
    assert reread.image_path(reread.images[0]) == dataset.image_path(dataset.images[0])  # image paths still right
    add_instance(dataset, saver)
    qtbot.waitUntil(lambda: not saver.dirty, timeout=5000)
    assert annotations_in(elsewhere) == 4 and path.read_bytes() == old_bytes


def test_save_as_to_a_file_that_cannot_be_written_changes_nothing(qtbot, tmp_path, saver):
    dataset = small_dataset(tmp_path / "project")
    saver.attach(dataset, dataset.source_path)
    add_instance(dataset, saver)
    blocked = tmp_path / "blocked.json"
    blocked.write_text("{}")
    os.chmod(blocked, 0o444)
    assert not saver.save_as(blocked)
    assert "read-only" in saver.last_error and saver.events[-1][0] == "failed"
    assert saver.path == dataset.source_path == tmp_path / "project" / "annotations.json" and saver.dirty
    assert blocked.read_text() == "{}"
    assert saver.flush() and annotations_in(saver.path) == 2 and saver.last_error == ""


def test_a_success_after_a_failure_clears_it_and_a_late_failure_never_comes_back(qtbot, tmp_path, saver, monkeypatch):
    """The autosave thread fails (disk full) while the user presses Ctrl+S with space again: the flush
    writes the edits; the thread's failure, arriving after, must not bring "Could not save" back."""
    dataset = small_dataset(tmp_path / "project")
    saver.attach(dataset, dataset.source_path)
    real_write = autosave.write_coco

    def full_disk_on_the_thread(data, path):  # noqa: ANN001, ANN202
        if threading.current_thread() is not threading.main_thread():
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(data, path)

    monkeypatch.setattr(autosave, "write_coco", full_disk_on_the_thread)
    add_instance(dataset, saver)
    saver.save_soon()
    qtbot.waitUntil(lambda: saver.events[-1][0] == "failed", timeout=5000)  # shown...
    assert "No space left on device" in saver.last_error
    assert saver.flush() and saver.last_error == ""  # ...and cleared by the next success
    assert saver.events[-2:] == [("saved", str(saver.path)), ("dirty", False)]

    add_instance(dataset, saver)
    saver.save_soon()
    served = threading.Event()
    saver.jobs.call(served.set)  # runs on the thread after the failing write and its report
    assert served.wait(10)
    assert saver.flush() and saver.last_error == ""  # Ctrl+S, before the thread's report is delivered
    qtbot.wait(200)  # the thread's failure arrives now: moot, the version is on disk
    assert saver.last_error == "" and saver.events[-1] == ("dirty", False)
    assert [kind for kind, _ in saver.events].count("failed") == 1 and annotations_in(saver.path) == 3


def test_an_older_save_arriving_after_a_newer_failure_does_not_hide_it(qtbot, tmp_path, saver, monkeypatch):
    dataset = small_dataset(tmp_path / "project")
    saver.attach(dataset, dataset.source_path)
    add_instance(dataset, saver)
    saver.save_soon()
    served = threading.Event()
    saver.jobs.call(served.set)
    assert served.wait(10)  # version 1 written by the thread; its report is not delivered yet

    def full_disk(data, path):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(autosave, "write_coco", full_disk)
    add_instance(dataset, saver)
    assert not saver.flush() and "No space" in saver.last_error
    qtbot.wait(200)  # the report of version 1 arrives after the failure of version 2
    assert "No space" in saver.last_error and saver.events[-1][0] == "failed" and saver.dirty


def test_opening_a_project_removes_the_temp_files_of_killed_saves(qtbot, tmp_path, saver):
    dataset = small_dataset(tmp_path / "project")
    path = dataset.source_path
    long_ago = atomic.PROCESS_START - 3600
    leftovers = [path.parent / f".annotations.json.k{i}.tmp" for i in range(3)]
    for leftover in leftovers:
        leftover.write_bytes(b"\x00" * 1000)
        os.utime(leftover, (long_ago, long_ago))
    fresh = path.parent / ".annotations.json.n0w.tmp"  # a save under way in another process, say
    fresh.write_bytes(b"{")
    saver.attach(dataset, path)
    qtbot.waitUntil(lambda: temp_files(path.parent) == [fresh], timeout=5000)
    assert saver.ensure_file() and annotations_in(path) == 1 and temp_files(path.parent) == [fresh]


def test_the_snapshot_shares_the_instances_and_their_lists(tmp_path):
    dataset = small_dataset(tmp_path / "project")
    copy_ = autosave.snapshot(dataset)
    record, twin = dataset.images[0], copy_.images[0]
    assert twin is not record and twin.instances is record.instances  # shared: edits swap lists, never change one
    record.instances = []
    record.state = "reviewed"
    assert len(twin.instances) == 1 and twin.state == "not_run"
    assert copy_.categories[0] is not dataset.categories[0] and copy_.categories == dataset.categories
    assert copy_.root == dataset.root and copy_.source_path == dataset.source_path


def test_the_autosave_keeps_what_the_coco_file_held_that_the_studio_does_not_use(qtbot, tmp_path, saver):
    """The snapshot copies every field (the extra keys too): metadata survives the autosave thread."""
    folder = tmp_path / "project"
    document = {
        "info": {"year": 2017, "description": "mine"},
        "licenses": [{"id": 1, "name": "CC"}],
        "images": [{"id": 7, "file_name": "a.png", "width": 100, "height": 100, "coco_url": "http://x/a.png"}],
        "annotations": [
            {"id": 3, "image_id": 7, "category_id": 1, "segmentation": [[10, 10, 40, 10, 40, 40]], "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "cell", "supercategory": "thing"}],
    }
    folder.mkdir()
    (folder / "annotations.json").write_text(json.dumps(document))
    dataset = read_dataset(folder / "annotations.json")
    saver.attach(dataset, folder / "annotations.json")
    add_instance(dataset, saver)
    qtbot.waitUntil(lambda: not saver.dirty, timeout=5000)  # written by the autosave thread
    written = json.loads((folder / "annotations.json").read_text())
    assert written["info"] == document["info"] and written["licenses"] == document["licenses"]
    assert written["images"][0]["coco_url"] == "http://x/a.png" and len(written["annotations"]) == 2
    assert written["categories"][0]["supercategory"] == "thing"


def test_a_report_about_the_previous_project_is_dropped(qtbot, tmp_path, saver, monkeypatch):
    first, second = small_dataset(tmp_path / "first"), small_dataset(tmp_path / "second")
    saver.attach(first, first.source_path)

    def full_disk(data, path):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(autosave, "write_coco", full_disk)
    add_instance(first, saver)
    saver.save_soon()
    served = threading.Event()
    saver.jobs.call(served.set)
    assert served.wait(10)  # the first project's failure is on its way to the GUI thread
    monkeypatch.undo()
    saver.attach(second, second.source_path)  # another project opens (the user discarded the edits)
    add_instance(second, saver)  # version 1 again
    qtbot.wait(200)
    assert saver.last_error == "" and "failed" not in [kind for kind, _ in saver.events]
    qtbot.waitUntil(lambda: not saver.dirty, timeout=5000)
    assert annotations_in(second.source_path) == 2 and not first.source_path.exists()
