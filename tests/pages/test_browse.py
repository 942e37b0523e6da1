"""Tests of the Browse page with AppTest on a real SQLite file and real tiny images."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.corrections import decide
from db.models import Correction, Sample
from db.queries import dataset_classes
from jobs.scan import scan_dataset
from tests.conftest import make_image
from tests.pages.tiny_dataset import BROKEN_PATH, build_tiny_dataset

TIMEOUT_S = 30
PAGE = Path(__file__).resolve().parents[2] / "pages" / "1_Browse.py"


@pytest.fixture
def shop(factory, app_db, tmp_path):
    """Dataset id of the tiny dataset (13 images, one unreadable), scanned into the app's database."""
    return scan_dataset(factory, build_tiny_dataset(tmp_path / "shop"), workers=1)["dataset_id"]


def run_browse() -> AppTest:
    app = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, app.exception
    return app


def captions(app: AppTest) -> list[str]:
    """Captions of the grid tiles, in page order."""
    return [image.proto.imgs[0].caption for image in app.get("image") if image.proto.imgs[0].caption]


def opened_paths(app: AppTest) -> list[str]:
    """The sample paths on the page, from the help text of their Open buttons."""
    return [button.help for button in app.button if button.key.startswith("open_")]


def metadata(app: AppTest) -> dict[str, str]:
    """Field -> value of the opened image (the page's first table; dataframes carry no key in AppTest)."""
    return dict(app.dataframe[0].value.itertuples(index=False))


def sample_id(factory, path: str) -> int:
    with factory() as session:
        return session.scalars(select(Sample.id).where(Sample.path == path)).one()


def correct(factory, dataset_id: int, path: str, action: str, **options) -> None:
    with factory.begin() as session:
        sample = session.get(Sample, sample_id(factory, path))
        decide(session, sample, action, classes=dataset_classes(session, dataset_id), **options)


def test_grid_shows_every_image_with_its_label_and_price(shop):
    app = run_browse()
    assert len(opened_paths(app)) == 13
    assert opened_paths(app)[:2] == ["bag/bag-0.png", "bag/bag-1.png"]
    assert captions(app)[0] == "bag · 40.00"
    assert "13 images" in app.markdown[0].value


def test_class_filter_lists_images_under_their_current_label(factory, shop):
    correct(factory, shop, "bag/bag-0.png", "relabel", new_label="shoe")
    app = run_browse()
    assert app.selectbox(key="browse_class").options == ["All classes (13)", "bag (3)", "phone (4)", "shoe (6)"]
    app.selectbox(key="browse_class").set_value("phone").run()
    assert opened_paths(app) == [f"phone/phone-{i}.png" for i in range(4)]
    app.selectbox(key="browse_class").set_value("shoe").run()
    assert "bag/bag-0.png" in opened_paths(app)
    assert "bag -> shoe · 40.00" in captions(app)


def test_unreadable_filter_shows_the_broken_file_with_a_placeholder(shop):
    app = run_browse()
    app.radio(key="browse_readable").set_value("unreadable").run()
    assert opened_paths(app) == [BROKEN_PATH]
    app.radio(key="browse_readable").set_value("readable").run()
    assert len(opened_paths(app)) == 12


def test_price_slider_narrows_the_images(shop):
    app = run_browse()
    slider = app.select_slider(key="browse_price")
    assert slider.options == ["40", "50", "70", "100", "150", "200", "300", "330"]
    assert slider.value == (40, 330)
    slider.set_range(40, 50).run()
    assert opened_paths(app) == ["bag/bag-0.png", "bag/bag-1.png"]
    app.select_slider(key="browse_price").set_range(300, 330).run()
    assert opened_paths(app) == ["phone/phone-0.png", "phone/phone-1.png", "phone/phone-2.png", "phone/phone-3.png"]
    app.select_slider(key="browse_price").set_range(40, 330).run()  # the full range: unpriced images too
    assert "bag/bag-3.png" in opened_paths(app)


def test_deleted_images_are_hidden_until_asked_for(factory, shop):
    correct(factory, shop, "phone/phone-2.png", "delete")
    app = run_browse()
    assert "phone/phone-2.png" not in opened_paths(app)
    app.checkbox(key="browse_deleted").check().run()
    assert "phone/phone-2.png" in opened_paths(app)
    assert "phone · 320.00 · deleted" in captions(app)


