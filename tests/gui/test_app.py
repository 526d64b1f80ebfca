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
