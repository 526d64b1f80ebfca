from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # tests/engine/synthetic.py

from shared_data import SHARED_DATA  # noqa: E402


@pytest.fixture(scope="session")
def coco128_images() -> list[torch.Tensor]:
    """Three real COCO images of different sizes as (3,H,W) float tensors in [0,1]."""
    folder = SHARED_DATA / "coco128" / "train2017"
    if not folder.is_dir():
        pytest.skip(f"real test images not found at {folder} (../shared/data is absent in a plain clone)")
    paths = sorted(folder.glob("*.jpg"))[:3]
    return [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1).float() / 255 for p in paths]


@pytest.fixture
def hub_dir(tmp_path):
    """torch's hub folder moved into the test's own folder (so no test reads or fills the user's cache); yields
    its checkpoints folder, where engine.hub looks for and downloads pretrained weights."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)