def test_paging_through_a_larger_class(factory, app_db, tmp_path):
    root = tmp_path / "big"
    for index in range(30):
        make_image(root / "mug" / f"{index:02d}.png", size=(8, 8))
    make_image(root / "cup" / "0.png", size=(8, 8))
    scan_dataset(factory, root, workers=1)
    app = run_browse()
    app.selectbox(key="browse_class").set_value("mug").run()
    assert len(opened_paths(app)) == 24 and opened_paths(app)[0] == "mug/00.png"
    assert app.number_input(key="browse_page").label == "Page (of 2)"
    app.button(key="browse_next").click().run()
    assert opened_paths(app) == [f"mug/{i:02d}.png" for i in range(24, 30)]
    app.number_input(key="browse_page").set_value(1).run()
    assert opened_paths(app)[0] == "mug/00.png"
    app.number_input(key="browse_page").set_value(2).run()
    app.selectbox(key="browse_class").set_value("(all)").run()  # a new filter starts at page 1
    assert app.number_input(key="browse_page").value == 1 and opened_paths(app)[0] == "cup/0.png"


def test_opening_an_image_shows_its_metadata_and_correction_history(factory, shop):
    correct(factory, shop, "bag/bag-2.png", "relabel", new_label="phone", reviewer="ana", note="a phone case")
    correct(factory, shop, "bag/bag-2.png", "undo", reviewer="ben")
    app = run_browse()
    app.button(key=f"open_{sample_id(factory, 'bag/bag-2.png')}").click().run()
    assert not app.exception
    fields = metadata(app)
    assert fields["Path"] == "bag/bag-2.png"
    assert fields["Class (folder)"] == "bag" and fields["Current label"] == "bag"
    assert (fields["Price"], fields["Listing id"]) == ("60.00", "L-bag-2")
    assert fields["Title"] == "A used bag number 2" and fields["Size"] == "32 x 32 px"
    assert len(fields["SHA-256"]) == 64 and len(fields["pHash"]) == 16
    history = app.dataframe[1].value
    assert list(history["reviewer"]) == ["ana", "ben"]
    assert list(history["action"]) == ["relabel", "undo"]
    assert history["change"].iloc[0] == "bag -> phone" and history["note"].iloc[0] == "a phone case"
    assert history["change"].iloc[1].startswith("phone -> bag (reverts #")
    app.button(key="browse_close").click().run()
    assert not app.dataframe


def test_opening_an_unreadable_image_shows_why(factory, shop):
    app = run_browse()
    app.button(key=f"open_{sample_id(factory, BROKEN_PATH)}").click().run()
    assert metadata(app)["Readable"].startswith("no: not an image")
    assert any("No corrections" in c.value for c in app.caption)


def test_filters_and_page_are_kept_across_a_visit_to_another_page(factory, app_db, tmp_path):
    root = tmp_path / "big"
    for index in range(30):
        make_image(root / "mug" / f"{index:02d}.png", size=(8, 8))
    make_image(root / "cup" / "0.png", size=(8, 8))
    scan_dataset(factory, root, workers=1)
    app = AppTest.from_file(str(PAGE.parent.parent / "app.py"), default_timeout=TIMEOUT_S).run()
    app.switch_page("pages/1_Browse.py").run()
    app.selectbox(key="browse_class").set_value("mug").run()
    app.button(key="browse_next").click().run()
    app.switch_page("app.py").run()
    app.switch_page("pages/1_Browse.py").run()
    assert not app.exception
    assert app.selectbox(key="browse_class").value == "mug" and app.number_input(key="browse_page").value == 2
    assert opened_paths(app)[0] == "mug/24.png"


def test_choosing_another_dataset_resets_filters_page_and_open_image(factory, shop, tmp_path):
    other_root = tmp_path / "other"
    for index in range(3):
        make_image(other_root / "lamp" / f"{index}.png", size=(8, 8))
    other = scan_dataset(factory, other_root, workers=1)["dataset_id"]
    app = run_browse()
    app.selectbox(key="dataset_id").set_value(shop).run()
    app.selectbox(key="browse_class").set_value("phone").run()
    app.button(key=f"open_{sample_id(factory, 'phone/phone-0.png')}").click().run()
    assert app.dataframe
    app.selectbox(key="dataset_id").set_value(other).run()
    assert not app.exception and not app.dataframe
    assert app.selectbox(key="browse_class").value == "(all)"
    assert opened_paths(app) == [f"lamp/{i}.png" for i in range(3)]
    assert "No price range" in app.caption[0].value


def test_without_a_dataset_the_page_points_to_the_home_page(app_db):
    app = run_browse()
    assert "home page" in app.info[0].value


def corrections_of(factory, path: str) -> list[tuple[str, str, bool, str]]:
    """(action, new label, deleted, reviewer) of the sample's decisions, oldest first."""
    with factory() as session:
        return [(c.action, c.new_label, c.deleted, c.reviewer) for c in session.scalars(
            select(Correction).where(Correction.sample_id == sample_id(factory, path)).order_by(Correction.id))]


