"""The ray executor (core.executors) against the local path: the scan's inspection and the embeddings,
run on a local Ray instance with 2 CPUs, give the same rows; choosing and reaching Ray fails in one line."""
from __future__ import annotations

import time

import numpy as np
import pytest

from core.scan.walk import discover
from core.executors import RAY_ADDRESS_ENV, ExecutorError, check_ray, remote_error_line, resolve_executor
from core.models.embeddings import UnreadableImageError, embed_images
from core.scan.inspect import CHUNK_SIZE, inspect_files
from tests.conftest import make_image
from tests.core.audit.checks.photos import photo, save
from tests.ray_instance import closed_port, local_ray

#: embeddings computed on Ray may differ from the local ones by float rounding (threads, batch split) only
EMBEDDING_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def ray_address():
    with local_ray() as address:
        yield address


def test_local_is_the_default_and_the_address_makes_ray_the_default(monkeypatch):
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert resolve_executor() == "local" and resolve_executor("ray") == "ray"
    monkeypatch.setenv(RAY_ADDRESS_ENV, "head:6379")
    assert resolve_executor() == "ray" and resolve_executor("local") == "local"
    monkeypatch.setenv(RAY_ADDRESS_ENV, "  ")
    assert resolve_executor() == "local"
    with pytest.raises(ValueError, match="unknown executor 'spark'; executors are: local, ray"):
        resolve_executor("spark")


def test_ray_client_addresses_are_refused_in_one_line(monkeypatch):
    monkeypatch.setenv(RAY_ADDRESS_ENV, "ray://head:10001")  # Ray Data fails inside Ray Client sessions
    with pytest.raises(ExecutorError, match=r"^Ray Data pipelines do not run through Ray Client \(ray://head:10001\); "):
        check_ray()


def test_an_unreachable_cluster_fails_at_once_in_one_line(monkeypatch, tmp_path):
    port = closed_port()
    monkeypatch.setenv(RAY_ADDRESS_ENV, f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        check_ray()
    message = str(caught.value)
    assert message == f"cannot reach the Ray cluster at 127.0.0.1:{port} (${RAY_ADDRESS_ENV}): Connection refused"
    make_image(tmp_path / "bags" / "x.jpg")
    with pytest.raises(ExecutorError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        inspect_files(tmp_path, discover(tmp_path).files, executor="ray")
    assert time.monotonic() - started < 10  # Ray itself would retry for minutes


def test_the_exception_raised_on_the_cluster_is_named_in_one_line():
    remote = ("\x1b[36mray::MapBatches(crop_batch)()\x1b[39m (pid=1, ip=10.0.0.2)\n  File \"x.py\", line 9, in f\n"
              "    raise MissingWeightsError(...)\ncore.models.embeddings.MissingWeightsError: weights not installed\n\n"
              "ray.exceptions.UserCodeException: UDF failed to process a data block.")
    assert remote_error_line(RuntimeError(remote)) == "MissingWeightsError: weights not installed"
    assert remote_error_line(RuntimeError("\x1b[36mthe node died\x1b[39m\n")) == "the node died"


def scan_folder(root):
    """Images of every kind the scan meets, more than one Ray block of them: JPEG photos in nested folders,
    transparent, grey and 16-bit PNGs, an empty file, a truncated JPEG, text named .jpg and a dangling
    link (a file the walk could not stat, so its FileEntry has a stat_error)."""
    for index in range(CHUNK_SIZE + 8):
        label = "shoes" if index % 2 else "bags"
        save(photo(index, size=(48, 36)), root / label / f"sub{index % 3}" / f"p{index}.jpg")
    make_image(root / "bags" / "clear.png", size=(20, 20), mode="RGBA")
    make_image(root / "bags" / "grey.png", size=(20, 12), mode="L")
    make_image(root / "shoes" / "deep.png", size=(16, 16), mode="I;16")
    (root / "shoes" / "empty.jpg").write_bytes(b"")
    (root / "shoes" / "cut.jpg").write_bytes((root / "shoes" / "sub1" / "p1.jpg").read_bytes()[:400])
    (root / "bags" / "text.jpg").write_text("not a picture")
    (root / "bags" / "gone.jpg").symlink_to(root / "bags" / "nowhere.jpg")
    return root


@pytest.mark.slow
def test_the_scan_inspects_the_same_on_ray_as_locally(tmp_path, ray_address):
    files = discover(scan_folder(tmp_path / "shop")).files
    local = inspect_files(tmp_path / "shop", files)
    fractions = []
    on_ray = inspect_files(tmp_path / "shop", files, executor="ray", workers=2,
                           progress=lambda fraction, message: fractions.append(fraction))
    assert on_ray == local  # hashes, pHashes, sizes, modes, statistics and errors, in input order
    failed = {entry.path: info.error.split(":")[0] for entry, info in zip(files, local) if info.error}
    assert failed == {"bags/gone.jpg": "broken symlink", "bags/text.jpg": "not an image",
                      "shoes/cut.jpg": "truncated image", "shoes/empty.jpg": "empty file (0 bytes)"}
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 2


def photos(folder, count):
    return [save(photo(100 + index, size=(40 + 4 * index, 36)), folder / f"p{index}.jpg") for index in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize("backbone, view", [("pixels", "crop"), ("mobilenet_v2", "crop"), ("mobilenet_v2", "whole")])
def test_embeddings_on_ray_equal_the_local_ones(tmp_path, ray_address, backbone, view):
    paths = photos(tmp_path / "photos", 7)
    options = {"backbone": backbone, "image_size": 32, "view": view, "device": "cpu", "batch_size": 3}
    local = embed_images(paths, **options)
    on_ray = embed_images(paths, executor="ray", **options)  # three blocks, two actors: may finish out of order
    assert on_ray.shape == local.shape and on_ray.dtype == np.float32
    assert float(np.abs(on_ray - local).max()) <= EMBEDDING_TOLERANCE


@pytest.mark.slow
def test_files_that_do_not_decode_on_the_cluster_are_named(tmp_path, ray_address):
    paths = photos(tmp_path / "photos", 3)
    (tmp_path / "photos" / "p1.jpg").write_bytes(b"changed since the scan")
    with pytest.raises(UnreadableImageError, match=r"1 image\(s\) could not be decoded .*p1\.jpg"):
        embed_images(paths, backbone="pixels", executor="ray")


@pytest.mark.slow
def test_a_gpu_asked_of_a_cluster_without_one_is_refused(tmp_path, ray_address):
    with pytest.raises(ValueError, match="device 'cuda' asked for, but the Ray cluster has no GPUs"):
        embed_images(photos(tmp_path, 1), image_size=32, device="cuda", executor="ray")
