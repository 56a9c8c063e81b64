"""Every setting is documented, and the layers apply in order."""

from __future__ import annotations

import pytest

from qa import SETTINGS, load
from qa.errors import ConfigError
from tests.conftest import ROOT


def test_every_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"| `{s.name}` |" not in readme]
    assert not missing, f"undocumented settings: {missing}"


def test_layers_defaults_file_environment_overrides(tmp_path):
    toml = tmp_path / "footnote.toml"
    toml.write_text("top_k = 7\nmin_support = 0.5\nport = 6000\n")
    config = load({"port": 7000, "model": None}, config_file=toml, environ={"FOOTNOTE_MIN_SUPPORT": "0.6"})
    assert (config["top_k"], config["min_support"], config["port"]) == (7, 0.6, 7000)
    assert config["index"] == "index"


def test_unknown_or_mistyped_settings_are_refused(tmp_path):
    toml = tmp_path / "footnote.toml"
    toml.write_text("topk = 7\n")
    with pytest.raises(ConfigError, match="topk"):
        load(config_file=toml, environ={})
    with pytest.raises(ConfigError, match="top_k"):
        load(environ={"FOOTNOTE_TOP_K": "many"}, config_file=None)
