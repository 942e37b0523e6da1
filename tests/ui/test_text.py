"""User strings as plain text in markdown: what a hostile name would make, escaped; ordinary text unchanged."""
from __future__ import annotations

import pytest

from ui.text import plain, shortened_path


@pytest.mark.parametrize("text, shown", [
    ("![t](https:/127.0.0.1:8602/x.png).jpg", r"\!\[t\]\(https\:/127.0.0.1\:8602/x.png\).jpg"),
    ("[click](javascript:alert(1))", r"\[click\]\(javascript\:alert\(1\)\)"),
    ("<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert\(1\)>"),
    (":red[alarm] :material/home: $x^2$", r"\:red\[alarm\] \:material/home: \$x^2\$"),
    ("**bold** _it_ ~strike~ `code` a|b", r"\*\*bold\*\* \_it\_ \~strike\~ \`code\` a\|b"),
    ("# heading", r"\# heading"),
    ("1. first", r"1\. first"),
    ("- item\n> quote", "\\- item\n\\> quote"),
])
def test_markup_is_escaped(text, shown):
    assert plain(text) == shown


@pytest.mark.parametrize("text", ["bag -> shoe · 40.00", "Nordvik jacket, olive, size M",
                                  "shoe/2024-01-05 photo.jpg", "price 12.50 = fair",
                                  "Scan failed: NotADirectoryError"])
def test_ordinary_text_is_unchanged(text):
    assert plain(text) == text


@pytest.mark.parametrize("path, limit, shown", [
    ("vehicles/L002468.jpg", 26, "vehicles/L002468.jpg"),
    ("home-garden/batch-2/L004821.jpg", 21, "home-gar…/L004821.jpg"),
    ("home-garden/batch-2/L004821.jpg", 17, "home…/L004821.jpg"),
    ("bag/" + "x" * 30 + ".jpg", 17, "bag/xxxx…xxxx.jpg"),  # no room beside the name: cut in the middle
])
def test_a_long_path_is_cut_in_the_middle_keeping_its_class_folder_and_file_name(path, limit, shown):
    assert shortened_path(path, limit) == shown and len(shown) <= limit
