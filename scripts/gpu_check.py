"""Helpers of scripts/gpu_check.sh (plain Python, no torch at import):

python scripts/gpu_check.py env                 JSON: Python, torch, CUDA, cuDNN, GPU name, pycocotools
python scripts/gpu_check.py nuclei FOLDER       the bundled 20 nucleus images as one COCO folder (bench-train)
python scripts/gpu_check.py summary WORK OUT    OUT/summary.md and OUT/summary.json from WORK's step logs
python scripts/gpu_check.py wheels              .whl/: a slimmed pycocotools wheel for the device's Python 3.12
python scripts/gpu_check.py travel-size         what a device run would send, against its 64 MiB limit
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAVEL_LIMIT = 64 * 2**20
STEP_TITLES = {
    "setup": "0. setup (install, versions)",
    "tests": "1. CUDA tests (tests/engine/test_cuda.py)",
    "bench": "2a. bench float32 (ours vs torchvision)",
    "bench-amp": "2b. bench --amp (float16 autocast)",
    "throughput": "3a. batch prediction throughput, float32",
    "throughput-amp": "3b. batch prediction throughput, --amp (+ profile)",
    "bench-train": "4. bench-train with AMP (ours vs torchvision)",
    "generalist": "5. generalist training (optional)",
}


# ----- env -----
def env() -> dict:
    info: dict = {"python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_runtime"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = props.name
            info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
            info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["cpu_threads"] = torch.get_num_threads()
    except Exception as error:  # noqa: BLE001 - reported, not raised
        info["torch"] = f"import failed: {error}"
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except Exception as error:  # noqa: BLE001
        info["torchvision"] = f"import failed: {error}"
    try:
        import pycocotools  # noqa: F401

        info["pycocotools"] = "ok"
    except Exception as error:  # noqa: BLE001
        info["pycocotools"] = f"missing: {error}"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0:
            info["nvidia_smi"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


# ----- the nucleus set for bench-train -----
def nuclei(folder: Path) -> None:
    """resources/sample's 20 images with all their nuclei (splits/train.json + splits/val.json) as one COCO
    folder: bench-train's fixed split (first 16 by name train, last 4 validate) is the same split."""
    sample = REPO / "resources" / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    merged: dict = {"images": [], "annotations": [], "categories": None}
    for name in ("train", "val"):
        doc = json.loads((sample / "splits" / f"{name}.json").read_text(encoding="utf-8"))
        merged["categories"] = merged["categories"] or doc["categories"]
        merged["images"] += doc["images"]
        for ann in doc["annotations"]:
            merged["annotations"].append({**ann, "id": len(merged["annotations"]) + 1})
    for image in merged["images"]:
        target = folder / image["file_name"]
        if not target.exists():
            target.symlink_to(sample / image["file_name"])
    (folder / "annotations.json").write_text(json.dumps(merged), encoding="utf-8")
    print(f"{folder}: {len(merged['images'])} images, {len(merged['annotations'])} nuclei")


# ----- parsing the step logs -----
def parse_pytest(text: str) -> dict:
    counts = {}
    final = [line for line in text.splitlines() if re.match(r"^=+ .* in [\d.]+s", line)]
    if final:
        for n, what in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)", final[-1]):
            counts["errors" if what.startswith("error") else what] = int(n)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    skipped = re.findall(r"^SKIPPED \[(\d+)\] \S+: (.*)$", text, re.M)
    xfailed = re.findall(r"^XFAIL (\S+)", text, re.M)
    return {"counts": counts, "failed": failed, "skip_reasons": sorted({r for _, r in skipped}), "xfailed": xfailed}


BENCH_ROW = re.compile(
    r"^(?P<name>(?:inference|train step) .+?)\s+(?P<tv>\d+\.\d+)\s+(?P<ours>\d+\.\d+)\s+(?P<ratio>\d+\.\d+)"
    r"\s+\[(?P<agreement>.*)\]$"
)


