"""A class folder renamed (or photos moved) after review: the decisions follow the files by content hash, are
said at the rescan, and export keeps them."""
from __future__ import annotations

from sqlalchemy import select

from core.export.plan import plan_export
from db.corrections import decide, undo_last_action
from db.models import Correction, Sample
from db.queries import dataset_classes
from db.review import export_frame
from jobs.scan import scan_dataset
from tests.adversarial.scan_inputs import reviewed_shop
from tests.cli import run_cli
from tests.conftest import make_image


def test_a_renamed_class_folder_keeps_every_decision_and_says_so(factory, tmp_path, capsys, db_path):
    root = tmp_path / "shop"
    dataset_id = reviewed_shop(factory, root, [
        ("bag/bag0.png", "relabel", {"new_label": "shoe", "reviewer": "ann"}),
        ("bag/bag1.png", "delete", {"reviewer": "ann"}), ("bag/bag2.png", "keep", {"reviewer": "bob"}),
        ("shoe/shoe0.png", "price", {"new_price": 12.0, "reviewer": "ann"})])
    (root / "bag").rename(root / "bags")
    code, out, _ = run_cli(capsys, "scan", root, "--db", db_path, "--workers", "1")
    assert code == 0
    assert "Review decisions:\n  decisions on 3 files that moved since the last scan (same content) were carried " \
           "to their new paths: bag/bag0.png -> bags/bag0.png, bag/bag1.png -> bags/bag1.png, " in out
    with factory() as session:
        plan = plan_export(export_frame(session, dataset_id))
        carried = session.execute(
            select(Sample.path, Correction.action, Correction.new_label, Correction.reviewer, Correction.note)
            .join(Sample, Sample.id == Correction.sample_id).where(Sample.path.like("bags/%"))
            .order_by(Sample.path)).all()
    manifest = plan.manifest.set_index("path")
    assert manifest.loc["bags/bag0.png", ["decision", "output_path"]].tolist() == ["relabelled", "shoe/bag0.png"]
    assert manifest.loc["bags/bag1.png", "decision"] == "deleted"
    assert manifest.loc["bags/bag2.png", "decision"] == "kept"
    assert [(path, action, label, reviewer) for path, action, label, reviewer, _ in carried] == [
        ("bags/bag0.png", "relabel", "shoe", "ann"), ("bags/bag1.png", "delete", "bags", "ann"),
        ("bags/bag2.png", "keep", "bags", "bob")]
    assert all(note == f"carried from {path.replace('bags/', 'bag/')}: the same file, moved since the last scan"
               for path, *_, note in carried)
    with factory.begin() as session:  # the carried decisions are one action of their reviewer's: one undo
        undone = undo_last_action(session, dataset_id, "ann", classes=dataset_classes(session, dataset_id))
        paths = {session.get(Sample, c.sample_id).path for c in undone}
    assert paths == {"bags/bag0.png", "bags/bag1.png"}  # not bob's carried keep


def test_a_copy_makes_the_match_ambiguous_and_nothing_is_carried(factory, tmp_path):
    root = tmp_path / "shop"
    make_image(root / "bag" / "a.png")
    make_image(root / "shoe" / "s.png")
    dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
    with factory.begin() as session:
        sample = session.scalars(select(Sample).where(Sample.path == "bag/a.png")).one()
        decide(session, sample, "relabel", classes=dataset_classes(session, dataset_id), new_label="shoe")
    (root / "bag").rename(root / "bags")
    (root / "shoe" / "copy.png").write_bytes((root / "bags" / "a.png").read_bytes())
    summary = scan_dataset(factory, root, workers=1)
    assert summary["carried_decisions"] == 0 and summary["decision_notes"] == []
