import logging

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

from llm.data import config as config_lib
from llm.data import prepare, sources


def test_generated_dataset_reads_through_tfds_data_source(grammar_dir):
    src = tfds.data_source("tiny_grammar", split="validation", data_dir=grammar_dir, download=False)
    assert len(src) == 2000
    text = src[0]["text"].decode()
    assert text.endswith(" .")


def test_ensure_dataset_is_idempotent(lm_cfg):
    assert prepare.ensure_dataset(lm_cfg) == lm_cfg.data_dir


def test_building_generated_data_logs_one_line_of_ours_and_nothing_of_tfds(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    cfg = config_lib.default_data_config()
    cfg.dataset, cfg.data_dir = "tiny_numbers", str(tmp_path)
    bars_before = tqdm_utils._active
    prepare.ensure_dataset(cfg)
    prepare.ensure_dataset(cfg)  # prepared: says nothing
    out, err = capfd.readouterr()
    for tfds_text in ("Downloading and preparing", "Generating splits", "Shuffling", "prepared"):
        assert tfds_text not in out + err
    assert [r.getMessage() for r in caplog.records] == [
        f"Building tiny_numbers (generated, 22,000 examples) in {tmp_path}"
    ]
    assert tqdm_utils._active == bars_before  # named TFDS downloads keep their progress bars


def test_missing_real_dataset_says_how_to_prepare(tmp_path):
    cfg = config_lib.default_data_config()
    cfg.dataset = "lm1b"
    cfg.data_dir = str(tmp_path)
    with pytest.raises(sources.DatasetNotPreparedError, match="launch.prepare"):
        prepare.ensure_dataset(cfg)


def test_unknown_dataset_fails_clearly(tmp_path):
    cfg = config_lib.default_data_config()
    cfg.dataset = "no_such_dataset_xyz"
    cfg.data_dir = str(tmp_path)
    with pytest.raises(sources.DatasetNotPreparedError, match="no_such_dataset_xyz"):
        prepare.ensure_dataset(cfg)


def test_missing_split_names_available_ones(lm_cfg):
    with pytest.raises(sources.DatasetNotPreparedError, match="validation"):
        sources.get_source(lm_cfg, "dev")


def test_default_data_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    assert config_lib.resolve_data_dir("") == str(tmp_path)
