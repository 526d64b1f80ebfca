"""engine.fastpaths: the chooser keeps the faster side, the per-machine cache round-trips and survives corruption,
the environment override forces paths, and every forced combination gives torchvision's detections."""

from __future__ import annotations

import json

import pytest
import torch

from engine import fastpaths
from engine.cli.bench import QUICK_SIZES, build_pair, compare_detections, synthetic_batch


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Each test starts undecided, with its own cache file and no override from the caller's environment."""
    monkeypatch.delenv(fastpaths.ENV_VAR, raising=False)
    monkeypatch.setenv(fastpaths.CACHE_ENV_VAR, str(tmp_path / "fastpaths.json"))
    fastpaths.reset()
    yield
    fastpaths.reset()


class FakeClock:
    """A clock that only moves when a workload says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def workload(self, on_s: float, off_s: float):
        return lambda on: setattr(self, "now", self.now + (on_s if on else off_s))


def test_the_chooser_keeps_the_faster_side_of_each_path():
    clock = FakeClock()
    decision = fastpaths.choose(
        {"channels_last": clock.workload(0.030, 0.050), "fold_bn": clock.workload(0.020, 0.010)}, clock=clock
    )
    assert decision.paths == {"channels_last": True, "fold_bn": False}
    assert decision.source == "measured"
    assert decision.timings_ms["channels_last"]["on"] == 30.0 and decision.timings_ms["channels_last"]["off"] == 50.0
    assert decision.timings_ms["fold_bn"] == {"on": 20.0, "off": 10.0, "on_median": 20.0, "off_median": 10.0}


def test_the_chooser_compares_the_least_disturbed_runs():
    """One slow run of the faster side (another process took the core) does not turn the decision."""
    clock = FakeClock()
    on_times = iter([0.01, 0.01, 0.50, 0.02, 0.02])  # warm-up, then a disturbed repeat among fast ones
    decision = fastpaths.choose(
        {"channels_last": lambda on: setattr(clock, "now", clock.now + (next(on_times) if on else 0.03))},
        repeats=4,
        clock=clock,
    )
    assert decision.paths == {"channels_last": True}
    assert decision.timings_ms["channels_last"]["on"] == 10.0


def test_a_path_that_cannot_run_is_not_taken():
    clock = FakeClock()

    def broken(on):
        if on:
            raise RuntimeError("mkldnn_linear: this build has no oneDNN")
        clock.now += 0.01

    decision = fastpaths.choose({"onednn_linear": broken, "fold_bn": clock.workload(0.01, 0.02)}, clock=clock)
    assert decision.paths == {"onednn_linear": False, "fold_bn": True}
    assert "no oneDNN" in decision.timings_ms["onednn_linear"]["error"]


def _fake_measure(calls: list, paths: dict[str, bool]):
    def measure(mode, names, repeats=2):
        calls.append((mode, tuple(names)))
        return fastpaths.Decision({n: paths[n] for n in names}, "measured", {n: {"on": 1.0, "off": 2.0} for n in names})

    return measure


CHOSEN = {"channels_last": False, "fold_bn": True, "onednn_linear": True, "mask_channels_last": False}


def test_a_decision_is_measured_once_then_read_from_the_cache(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    first = fastpaths.decide("inference")
    assert first.source == "measured" and first.paths == CHOSEN
    document = json.loads((tmp_path / "fastpaths.json").read_text())
    entry = document["machines"][fastpaths.machine_key()]["inference"]
    assert entry["paths"] == CHOSEN and entry["timings_ms"]["fold_bn"] == {"on": 1.0, "off": 2.0}

    fastpaths.reset()  # a new process: the file answers, nothing is measured
    second = fastpaths.decide("inference")
    assert second.source == "cache" and second.paths == CHOSEN
    assert calls == [("inference", fastpaths.MODE_PATHS["inference"])]

    training = fastpaths.decide("training")  # the other mode is measured on its own and joins the same entry
    assert training.source == "measured" and training.paths["onednn_linear"] is False
    document = json.loads((tmp_path / "fastpaths.json").read_text())
    assert set(document["machines"][fastpaths.machine_key()]) == {"inference", "training"}


def test_another_machine_key_is_measured_again(monkeypatch):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    fastpaths.decide("inference")
    fastpaths.reset()
    monkeypatch.setattr(fastpaths, "machine_key", lambda: "another CPU | AVX2 | torch x | 8 threads")
    assert fastpaths.decide("inference").source == "measured"
    assert len(calls) == 2


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"\xff\xfe\x00", b"[1, 2]", b'{"version": 1, "machines": []}', b'{"version": 99}'],
)
def test_a_corrupt_cache_is_measured_again_and_rewritten(monkeypatch, tmp_path, content):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    path = tmp_path / "fastpaths.json"
    path.write_bytes(content)
    decision = fastpaths.decide("inference")
    assert decision.source == "measured" and decision.paths == CHOSEN and len(calls) == 1
    document = json.loads(path.read_text())
    assert document["machines"][fastpaths.machine_key()]["inference"]["paths"] == CHOSEN


def test_a_cached_entry_missing_a_path_is_measured_again(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    partial = {"channels_last": True}  # written by a version that knew fewer paths
    document = {
        "version": fastpaths.CACHE_VERSION,
        "machines": {fastpaths.machine_key(): {"inference": {"paths": partial}}},
    }
    (tmp_path / "fastpaths.json").write_text(json.dumps(document))
    assert fastpaths.decide("inference").source == "measured"


def test_an_unwritable_cache_still_decides(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(fastpaths.CACHE_ENV_VAR, str(blocker / "sub" / "fastpaths.json"))  # a file as a folder
    assert fastpaths.decide("inference").paths == CHOSEN
    assert "could not write the fast-path cache" in capsys.readouterr().err


def test_cache_none_keeps_the_decision_in_the_process(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    monkeypatch.setenv(fastpaths.CACHE_ENV_VAR, "none")
    fastpaths.decide("inference")
    fastpaths.decide("inference")
    assert len(calls) == 1 and not list(tmp_path.iterdir())


def test_the_override_forces_paths_without_measuring(monkeypatch):
    monkeypatch.setattr(fastpaths, "measure", lambda *a, **k: pytest.fail("measured despite the override"))
    monkeypatch.setenv(fastpaths.ENV_VAR, "off")
    assert fastpaths.decide("inference").paths == dict.fromkeys(fastpaths.PATHS, False)
    assert fastpaths.decide("inference").source == "forced"
    fastpaths.reset()
    monkeypatch.setenv(fastpaths.ENV_VAR, "on")
    assert fastpaths.decide("inference").paths == dict.fromkeys(fastpaths.PATHS, True)
    assert fastpaths.decide("training").paths == {**dict.fromkeys(fastpaths.PATHS, True), "onednn_linear": False}
    fastpaths.reset()
    monkeypatch.setenv(fastpaths.ENV_VAR, "channels_last=0,fold_bn=1,onednn_linear=on,mask_channels_last=off")
    assert fastpaths.decide("inference").paths == CHOSEN


def test_a_partial_override_measures_only_the_rest(monkeypatch):
    calls = []
    monkeypatch.setattr(fastpaths, "measure", _fake_measure(calls, CHOSEN))
    monkeypatch.setenv(fastpaths.ENV_VAR, "training.channels_last=1, fold_bn=0")
    inference, training = fastpaths.decide("inference"), fastpaths.decide("training")
    assert calls == [
        ("inference", ("channels_last", "onednn_linear", "mask_channels_last")),
        ("training", ("mask_channels_last",)),
    ]
    assert inference.paths["fold_bn"] is False and inference.paths["channels_last"] is False  # measured: CHOSEN's
    assert training.paths["channels_last"] is True and training.paths["fold_bn"] is False
    assert "forced" in training.source


@pytest.mark.parametrize("text", ["fast", "channels_last", "channel_last=1", "train.fold_bn=1", "fold_bn=2"])
def test_a_bad_override_says_what_to_write(text):
    with pytest.raises(ValueError, match="MASKRCNN_FASTPATHS=.*use auto, on, off"):
        fastpaths.parse_override(text, "inference")


def test_the_model_asks_by_autograd_mode_and_device(monkeypatch):
    monkeypatch.setenv(fastpaths.ENV_VAR, "inference.channels_last=1,training.channels_last=0,fold_bn=0")
    with torch.no_grad():
        assert fastpaths.use("channels_last") is True
    assert fastpaths.use("channels_last") is False
    assert fastpaths.use("fold_bn") is False
    cuda = torch.device("cuda")
    assert fastpaths.use("fold_bn", cuda) is True and fastpaths.use("channels_last", cuda) is False


def test_measuring_runs_every_workload_and_decides_each_path():
    """The real micro-benchmarks run in both modes (here with one repeat) and leave autograd as it was."""
    for mode in fastpaths.MODES:
        names = list(fastpaths.MODE_PATHS[mode])
        decision = fastpaths.measure(mode, names, repeats=1)
        assert set(decision.paths) == set(names) and all(isinstance(v, bool) for v in decision.paths.values())
        assert all(t["on"] > 0 and t["off"] > 0 for t in decision.timings_ms.values())
    assert torch.is_grad_enabled()


COMBINATIONS = ["off", "on"] + [
    f"{p}=1" + "".join(f",{q}=0" for q in fastpaths.PATHS if q != p) for p in fastpaths.PATHS
]


@pytest.fixture(scope="module")
def pair():
    hw, min_size, max_size = QUICK_SIZES["quick 160x224"]
    tv, ours = build_pair(min_size, max_size)
    images, targets = synthetic_batch(hw, 2, "cpu")
    tv.eval()
    with torch.no_grad():
        expected = tv(images[:1])
    return tv, ours, images, targets, expected


@pytest.mark.parametrize("spec", COMBINATIONS)
def test_every_forced_combination_gives_torchvisions_detections(monkeypatch, pair, spec):
    tv, ours, images, _, expected = pair
    monkeypatch.setenv(fastpaths.ENV_VAR, spec)
    ours.eval()
    with torch.no_grad():
        actual = ours(images[:1])
    assert len(expected[0]["boxes"]) > 10
    assert compare_detections(expected, actual).startswith("identical"), compare_detections(expected, actual)


def _train_step(ours, images, targets):
    ours.train()
    torch.manual_seed(0)
    losses = ours(images[:1], [dict(t) for t in targets[:1]])
    sum(losses.values()).backward()
    grad = ours.backbone.fpn.output[0][0].weight.grad.clone()
    ours.zero_grad(set_to_none=True)
    return {k: v.item() for k, v in losses.items()}, grad


@pytest.fixture(scope="module")
def plain_step(pair):
    _, ours, images, targets, _ = pair
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(fastpaths.ENV_VAR, "off")
        fastpaths.reset()
        result = _train_step(ours, images, targets)
    fastpaths.reset()
    return result


@pytest.mark.timeout(900)  # the first one also builds the pair and the plain step; a loaded 2-core machine
@pytest.mark.parametrize("spec", [c for c in COMBINATIONS if c != "off"])
def test_every_forced_combination_trains_to_the_same_losses_and_gradients(monkeypatch, pair, plain_step, spec):
    _, ours, images, targets, _ = pair
    monkeypatch.setenv(fastpaths.ENV_VAR, spec)
    losses, grad = _train_step(ours, images, targets)
    base_losses, base_grad = plain_step
    for key, value in losses.items():
        assert value == pytest.approx(base_losses[key], rel=1e-3, abs=1e-5), key
    scale = base_grad.abs().max().item()  # float rounding in another summation order: relative to the gradient
    torch.testing.assert_close(grad, base_grad, rtol=1e-3, atol=1e-3 * scale)
