"""Build resources/sample/ from the Data Science Bowl 2018 nuclei images (BBBC038v1, CC0).

python scripts/make_sample.py [../shared/data/nuclei_dsb2018/stage1_train]

Writes the 20 images (as they are), splits/train.json (the first 16 images by name, every nucleus) and
splits/val.json (the last 4, every nucleus): the split the bundled model was trained and evaluated on; and
the project file annotations.json, which holds the 16 training images as reviewed and the 4 held-out images
without annotations: the app opens on the first of those, where the user sees what the model finds in an
image it has not seen, and corrects it.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from engine.data import Dataset, read_dataset, write_coco

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "nuclei_dsb2018" / "stage1_train"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    out = ROOT / "resources" / "sample"
    (out / "splits").mkdir(parents=True, exist_ok=True)
    data = read_dataset(source)
    images = sorted(data.images, key=lambda im: Path(im.path).name)
    for new_id, image in enumerate(images, start=1):
        src = data.image_path(image)
        shutil.copyfile(src, out / src.name)
        image.path, image.id, image.state = src.name, new_id, "reviewed"
        image.instances = [dataclasses.replace(instance, origin="manual") for instance in image.instances]
    for name, subset in (("train", images[:16]), ("val", images[16:])):
        write_coco(Dataset(out / "splits", subset, data.categories), out / "splits" / f"{name}.json")
    held_out = [dataclasses.replace(im, instances=[], state="not_run") for im in images[16:]]
    write_coco(Dataset(out, images[:16] + held_out, data.categories), out / "annotations.json")
    print(f"{len(images)} images, {sum(len(im.instances) for im in images)} nuclei -> {out}")


if __name__ == "__main__":
    main()
