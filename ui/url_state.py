"""A page's view kept in its URL (`?view=grid&kind=mislabel&item=812`), so a reload, a bookmark or a link sent to a
colleague opens the same place: read once when a browser session starts, written on every run."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import streamlit as st

RESTORED_PREFIX = "url_restored_"


def first_run(page: str) -> bool:
    """True on the session's first run of `page` (then the URL, not the session, says what to show)."""
    marker = f"{RESTORED_PREFIX}{page}"
    if st.session_state.get(marker):
        return False
    st.session_state[marker] = True
    return True


def url_choices(name: str, options: Sequence[str]) -> list[str]:
    """The URL's values of `name` (repeated or comma-separated) that are among `options`, in the URL's order."""
    values = [part for value in st.query_params.get_all(name) for part in value.split(",") if part]
    return [value for value in values if value in options]


def url_number(name: str, *, low: float, high: float) -> Optional[float]:
    """The URL's value of `name` as a number in [low, high], or None when absent or not such a number."""
    try:
        value = float(st.query_params.get(name, ""))
    except ValueError:
        return None
    return value if low <= value <= high else None


def set_url(name: str, value: Optional[str | Iterable[str]]) -> None:
    """Put `value` (a string, several strings, or None / empty to drop the parameter) into the URL, leaving
    the other parameters as they are; writes only when it changes."""
    values = [value] if isinstance(value, str) else list(value or [])
    if not values or values == [""]:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get_all(name) != values:
        st.query_params[name] = values if len(values) > 1 else values[0]
