"""Issue 15, item 12: an image that the model's short-side policy shrinks by more than 2x is not shrunk in
silence; the status line says by how much and what to do (a pixel scale in the Model panel)."""

from __future__ import annotations

import dataclasses

from conftest import Driver, write_images


def test_an_image_shrunk_by_the_short_side_policy_is_said_in_the_status_line(qtbot, window, weights_file, tmp_path):
    driver = Driver(qtbot, window)
    driver.load_model(weights_file)  # the tiny model: short side 128 px
    write_images(tmp_path / "large", count=1, size=(600, 640))
    assert driver.open(tmp_path / "large", wait_for_prediction=True)
    note = "Shown at 21 %: the model works at a short side of 128 px; set a pixel scale in the Model panel"
    assert driver.status().startswith(note), driver.status()  # 128 / 600

    model = window.inference.model
    pixel = dataclasses.replace(model.config, scale_policy="pixel-scale", scale_factor=0.2)
    assert window.controller.shrink_note(dataclasses.replace(model, config=pixel)) == ""  # the user's scale: no word

    write_images(tmp_path / "small", count=1, size=(96, 128))
    assert driver.open(tmp_path / "small", wait_for_prediction=True)
    assert "Shown at" not in driver.status()  # enlarged, not shrunk: nothing to say
    assert window.controller.shrink_note(model) == ""
