"""The Review page with AppTest, driving its widgets by key against a real SQLite file and real images."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, event, select
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.models import Correction, Sample
from tests.db.test_engine import write_lock_held
from tests.review_data import CLASSES, build_review_data, plant_expected_price_flag, store_embeddings_by_folder
from ui.warm_up import THREAD_NAME as WARM_UP_THREAD

TIMEOUT_S = 30
PAGE = Path(__file__).resolve().parents[2] / "pages" / "2_Review.py"


@pytest.fixture
def data(tmp_path, factory, app_db):
    return build_review_data(tmp_path / "tiny", factory)


def open_review(*, reviewer: str = "ann", kinds: tuple[str, ...] = ()) -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    if reviewer:
        app.text_input(key="reviewer").set_value(reviewer).run()
    if kinds:
        app.multiselect(key="filter_kind").set_value(list(kinds)).run()
    assert not app.exception, app.exception
    return app


def heading(app: AppTest) -> str:
    return app.subheader[0].value


def log(factory) -> list[tuple]:
    with factory() as session:
        return [tuple(row) for row in session.execute(
            select(Sample.path, Correction.action, Correction.new_label, Correction.deleted, Correction.reviewer,
                   Correction.flag_id).join(Sample, Sample.id == Correction.sample_id).order_by(Correction.id)
        )]


def test_the_queue_starts_at_the_worst_flag_and_pages_with_next_and_previous(data):
    app = open_review()
    assert heading(app).startswith("1 of 6 · broken")
    assert "Broken file: cannot decode" in app.error[0].value
    app.button(key="next").click().run()
    assert heading(app).startswith("2 of 6 · mislabel")
    app.button(key="previous").click().run()
    assert heading(app).startswith("1 of 6 · broken")
    assert "`a` accept the suggested label" in app.caption[-1].value


def test_mislabel_evidence_shows_the_suggestion_its_probability_and_examples(data):
    app = open_review(kinds=("mislabel",))
    text = " ".join(m.value for m in app.markdown)
    assert "Given label **bag** · suggested **phone** (91%)" in text
    assert "Top classes: phone 91%, bag 6%, shoe 3%" in text
    captions = [c.value for c in app.caption]
    assert "Other images of bag" in captions and "Images of phone" in captions
    assert app.button(key="accept_suggestion").label == "Accept phone"


def test_accepting_the_suggestion_relabels_and_moves_on(factory, data):
    app = open_review(kinds=("mislabel",))
    app.button(key="accept_suggestion").click().run()
    assert not app.exception
    assert log(factory) == [("bag/bag-0.png", "relabel", "phone", False, "ann", data.flag_ids["bag/bag-0.png"])]
    assert "bag/bag-0.png — bag → phone" in app.success[0].value
    assert heading(app).startswith("1 of 2 · mislabel")  # the decided item left the open queue


def test_relabel_to_any_class_delete_keep_and_restore(factory, data):
    app = open_review(kinds=("mislabel",))
    app.selectbox(key="relabel_class").set_value("shoe").run()
    app.button(key="relabel").click().run()
    app.button(key="delete").click().run()  # shoe/shoe-1.png, now first
    app.button(key="keep").click().run()  # phone/phone-3.png
    assert [(path, action) for path, action, *_ in log(factory)] == [
        ("bag/bag-0.png", "relabel"), ("shoe/shoe-1.png", "delete"), ("phone/phone-3.png", "keep")]
    app.segmented_control(key="filter_state").set_value("decided").run()
    app.button(key="next").click().run()
    assert heading(app) == "2 of 3 · mislabel · shoe/shoe-1.png" and app.button(key="restore").disabled is False
    app.button(key="restore").click().run()
    assert log(factory)[-1][:4] == ("shoe/shoe-1.png", "restore", "shoe", False)


def test_undo_reverts_my_last_decision_and_brings_the_item_back(factory, data):
    app = open_review(kinds=("mislabel",))
    app.button(key="accept_suggestion").click().run()
    app.button(key="undo").click().run()
    assert not app.exception
    assert [action for _, action, *_ in log(factory)] == ["relabel", "undo"]
    assert "Undid your last decision on bag/bag-0.png" in app.success[0].value
    assert heading(app) == "1 of 3 · mislabel · bag/bag-0.png"  # back in the open queue, shown again


def test_a_sample_decided_by_someone_else_meanwhile_is_not_overwritten(factory, data):
    app = open_review(kinds=("mislabel",))
    with factory.begin() as session:  # bob decides on the image ann is looking at
        decide(session, session.get(Sample, data.sample_ids["bag/bag-0.png"]), "delete", classes=CLASSES,
               reviewer="bob")
    app.button(key="accept_suggestion").click().run()
    assert "changed by someone else" in app.warning[0].value
    assert [(action, reviewer) for _, action, _, _, reviewer, _ in log(factory)] == [("delete", "bob")]


def test_decisions_need_a_reviewer_name(factory, data):
    app = open_review(reviewer="")
    assert app.button(key="keep").disabled and app.button(key="undo").disabled
    assert any("Enter your name" in w.value for w in app.warning)


def test_duplicate_group_keep_one_delete_the_rest(factory, data):
    app = open_review(kinds=("duplicate",))
    assert heading(app).startswith("1 of 1 · duplicate")
    assert "2 images in this duplicate group" in " ".join(m.value for m in app.markdown)
    app.button(key=f"keep_only_{data.sample_ids['bag/bag-2.png']}").click().run()
    assert not app.exception
    assert sorted((path, action) for path, action, *_ in log(factory)) == [
        ("bag/bag-1.png", "delete"), ("bag/bag-2.png", "keep")]
    assert "Nothing to review" in app.success[1].value
    app.button(key="undo").click().run()  # one undo reverts the whole group action
    assert [action for _, action, *_ in log(factory)][-2:] == ["undo", "undo"]


def test_price_evidence_draws_the_class_distribution(data):
    app = open_review(kinds=("price",))
    assert "Price **320.00** in class **phone**" in " ".join(m.value for m in app.markdown)
    assert app.get("plotly_chart")


def test_filters_by_class_score_and_state(factory, data):
    app = open_review()
    app.multiselect(key="filter_class").set_value(["shoe"]).run()
    assert heading(app).startswith("1 of 2 · broken")
    app.slider(key="filter_score").set_value(0.5).run()  # sure at least 0.5: score at most 0.5
    assert heading(app).startswith("1 of 2 · broken")
    app.slider(key="filter_score").set_value(0.95).run()
    assert heading(app).startswith("1 of 1 · broken")
    app.segmented_control(key="filter_state").set_value("decided").run()
    assert "Nothing to review" in app.success[0].value


def test_the_queue_shows_the_state_and_kind_columns_only_when_they_differ_between_rows(data):
    app = open_review()
    queue = lambda: app.dataframe(key="queue_table").value
    assert list(queue().columns) == ["#", "kind", "sure", "path"]
    app.segmented_control(key="filter_state").set_value("all").run()
    assert list(queue().columns) == ["#", "state", "kind", "sure", "path"]
    app.multiselect(key="filter_kind").set_value(["mislabel"]).run()
    assert list(queue().columns) == ["#", "state", "sure", "path"]
    assert queue()["path"].tolist()[0] in heading(app)


def test_bulk_accept_states_the_count_then_relabels_exactly_that_many(factory, data):
    app = open_review()
    app.number_input(key="bulk_count").set_value(2).run()
    app.button(key="bulk_prepare").click().run()
    assert "This relabels exactly 2 images" in app.warning[0].value
    assert app.button(key="bulk_confirm").label == "Relabel 2 images"
    app.button(key="bulk_confirm").click().run()
    assert not app.exception
    assert [(path, label) for path, _, label, *_ in log(factory)] == [
        ("bag/bag-0.png", "phone"), ("shoe/shoe-1.png", "bag")]
    app.button(key="undo").click().run()
    assert "Undid your last decision on 2 images" in app.success[0].value
    assert [action for _, action, *_ in log(factory)] == ["relabel", "relabel", "undo", "undo"]


def test_bulk_accept_can_be_cancelled(factory, data):
    app = open_review()
    app.button(key="bulk_prepare").click().run()
    assert "This relabels exactly 3 images" in app.warning[0].value
    assert [image.proto.imgs[0].caption for image in app.get("image")][-3:] == [
        "bag → phone", "shoe → bag", "phone → shoe"]
    app.button(key="bulk_cancel").click().run()
    assert log(factory) == [] and not app.get("bulk_confirm")
    assert app.expander[0].proto.expanded  # still open to choose another count


def test_bulk_accept_takes_at_most_the_open_mislabels_under_the_filters(data):
    app = open_review()
    assert app.number_input(key="bulk_count").max == 3
    app.multiselect(key="filter_class").set_value(["bag"]).run()
    assert app.number_input(key="bulk_count").max == 1


def test_without_an_audit_the_page_says_so(tmp_path, factory, app_db):
    from jobs.scan import scan_dataset
    from tests.pages.tiny_dataset import build_tiny_dataset

    scan_dataset(factory, build_tiny_dataset(tmp_path / "tiny"), workers=1)
    app = open_review()
    assert "no finished audit" in app.info[0].value


def test_mislabel_shows_what_the_price_and_duplicate_checks_said(factory, data):
    import json

    from db.models import Flag

    with factory.begin() as session:
        flag = session.get(Flag, data.flag_ids["bag/bag-0.png"])
        evidence = json.loads(flag.evidence_json)
        evidence["price_check"] = {"price": 40.0, "class_median": 45.0, "z": 4.2, "best_class": "phone",
                                   "best_class_z": 0.1, "supports_suggestion": True}
        evidence["duplicate_group"] = {"group": 3, "labels": ["bag", "phone", "phone"], "majority_label": "phone"}
        flag.evidence_json = json.dumps(evidence)
    app = open_review(kinds=("mislabel",))
    text = " ".join(m.value for m in app.markdown)
    assert "Its price 40.00 is an outlier for its class and within the usual range of **phone**." in text
    assert "It has duplicates labelled bag, phone, phone; the majority label is **phone**." in text


def test_mislabel_shows_each_members_vote_strongest_first(factory, data):
    import json

    from db.models import Flag

    votes = [
        {"member": "price", "label": "price", "top": "phone", "probability": 0.4, "given_probability": 0.2,
         "weight": 0.3, "price": 105.0, "fits": "phone"},
        {"member": "photo", "label": "photo", "top": "phone", "probability": 0.82, "given_probability": 0.1,
         "weight": 1.2},
        {"member": "title", "label": "title", "top": "phone", "probability": 0.91, "given_probability": 0.05,
         "weight": 0.8, "title": "old *nokia* [phone](http://127.0.0.1/x)", "words": ["nokia", "phone"]},
    ]
    with factory.begin() as session:
        flag = session.get(Flag, data.flag_ids["bag/bag-0.png"])
        flag.evidence_json = json.dumps({**json.loads(flag.evidence_json), "members": votes})
    app = open_review(kinds=("mislabel",))
    text = next(m.value for m in app.markdown if m.value.startswith("Evidence:"))
    lines = text.removeprefix("Evidence: ").split("  \n")
    assert lines[0] == "photo: **phone** 82% · weight 1.20"
    assert lines[1].startswith("title 'old \\*nokia\\* \\[phone\\]\\(http\\:") and "(words: nokia, phone)" in lines[1]
    assert lines[2] == "price 105.00 → **phone** 40% · weight 0.30"


def test_the_relabel_list_starts_at_each_items_suggestion(factory, data):
    app = open_review(kinds=("mislabel",))
    assert app.selectbox(key="relabel_class").value == "phone"  # bag/bag-0.png: suggested phone
    app.selectbox(key="relabel_class").set_value("shoe").run()
    app.button(key="next").click().run()
    assert heading(app).startswith("2 of 3 · mislabel · shoe/shoe-1.png")
    assert app.selectbox(key="relabel_class").value == "bag"  # its own suggestion, not the last choice
    app.button(key="next").click().run()
    app.button(key="relabel").click().run()
    assert log(factory)[-1][:3] == ("phone/phone-3.png", "relabel", "shoe")


def test_the_url_keeps_the_view_filters_and_item_so_a_reload_or_new_tab_opens_the_same_place(factory, data):
    app = open_review(kinds=("mislabel",))
    app.multiselect(key="filter_class").set_value(["shoe", "phone"]).run()
    app.button(key="next").click().run()
    assert heading(app).startswith("2 of 2 · mislabel · phone/phone-3.png")
    params = {name: [value] if isinstance(value, str) else list(value) for name, value in app.query_params.items()}
    assert params["kind"] == ["mislabel"] and set(params["class"]) == {"shoe", "phone"}
    assert params["item"] == [str(data.flag_ids["phone/phone-3.png"])] and params["reviewer"] == ["ann"]
    assert params["dataset"] == [str(data.dataset_id)]

    again = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    for name, values in params.items():
        again.query_params[name] = values
    again.run()
    assert not again.exception, again.exception
    assert heading(again).startswith("2 of 2 · mislabel · phone/phone-3.png")
    assert again.multiselect(key="filter_kind").value == ["mislabel"]
    assert again.text_input(key="reviewer").value == "ann"

    decided = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    for name, values in {"state": "decided", "kind": "nonsense", "sure": "7", "item": "x"}.items():
        decided.query_params[name] = values
    decided.run()
    assert not decided.exception, decided.exception
    assert decided.segmented_control(key="filter_state").value == "decided"
    assert decided.multiselect(key="filter_kind").value == [] and decided.slider(key="filter_score").value == 0.0


def test_relabel_on_an_item_without_a_suggestion_asks_for_a_class_first(factory, data):
    app = open_review()
    assert heading(app).startswith("1 of 6 · broken · shoe/broken.jpg")
    assert app.selectbox(key="relabel_class").value is None
    assert app.button(key="relabel").disabled
    assert "Choose a class under Relabel to first" in app.button(key="relabel").help
    app.selectbox(key="relabel_class").set_value("bag").run()
    assert not app.button(key="relabel").disabled
    app.button(key="relabel").click().run()
    assert log(factory)[-1][:3] == ("shoe/broken.jpg", "relabel", "bag")


def test_a_negative_price_is_refused_in_one_line_and_nothing_is_saved(factory, data):
    app = open_review(kinds=("price",))
    app.number_input(key="fix_price_value").set_value(-5.0).run()
    app.button(key="fix_price").click().run()
    assert not app.exception, app.exception
    assert [e.value for e in app.error] == ["Not saved: a price must be a number of 0 or more, not -5.0"]
    assert log(factory) == []


def test_the_listing_title_price_and_id_are_beside_the_photo(data):
    app = open_review(kinds=("mislabel",))
    text = [m.value for m in app.markdown]
    assert "**A used bag number 0**  \nprice 40.00 · listing L-bag-0  \n32 × 32 px · 1.2 KB" in text


def test_a_busy_database_refuses_the_decision_in_one_line_and_keeps_the_page(factory, data, db_path, monkeypatch):
    monkeypatch.setenv("LISTING_AUDIT_DB_RETRY_S", "0.3")
    app = open_review(kinds=("mislabel",))
    with write_lock_held(db_path):
        app.button(key="delete").click().run()
    assert not app.exception
    assert app.error[0].value.startswith("Not saved: the database") and "busy, try again" in app.error[0].value
    assert log(factory) == []
    app.button(key="delete").click().run()  # the lock is gone: the same click goes through
    assert [row[1] for row in log(factory)] == ["delete"]


def test_grid_accepts_the_ticked_suggestions_as_one_action(factory, data):
    app = open_review()
    app.segmented_control(key="review_view").set_value("grid").run()
    assert not app.exception, app.exception
    labels = [box.label for box in app.checkbox]
    assert labels == ["bag → **phone** 91%", "shoe → **bag** 80%", "phone → **shoe** 55%"]
    assert all(box.value for box in app.checkbox)
    app.checkbox(key=f"grid_pick_{data.flag_ids['shoe/shoe-1.png']}").uncheck().run()
    assert app.button(key="grid_accept").label == "Accept 2 ticked"
    app.button(key="grid_accept").click().run()
    assert [row[:3] for row in log(factory)] == [("bag/bag-0.png", "relabel", "phone"),
                                                 ("phone/phone-3.png", "relabel", "shoe")]
    assert [box.label for box in app.checkbox] == ["shoe → **bag** 80%"]  # the unticked one stays open
    app.button(key="undo").click().run()
    assert [row[1] for row in log(factory)][-2:] == ["undo", "undo"]
    assert len(app.checkbox) == 3


def test_a_grid_page_carries_its_relabels_to_the_copies_in_duplicate_groups(factory, data):
    from tests.review_data import add_flags

    with factory.begin() as session:  # bag-0 (suggested: phone) and an unflagged copy of it, bag-3
        add_flags(session, data.job_id, data.sample_ids, {
            path: ("duplicate", 0.3, None, 9, "exact duplicate", {}) for path in ("bag/bag-0.png", "bag/bag-3.png")})
    app = open_review(kinds=("mislabel",))
    app.segmented_control(key="review_view").set_value("grid").run()
    app.checkbox(key=f"grid_pick_{data.flag_ids['shoe/shoe-1.png']}").uncheck().run()
    app.checkbox(key=f"grid_pick_{data.flag_ids['phone/phone-3.png']}").uncheck().run()
    app.button(key="grid_accept").click().run()
    assert not app.exception, app.exception
    assert [row[:3] for row in log(factory)] == [("bag/bag-0.png", "relabel", "phone"),
                                                 ("bag/bag-3.png", "relabel", "phone")]
    assert "and 1 copy in their duplicate groups" in app.success[0].value
    app.button(key="undo").click().run()
    assert [row[1] for row in log(factory)][-2:] == ["undo", "undo"]


def test_grid_can_keep_the_unticked_and_deletes_broken_files(factory, data):
    app = open_review()
    app.segmented_control(key="review_view").set_value("grid").run()
    app.checkbox(key=f"grid_pick_{data.flag_ids['bag/bag-0.png']}").uncheck().run()
    app.button(key="grid_accept_keep").click().run()
    assert sorted(row[:2] for row in log(factory)) == [("bag/bag-0.png", "keep"), ("phone/phone-3.png", "relabel"),
                                                       ("shoe/shoe-1.png", "relabel")]
    assert "No mislabel flags to review" in app.success[-1].value
    app.segmented_control(key="review_grid_kind").set_value("broken").run()
    assert app.checkbox[0].label.startswith("delete: cannot decode")
    app.button(key="grid_accept").click().run()
    assert log(factory)[-1][:2] == ("shoe/broken.jpg", "delete")


@contextmanager
def sql_statements() -> Iterator[list[str]]:
    """The SQL statements that this process runs meanwhile, on any engine, but for background warm-ups."""
    statements = []

    def record(connection, cursor, statement, *args) -> None:
        if threading.current_thread().name != WARM_UP_THREAD:
            statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_a_mislabel_shows_its_most_similar_photos_from_the_cached_embeddings(factory, data):
    store_embeddings_by_folder(factory)
    app = open_review(kinds=("mislabel",))
    assert "4 of 6 most similar photos are labelled **phone**, 2 bag" in [m.value for m in app.markdown]
    captions = [image.proto.imgs[i].caption for image in app.get("image") for i in range(len(image.proto.imgs))]
    assert captions[-6:-2] == ["phone · 0.96"] * 4
    assert not any(caption.startswith("Other images of") for caption in (c.value for c in app.caption))


def test_the_next_items_similar_photos_are_read_while_the_reviewer_looks_at_this_one(factory, data):
    store_embeddings_by_folder(factory)
    app = open_review(kinds=("mislabel",))
    for thread in threading.enumerate():
        if thread.name == WARM_UP_THREAD:
            thread.join(TIMEOUT_S)
    with sql_statements() as statements:
        app.button(key="next").click().run()
    assert heading(app).startswith("2 of 3 · mislabel") and "most similar photos" in app.markdown[-1].value
    assert not [statement for statement in statements if "JOIN corrections" in statement]  # no sample_view


def test_with_similar_photos_shown_no_examples_of_the_classes_are_read(factory, data):
    store_embeddings_by_folder(factory)
    app = open_review(kinds=("mislabel",))
    with sql_statements() as statements:
        app.button(key="next").click().run()
    assert heading(app).startswith("2 of 3 · mislabel") and "most similar photos" in app.markdown[-1].value
    assert not [statement for statement in statements if "ORDER BY samples.content_hash" in statement]  # class_examples



def test_a_price_flag_offers_the_decimal_slip_fix_and_undo_reverts_it(factory, data):
    with factory.begin() as session:  # phone-2 listed at 32,000 in a class whose median is 315
        session.get(Sample, data.sample_ids["phone/phone-2.png"]).price = 32000.0
    app = open_review(kinds=("price",))
    assert heading(app).startswith("1 of 1 · price · phone/phone-2.png")
    assert app.number_input(key="fix_price_value").value == 320.0
    app.button(key="fix_price").click().run()
    assert not app.exception, app.exception
    assert "phone/phone-2.png — 32,000.00 → 320.00" in app.success[0].value
    with factory() as session:
        correction = session.scalars(select(Correction)).one()
        assert (correction.action, correction.old_price, correction.new_price) == ("price", None, 320.0)
    app.button(key="undo").click().run()
    with factory() as session:
        assert [c.new_price for c in session.scalars(select(Correction).order_by(Correction.id))] == [320.0, None]


def test_a_price_flag_shows_its_expected_range_similar_listings_and_suggested_price(factory, data):
    """The evidence core.audit.checks.price writes when similar listings set the expected price."""
    plant_expected_price_flag(factory, data)
    app = open_review(kinds=("price",))
    text = [m.value for m in app.markdown]
    assert "Expected **900.00-1,400.00** (95% range, typical 1,150.00) · from similar photos 90%, " \
           "the class's prices 10%" in text
    assert "The 2 most similar photos (of 20) sell at 1,050.00, 1,299.00" in text
    assert "Looks like a slipped decimal point or an extra zero: **1,299.00**" in text
    assert app.number_input(key="fix_price_value").value == 1299.0  # the model's slip, not the class median's
    assert not [c.value for c in app.caption if c.value.startswith("price 12,990.00 is outside")]  # said above


def test_weak_evidence_and_the_queues_precision_from_my_decisions_are_on_the_page(factory, data):
    """A newer audit whose mislabel evidence was weak, with a flag on every readable listing; six decisions."""
    from tests.review_data import add_weak_audit

    paths = sorted(p for p in data.sample_ids if not p.startswith("shoe/broken"))
    flags = {path: ("mislabel", 0.01 * (i + 1), "phone" if path.startswith("bag") else "bag", None, "odd", {})
             for i, path in enumerate(paths)}
    summary = {"flags": len(flags), "seconds": 1.0, "assessed": len(paths), "estimated_issues": 6,
               "estimated_interval": [3, 9], "weak_evidence": True, "review_budget": 6,
               "score_quantiles": [round(0.01 * (i + 1), 6) for i in range(len(paths))]}
    add_weak_audit(factory, data, flags, summary)
    for path, action in zip(paths[:6], ["relabel", "relabel", "keep", "relabel", "delete", "keep"]):
        with factory.begin() as session:
            sample = session.get(Sample, data.sample_ids[path])
            options = {"new_label": "shoe" if not path.startswith("shoe") else "bag"} if action == "relabel" else {}
            decide(session, sample, action, classes=CLASSES, reviewer="ann", **options)
    app = open_review()
    [warning] = [w.value for w in app.warning if "Mislabels" in w.value]
    assert "the evidence here is weak" in warning and "review the first 6" in warning and "3-9" in warning
    [line] = [c.value for c in app.caption if c.value.startswith("Mislabels:")]
    assert "4 of your 6 decisions confirmed the flag" in line and "among the" in line and "open flags" in line


def test_the_ranking_past_a_weak_budget_is_in_the_queue_and_my_decisions_on_it_are_counted(factory, data):
    """A weak audit: two flags, then two listings ranked past the budget (kind maybe_mislabel)."""
    from tests.review_data import add_weak_audit

    flags = {"bag/bag-1.png": ("mislabel", 0.02, "phone", None, "odd", {}),
             "bag/bag-2.png": ("mislabel", 0.05, "phone", None, "odd", {}),
             "phone/phone-0.png": ("maybe_mislabel", 0.2, "bag", None, "odd", {}),
             "phone/phone-1.png": ("maybe_mislabel", 0.3, "shoe", None, "odd", {})}
    summary = {"flags": 2, "seconds": 1.0, "assessed": 12, "estimated_issues": 2, "estimated_interval": [1, 5],
               "weak_evidence": True, "review_budget": 2, "past_budget": 2}
    add_weak_audit(factory, data, flags, summary)
    app = open_review(kinds=("mislabel", "maybe_mislabel"))
    [warning] = [w.value for w in app.warning if "Mislabels" in w.value]
    assert "review the first 2" in warning and "2 more listings are ranked past it (maybe_mislabel)" in warning
    for _ in range(2):
        app.button(key="accept_suggestion").click().run()
    assert heading(app).startswith("1 of 2 · maybe_mislabel · phone/phone-0.png")
    assert any("ranked past the review budget" in c.value for c in app.caption)
    assert app.selectbox(key="relabel_class").value == "bag"  # its suggestion, as for a flag
    app.button(key="accept_suggestion").click().run()
    assert not app.exception
    [line] = [c.value for c in app.caption if c.value.startswith("Past the budget:")]
    assert line.startswith("Past the budget: 1 of your 1 decisions confirmed the flag (95%: 21%-100%); 1 open")
    assert [(path, action, label) for path, action, label, *_ in log(factory)][-1] == (
        "phone/phone-0.png", "relabel", "bag")


def test_a_decision_on_one_copy_carries_to_its_duplicate_group_and_one_undo_takes_both_back(factory, data):
    from tests.review_data import add_audit_job, add_flags

    flags = {"bag/bag-1.png": ("mislabel", 0.05, "phone", None, "looks like a phone", {}),
             "bag/bag-2.png": ("duplicate", 0.3, None, 7, "exact duplicate", {})}
    with factory.begin() as session:
        job_id = add_audit_job(session, data.dataset_id, minutes_ago=0.5)
        add_flags(session, job_id, data.sample_ids, flags)
        add_flags(session, job_id, data.sample_ids, {"bag/bag-1.png": ("duplicate", 0.3, None, 7, "exact duplicate", {})})
    app = open_review(kinds=("mislabel",))
    assert heading(app).startswith("1 of 1 · mislabel")
    app.button(key="accept_suggestion").click().run()
    assert not app.exception
    assert [(path, action, label) for path, action, label, *_ in log(factory)] == [
        ("bag/bag-1.png", "relabel", "phone"), ("bag/bag-2.png", "relabel", "phone")]
    assert "and its 1 copy in the duplicate group" in app.success[0].value
    app.button(key="undo").click().run()
    assert [action for _, action, *_ in log(factory)][-2:] == ["undo", "undo"]


def test_a_relabel_takes_along_the_look_alikes_under_the_same_label_and_one_undo_brings_them_back(factory, data):
    """bag-0 and bag-1 are phones filed as bags (a seller's habit): photos of one kind, more alike than any
    listing is to a photo of another class, so Relabel with look-alikes relabels both in one action."""
    store_embeddings_by_folder(factory, phones_filed_as_bags=("bag/bag-0.png", "bag/bag-1.png"))
    app = open_review(kinds=("mislabel",))
    assert heading(app).endswith("bag/bag-0.png")
    captions = [image.proto.imgs[i].caption for image in app.get("image") for i in range(len(image.proto.imgs))]
    assert "bag · 1.00 · look-alike" in captions
    assert any("1 look-alike of this photo still carries its label" in c.value for c in app.caption)
    app.selectbox(key="relabel_class").set_value("phone").run()
    app.button(key="relabel_lookalikes").click().run()
    assert not app.exception, app.exception
    moved = [("bag/bag-0.png", "phone"), ("bag/bag-1.png", "phone"), ("bag/bag-2.png", "phone")]  # bag-2: bag-1's copy
    assert sorted((path, label) for path, action, label, *_ in log(factory)) == moved
    assert "bag → phone, with 1 look-alike" in app.success[0].value and "1 copy in the duplicate group" in app.success[0].value
    app.button(key="undo").click().run()
    assert sorted(path for path, action, *_ in log(factory) if action == "undo") == [path for path, _ in moved]
    assert heading(app).endswith("bag/bag-0.png")
