"""The review CLI: correct, history, corrections export/import and export, run in-process on a temp database."""
from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from sqlalchemy import func, select

from cli.main import main
from db.models import Correction
from tests.cli import run_cli
from tests.conftest import make_image
from tests.review_data import build_review_data


@pytest.fixture
def data(tmp_path, factory):
    return build_review_data(tmp_path / "tiny", factory)


def _count(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count(Correction.id)))


def test_correct_relabel_delete_restore_undo_keep(capsys, factory, data, db_path):
    code, out, _ = run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--relabel", "phone", "--reviewer", "ann",
                        "--note", "a phone", "--db", db_path)
    assert code == 0 and out.startswith("relabelled bag/bag-0.png: bag -> phone")
    code, out, _ = run_cli(capsys, "correct", data.root, data.root / "shoe/shoe-1.png", "--delete", "--db", db_path,
                        "--format", "json")
    assert code == 0 and json.loads(out)["deleted"] is True  # a path to the file itself works too
    assert run_cli(capsys, "correct", data.root, "shoe/shoe-1.png", "--restore", "--db", db_path)[0] == 0
    assert "undid bag/bag-0.png: phone -> bag" in run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--undo",
                                                      "--db", db_path)[1]
    assert run_cli(capsys, "correct", data.root, "phone/phone-0.png", "--keep", "--db", db_path)[0] == 0
    assert _count(factory) == 5


@pytest.mark.parametrize("argv, message", [
    (["bag/bag-0.png", "--relabel", "tablet"], "unknown class 'tablet'"),
    (["bag/nope.png", "--keep"], "no image 'bag/nope.png'"),
    (["bag/bag-0.png", "--restore"], "not deleted, so it cannot be restored"),
    (["bag/bag-0.png", "--undo"], "no decision to undo"),
    (["bag/bag-0.png", "--relabel", "bag"], "already labelled 'bag'"),
])
def test_correct_refuses_impossible_decisions_and_changes_nothing(capsys, factory, data, db_path, argv, message):
    code, out, err = run_cli(capsys, "correct", data.root, *argv, "--db", db_path)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err
    assert _count(factory) == 0


def test_correct_on_a_dataset_that_was_never_scanned(capsys, tmp_path, db_path, factory):
    code, _, err = run_cli(capsys, "correct", tmp_path, "a.png", "--keep", "--db", db_path)
    assert code == 2 and "is not in the database" in err


def test_correct_needs_exactly_one_action(capsys, data, db_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["correct", str(data.root), "bag/bag-0.png", "--keep", "--delete", "--db", str(db_path)])
    assert exit_info.value.code == 2


def test_history_in_text_csv_and_json(capsys, data, db_path):
    run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--relabel", "phone", "--reviewer", "ann", "--db", db_path)
    run_cli(capsys, "correct", data.root, "shoe/shoe-1.png", "--delete", "--reviewer", "bob", "--db", db_path)
    code, text, _ = run_cli(capsys, "history", data.root, "--db", db_path)
    assert code == 0 and "relabel  bag/bag-0.png: bag -> phone" in text and "shoe (deleted)" in text
    _, out, _ = run_cli(capsys, "history", data.root, "--format", "csv", "--db", db_path)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["action"] for row in rows] == ["relabel", "delete"] and rows[0]["reviewer"] == "ann"
    _, out, _ = run_cli(capsys, "history", data.root, "--format", "json", "--reviewer", "bob", "--db", db_path)
    assert [row["path"] for row in json.loads(out)] == ["shoe/shoe-1.png"]
    _, out, _ = run_cli(capsys, "history", data.root, "--class", "phone", "--format", "json", "--db", db_path)
    assert [row["path"] for row in json.loads(out)] == ["bag/bag-0.png"]


def test_corrections_export_then_import_elsewhere_twice(capsys, tmp_path, data, db_path):
    run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--relabel", "phone", "--reviewer", "ann", "--db", db_path)
    run_cli(capsys, "correct", data.root, "shoe/shoe-1.png", "--delete", "--reviewer", "bob", "--db", db_path)
    log = tmp_path / "log.csv"
    assert run_cli(capsys, "corrections", "export", data.root, "--out", log, "--db", db_path)[0] == 0
    other = tmp_path / "other.db"
    run_cli(capsys, "scan", data.root, "--db", other, "--workers", "1")
    code, out, _ = run_cli(capsys, "corrections", "import", data.root, log, "--db", other)
    assert code == 0 and out.startswith("added 2 decisions, skipped 0")
    code, out, _ = run_cli(capsys, "corrections", "import", data.root, log, "--db", other, "--format", "json")
    report = json.loads(out)
    assert report["added"] == 0 and [item["reason"] for item in report["skipped"]] == ["already in the log"] * 2
    _, out, _ = run_cli(capsys, "history", data.root, "--format", "csv", "--db", other)
    assert [row["path"] for row in csv.DictReader(io.StringIO(out))] == ["bag/bag-0.png", "shoe/shoe-1.png"]


def test_corrections_import_of_a_file_that_is_not_a_log(capsys, tmp_path, data, db_path):
    bogus = tmp_path / "bogus.csv"
    bogus.write_text("a,b\n1,2\n")
    code, _, err = run_cli(capsys, "corrections", "import", data.root, bogus, "--db", db_path)
    assert code == 2 and "missing columns" in err


