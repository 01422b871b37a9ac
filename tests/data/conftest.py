"""Shared fixtures: each generated dataset is built once per test session."""

import pytest

from llm.data import config as config_lib
from llm.data import prepare


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("tfds"))


def _built(data_dir: str, dataset: str) -> str:
    cfg = config_lib.default_data_config()
    cfg.data_dir, cfg.dataset = data_dir, dataset
    return prepare.ensure_dataset(cfg)


@pytest.fixture(scope="session")
def grammar_dir(data_dir) -> str:
    return _built(data_dir, "tiny_grammar")


def _cfg(data_dir: str, **overrides):
    cfg = config_lib.default_data_config()
    cfg.data_dir = data_dir
    cfg.prefetch_buffer = 0
    cfg.read_threads = 0
    cfg.chunk_size = 64
    cfg.update(overrides)
    return cfg


@pytest.fixture
def lm_cfg(grammar_dir):
    return _cfg(grammar_dir, seq_len=64)


@pytest.fixture
def seq2seq_cfg(data_dir):
    _built(data_dir, "tiny_numbers")
    return _cfg(data_dir, dataset="tiny_numbers", task="seq2seq", inputs_len=96, targets_len=16)


@pytest.fixture
def mlm_cfg(data_dir):
    _built(data_dir, "tiny_grammar_docs")
    return _cfg(data_dir, dataset="tiny_grammar_docs", task="mlm", seq_len=128)
