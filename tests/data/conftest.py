"""Shared fixtures: one tiny_grammar build per test session."""

import pytest

from llm.data import config as config_lib
from llm.data import sources


@pytest.fixture(scope="session")
def grammar_dir(tmp_path_factory) -> str:
    cfg = config_lib.default_data_config()
    cfg.data_dir = str(tmp_path_factory.mktemp("tfds"))
    return sources.ensure_dataset(cfg)


@pytest.fixture
def lm_cfg(grammar_dir):
    cfg = config_lib.default_data_config()
    cfg.data_dir = grammar_dir
    cfg.seq_len = 64
    cfg.prefetch_buffer = 0
    cfg.read_threads = 0
    return cfg
