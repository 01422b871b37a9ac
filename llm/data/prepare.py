"""Preparing datasets into a data_dir: local files, TFDS downloads, caches."""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import pathlib
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ml_collections
import tensorflow_datasets as tfds
from absl import logging

from llm.data import config as config_lib
from llm.data import pipeline, sources, tokenizers
from llm.errors import ConfigError, InputFileNotFoundError, OutputExistsError

# launch.prepare --kind -> builder name (llm.data.builders.local).
LOCAL_KINDS = {
    "text": "local_text",
    "parallel": "local_parallel",
    "summarization": "local_summarization",
}


class _TfdsErrorsOnly(std_logging.Filter):
    """Passes TFDS's log records only from ERROR up; others' records all."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.ERROR or "tensorflow_datasets" not in record.pathname


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """Hides TFDS's progress bars and INFO/WARNING lines (building our own data, in seconds)."""
    from tensorflow_datasets.core.utils import tqdm_utils

    was_active = getattr(tqdm_utils, "_active", True)  # TFDS has no public getter
    tfds.disable_progress_bar()
    # TFDS logs through absl, i.e. the standard 'absl' logger: a filter there sees them all.
    absl_logger = std_logging.getLogger("absl")
    quiet = _TfdsErrorsOnly()
    absl_logger.addFilter(quiet)
    try:
        yield
    finally:
        absl_logger.removeFilter(quiet)
        tfds.display_progress_bar(was_active)


def _build_note(name: str, b: tfds.core.DatasetBuilder, data_dir: str) -> str:
    """What ensure_dataset is about to build, in one line."""
    if name in sources.GENERATED:
        examples = getattr(b, "EXAMPLES", None)
        how = "generated" + (f", {examples:,} examples" if examples else "")
    else:
        # TFDS's default manual dir (DownloadConfig.manual_dir is not set here).
        how = "from " + os.path.join(data_dir, "downloads", "manual")
    return f"Building {name} ({how}) in {data_dir}"


def ensure_dataset(data_cfg: ml_collections.ConfigDict) -> str:
    """Builds a missing generated or manual-dir dataset; fails clearly on a missing one.

    Returns the resolved data_dir. Call it once, before make_iterator. With
    data.token_cache it also tokenizes the train and eval splits once (and a
    sentencepiece tokenizer is trained first if it has to be).
    Several processes building the same generated dataset at once is safe in
    that TFDS writes to a temporary directory and renames it, but wasteful:
    multi-host runs should call this on one process first.
    """
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    name = sources.base_name(data_cfg.dataset)
    with _quiet_tfds():
        if name in sources.GENERATED + sources.MANUAL:
            b = sources.builder(data_cfg.dataset, data_dir)
            if not b.is_prepared():
                logging.info("%s", _build_note(name, b, data_dir))
                os.makedirs(data_dir, exist_ok=True)
                dataset_dir = pathlib.Path(data_dir) / name
                existed = dataset_dir.exists()
                try:
                    b.download_and_prepare()
                except BaseException:
                    # A failed build (say, the manual file is missing) leaves no directory.
                    if not existed:
                        shutil.rmtree(dataset_dir, ignore_errors=True)
                    raise
        # Reading the train split is the real check (and works under
        # tfds.testing.mock_data, where nothing is prepared on disk).
        sources.get_source(data_cfg, data_cfg.train_split)
    if data_cfg.get("token_cache"):
        pipeline.build_token_caches(data_cfg)
    return data_dir


def prepare_local(
    kind: str,
    name: str,
    files: Mapping[str, Sequence[str]],
    data_dir: str,
    *,
    doc_sep: str = "line",
    inputs_field: str = "document",
    targets_field: str = "summary",
    overwrite: bool = False,
) -> tuple[str, dict[str, int]]:
    """Builds local files into data_dir as array_record.

    Returns the dataset name to put in data.dataset ('local_text/<name>') and
    the counts of skipped input lines by reason.
    """
    if kind not in LOCAL_KINDS:
        raise ConfigError(f"kind={kind!r}; use one of {sorted(LOCAL_KINDS)}.")
    if not name or "/" in name:
        raise ConfigError(f"name={name!r}; give a plain name for the dataset.")
    if not files:
        raise ConfigError("No input files: give at least a train split.")
    for split, paths in files.items():
        for path in paths:
            if not os.path.exists(path):
                raise InputFileNotFoundError(
                    f"Input file {path!r} of split {split!r} does not exist."
                )
    builder_name = LOCAL_KINDS[kind]
    sources.register(builder_name)
    cls = tfds.builder_cls(builder_name)
    # The builder's config class (builders.local.LocalConfig), taken from the
    # class: importing its module at the top would register the local_*
    # builders with TFDS whenever llm.data is imported.
    config = cls.BUILDER_CONFIG_CLS(
        name=name,
        files={s: [os.path.abspath(p) for p in ps] for s, ps in files.items()},
        doc_sep=doc_sep,
        inputs_field=inputs_field,
        targets_field=targets_field,
    )
    data_dir = config_lib.resolve_data_dir(data_dir)
    with _quiet_tfds():
        builder = cls(config=config, data_dir=data_dir, file_format=sources.FILE_FORMAT)
        if builder.is_prepared() and not overwrite:
            raise OutputExistsError(
                f"{builder_name}/{name} already exists in {data_dir}; pass overwrite=True "
                "(--overwrite) to rebuild it."
            )
    download_config = tfds.download.DownloadConfig(
        download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
        if not overwrite
        else tfds.download.GenerateMode.FORCE_REDOWNLOAD
    )
    kind_dir = pathlib.Path(data_dir) / builder_name
    new_dirs = [d for d in (kind_dir / name, kind_dir) if not d.exists()]
    count = sum(len(ps) for ps in files.values())
    logging.info("Building %s/%s from %d input files in %s", builder_name, name, count, data_dir)
    try:
        with _quiet_tfds():
            builder.download_and_prepare(download_config=download_config)
    except BaseException:
        # A failed build leaves no directory behind that a later run would take for data.
        for directory in new_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return f"{builder_name}/{name}", dict(getattr(builder, "counts", {}))


def prepare_tfds(dataset: str, data_dir: str, *, manual_dir: str = "") -> str:
    """Downloads and prepares a named TFDS dataset as array_record (needs network)."""
    data_dir = config_lib.resolve_data_dir(data_dir)
    builder = sources.builder(dataset, data_dir)
    if builder.is_prepared():
        return data_dir
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
    builder.download_and_prepare(download_config=download_config)
    return data_dir


def prepare_tokens(
    data_cfg: ml_collections.ConfigDict, splits: Sequence[str] = ("train", "validation", "test")
) -> dict[str, Any]:
    """Trains/loads the tokenizer and, with data.token_cache, caches the splits.

    Returns vocab_size, the cache paths and per-split truncation counts;
    splits the dataset does not have are skipped.
    """
    tok = tokenizers.get_tokenizer(data_cfg)
    out: dict[str, Any] = {"vocab_size": tok.vocab_size, "token_caches": [], "stats": {}}
    for split in splits:
        try:
            stats = pipeline.split_stats(data_cfg, split)
        except sources.DatasetNotPreparedError:
            continue
        out["stats"][split] = stats
        if data_cfg.token_cache:
            out["token_caches"] += pipeline.build_token_caches(data_cfg, [split])
    return out
