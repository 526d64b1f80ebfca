"""The Train panel's Quick fine-tune (issue 14, point 3): what it sets is what the trainer gets."""

from __future__ import annotations

from pathlib import Path

from engine.cli.train import build_model, build_parser, train_config
from engine.config import QUICK_FINE_TUNE
from gui.training.process import train_arguments
from tests.gui.conftest import CLASS_NAMES


def test_quick_fine_tune_sends_its_measured_settings_and_greys_out_what_it_decides(ready, tmp_path):
    app = ready  # a folder with a model loaded: "the current model" is the start
    app.open_train_panel()
    app.wait_until(app.train_panel_shown, timeout=5000)
    app.set_train_option("start_from", False)  # scratch chosen before: quick fine-tune starts from the model in use
    app.click_train_box("quick")
    assert not app.train_widget_enabled("length") and not app.train_widget_enabled("start_from")
    request = app.train_request()
    args = train_arguments(tmp_path / "a.json", tmp_path / "run", app.weights_path(), request)
    parsed = build_parser().parse_args(args[3:])
    cfg = train_config(parsed, num_images=4)
    assert (cfg.iterations, cfg.lr) == (QUICK_FINE_TUNE.iterations, QUICK_FINE_TUNE.lr)
    assert parsed.weights == str(Path(app.weights_path()).resolve())
    assert "--val-split" not in args  # every corrected image trains
    model = build_model(parsed, list(CLASS_NAMES))  # the model's own classes: nothing renewed
    assert model.config.frozen_stages == QUICK_FINE_TUNE.frozen_stages
    assert model.config.box_batch_per_image == QUICK_FINE_TUNE.roi_samples
    body = [p.requires_grad for n, p in model.named_parameters() if ".body." in n]
    assert all(body) if QUICK_FINE_TUNE.frozen_stages == 0 else not all(body)

    app.click_train_box("quick")  # off again: the user's own settings, and no frozen stages
    assert app.train_widget_enabled("length")
    args = train_arguments(tmp_path / "a.json", tmp_path / "run", app.weights_path(), app.train_request())
    assert "--frozen-stages" not in args