def _checksums(root):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_the_cleaned_dataset(capsys, tmp_path, data, db_path):
    before = _checksums(data.root)
    run_cli(capsys, "correct", data.root, "bag/bag-0.png", "--relabel", "phone", "--reviewer", "ann", "--db", db_path)
    run_cli(capsys, "correct", data.root, "shoe/shoe-1.png", "--delete", "--reviewer", "bob", "--db", db_path)
    out = tmp_path / "clean"
    code, text, _ = run_cli(capsys, "export", data.root, "--out", out, "--db", db_path)
    assert code == 0 and "1 relabelled, 1 deleted, 1 broken and 0 missing left out" in text
    assert (out / "phone/bag-0.png").is_file() and not (out / "bag/bag-0.png").exists()
    assert not (out / "shoe/shoe-1.png").exists() and not (out / "shoe/broken.jpg").exists()
    assert len(list(out.rglob("*.png"))) == 11  # 12 images, one deleted; the broken .jpg is left out
    manifest = {row["path"]: row for row in csv.DictReader((out / "manifest.csv").open())}
    assert manifest["bag/bag-0.png"]["final_label"] == "phone" and manifest["bag/bag-0.png"]["reviewer"] == "ann"
    assert _checksums(data.root) == before
    code, _, err = run_cli(capsys, "export", data.root, "--out", out, "--db", db_path)
    assert code == 2 and "not empty; pass --overwrite" in err
    assert run_cli(capsys, "export", data.root, "--out", out, "--overwrite", "--mode", "symlink", "--db", db_path)[0] == 0
    assert (out / "phone/bag-0.png").is_symlink()


def test_export_refuses_an_unsafe_class_name(capsys, tmp_path, factory, data, db_path):
    with factory.begin() as session:  # a label that cannot come from a folder, e.g. written by another tool
        session.add(Correction(sample_id=data.sample_ids["bag/bag-0.png"], action="relabel", old_label="bag",
                               new_label="../escape", reviewer="x", previous_id=0))
    code, _, err = run_cli(capsys, "export", data.root, "--out", tmp_path / "out", "--db", db_path)
    assert code == 2 and "'../escape'" in err and "not safe as folder names" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


def test_export_writes_the_listings_with_new_paths_prices_titles_and_extra_columns(capsys, tmp_path, db_path):
    root = tmp_path / "shop"
    for path in ("bag/a.png", "bag/b.png", "shoe/c.png"):
        make_image(root / path, size=(16, 16))
    (root / "listings.csv").write_text("path,listing_id,price,title,colour\n"
                                       "bag/a.png,L1,40,Leather bag,brown\n"
                                       "bag/b.png,L2,35.5,=HYPERLINK(x) trainers,white\n"
                                       "shoe/c.png,L3,,Canvas shoe,\n")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    assert run_cli(capsys, "correct", root, "bag/b.png", "--relabel", "shoe", "--db", db_path)[0] == 0
    out = tmp_path / "clean"
    assert run_cli(capsys, "export", root, "--out", out, "--db", db_path)[0] == 0
    with (out / "listings.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [
        {"path": "bag/a.png", "listing_id": "L1", "price": "40.0", "title": "Leather bag", "colour": "brown"},
        {"path": "shoe/b.png", "listing_id": "L2", "price": "35.5", "title": "'=HYPERLINK(x) trainers",
         "colour": "white"},
        {"path": "shoe/c.png", "listing_id": "L3", "price": "", "title": "Canvas shoe", "colour": ""},
    ]
    assert (out / "shoe" / "b.png").is_file()


def test_a_price_is_fixed_undone_and_exported(capsys, tmp_path, db_path):
    root = tmp_path / "shop"
    for path in ("laptop/a.png", "laptop/b.png"):
        make_image(root / path, size=(16, 16))
    (root / "listings.csv").write_text("path,listing_id,price,title\nlaptop/a.png,L1,129900,ThinkPad\n"
                                       "laptop/b.png,L2,1150,Dell\n")
    assert run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")[0] == 0
    code, out, err = run_cli(capsys, "correct", root, "laptop/a.png", "--price", "1299.00", "--reviewer", "ann",
                             "--db", db_path)
    assert code == 0, err
    assert out.startswith("repriced laptop/a.png: laptop at 129,900.00 -> laptop at 1,299.00")
    code, _, err = run_cli(capsys, "correct", root, "laptop/a.png", "--price", "1299", "--db", db_path)
    assert code == 2 and "already costs 1,299.00" in err
    with pytest.raises(SystemExit):  # refused by the argument parser, before the database is opened
        main(["correct", str(root), "laptop/a.png", "--price=-5", "--db", str(db_path)])
    assert "a price must be 0 or more" in capsys.readouterr().err
    log = json.loads(run_cli(capsys, "history", root, "--format", "json", "--db", db_path)[1])
    assert [(row["action"], row["old_price"], row["new_price"]) for row in log] == [("price", None, 1299.0)]

    out_dir = tmp_path / "clean"
    assert run_cli(capsys, "export", root, "--out", out_dir, "--db", db_path)[0] == 0
    with (out_dir / "listings.csv").open(newline="") as stream:
        assert [row["price"] for row in csv.DictReader(stream)] == ["1299.0", "1150.0"]

    code, out, _ = run_cli(capsys, "correct", root, "laptop/a.png", "--undo", "--db", db_path)
    assert code == 0 and out.startswith("undid laptop/a.png: laptop at 1,299.00 -> laptop at 129,900.00")
    assert run_cli(capsys, "export", root, "--out", out_dir, "--overwrite", "--db", db_path)[0] == 0
    with (out_dir / "listings.csv").open(newline="") as stream:
        assert [row["price"] for row in csv.DictReader(stream)] == ["129900.0", "1150.0"]
