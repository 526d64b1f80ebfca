"""The architecture's import rules (pyproject.toml, [tool.importlinter]), checked by import-linter.

Run by hand with ``lint-imports``; the rules and their reasons are in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:  # the test extra installs it; say so rather than pass silently
        pytest.fail("lint-imports not found: pip install -e '.[test]' installs import-linter")
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the packages under cwd, not the installed ones
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_qt_import_in_the_engine_breaks_a_contract(tmp_path):
    """The contracts bite: a copy of the tree whose engine imports PySide6 fails the check."""
    for name in ("engine", "gui"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "engine" / "leak.py").write_text("from PySide6.QtCore import QObject\n")
    result = _lint_imports(cwd=tmp_path)
    assert result.returncode != 0
    assert "engine.leak -> PySide6" in result.stdout


def test_the_file_map_in_architecture_md_is_current():
    """docs/ARCHITECTURE.md lists every module of engine/ and gui/ with its docstring's first sentence."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "architecture_map.py"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for path in [*ROOT.glob("engine/**/*.py"), *ROOT.glob("gui/**/*.py")]:
        name = path.relative_to(ROOT).as_posix()
        assert (f"{name.removesuffix('__init__.py')} " if path.name == "__init__.py" else f"{name} ") in text, name
