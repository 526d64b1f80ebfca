"""Where the real annotated data sets live: ../shared/data beside the repository (absent in a plain clone)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
