"""Preparing datasets into a data_dir: local files, TFDS downloads, caches."""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import pathlib
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ml_collections
import tensorflow_datasets as tfds
from absl import logging

from llm.data import config as config_lib
from llm.data import pipeline, sources, tokenizers
from llm.errors import ConfigError, InputFileError, InputFileNotFoundError, OutputExistsError

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
    """ensure_one(cfg) of data.dataset and of every source of data.mixture; the data_dir."""
    from llm.data.mixture import parse_mixture, source_config

    data_dir = ensure_one(data_cfg)
    for name, _ in parse_mixture(data_cfg.get("mixture", "")):
        if name != data_cfg.dataset:
            ensure_one(source_config(data_cfg, name))
    return data_dir


def ensure_one(data_cfg: ml_collections.ConfigDict) -> str:
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


# A language code as file suffixes and sacrebleu use them: 'en', 'de', 'zh', 'pt-br'.
_LANG = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]+)*$")


def _check_lang(flag: str, lang: str) -> None:
    if lang and not _LANG.match(lang):
        raise ConfigError(f"{flag}={lang!r} is not a language code; use one such as 'en' or 'de'.")


def _suffix_lang(path: str, langs: tuple[str, str]) -> str:
    """The language a file name ends in ('train.de' -> 'de'), if it is one of `langs`."""
    suffix = pathlib.Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in langs else ""


def order_parallel_files(
    paths: Sequence[str], source_lang: str = "", target_lang: str = ""
) -> list[str]:
    """Two aligned files as [source, target]: by their language suffix where they have one.

    `train.de,train.en` with source_lang='en', target_lang='de' gives
    [train.en, train.de]; files without a language suffix keep their order
    (first = source), as does a single TSV (first column = source).
    """
    _check_lang("source_lang", source_lang)
    _check_lang("target_lang", target_lang)
    if source_lang and source_lang == target_lang:
        raise ConfigError(
            f"source_lang and target_lang are both {source_lang!r}; name two languages."
        )
    paths = list(paths)
    if len(paths) != 2 or not (source_lang and target_lang):
        return paths
    langs = (source_lang, target_lang)
    found = [_suffix_lang(p, langs) for p in paths]
    if found[0] and found[0] == found[1]:
        raise InputFileError(
            f"Both {paths[0]!r} and {paths[1]!r} end in .{found[0]}; give one file per "
            f"language (source {source_lang}, target {target_lang})."
        )
    if found[0] == target_lang or found[1] == source_lang:
        return paths[::-1]
    return paths


def _sides_note(files: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(
        f"{split}: source {ps[0]}, target {ps[1]}" if len(ps) == 2 else f"{split}: TSV {ps[0]}"
        for split, ps in files.items()
    )


def parallel_sides(
    files: Mapping[str, Sequence[str]], source_lang: str = "", target_lang: str = ""
) -> dict[str, list[str]]:
    """Each split's parallel files as prepare_local reads them: [source, target] or [tsv]."""
    return {
        split: order_parallel_files(paths, source_lang, target_lang)
        for split, paths in files.items()
    }


def prepare_local(
    kind: str,
    name: str,
    files: Mapping[str, Sequence[str]],
    data_dir: str,
    *,
    doc_sep: str = "line",
    inputs_field: str = "document",
    targets_field: str = "summary",
    source_lang: str = "",
    target_lang: str = "",
    overwrite: bool = False,
) -> tuple[str, dict[str, int]]:
    """Builds local files into data_dir as array_record.

    Returns the dataset name to put in data.dataset ('local_text/<name>') and
    the counts of skipped input lines by reason. Parallel text: source_lang
    and target_lang say which of two files is the source (order_parallel_files)
    and are kept in the dataset's metadata (dataset_languages).
    """
    if kind not in LOCAL_KINDS:
        raise ConfigError(f"kind={kind!r}; use one of {sorted(LOCAL_KINDS)}.")
    if not name or "/" in name:
        raise ConfigError(f"name={name!r}; give a plain name for the dataset.")
    if not files:
        raise ConfigError("No input files: give at least a train split.")
    if kind == "parallel":
        files = parallel_sides(files, source_lang, target_lang)
    elif source_lang or target_lang:
        raise ConfigError(
            f"source_lang/target_lang name the sides of parallel text, not of kind={kind!r}."
        )
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
        source_lang=source_lang,
        target_lang=target_lang,
        # Kept in dataset_info.json: which side is which, readable without this code.
        description=_sides_note(files) if kind == "parallel" else None,
    )
    data_dir = config_lib.resolve_data_dir(data_dir)
    with _quiet_tfds():
        builder = cls(config=config, data_dir=data_dir, file_format=sources.FILE_FORMAT)
        if builder.is_prepared() and not overwrite:
            raise OutputExistsError(
                f"{builder_name}/{name} already exists in {data_dir}; pass --overwrite "
                "(overwrite=True) to rebuild it, or --dataset="
                f"{builder_name}/{name} instead of --kind and the input files to reuse it "
                "(say, for another tokenizer)."
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


def dataset_languages(data_cfg: ml_collections.ConfigDict) -> tuple[str, str]:
    """(source, target) languages of a translation dataset; '' where unknown.

    local_parallel keeps them in its metadata (launch.prepare --source_lang/
    --target_lang); TFDS translation pairs name their features by language.
    """
    name = sources.base_name(data_cfg.dataset)
    if name == "local_parallel":
        data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
        with _quiet_tfds():
            metadata = sources.builder(data_cfg.dataset, data_dir).info.metadata or {}
        return str(metadata.get("source_lang", "")), str(metadata.get("target_lang", ""))
    if "_translate/" in data_cfg.dataset:
        keys = sources.pair_keys(data_cfg)
        return tuple(k if _LANG.match(k) else "" for k in keys)  # type: ignore[return-value]
    return "", ""


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
