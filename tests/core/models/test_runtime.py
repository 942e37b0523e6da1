"""The embedding runtime: ONNX Runtime gives PyTorch's vectors, its graph is cached and checked, and
whatever stops it leaves PyTorch running, on small real image files and the real MobileNetV2 weights."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from core.models.embeddings import embed_images, get_backbone, weights_path
from core.models.runtime import graph_path, grid_pool, min_cosine, resolve_runtime
from tests.core.models.test_embeddings import item_photo


@pytest.fixture
def private_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME in tmp_path holding (a link to) the installed MobileNetV2 weights and no cached graph."""
    installed = weights_path(get_backbone("mobilenet_v2"))
    home = tmp_path / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    (home / "hub" / "checkpoints" / installed.name).symlink_to(installed)
    return home / "hub" / "checkpoints"


@pytest.fixture
def photos(tmp_path):
    shapes = ["rectangle", "ellipse"]
    return [item_photo(tmp_path / "photos" / f"{i}.png", box=(2 + 4 * i, 6, 34 + 3 * i, 56),
                       colour=(30 * i, 90, 200 - 20 * i), shape=shapes[i % 2]) for i in range(6)]


@pytest.mark.parametrize("size,view", [(56, "crop"), (72, "whole")])
def test_onnx_runtime_gives_pytorchs_vectors(photos, private_torch_home, size, view):
    """At map sizes where the 2x2 grid's windows overlap (7x7 at 112 px is the default's case; 4x4 and
    3x3 here) as well as where they tile."""
    torch_vectors = embed_images(photos, image_size=size, view=view, device="cpu", runtime="torch")
    onnx_vectors = embed_images(photos, image_size=size, view=view, device="cpu", runtime="onnxruntime")
    assert min_cosine(onnx_vectors, torch_vectors) >= 0.9999
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-3)
    assert graph_path("mobilenet_v2", private_torch_home / weights_path(get_backbone("mobilenet_v2")).name,
                      size).is_file()


def test_the_default_on_a_cpu_is_onnx_runtime_and_the_environment_can_choose_pytorch(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("LISTING_AUDIT_RUNTIME", raising=False)
    assert resolve_runtime(None, cpu) == "onnxruntime"
    assert resolve_runtime(None, torch.device("cuda")) == "torch"
    monkeypatch.setenv("LISTING_AUDIT_RUNTIME", "torch")
    assert resolve_runtime(None, cpu) == "torch"
    assert resolve_runtime("onnxruntime", cpu) == "onnxruntime"
    with pytest.raises(ValueError, match="unknown runtime 'tvm'; runtimes are: auto, onnxruntime, torch"):
        resolve_runtime("tvm", cpu)


def test_a_damaged_cached_graph_is_exported_again(photos, private_torch_home, caplog):
    expected = embed_images(photos, image_size=40, device="cpu", runtime="torch")
    graph = graph_path("mobilenet_v2", private_torch_home / weights_path(get_backbone("mobilenet_v2")).name, 40)
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="core.models.runtime"):
        vectors = embed_images(photos, image_size=40, device="cpu", runtime="onnxruntime")
    assert "does not load" in caplog.text and "exporting it again" in caplog.text
    assert graph.stat().st_size > 1_000_000  # the network's weights are in it
    assert min_cosine(vectors, expected) >= 0.9999


def test_a_cache_that_cannot_be_written_leaves_pytorch_running_with_one_warning(photos, private_torch_home, caplog):
    (private_torch_home / "onnx").write_text("a file where the graph folder would be")
    with caplog.at_level(logging.WARNING, logger="core.models.runtime"):
        first = embed_images(photos[:3], image_size=48, device="cpu", runtime="onnxruntime")
        second = embed_images(photos[3:], image_size=48, device="cpu", runtime="onnxruntime")
    warnings = [record.getMessage() for record in caplog.records if "embedding with PyTorch" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("ONNX Runtime not used for mobilenet_v2")
    expected = embed_images(photos, image_size=48, device="cpu", runtime="torch")
    np.testing.assert_array_equal(np.concatenate([first, second]), expected)


@pytest.mark.parametrize("height,width,grid", [(7, 7, 2), (5, 3, 2), (4, 4, 2), (1, 1, 2), (6, 9, 1)])
def test_grid_pooling_takes_pytorchs_adaptive_windows(height, width, grid):
    maps = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height * width))
    expected = torch.nn.functional.adaptive_avg_pool2d(maps, grid).flatten(1)
    torch.testing.assert_close(grid_pool(maps, grid), expected)
