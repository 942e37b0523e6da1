"""Files swapped after the scan: a FIFO where an image was never hangs a reader, and export writes only files whose
bytes are still those the scan hashed, with a manifest and counts that say so."""
from __future__ import annotations

import csv
import json
import os
import threading

import pytest

from cli.main import main as cli_main
from core.files import NotARegularFile
from core.imaging import open_rgb, read_file_facts, sha256_hex
from core.models.data import load_images
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.training_data import one_torch_thread
from ui.thumbnails import render_jpeg

__all__ = ["one_torch_thread"]  # a fixture used by name


def finishes_within(seconds: float, work) -> object:
    """work()'s result, or AssertionError when it is still running after `seconds` (a reader blocked on a FIFO)."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread below
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the reader blocked"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def shop(tmp_path, factory):
    root = tmp_path / "shop"
    for label in ("bag", "shoe"):
        for i in range(4):
            make_image(root / label / f"{label}{i}.png")
    scan_dataset(factory, root, workers=1)
    return root


def test_a_fifo_swapped_in_after_the_scan_fails_every_reader_at_once(shop, tmp_path):
    fifo = shop / "shoe" / "shoe1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile):
        finishes_within(5, lambda: open_rgb(fifo, max_side=64))
    with pytest.raises(NotARegularFile):
        finishes_within(5, lambda: read_file_facts(fifo))
    image, problem = finishes_within(5, lambda: render_jpeg(str(fifo), max_side=64))
    assert image and "not a regular file" in problem
    decoded = finishes_within(30, lambda: load_images(shop, ["shoe/shoe0.png", "shoe/shoe1.png"],
                                                      [sha256_hex((shop / "shoe/shoe0.png").read_bytes()), "h1"], size=32,
                                                      cache_dir=tmp_path / "cache", workers=1))
    assert list(decoded.failed) == [1] and "not a regular file" in decoded.failed[1]


def test_export_writes_only_what_is_still_as_scanned_and_its_manifest_says_why(shop, tmp_path, db_path, capsys):
    (shop / "bag" / "bag3.png").unlink()
    (shop / "bag" / "bag2.png").write_text("hello")
    fifo = shop / "shoe" / "shoe1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    out = tmp_path / "clean"
    code = finishes_within(60, lambda: cli_main(["export", str(shop), "--out", str(out), "--db", str(db_path)]))
    printed = capsys.readouterr().out
    assert code == 0
    assert "5 of 8 images exported" in printed
    assert "not exported, since the scan: 1 gone from disk, 1 changed on disk (rescan to see them), 1 no longer " \
           "regular files inside the dataset folder" in printed
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["bag/bag0.png", "bag/bag1.png", "shoe/shoe0.png", "shoe/shoe2.png", "shoe/shoe3.png"]
    with open(out / "manifest.csv", newline="") as handle:
        fates = {row["path"]: (row["decision"], row["output_path"]) for row in csv.DictReader(handle)}
    assert fates["bag/bag3.png"] == ("vanished", "") and fates["bag/bag2.png"] == ("changed", "")
    assert fates["shoe/shoe1.png"] == ("refused", "")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exported"] == summary["files_written"] == 5
    assert (summary["failed"], summary["changed"], summary["refused_outside"]) == (
        ["bag/bag3.png"], ["bag/bag2.png"], ["shoe/shoe1.png"])


def test_a_picture_replaced_under_a_decision_is_named_at_the_rescan(factory, shop):
    from sqlalchemy import select

    from db.corrections import decide
    from db.models import Sample

    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/bag0.png")).one()
        decide(session, sample, "relabel", classes=["bag", "shoe"], new_label="shoe")
    make_image(shop / "bag" / "bag0.png", size=(40, 30), color=(1, 2, 3))  # another picture, same name
    make_image(shop / "bag" / "bag1.png", size=(40, 30), color=(3, 2, 1))  # changed too, but never decided on
    summary = scan_dataset(factory, shop, workers=1)
    assert summary["updated"] == 2
    assert summary["decision_notes"] == ["1 file with review decisions was replaced by a different picture since the "
                                   "last scan; its decisions still apply, so check it: bag/bag0.png"]


def scanned_hashes(factory) -> dict[str, str]:
    """path -> the content hash the scan recorded."""
    from sqlalchemy import select

    from db.models import Sample

    with factory() as session:
        return dict(session.execute(select(Sample.path, Sample.content_hash)).all())


def test_a_picture_put_in_a_files_place_after_the_scan_is_not_trained_on_embedded_cached_or_shown(
        factory, shop, tmp_path):
    from core.files import CHANGED_SINCE_SCAN
    from core.models.embeddings import UnreadableImageError, cache_key, embed_cached
    from db.embeddings import DbEmbeddingStore

    hashes = scanned_hashes(factory)
    paths = ["shoe/shoe0.png", "shoe/shoe1.png"]
    original = (shop / paths[1]).read_bytes()
    make_image(shop / paths[1], size=(40, 30), color=(1, 2, 3))  # another picture under the same name
    decode = lambda: load_images(shop, paths, [hashes[p] for p in paths], size=32, cache_dir=tmp_path / "cache",
                                 workers=1)
    assert decode().failed == {1: CHANGED_SINCE_SCAN}
    store = DbEmbeddingStore(factory)
    with pytest.raises(UnreadableImageError, match="changed since the scan.*shoe1.png"):
        embed_cached([str(shop / p) for p in paths], [hashes[p] for p in paths], store=store, backbone="pixels",
                     root=shop)
    assert hashes[paths[1]] not in store.get_many([hashes[p] for p in paths], cache_key("pixels"))
    image, problem = render_jpeg(str(shop / paths[1]), max_side=64, root=str(shop), content_hash=hashes[paths[1]])
    assert image and problem == "a different picture: the file changed since the scan (rescan the dataset)"

    (shop / paths[1]).write_bytes(original)  # put back: nothing of the other picture was cached under its hash
    again = decode()
    assert (again.failed, again.from_cache) == ({}, 1)
    assert render_jpeg(str(shop / paths[1]), max_side=64, root=str(shop), content_hash=hashes[paths[1]])[1] is None


def test_a_link_out_of_the_folder_put_in_a_files_place_after_the_scan_is_never_read(factory, shop, tmp_path):
    from core.models.embeddings import UnreadableImageError, embed_images

    outside = make_image(tmp_path / "elsewhere" / "private.png")
    swapped = shop / "bag" / "bag1.png"
    swapped.unlink()
    swapped.symlink_to(outside)
    decoded = load_images(shop, ["bag/bag1.png"], [sha256_hex(outside.read_bytes())], size=32,
                          cache_dir=tmp_path / "cache", workers=1)
    assert "outside the dataset folder" in decoded.failed[0]
    with pytest.raises(UnreadableImageError, match="bag1.png"):
        embed_images([str(swapped)], backbone="pixels", root=shop)
    image, problem = render_jpeg(str(swapped), max_side=64, root=str(shop))
    assert problem == "not read: link leads outside the dataset folder; not read"


def test_a_training_run_leaves_out_a_picture_changed_since_the_scan_and_says_so(tmp_path, one_torch_thread):
    from core.models.samples import skipped_text
    from core.train.run import main
    from tests.training_data import CLASSES, config_for, samples_table, write_training_images

    root = write_training_images(tmp_path / "data")
    table = samples_table(root)
    make_image(root / "bag" / "bag-0.jpg", size=(40, 48), color=(9, 9, 9))  # edited after the scan
    result = main(config_for(tmp_path), table, CLASSES, root)
    bag0 = int(table.loc[table["path"] == "bag/bag-0.jpg", "id"].iloc[0])
    assert result["samples"]["skipped"] == {str(bag0): "changed since the scan (rescan the dataset)"}
    assert skipped_text(result["samples"]["skipped"]) == "1 left out: 1 changed since the scan (rescan the dataset)"
