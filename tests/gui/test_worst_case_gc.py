"""A full garbage collection does not walk the objects the app is made of (issue 12.5): the app collects
from a GUI-thread timer, and with the window up and a project open a full collection walked ~390,000
objects (450-600 ms on a loaded machine); opening a project freezes what is alive then (once per process),
so the collector walks only what was made since."""

from __future__ import annotations

import gc

from engine.data import Instance


def tracked(thing: object) -> bool:
    """Whether the collector's generations hold ``thing`` (frozen objects are in none of them)."""
    return any(other is thing for other in gc.get_objects())


def test_opening_a_project_freezes_the_long_lived_objects_and_later_ones_stay_collectable(driver, image_folder):
    gc.unfreeze()  # as at the start of the app: nothing frozen yet (an earlier test may have opened one)
    window = driver.window
    assert tracked(window.session) and gc.get_freeze_count() == 0
    assert driver.open(image_folder)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the app's objects: the Qt wrappers, the modules, the session
    assert not tracked(window.session) and not tracked(window)
    later = Instance(1, [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]])
    assert tracked(later)  # made after: walked (and freed) as usual
    assert driver.open(image_folder)  # a second project: nothing more is frozen
    assert gc.get_freeze_count() <= frozen and tracked(later)
