"""Issue 13, bug 8: the Model panel lists the folder's runs, marks the ones cancelled or stopped before their end, and
deletes a run (after a confirmation: its folder goes from the disk), never the model in use. What a run leaves on
disk (one float16 model once finished; the state only while it can be resumed) is tested with the trainer in
tests/engine/test_train.py and with the Train panel in tests/gui/test_train_panel.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from engine.checkpoint import save_checkpoint
from tests.gui.conftest import CLASS_NAMES, Driver, tiny_model


def make_run(folder: Path, iteration: int, total: int, stopped: str = "", state: bool = False) -> Path:
    """A run folder as the trainer leaves it: finished (float16, no state) or stopped early (float32 + state)."""
    folder.mkdir(parents=True)
    extra = {"iteration": iteration, "train_config": {"iterations": total}}
    if stopped:
        extra["stopped"] = stopped
    model = folder / "model.safetensors"
    save_checkpoint(tiny_model(), model, CLASS_NAMES, extra=extra, half=not state)
    if state:
        (folder / "train_state.safetensors").write_bytes(b"\0" * 1000)  # (the list only looks whether it is there)
    return model


@pytest.fixture
def runs(ready: Driver) -> dict[str, Path]:
    models = ready.project.root / "models"
    made = {
        "done": make_run(models / "20260101-090000", 40, 40),
        "cancelled": make_run(models / "20260101-100000", 12, 40, "cancelled", state=True),
        "killed": make_run(models / "20260101-110000", 8, 40, state=True),
    }
    ready.load_model(made["done"])  # (in use, and the list refreshed)
    ready.wait_until(lambda: ready.model_path() == str(made["done"]) and ready.is_idle(), timeout=30000)
    return made


def answer(monkeypatch, button: QMessageBox.StandardButton) -> list[str]:
    asked: list[str] = []

    def question(_parent, _title, text, *_args, **_kwargs):  # noqa: ANN001, ANN202
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


def test_the_runs_are_listed_marked_and_deleted_on_confirmation(ready: Driver, runs, monkeypatch):
    app = ready
    rows = app.runs_listed()
    assert [row.split("  ")[0] for row in rows] == ["20260101-110000", "20260101-100000", "20260101-090000"]
    assert "stopped at 8 / 40" in rows[0] and "cancelled at 12 / 40" in rows[1]
    assert "cancelled" not in rows[2] and "stopped" not in rows[2] and rows[2].endswith("(in use)")

    # "No": nothing goes
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    app.choose_run(1)
    app.press_delete_run()
    assert asked and "20260101-100000" in asked[0] and runs["cancelled"].is_file()

    # "Yes": the run's folder (model and state) leaves the disk and the list
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    app.choose_run(1)
    app.press_delete_run()
    assert not runs["cancelled"].parent.exists()
    assert [row.split("  ")[0] for row in app.runs_listed()] == ["20260101-110000", "20260101-090000"]
    assert "Deleted run 20260101-100000" in app.status()


def test_the_model_in_use_is_not_deleted_from_under_the_app(ready: Driver, runs, monkeypatch):
    app = ready
    asked = answer(monkeypatch, QMessageBox.StandardButton.Yes)
    app.choose_run(2)  # the finished run, in use
    app.press_delete_run()
    assert not asked and runs["done"].is_file()
    assert "is the model in use: choose another model" in app.error()

    # switching first (Use on another run), then it can go
    app.choose_run(0)
    app.press_use_run()
    app.wait_until(lambda: app.model_path() == str(runs["killed"]) and app.is_idle(), timeout=30000)
    app.choose_run(2)
    app.press_delete_run()
    assert asked and not runs["done"].parent.exists()
    assert app.model_path() == str(runs["killed"])