def test_the_opened_image_is_relabelled_with_the_reviewer_and_its_history_shows_it(factory, shop):
    app = run_browse()
    app.button(key=f"open_{sample_id(factory, 'bag/bag-2.png')}").click().run()
    assert app.button(key="browse_relabel").disabled and app.button(key="browse_delete").disabled
    assert any("Enter your name under Reviewer" in caption.value for caption in app.caption)

    app.text_input(key="reviewer").input("ana").run()
    assert app.selectbox(key="browse_relabel_class").options == ["phone", "shoe"]  # not its own class
    app.selectbox(key="browse_relabel_class").set_value("shoe")
    app.button(key="browse_relabel").click().run()
    assert not app.exception
    assert corrections_of(factory, "bag/bag-2.png") == [("relabel", "shoe", False, "ana")]
    assert any("Relabelled to shoe: bag/bag-2.png" in success.value for success in app.success)
    assert metadata(app)["Current label"] == "shoe"
    history = app.dataframe[1].value
    assert list(history["reviewer"]) == ["ana"] and history["change"].iloc[0] == "bag -> shoe"
    assert "bag -> shoe · 60.00" in captions(app)  # the grid below shows the new label too


def test_the_opened_image_is_deleted_then_restored(factory, shop):
    app = run_browse()
    app.text_input(key="reviewer").input("ben")
    app.button(key=f"open_{sample_id(factory, 'phone/phone-1.png')}").click().run()
    app.button(key="browse_delete").click().run()
    assert not app.exception
    assert metadata(app)["Deleted"] == "yes"
    assert app.button(key="browse_relabel").disabled  # a deleted image is restored before it is relabelled
    app.button(key="browse_restore").click().run()
    assert metadata(app)["Deleted"] == "no"
    assert corrections_of(factory, "phone/phone-1.png") == [("delete", "phone", True, "ben"),
                                                           ("restore", "phone", False, "ben")]
    assert list(app.dataframe[1].value["action"]) == ["delete", "restore"]
    app.button(key="browse_undo").click().run()
    assert metadata(app)["Deleted"] == "yes"  # undo reverts the restore


def store_embeddings(factory) -> dict[str, int]:
    """A cached photo embedding per readable sample, one direction per folder class; returns path -> sample id."""
    import numpy as np

    from db.embeddings import DbEmbeddingStore

    directions = {"bag": [0.0, 1.0, 0.0], "phone": [1.0, 0.0, 0.0], "shoe": [0.0, 0.0, 1.0]}
    with factory() as session:
        rows = session.execute(select(Sample.path, Sample.content_hash, Sample.id).where(Sample.readable)).all()
    rng = np.random.default_rng(0)
    vectors = {content_hash: np.array(directions[path.split("/")[0]]) + rng.normal(0, 0.05, 3)
               for path, content_hash, _ in rows}
    DbEmbeddingStore(factory).put_many(vectors, "mobilenet_v2@160/whole1")
    return {path: sample_id for path, _, sample_id in rows}


def test_the_embedding_map_draws_every_embedded_photo_and_acts_on_a_selection_as_one_action(factory, shop):
    ids = store_embeddings(factory)
    app = run_browse()
    app.toggle(key="browse_map_show").set_value(True).run()
    assert not app.exception, app.exception
    chart = next(element for element in app.get("plotly_chart"))
    import json

    figure = json.loads(chart.proto.spec)
    drawn = [path for trace in figure["data"] for path in trace["hovertext"]]
    assert sorted(drawn) == sorted(ids)
    assert sorted(trace["name"] for trace in figure["data"]) == ["bag", "phone", "shoe"]
    assert any(c.value.startswith(f"{len(ids)} listings with a cached embedding") for c in app.caption)

    bags = [sample_id for path, sample_id in ids.items() if path.startswith("bag/")][:2]
    app.session_state["browse_map_selected"] = bags
    app.text_input(key="reviewer").set_value("ann").run()
    assert "**2** listings selected (bag 2)" in [m.value for m in app.markdown]
    app.selectbox(key="browse_map_relabel").set_value("shoe").run()
    app.button(key="map_relabel").click().run()
    assert not app.exception, app.exception
    with factory() as session:
        log = session.execute(select(Correction.sample_id, Correction.action, Correction.new_label,
                                     Correction.batch_id)).all()
    assert sorted(row[0] for row in log) == sorted(bags) and {row[1:3] for row in log} == {("relabel", "shoe")}
    assert len({row[3] for row in log}) == 1  # one action
    app.segmented_control(key="browse_map_colour").set_value("flag").run()
    assert not app.exception, app.exception
