"""Guard against PySide6 6.12.0's reference-count bug on CPython 3.11.

That release aborts the interpreter ("Fatal Python error: none_dealloc") after a few thousand Qt calls
that return None; pyproject.toml pins PySide6 below 6.12 on Python < 3.12. The loop runs in a child
process so that a crash fails this test instead of killing the whole test run.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
w = QWidget()
for _ in range(30000):
    w.update()  # returns None: each call used to drop a reference to None
    w.setToolTip("x")
print("survived")
"""


def test_many_qt_calls_returning_none_do_not_abort_the_interpreter():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"interpreter aborted ({result.returncode}): {result.stderr[-500:]}"
    assert result.stdout.strip() == "survived"
