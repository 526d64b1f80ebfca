"""``python -m engine bench``: the header names the CPU capability and the fast paths used (and their source), the
rows keep the format scripts/gpu_check.py parses, --isa avx2 re-runs itself limited to AVX2, --profile prints
per-stage and per-op tables."""

from __future__ import annotations

import subprocess

import pytest
import torch

from engine import fastpaths
from engine.cli import bench


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv(fastpaths.ENV_VAR, raising=False)
    monkeypatch.setenv(fastpaths.CACHE_ENV_VAR, str(tmp_path / "fastpaths.json"))
    fastpaths.reset()
    yield
    fastpaths.reset()


def test_the_header_names_the_capability_and_the_forced_paths(monkeypatch, capsys):
    assert (
        bench.main(
            [
                "--quick",
                "--skip-training",
                "--fastpaths",
                "fold_bn=1,channels_last=0,mask_channels_last=0,onednn_linear=0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    capability = torch.backends.cpu.get_cpu_capability()
    assert f"capability {capability}" in out
    assert "fast paths, inference: fold_bn (forced)" in out
    assert "fast paths, training: fold_bn (forced)" in out
    row = next(line for line in out.splitlines() if line.startswith("inference quick 160x224"))
    assert "[identical:" in row


def test_the_header_says_measured_then_cache(monkeypatch, capsys):
    measured = fastpaths.Decision(dict.fromkeys(fastpaths.PATHS, False), "measured")
    monkeypatch.setattr(fastpaths, "measure", lambda mode, names, repeats=2: measured)
    lines = bench.header("cpu", False)
    assert lines[2].startswith("fast paths, inference: no fast path (measured) in ")
    fastpaths.reset()
    assert bench.header("cpu", False)[2] == "fast paths, inference: no fast path (cache)"


def test_a_bad_fastpaths_value_says_what_to_write(capsys):
    assert bench.main(["--quick", "--fastpaths", "fast"]) == 2
    assert "use auto, on, off" in capsys.readouterr().out


def test_isa_avx2_runs_the_command_again_limited_to_avx2(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    seen = {}

    def fake_run(command, env):  # noqa: ANN001, ANN202
        seen.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    assert bench.main(["--quick", "--isa", "avx2", "--skip-training"]) == 0
    assert seen["command"][1:] == ["-m", "engine", "bench", "--quick", "--skip-training"]
    assert {k: seen["env"][k] for k in bench.AVX2_ENV} == bench.AVX2_ENV


def test_before_times_every_path_on_and_profile_prints_stages(capsys):
    assert bench.main(["--quick", "--skip-training", "--before", "--fastpaths", "off"]) == 0
    out = capsys.readouterr().out
    assert "ours with every fast path on (before):" in out and "chosen / before" in out
    bench.profile_pair("quick 160x224", "cpu", inference=True, training=False)
    out = capsys.readouterr().out
    for stage in ("resnet", "fpn", "rpn", "postprocess (masks pasted)", "roi_align (box + mask)"):
        assert f"  {stage}" in out
    assert "aten::" in out
