"""The whole review-and-train loop driven as a user drives it: X events from xdotool into the real app under Xvfb.

    python scripts/loop_drive.py OUT_DIR [--images DSB_STAGE1_TRAIN] [--weights FILE] [--display :99]

Issue 13's last requirement (docs/GUI.md, "The whole loop on another folder"): a folder of six stained-tissue
images of the Data Science Bowl set that the bundled sample does not hold (kind "stained" in
resources/splits/dsb2018_generalist.json), images only (the user starts unannotated), is made in
OUT_DIR/stained. Then, with keys and clicks sent to the X server (xdotool) and the screen captured after
each step (ImageMagick ``import -window root``, OUT_DIR/shots):

1. open the folder with the bundled model (``python main.py FOLDER --weights ...``, own settings file);
2. Shift+R: the review queue on the first image; Delete, Delete, Delete, Space, Delete, then B and a brush
   stroke right of the view's centre (the queue centres the prediction under review: --view-centre), Tab,
   Delete, then Space until the queue is done (the image is then reviewed);
3. Ctrl+T: the Train panel; 4 iterations, batch 1; Train; wait for the run's model and the folder's
   models/project.json;
4. D: the next image, predicted by the new model;
5. Ctrl+O resources/sample, then Ctrl+O back to the stained folder;
6. the saved COCO file is checked: the corrections after the review are still there, the first image is
   still reviewed, and the folder still remembers the run's model.

The clicks are at the places the window's first-run layout has on a 1280x800 screen with no window manager
(the Train panel's fields, the file dialog); another layout needs other numbers (CLICKS). The app's decisions
are deterministic (same images, same model), so the queue walks the same predictions in the same order.
Needs Xvfb, xdotool and ImageMagick; a few minutes on a loaded 2-core CPU (training: ~2 min).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAINED = ["136000dc", "15039b3a", "1631352d", "1ec74a26", "2c61fdcb", "4ae4f936"]  # prefixes of DSB image ids
CLICKS = {  # screen points of the first-run layout at 1280x800 (Xvfb, no window manager)
    "canvas_margin": (660, 150),  # black view margin above the image: focus without selecting anything
    "train_length": (165, 421),
    "train_units": (285, 421),
    "train_units_iterations": (279, 443),
    "train_batch": (230, 713),
    "train_options_scroll": (180, 600),
    "train_button": (93, 538),
    "train_close": (1266, 360),
}


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def key(*names: str) -> None:
    run("xdotool", "key", *names)
    time.sleep(0.6)


def click(name: str) -> None:
    x, y = CLICKS[name]
    run("xdotool", "mousemove", str(x), str(y), "click", "1")
    time.sleep(0.4)


def shot(out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    run("import", "-window", "root", str(path))
    print(f"{time.strftime('%H:%M:%S')} {path.name}", flush=True)
    return path


def wait_for(condition, what: str, timeout: float = 600.0) -> float:  # noqa: ANN001
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.5)
    return time.monotonic() - start


def states(coco: Path) -> dict[str, str]:
    data = json.loads(coco.read_text())
    return {image["file_name"][:8]: image.get("studio", {}).get("state", "") for image in data["images"]}


def make_folder(source: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for prefix in STAINED:
        (image_id,) = [p.name for p in source.iterdir() if p.name.startswith(prefix)]
        target = folder / f"{image_id}.png"
        shutil.copyfile(source / image_id / "images" / f"{image_id}.png", target)
        made.append(target)
    return made


def open_folder(path: Path) -> None:
    click("canvas_margin")  # without a window manager the focus is nowhere after a dialog closes
    key("ctrl+o")
    time.sleep(1.5)
    run("xdotool", "type", str(path))
    key("Return")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/dsb2018_stage1_train")
    parser.add_argument("--weights", type=Path, default=REPO / "resources/models/nuclei_r18_gn.safetensors")
    parser.add_argument("--display", default=":99")
    parser.add_argument(
        "--view-centre",
        type=lambda text: tuple(int(v) for v in text.split(",")),
        default=(663, 424),  # the view of the first-run layout, 424..902 x 80..768 (the left dock keeps its width)
        help="X,Y: the image view's centre on screen when the sixth prediction is reviewed (where the brush goes)",
    )
    args = parser.parse_args()
    out, shots = args.out.resolve(), args.out.resolve() / "shots"
    folder = out / "stained"
    if folder.exists():
        sys.exit(f"error: {folder} exists; give an empty OUT_DIR (the drive starts from unannotated images)")
    shots.mkdir(parents=True)
    make_folder(args.images, folder)
    os.environ["DISPLAY"] = args.display
    xvfb = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1280x800x24"], stderr=subprocess.DEVNULL)
    time.sleep(2)
    log = (out / "app.log").open("w")
    command = [sys.executable, str(REPO / "main.py"), str(folder), "--weights", str(args.weights)]
    app = subprocess.Popen([*command, "--settings", str(out / "settings.ini")], cwd=REPO, stdout=log, stderr=log)
    coco, project = folder / "annotations.json", folder / "models" / "project.json"
    try:
        started = time.monotonic()
        time.sleep(25)  # the window, the model, the first image and its prediction (~5 s of model on 2 cores)
        shot(shots, "01_open")
        click("canvas_margin")
        key("shift+r")
        shot(shots, "02_review_first")
        for step, name in enumerate(["Delete", "Delete", "Delete", "space", "Delete"], start=3):
            key(name)
            shot(shots, f"{step:02d}_review_{name.lower()}")
        key("b")  # the sixth prediction: its mask misses the nucleus' right end; a stroke there adds it
        cx, cy = args.view_centre
        run("xdotool", "mousemove", str(cx + 48), str(cy - 4), "mousedown", "1")
        for dx in range(58, 109, 10):
            run("xdotool", "mousemove", str(cx + dx), str(cy - 4 - (dx - 48) // 5))
            time.sleep(0.1)
        run("xdotool", "mouseup", "1")
        time.sleep(1)
        shot(shots, "08_review_brush")
        key("Tab")
        key("Delete")
        presses = 0
        while not (coco.exists() and states(coco).get(STAINED[0]) == "reviewed"):
            if presses > 40:
                raise RuntimeError("the review queue did not end after 40 more Space presses")
            key("space")
            presses += 1
            time.sleep(0.4)
        time.sleep(1)
        shot(shots, "09_review_done")
        reviewed = json.loads(coco.read_text())["annotations"]
        print(f"review: {len(reviewed)} annotations after {presses} Space presses at the end", flush=True)

        key("ctrl+t")
        click("train_length")
        key("ctrl+a")
        run("xdotool", "type", "4")
        key("Tab")
        click("train_units")
        click("train_units_iterations")
        click("train_batch")
        key("ctrl+a")
        run("xdotool", "type", "1")
        key("Tab")
        run("xdotool", "mousemove", *map(str, CLICKS["train_options_scroll"]))
        for _ in range(6):
            run("xdotool", "click", "5")  # the wheel scrolls the options, not the spin box under it
        time.sleep(0.5)
        shot(shots, "10_train_options")
        click("train_button")
        trained = wait_for(lambda: project.exists(), "the run's model to be remembered by the folder")
        time.sleep(8)  # the new model loads and predicts the image on screen
        shot(shots, "11_trained")
        print(f"training: {trained:.0f} s from Train to models/project.json", flush=True)
        click("train_close")
        click("canvas_margin")
        key("f")
        key("d")
        time.sleep(10)
        shot(shots, "12_next_image_new_model")

        open_folder(REPO / "resources" / "sample")
        time.sleep(15)
        shot(shots, "13_sample")
        open_folder(folder)
        time.sleep(15)
        shot(shots, "14_back")
        run("xdotool", "mousemove", "200", "132", "click", "1")  # the first image's row
        time.sleep(6)
        shot(shots, "15_reviewed_image_back")

        after = json.loads(coco.read_text())["annotations"]
        remembered = json.loads(project.read_text())["model"]
        print(f"annotations kept: {after == reviewed} ({len(after)}); states: {states(coco)}", flush=True)
        print(f"folder's model: {remembered}; run folders: {sorted(p.name for p in project.parent.iterdir())}")
        print(f"whole drive: {time.monotonic() - started:.0f} s", flush=True)
        ok = after == reviewed and states(coco)[STAINED[0]] == "reviewed"
    finally:
        app.terminate()  # the edits were autosaved long before (checked above from the file itself)
        app.wait(30)
        xvfb.terminate()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
