"""Start-up choices of gui/app.py: arguments, then the last session, then the bundled sample."""

from __future__ import annotations

from gui import app


def test_startup_prefers_arguments_then_the_last_session_then_the_bundled_sample(tmp_path, monkeypatch, settings):
    sample, models = tmp_path / "sample", tmp_path / "models"
    sample.mkdir()
    (sample / "a.png").write_bytes(b"")
    models.mkdir()
    (models / "m.safetensors").write_bytes(b"")
    monkeypatch.setattr(app, "SAMPLE_FOLDER", sample)
    monkeypatch.setattr(app, "MODELS_FOLDER", models)
    assert app.choose_startup(app.parse_args([]), settings) == (str(sample), str(models / "m.safetensors"))
    last = tmp_path / "last"
    last.mkdir()
    settings.remember_folder(last)
    assert app.choose_startup(app.parse_args([]), settings)[0] == str(last)
    assert app.choose_startup(app.parse_args(["x", "--weights", "w.pth"]), settings) == ("x", "w.pth")


def test_without_a_bundled_sample_nothing_is_opened(tmp_path, monkeypatch, settings):
    monkeypatch.setattr(app, "SAMPLE_FOLDER", tmp_path / "absent")
    monkeypatch.setattr(app, "MODELS_FOLDER", tmp_path / "absent_models")
    assert app.choose_startup(app.parse_args([]), settings) == (None, None)


def test_garbage_is_collected_on_the_gui_thread_only(qtbot):
    """Python's cyclic collector frees Qt objects too; run from the inference thread it could deadlock
    against the GUI thread (seen as a hung GUI test). After create_app it runs from a GUI-thread timer."""
    import gc
    import threading

    from gui.app import create_app

    create_app()
    assert not gc.isenabled()
    freed_on_gui_thread: list[bool] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed_on_gui_thread.append(threading.current_thread() is threading.main_thread())

    for _ in range(2000):  # well past the collector's first threshold (700)
        Cycle()

    def churn() -> None:  # what the inference thread does: allocate, and so trigger automatic collection
        junk = []
        for i in range(200_000):
            junk.append([i])
            if len(junk) > 1000:
                junk.clear()

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    assert freed_on_gui_thread == []  # nothing collected outside the GUI thread's timer
    qtbot.waitUntil(lambda: len(freed_on_gui_thread) == 2000, timeout=10000)
    assert all(freed_on_gui_thread)
