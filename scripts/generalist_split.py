"""The fixed split of the 2018 Data Science Bowl stage-1 training set for the generalist nuclei model
(issue 14), written to resources/splits/dsb2018_generalist.json.

    python scripts/generalist_split.py [--data ../shared/data/dsb2018_stage1_train]

Each image gets a kind from its pixels: "stained" when its colour channels differ (mean max-min over
channels > 0.02: the purple H&E-like tissue), else "brightfield" when it is light (mean > 0.5: dark nuclei
on a light ground), else "fluorescence" (bright nuclei on a dark ground). On this set that gives exactly
the data README's 541 fluorescence, 16 brightfield and 107 stained images.

- ``excluded``: the bundled sample's 4 held-out images (resources/sample/splits/val.json): never trained on.
- ``unseen_kind``: the 16 brightfield images, kept out of the generalist's training so that fine-tuning on
  a kind the model has never seen can be measured on them (issue 14, point 3).
- ``val``: 12 % of each trained kind, chosen by a hash of the id (stable, independent of file order), never one
  of the sample's 16 training images (resources/sample/splits/train.json), so that a run that starts from the
  bundled model (trained on those) is not validated on images it has seen.
- ``train``: the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "splits" / "dsb2018_generalist.json"
VAL_FRACTION = 0.12


def kind_of(path: Path) -> str:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    if float((pixels.max(2) - pixels.min(2)).mean()) > 0.02:
        return "stained"
    return "brightfield" if float(pixels.mean()) > 0.5 else "fluorescence"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "dsb2018_stage1_train")
    args = parser.parse_args()
    sample_val = json.loads((ROOT / "resources" / "sample" / "splits" / "val.json").read_text())
    excluded = sorted(Path(image["file_name"]).stem for image in sample_val["images"])
    sample_train = json.loads((ROOT / "resources" / "sample" / "splits" / "train.json").read_text())
    seen_by_bundled = {Path(image["file_name"]).stem for image in sample_train["images"]}
    kinds: dict[str, list[str]] = {"fluorescence": [], "brightfield": [], "stained": []}
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        kinds[kind_of(folder / "images" / f"{folder.name}.png")].append(folder.name)
    split = {"excluded": excluded, "unseen_kind": sorted(kinds["brightfield"]), "val": [], "train": [], "kinds": {}}
    for kind in ("fluorescence", "stained"):
        ids = sorted((i for i in kinds[kind] if i not in excluded), key=lambda i: hashlib.sha1(i.encode()).hexdigest())
        n_val = round(VAL_FRACTION * len(ids))
        eligible = [i for i in ids if i not in seen_by_bundled]
        val = set(eligible[:n_val])
        split["val"] += sorted(val)
        split["train"] += sorted(i for i in ids if i not in val)
    split["val"].sort()
    split["train"].sort()
    split["kinds"] = {kind: sorted(ids) for kind, ids in kinds.items()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(split, indent=1) + "\n")
    counts = {k: len(v) for k, v in split.items() if k != "kinds"}
    print(f"{OUT.relative_to(ROOT)}: {counts}; kinds { ({k: len(v) for k, v in kinds.items()}) }")


if __name__ == "__main__":
    main()