def parse_bench(text: str) -> dict:
    rows = []
    for line in text.splitlines():
        m = BENCH_ROW.match(line.strip())
        if m:
            rows.append(
                {
                    "name": m["name"],
                    "torchvision_ms": float(m["tv"]),
                    "ours_ms": float(m["ours"]),
                    "ours_over_tv": float(m["ratio"]),
                    "agreement": m["agreement"],
                }
            )
    return {"rows": rows}


THROUGHPUT_ROW = re.compile(
    r"batch (?P<b>\d+): (?P<rate>[\d.]+) images/s \((?P<ms>[\d.]+) ms per batch, (?P<dets>\d+) detections/image\)"
)


def parse_throughput(text: str) -> dict:
    rows = [
        {"batch": int(m["b"]), "images_per_s": float(m["rate"]), "ms_per_batch": float(m["ms"]), "dets": int(m["dets"])}
        for m in THROUGHPUT_ROW.finditer(text)
    ]
    best = re.findall(r"^best: ([\d.]+) images/s at batch (\d+)", text, re.M)
    peak = re.findall(r"peak device memory ([\d.]+) GiB", text)
    oom = re.findall(r"batch (\d+): out of memory", text)
    return {
        "rows": rows,
        "best_images_per_s": float(best[-1][0]) if best else None,
        "best_batch": int(best[-1][1]) if best else None,
        "peak_gib": float(peak[-1]) if peak else None,
        "out_of_memory_at": int(oom[-1]) if oom else None,
        "profiled": "Self CPU time total" in text,
    }


def parse_bench_train(text: str, results: Path) -> dict:
    out: dict = {"models": [], "ratio": None, "loss_curves": {}}
    if results.is_file():
        out["models"] = json.loads(results.read_text(encoding="utf-8"))
    m = re.findall(r"throughput ours/torchvision: ([\d.]+)", text)
    out["ratio"] = float(m[-1]) if m else None
    for name, it, loss in re.findall(r"^\s+(\w+): iteration (\d+)/\d+, loss ([\d.naif-]+)", text, re.M):
        out["loss_curves"].setdefault(name, []).append((int(it), float(loss)))
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _steps(work: Path) -> list[dict]:
    steps = []
    for line in _read(work / "steps.tsv").splitlines():
        key, rc, ms, budget, command = line.split("\t", 4)
        steps.append({"key": key, "rc": int(rc), "seconds": int(ms) / 1000, "budget": int(budget), "command": command})
    return steps


def _status(step: dict, parsed_ok: bool) -> str:
    if step["rc"] == -1:
        return "SKIP"
    if step["rc"] in (124, 137):
        return "TIMEOUT"
    return "PASS" if step["rc"] == 0 and parsed_ok else "FAIL"


