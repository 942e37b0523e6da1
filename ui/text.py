"""User strings on screen as plain text.

Streamlit renders markdown in st.markdown, st.caption, headers, alerts, image captions, metric and
widget labels. A file, class, title, reviewer name or note typed by a user must show as typed: a
file named `![t](http://host/x.png).jpg` must not make the reviewer's browser fetch that URL.
Every user string passes through `plain` before it reaches one of those.
"""
from __future__ import annotations

import re

#: Characters that make markup anywhere in a line: links and images, emphasis, code, HTML and
#: autolinks, tables, LaTeX, the escape itself, and a colon that could open Streamlit's :icons:,
#: :color[text] or an emoji :shortcode: (a colon before a space or at the end cannot).
_ANYWHERE = re.compile(r"([\\`*_{}\[\]()<!|~$]|:(?=\S))")
#: Markup that only starts a line: headings, quotes, lists (also "1." and "1)"), rules and setext underlines.
_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])", re.MULTILINE)


def plain(text) -> str:
    """`text` with every markdown special character backslash-escaped where it would make markup: a
    title or a class name shows as typed and never becomes a link, an image, an icon, LaTeX or
    formatting. Dots, dashes and '>' inside a line stay as they are ("bag -> shoe · 40.00")."""
    escaped = _ANYWHERE.sub(r"\\\1", str(text))
    return _LINE_START.sub(lambda match: match.group(1) + _escape_marker(match.group(2)), escaped)


def _escape_marker(marker: str) -> str:
    """'1.' -> '1\\.', '#' -> '\\#'."""
    return marker[:-1] + "\\" + marker[-1] if marker[0].isdigit() else "\\" + marker


def shortened_path(path: str, limit: int) -> str:
    """`path` in at most `limit` characters, cut in the middle so that the file name stays whole and the
    class folder starts it: "home-garden/batch-2/L004821.jpg" -> "home-gar…/L004821.jpg" at 21."""
    if len(path) <= limit:
        return path
    head, _, name = path.rpartition("/")
    room = limit - len(name) - 2  # "…/"
    if not head or room < 3:
        return path[: max(limit - 1, 1) // 2] + "…" + path[-(limit - 1 - max(limit - 1, 1) // 2):]
    return f"{head[:room]}…/{name}"
