"""The box head's GEMM through oneDNN on the CPU: the same numbers as nn.Linear, and autograd untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine import fastpaths
from engine.model import roi_heads
from engine.model.roi_heads import fast_linear


@pytest.mark.parametrize("rows", [1, 7, 300])
def test_fast_linear_equals_the_linear_layer(rows):
    torch.manual_seed(0)
    layer = nn.Linear(12544, 256)
    x = torch.randn(rows, 12544)
    with torch.no_grad():
        expected, actual = layer(x), fast_linear(x, layer)
    assert actual.shape == expected.shape and actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_large_products_take_onednn_and_small_ones_the_layer(monkeypatch):
    monkeypatch.setenv(fastpaths.ENV_VAR, "on")  # where measured slower, the layer runs (below)
    fastpaths.reset()
    calls = []
    real = torch._C._nn.mkldnn_linear
    monkeypatch.setattr(roi_heads, "_onednn_linear", lambda *a: calls.append(a[0].shape) or real(*a))
    layer = nn.Linear(1024, 1024)
    with torch.no_grad():
        fast_linear(torch.randn(100, 1024), layer)  # 105M multiply-adds
        fast_linear(torch.randn(2, 1024), layer)  # 2M: not worth the conversions
    fastpaths.reset()
    assert calls == [torch.Size([100, 1024])] or not roi_heads._HAS_ONEDNN_LINEAR


def test_where_measured_slower_the_layer_runs(monkeypatch):
    monkeypatch.setenv(fastpaths.ENV_VAR, "off")
    fastpaths.reset()
    monkeypatch.setattr(roi_heads, "_onednn_linear", None)  # would raise if called
    layer = nn.Linear(1024, 1024)
    x = torch.randn(100, 1024)
    with torch.no_grad():
        torch.testing.assert_close(fast_linear(x, layer), layer(x))
    fastpaths.reset()


def test_with_autograd_the_layer_runs_and_gradients_flow():
    torch.manual_seed(0)
    layer = nn.Linear(1024, 1024)
    x = torch.randn(100, 1024, requires_grad=True)
    fast_linear(x, layer).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(100, -1))


def test_without_the_onednn_entry_point_the_layer_runs(monkeypatch):
    monkeypatch.setattr(roi_heads, "_HAS_ONEDNN_LINEAR", False)  # a torch build without it
    monkeypatch.setattr(roi_heads, "_onednn_linear", None)  # would raise if called
    layer = nn.Linear(1024, 1024)
    x = torch.randn(100, 1024)
    with torch.no_grad():
        torch.testing.assert_close(fast_linear(x, layer), layer(x))
