"""The hub download with a progress callback (engine/hub.py download_file, resolve(progress=...)), which the
trainer's --events-jsonl turns into "download" events for the app's Train panel. The network is a local file://
address (these machines have none): its bytes, its length and torch's hash-prefix convention are real."""

from __future__ import annotations

import hashlib

import pytest

from engine import hub


@pytest.fixture
def served(tmp_path):
    """A 1 MiB file behind a file:// URL and its sha256."""
    data = bytes(range(256)) * 4096
    source = tmp_path / "server" / "weights.pth"
    source.parent.mkdir()
    source.write_bytes(data)
    return source.as_uri(), data, hashlib.sha256(data).hexdigest()


def test_download_reports_increasing_bytes_of_the_right_total(tmp_path, served):
    url, data, digest = served
    calls = []
    target = tmp_path / "out" / "resnet18-abc.pth"
    target.parent.mkdir()
    hub.download_file(url, target, digest[:8], lambda done, total: calls.append((done, total)), min_interval_s=1e9)
    assert target.read_bytes() == data
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    dones = [done for done, _ in calls]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)  # increasing, each value once
    assert {total for _, total in calls} == {len(data)}
    # rate-limited to about every 1 %: 16 chunks of 64 KiB are 16 calls (+ the 0), not one per byte count
    assert 3 <= len(calls) <= 102
    assert list(target.parent.iterdir()) == [target]  # no temporary file left beside it


def test_a_hash_mismatch_leaves_no_file(tmp_path, served):
    url, _, _ = served
    target = tmp_path / "out" / "resnet18-00000000.pth"
    target.parent.mkdir()
    with pytest.raises(RuntimeError, match="invalid hash value"):
        hub.download_file(url, target, "00000000", lambda done, total: None)
    assert list(target.parent.iterdir()) == []


def test_resolve_with_progress_downloads_into_the_hub_cache(tmp_path, hub_dir, served, monkeypatch):
    url, data, digest = served
    # a short name whose address is the local file, its hash prefix in the file name as torchvision's are
    name = f"resnet18-{digest[:8]}.pth"
    monkeypatch.setattr(hub.Pretrained, "url", lambda self: url.rsplit("/", 1)[0] + "/" + name)
    (tmp_path / "server" / name).write_bytes(data)
    calls = []
    path = hub.resolve("imagenet", progress=lambda done, total: calls.append((done, total)))
    assert path == hub_dir / name and path.read_bytes() == data
    assert calls[-1] == (len(data), len(data))
    calls.clear()
    assert hub.resolve("imagenet", progress=lambda done, total: calls.append((done, total))) == path
    assert calls == []  # in the cache now: nothing downloaded


def test_resolve_with_progress_and_a_bad_hash_says_so_and_leaves_nothing(tmp_path, hub_dir, served, monkeypatch):
    url, _, _ = served
    monkeypatch.setattr(hub.Pretrained, "url", lambda self: url.rsplit("/", 1)[0] + "/resnet18-00000000.pth")
    (tmp_path / "server" / "resnet18-00000000.pth").write_bytes(b"not the weights")
    with pytest.raises(hub.HubWeightsMissing, match="could not be downloaded .RuntimeError: invalid hash value"):
        hub.resolve("imagenet", progress=lambda done, total: None)
    assert list(hub_dir.iterdir()) == []


def test_the_trainer_prints_download_events_before_it_builds_the_model(tmp_path, hub_dir, served, monkeypatch, capsys):
    from engine.cli.train import _download_with_events
    from engine.training.events import TrainEvent

    url, data, digest = served
    name = f"resnet18-{digest[:8]}.pth"
    monkeypatch.setattr(hub.Pretrained, "url", lambda self: url.rsplit("/", 1)[0] + "/" + name)
    (tmp_path / "server" / name).write_bytes(data)
    _download_with_events("imagenet")
    events = [TrainEvent.from_json(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(e is not None and e.kind == "download" for e in events)
    assert {(e.message, e.path, e.bytes_total) for e in events} == {
        ("ImageNet ResNet-18", str(hub_dir / name), len(data))
    }
    assert events[-1].bytes_done == len(data) and (hub_dir / name).read_bytes() == data
    _download_with_events("imagenet")
    assert capsys.readouterr().out == ""  # cached: no event
