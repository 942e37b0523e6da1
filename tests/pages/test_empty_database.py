"""Every page opened on a database without datasets says what to do instead of failing."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGES = sorted((Path(__file__).resolve().parents[2] / "pages").glob("*.py"))


@pytest.mark.parametrize("page_file", PAGES, ids=lambda path: path.stem)
def test_a_page_without_datasets_asks_for_a_scan(page_file, app_db):
    page = AppTest.from_file(str(page_file), default_timeout=30)
    page.run()
    assert not page.exception, page.exception
    assert [info.value for info in page.main.info] == ["No dataset yet: scan a folder on the home page first."]
    assert page.title[0].value == page_file.stem.split("_", 1)[1]
