"""Fixtures of the data tests: the real data sets under ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data set not found at {path} (../shared/data is absent in a plain clone)")
    return path


@pytest.fixture(scope="session")
def coco128_json() -> Path:
    return shared_path("coco128", "annotations", "instances_train2017.json")


@pytest.fixture(scope="session")
def dsb_folder() -> Path:
    return shared_path("nuclei_dsb2018", "stage1_train")


@pytest.fixture(scope="session")
def labelme_folder() -> Path:
    return shared_path("labelme_example", "data_annotated")


@pytest.fixture(scope="session")
def stardist_folder() -> Path:
    return shared_path("stardist_nuclei")