def summary(work: Path, out: Path) -> None:
    info = json.loads(_read(work / "env.json") or "{}")
    meta = json.loads(_read(work / "meta.json") or "{}")
    figures = [json.loads(line) for line in _read(work / "figures.jsonl").splitlines() if line.strip()]
    md = [
        "# GPU check (scripts/gpu_check.sh)",
        "",
        f"- when: {meta.get('started', '?')} UTC; mode: --device {meta.get('device', '?')}"
        + (" --quick" if meta.get("quick") else "")
        + f"; commit {meta.get('commit', '?')}",
        f"- GPU: {info.get('gpu', 'none')}" + (f" ({info['nvidia_smi']})" if info.get("nvidia_smi") else ""),
        f"- torch {info.get('torch', '?')}, CUDA {info.get('cuda_runtime') or 'none'}, cuDNN {info.get('cudnn')}, "
        f"torchvision {info.get('torchvision', '?')}, Python {info.get('python', '?')}, "
        f"pycocotools {info.get('pycocotools', '?')}",
        "",
        "| step | status | seconds (budget) | figures |",
        "| --- | --- | --- | --- |",
    ]
    details: list[str] = []
    record: dict = {"env": info, "meta": meta, "steps": {}}
    total = 0.0
    for step in _steps(work):
        key, text = step["key"], _read(work / f"{step['key']}.log")
        step_start = len(details)
        total += step["seconds"]
        parsed: dict = {}
        line, ok = "", True
        if key == "tests":
            parsed = parse_pytest(text)
            c = parsed["counts"]
            ok = bool(c) and not c.get("failed") and not c.get("errors")
            line = ", ".join(
                f"{c.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed")
            )
            if c.get("skipped") and not info.get("cuda_available"):
                line += " (skipped: no CUDA here)"
                if str(meta.get("device", "")).startswith("cuda"):
                    ok, line = False, line + ", but --device cuda was asked for"
            details += [f"## {STEP_TITLES[key]}", "", f"`{step['command']}`", ""]
            details += [f"- FAILED {t}" for t in parsed["failed"]]
            details += [f"- xfailed (known issue) {t}" for t in parsed["xfailed"]]
            details += [f"- skip reason: {r}" for r in parsed["skip_reasons"]]
            if figures:
                details += ["", "| test | figure | value |", "| --- | --- | --- |"]
                details += [f"| {f['test']} | {f['name']} | {f['value']} |" for f in figures]
            details.append("")
        elif key.startswith("bench") and key != "bench-train":
            parsed = parse_bench(text)
            ok = bool(parsed["rows"])
            line = "; ".join(
                f"{r['name']}: ours {r['ours_ms']:.1f} ms/img, torchvision {r['torchvision_ms']:.1f}, "
                f"ours/tv {r['ours_over_tv']:.2f}" + ("" if "DIFFERENT" not in r["agreement"] else " DIFFERENT")
                for r in parsed["rows"]
            )
            details += [f"## {STEP_TITLES[key]}", "", f"`{step['command']}`", ""]
            details += [
                "| what | torchvision ms/img | ours ms/img | ours/tv | agreement |",
                "| --- | --- | --- | --- | --- |",
            ]
            details += [
                f"| {r['name']} | {r['torchvision_ms']:.1f} | {r['ours_ms']:.1f} | {r['ours_over_tv']:.2f} | "
                f"{r['agreement']} |"
                for r in parsed["rows"]
            ]
            details.append("")
        elif key.startswith("throughput"):
            parsed = parse_throughput(text)
            ok = parsed["best_images_per_s"] is not None
            if ok:
                line = f"best {parsed['best_images_per_s']:.2f} images/s at batch {parsed['best_batch']}"
                if parsed["peak_gib"] is not None:
                    line += f", peak {parsed['peak_gib']:.1f} GiB"
                if parsed["out_of_memory_at"]:
                    line += f", out of memory at batch {parsed['out_of_memory_at']}"
            details += [f"## {STEP_TITLES[key]}", "", f"`{step['command']}`", ""]
            details += ["| batch | images/s | ms per batch | detections/image |", "| --- | --- | --- | --- |"]
            details += [
                f"| {r['batch']} | {r['images_per_s']:.2f} | {r['ms_per_batch']:.1f} | {r['dets']} |"
                for r in parsed["rows"]
            ]
            if parsed["profiled"]:
                details.append("\n(profiler table: logs.txt, section " + key + ")")
            details.append("")
        elif key == "bench-train":
            parsed = parse_bench_train(text, work / "bench-train-out" / "results.json")
            ok = len(parsed["models"]) == 2 and parsed["ratio"] is not None
            line = "; ".join(
                f"{m['name']} {m['images_per_s']:.2f} images/s, mask AP50 {m['mask_AP50']:.3f}"
                for m in parsed["models"]
            )
            if parsed["ratio"] is not None:
                line += f"; throughput ours/torchvision {parsed['ratio']:.2f}"
            details += [f"## {STEP_TITLES[key]}", "", f"`{step['command']}`", ""]
            details += ["| model | images/s | mask AP | AP50 | wall s |", "| --- | --- | --- | --- | --- |"]
            details += [
                f"| {m['name']} | {m['images_per_s']:.2f} | {m['mask_AP']:.3f} | {m['mask_AP50']:.3f} | "
                f"{m['wall_s']:.0f} |"
                for m in parsed["models"]
            ]
            for name, curve in parsed["loss_curves"].items():
                details.append(f"- loss curve {name}: " + ", ".join(f"{it}: {loss:.3f}" for it, loss in curve))
            details.append("")
        elif key == "generalist":
            parts = sorted(p.name for p in out.glob("generalist*.part-*"))
            parsed = {"parts": parts}
            ok = bool(parts)
            line = f"checkpoint in {len(parts)} parts: {', '.join(parts)}" if parts else ""
            details += [f"## {STEP_TITLES[key]}", "", f"`{step['command']}`", ""]
            details += ["```", *text.strip().splitlines()[-15:], "```", ""]
        elif key == "setup":
            line = text.strip().splitlines()[-1] if text.strip() else ""
        status = _status(step, ok)
        if status == "SKIP":
            line = text.strip().splitlines()[-1] if text.strip() else "not run"
            del details[step_start:]  # a step not run has no section
        elif status != "PASS" and text.strip():
            line = line or text.strip().splitlines()[-1][:200]
            details += [f"### {key}: last lines of its log", "", "```", *text.strip().splitlines()[-12:], "```", ""]
        title = STEP_TITLES.get(key, key)
        md.append(f"| {title} | {status} | {step['seconds']:.0f} ({step['budget']}) | {line.replace('|', '/')} |")
        record["steps"][key] = {**step, "status": status, **parsed}
    md += ["", f"Total {total:.0f} s. Full logs: logs.txt.", "", *details]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")


