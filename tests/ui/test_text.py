"""User strings as plain text in markdown: what a hostile name would make, escaped; ordinary text unchanged."""
from __future__ import annotations

import pytest

from ui.text import plain


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
