"""The app server's settings in .streamlit/config.toml (read by `streamlit run app.py` from the repository root)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from streamlit import config

CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


def test_no_full_garbage_collection_after_each_script_run():
    with CONFIG.open("rb") as file:
        settings = tomllib.load(file)
    assert "runner.postScriptGC" in config._config_options_template  # the option Streamlit reads
    assert settings["runner"]["postScriptGC"] is False

