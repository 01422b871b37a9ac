"""Fixtures of the training tests."""

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """One generated tiny_grammar dataset for all training tests."""
    return str(tmp_path_factory.mktemp("data"))
