"""Tests of core/scan/inspect.py: parallel inspection gives the same per-file results, in order, as inline inspection."""
from __future__ import annotations

import os

import pytest

import core.scan.inspect
from core.scan.walk import discover
from core.scan.inspect import inspect_files
from tests.conftest import make_image


@pytest.fixture
def mixed_folder(tmp_path):
    """Good images of several formats plus one of each unreadable kind, in one class folder."""
    root = tmp_path / "data"
    for index in range(12):
        make_image(root / "shoes" / f"good_{index:02d}.{['jpg', 'png', 'webp'][index % 3]}")
    (root / "shoes" / "empty.jpg").write_bytes(b"")
    (root / "shoes" / "text.png").write_text("not a picture")
    jpeg = make_image(tmp_path / "whole.jpg", size=(64, 64)).read_bytes()
    (root / "shoes" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    os.symlink("nowhere.jpg", root / "shoes" / "broken.jpg")
    return root


EXPECTED_ERRORS = {
    "shoes/empty.jpg": "empty file (0 bytes)",
    "shoes/text.png": "not an image",
    "shoes/truncated.jpg": "truncated image",
    "shoes/broken.jpg": "broken symlink",
}


def test_inline_inspection_reports_every_file(mixed_folder):
    files = discover(mixed_folder)
    infos = inspect_files(files.root, files.files, workers=1)
    by_path = {entry.path: info for entry, info in zip(files.files, infos)}
    assert len(infos) == len(files.files) == 16
    for path, reason in EXPECTED_ERRORS.items():
        assert by_path[path].error.startswith(reason), path
    good = [info for path, info in by_path.items() if path not in EXPECTED_ERRORS]
    assert all(info.error is None and info.phash and info.width == 32 for info in good)


def test_process_pool_gives_the_same_results_in_the_same_order(mixed_folder, monkeypatch):
    files = discover(mixed_folder)
    inline = inspect_files(files.root, files.files, workers=1)
    monkeypatch.setattr(core.scan.inspect, "MIN_FILES_FOR_POOL", 0)
    monkeypatch.setattr(core.scan.inspect, "CHUNK_SIZE", 3)
    reports = []
    pooled = inspect_files(files.root, files.files, workers=2, progress=lambda f, m: reports.append((f, m)))
    assert pooled == inline
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert reports[-1][1] == "16/16 images"


def test_a_file_removed_after_listing_is_reported(mixed_folder):
    files = discover(mixed_folder)
    (mixed_folder / "shoes" / "good_00.jpg").unlink()
    infos = inspect_files(files.root, files.files, workers=1)
    removed = infos[[entry.path for entry in files.files].index("shoes/good_00.jpg")]
    assert removed.error.startswith("cannot read file") and removed.content_hash is None


def test_exception_from_progress_stops_the_pool(mixed_folder, monkeypatch):
    """A cancelled job raises from its progress callback; the scan stops instead of finishing every chunk."""
    monkeypatch.setattr(core.scan.inspect, "MIN_FILES_FOR_POOL", 0)
    monkeypatch.setattr(core.scan.inspect, "CHUNK_SIZE", 1)
    files = discover(mixed_folder)
    calls = []

    def cancel(fraction, message):
        calls.append(fraction)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        inspect_files(files.root, files.files, workers=2, progress=cancel)
    assert len(calls) == 1


def test_nothing_to_inspect(monkeypatch):
    monkeypatch.setattr(core.scan.inspect, "MIN_FILES_FOR_POOL", 0)
    assert inspect_files("/nonexistent", [], workers=2) == []


def test_ray_tasks_get_large_chunks_but_every_cpu_gets_several():
    from core.scan.inspect import CHUNK_SIZE, RAY_MAX_CHUNK_SIZE, ray_chunk_size

    assert ray_chunk_size(100_000, 2) == RAY_MAX_CHUNK_SIZE
    assert ray_chunk_size(100_000, 128) == 196  # 510 tasks: 4 per CPU
    assert ray_chunk_size(45, 2) == CHUNK_SIZE