# ----- carrying pycocotools to the device machine -----
def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def slim_wheel(wheel: Path, target_dir: Path) -> Path:
    """The wheel with its extension modules stripped of symbols (pycocotools' 1.4 MB .so becomes 0.17 MB),
    re-zipped with a matching RECORD: the whole repository must travel in 64 MiB."""
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if not info.is_dir():
                files[info.filename] = z.read(info)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in list(files.items()):
            if name.endswith(".so"):
                path = Path(tmp) / Path(name).name
                path.write_bytes(data)
                subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
                files[name] = path.read_bytes()
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    lines = [_record_line(n, d) for n, d in files.items() if n != record] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    target_dir.mkdir(parents=True, exist_ok=True)
    out = target_dir / wheel.name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in files.items():
            z.writestr(name, data)
    out.write_bytes(buffer.getvalue())
    return out


def wheels() -> None:
    target = REPO / ".whl"
    with tempfile.TemporaryDirectory() as tmp:
        platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version"]
        command += ["3.12", "--implementation", "cp", "-d", tmp, "pycocotools"]
        for platform in platforms:
            command += ["--platform", platform]
        subprocess.run(command, check=True)
        for old in target.glob("pycocotools-*.whl"):
            old.unlink()
        for wheel in Path(tmp).glob("*.whl"):
            slim = slim_wheel(wheel, target)
            print(f"{slim}: {slim.stat().st_size} bytes (was {wheel.stat().st_size})")
    travel_size()


def travel_size() -> int:
    """Bytes a device run sends: tracked files, untracked files git does not ignore, and .whl (carried)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    total = sum((REPO / os.fsdecode(p)).stat().st_size for p in listed if p and (REPO / os.fsdecode(p)).is_file())
    carried = sum(p.stat().st_size for p in (REPO / ".whl").glob("*") if p.is_file())
    mib = (total + carried) / 2**20
    verdict = "fits" if total + carried <= TRAVEL_LIMIT else "TOO LARGE: the device call will be refused"
    print(
        f"travels: {total / 2**20:.2f} MiB of working tree + {carried / 2**20:.2f} MiB in .whl = {mib:.2f} MiB "
        f"of 64 MiB: {verdict}"
    )
    return total + carried


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "env":
        print(json.dumps(env()))
    elif command == "nuclei":
        nuclei(Path(rest[0]))
    elif command == "summary":
        summary(Path(rest[0]), Path(rest[1]))
    elif command == "wheels":
        wheels()
    elif command == "travel-size":
        return 0 if travel_size() <= TRAVEL_LIMIT else 1
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
