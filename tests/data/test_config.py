import os

import pytest

from llm.data import config as config_lib


def test_config_validation_names_the_field():
    cfg = config_lib.default_data_config()
    config_lib.validate(cfg)
    for field, bad in [
        ("task", "clm"),
        ("pack_mode", "greedy"),
        ("lm_long_docs", "drop"),
        ("seq_len", 1),
    ]:
        c = config_lib.default_data_config()
        c[field] = bad
        with pytest.raises(ValueError, match=f"data.{field}"):
            config_lib.validate(c)


def test_data_dir_default_order(monkeypatch, tmp_path):
    monkeypatch.delenv("LLM_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert config_lib.resolve_data_dir("") == str(tmp_path / "tfds")
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert config_lib.resolve_data_dir("") == os.path.expanduser("~/tensorflow_datasets")
    assert config_lib.resolve_data_dir("rel") == os.path.abspath("rel")
