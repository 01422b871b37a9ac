"""TFDS data sources: find, build (generated data only) and open splits."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import tensorflow_datasets as tfds

from llm.data import config as config_lib
from llm.data.builders import tiny_grammar

# Datasets this project generates: built into data_dir on first use, in
# seconds, so tiny runs and canaries need no preparation step.
GENERATED = {"tiny_grammar": tiny_grammar.TinyGrammar}

FILE_FORMAT = "array_record"


class DatasetNotPreparedError(FileNotFoundError):
    """A dataset or split is missing from data_dir."""


def _base_name(dataset: str) -> str:
    return dataset.split("/")[0].split(":")[0]


def _prepare_hint(dataset: str, data_dir: str) -> str:
    return (
        f"Prepare it with: python -m launch.prepare --dataset={dataset} "
        f"--data_dir={data_dir} (or set data.data_dir / $LLM_DATA_DIR to where "
        "it was prepared as array_record)."
    )


def _builder(dataset: str, data_dir: str) -> tfds.core.DatasetBuilder:
    base = _base_name(dataset)
    if base in GENERATED:
        return GENERATED[base](data_dir=data_dir, file_format=FILE_FORMAT)
    try:
        return tfds.builder(dataset, data_dir=data_dir, file_format=FILE_FORMAT)
    except (tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as e:
        raise DatasetNotPreparedError(
            f"Dataset {dataset!r} is unknown to TFDS or not in {data_dir}. "
            + _prepare_hint(dataset, data_dir)
        ) from e


def ensure_dataset(data_cfg: ml_collections.ConfigDict) -> str:
    """Builds a missing generated dataset; fails clearly on a missing real one.

    Returns the resolved data_dir. Call it once, before make_iterator.
    """
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    builder = _builder(data_cfg.dataset, data_dir)
    if builder.is_prepared():
        return data_dir
    if _base_name(data_cfg.dataset) in GENERATED:
        os.makedirs(data_dir, exist_ok=True)
        builder.download_and_prepare()
        return data_dir
    raise DatasetNotPreparedError(
        f"Dataset {data_cfg.dataset!r} is not prepared in {data_dir}. "
        + _prepare_hint(data_cfg.dataset, data_dir)
    )


def get_source(data_cfg: ml_collections.ConfigDict, split: str) -> Sequence[Any]:
    """Returns the random-access source of one split (records are dicts)."""
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    builder = _builder(data_cfg.dataset, data_dir)
    if not builder.is_prepared():
        raise DatasetNotPreparedError(
            f"Dataset {data_cfg.dataset!r} is not prepared in {data_dir}. "
            + _prepare_hint(data_cfg.dataset, data_dir)
        )
    available = list(builder.info.splits.keys())
    base_split = split.split("[")[0].split("+")[0]
    if base_split not in available:
        raise DatasetNotPreparedError(
            f"Split {split!r} of {data_cfg.dataset!r} not found in {data_dir}; "
            f"available: {available}. Fix data.train_split / data.eval_split."
        )
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise DatasetNotPreparedError(
            f"{data_cfg.dataset!r} in {data_dir} is stored as "
            f"{builder.info.file_format}, not {FILE_FORMAT}; random access needs "
            "array_record. " + _prepare_hint(data_cfg.dataset, data_dir)
        )
    return builder.as_data_source(split=split)
