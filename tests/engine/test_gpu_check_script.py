"""scripts/gpu_check.sh (issue 16) in its CI-sized form: ``--device cpu --quick`` runs every step, and its
summary names each step with a status and the figures as numbers; the CUDA tests count as skipped here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from gpu_check import STEP_TITLES, parse_bench, parse_pytest, parse_throughput  # noqa: E402

NUMBER = r"(\d+(?:\.\d+)?)"


def _rows(summary: str) -> dict[str, tuple[str, str]]:
    """The step table: title -> (status, figures)."""
    rows = {}
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in STEP_TITLES.values():
            rows[cells[0]] = (cells[1], cells[3])
    return rows


@pytest.mark.slow  # about 2.5 minutes on a busy 2-core CPU: five Python processes, each building models
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash, timeout")
def test_cpu_quick_run_writes_a_summary_of_every_step(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    result = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--device", "cpu", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "torch " in summary and "GPU: none" in summary
    rows = _rows(summary)
    assert set(rows) == set(STEP_TITLES.values()), summary

    status, figures = rows[STEP_TITLES["tests"]]
    assert status == "PASS", summary
    counts = dict((what, int(n)) for n, what in re.findall(r"(\d+) (\w+)", figures))
    assert counts["failed"] == 0 and counts["errors"] == 0 and counts["skipped"] >= 10, figures
    assert "skipped: no CUDA here" in figures

    status, figures = rows[STEP_TITLES["bench"]]
    assert status == "PASS", summary
    ours, tv, ratio = (
        float(v) for v in re.search(rf"ours {NUMBER} ms/img, torchvision {NUMBER}, ours/tv {NUMBER}", figures).groups()
    )
    assert ours > 0 and tv > 0 and ratio == pytest.approx(ours / tv, rel=0.02)
    # bench --amp: a status either way (engine/model/paste.py fails under autocast at present: see test_cuda.py)
    assert rows[STEP_TITLES["bench-amp"]][0] in ("PASS", "FAIL")

    status, figures = rows[STEP_TITLES["throughput"]]
    assert status == "PASS", summary
    rate, batch = re.search(rf"best {NUMBER} images/s at batch (\d+)", figures).groups()
    assert float(rate) > 0 and int(batch) in (1, 2)
    assert rows[STEP_TITLES["throughput-amp"]][0] == "SKIP"

    status, figures = rows[STEP_TITLES["bench-train"]]
    assert status == "PASS", summary
    rates = re.findall(rf"(ours|torchvision) {NUMBER} images/s, mask AP50 {NUMBER}", figures)
    assert [name for name, _, _ in rates] == ["ours", "torchvision"] and all(float(r) > 0 for _, r, _ in rates)
    assert float(re.search(rf"throughput ours/torchvision {NUMBER}", figures).group(1)) > 0

    assert rows[STEP_TITLES["generalist"]][0] == "SKIP"
    record = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert record["steps"]["tests"]["counts"]["skipped"] == counts["skipped"]
    logs = (tmp_path / "logs.txt").read_text(encoding="utf-8")
    assert "======== bench-train ========" in logs and "Self CPU time total" in logs  # the profiler table
    assert len(list(tmp_path.iterdir())) <= 8  # the device tool brings back at most 8 files


def test_parsers_read_the_tools_output():
    pytest_out = (
        "FAILED tests/engine/test_cuda.py::test_a - AssertionError\n"
        "SKIPPED [3] tests/engine/test_cuda.py:173: needs a CUDA GPU\n"
        "XFAIL tests/engine/test_cuda.py::test_b - reason\n"
        "======= 1 failed, 2 passed, 3 skipped, 1 xfailed in 33.31s =======\n"
    )
    parsed = parse_pytest(pytest_out)
    assert parsed["counts"] == {"failed": 1, "passed": 2, "skipped": 3, "xfailed": 1}
    assert parsed["failed"] == ["tests/engine/test_cuda.py::test_a"] and parsed["skip_reasons"] == ["needs a CUDA GPU"]
    bench_out = (
        "inference 800x1067                               41.3         20.0     0.48   [identical: 100/100]\n"
        "train step 800x1067 (batch 2)                    90.1         60.2     0.67   [losses: same seed]\n"
    )
    rows = parse_bench(bench_out)["rows"]
    assert [(r["name"], r["ours_ms"], r["ours_over_tv"]) for r in rows] == [
        ("inference 800x1067", 20.0, 0.48),
        ("train step 800x1067 (batch 2)", 60.2, 0.67),
    ]
    throughput_out = (
        "  batch 1: 50.00 images/s (20.0 ms per batch, 100 detections/image)\n"
        "  batch 2: 80.00 images/s (25.0 ms per batch, 100 detections/image)\n"
        "  batch 4: out of memory; stopping at batch 2\n  peak device memory 120.5 GiB\n"
        "best: 80.00 images/s at batch 2\n"
    )
    parsed = parse_throughput(throughput_out)
    assert (parsed["best_images_per_s"], parsed["best_batch"], parsed["out_of_memory_at"]) == (80.0, 2, 4)
    assert parsed["peak_gib"] == 120.5 and len(parsed["rows"]) == 2
