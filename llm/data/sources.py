"""TFDS data sources: find builders, open splits, read their features."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import tensorflow_datasets as tfds

from llm.data import config as config_lib
from llm.errors import ConfigError, ConfigKeyError, DatasetNotPreparedError

FILE_FORMAT = "array_record"

# Builders that TFDS finds by name only once their module is imported (its
# lazy registry needs TensorFlow for them otherwise).
_TFDS_MODULES = {
    **{
        f"wmt{y}_translate": f"tensorflow_datasets.translate.wmt{y}"
        for y in (13, 14, 15, 16, 17, 18, 19)
    },
    "wmt_t2t_translate": "tensorflow_datasets.translate.wmt_t2t",
    "cnn_dailymail": "tensorflow_datasets.summarization.cnn_dailymail",
    "c4": "tensorflow_datasets.text.c4",
    "wikipedia": "tensorflow_datasets.text.wikipedia",
    "glue": "tensorflow_datasets.text.glue",
}

# This project's builders -> the module that registers them (TFDS refuses a
# class registered twice, and Python imports each module once).
_PROJECT_MODULES = {
    "tiny_grammar": "llm.data.builders.tiny_grammar",
    "tiny_grammar_docs": "llm.data.builders.tiny_grammar_docs",
    "tiny_numbers": "llm.data.builders.tiny_numbers",
    "tiny_summaries": "llm.data.builders.tiny_summaries",
    "tiny_qa": "llm.data.builders.tiny_qa",
    "tiny_glue": "llm.data.builders.tiny_glue",
    "local_text": "llm.data.builders.local",
    "local_parallel": "llm.data.builders.local",
    "local_summarization": "llm.data.builders.local",
    "shakespeare": "llm.data.builders.shakespeare",
}

# Datasets this project generates: built into data_dir on first use, in
# seconds, so tiny runs and canaries need no preparation step.
GENERATED = (
    "tiny_grammar",
    "tiny_grammar_docs",
    "tiny_numbers",
    "tiny_summaries",
    "tiny_qa",
    "tiny_glue",
)

# Datasets built on first use, in seconds, from a file the user put in TFDS's
# manual dir (DATA_DIR/downloads/manual); their builder names it when missing.
MANUAL = ("shakespeare",)

# Feature names of known datasets: text for LM/MLM, (inputs, targets) for
# seq2seq. WMT pairs take theirs from the config name ('de-en').
_TEXT_KEYS = {"c4": "text", "lm1b": "text", "wikipedia": "text"}
_PAIR_KEYS = {
    "cnn_dailymail": ("article", "highlights"),
    "tiny_numbers": ("source", "target"),
    "tiny_summaries": ("article", "highlights"),
    "local_parallel": ("source", "target"),
    "local_summarization": ("document", "summary"),
}


def base_name(dataset: str) -> str:
    """'wmt14_translate/de-en:1.0.0' -> 'wmt14_translate'."""
    return dataset.split("/")[0].split(":")[0]


def register(dataset: str) -> None:
    """Imports the module defining `dataset`'s builder, if one is needed."""
    module = _PROJECT_MODULES.get(base_name(dataset)) or _TFDS_MODULES.get(base_name(dataset))
    if module:
        importlib.import_module(module)


def text_key(data_cfg: ml_collections.ConfigDict) -> str:
    """The text feature of an LM/MLM dataset (data.text_key wins if set)."""
    return data_cfg.text_key or _TEXT_KEYS.get(base_name(data_cfg.dataset), "text")


def pair_keys(data_cfg: ml_collections.ConfigDict) -> tuple[str, str]:
    """(inputs, targets) features of a seq2seq dataset; config values win."""
    name = data_cfg.dataset
    default = _PAIR_KEYS.get(base_name(name))
    if default is None and "_translate/" in name:
        # 'wmt14_translate/de-en' translates de -> en.
        src, _, tgt = name.split("/")[1].split(":")[0].partition("-")
        default = (src, tgt)
    inputs_key = data_cfg.inputs_key or (default or ("", ""))[0]
    targets_key = data_cfg.targets_key or (default or ("", ""))[1]
    if not inputs_key or not targets_key:
        raise ConfigError(
            f"No default features for seq2seq dataset {name!r}: set data.inputs_key "
            "and data.targets_key."
        )
    return inputs_key, targets_key


def record_text(record: Mapping[str, Any], key: str) -> bytes | str:
    """The text feature of a record, or an error naming the features there are."""
    if key not in record:
        raise ConfigKeyError(
            f"Record has no feature {key!r} (data.*_key); it has {sorted(record)}."
        )
    return record[key]


# Local builders by the launch.prepare --kind that builds them.
_LOCAL_KIND = {
    "local_text": "text",
    "local_parallel": "parallel",
    "local_summarization": "summarization",
}


# Features holding the sentence(s) of each GLUE config in TFDS (and the
# project's generated sets, by dataset name).
GLUE_SENTENCE_KEYS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "mnli_matched": ("premise", "hypothesis"),
    "mnli_mismatched": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
    "ax": ("premise", "hypothesis"),
}
_DATASET_SENTENCE_KEYS = {"tiny_glue": ("sentence",)}


def glue_config(dataset: str) -> str:
    """'glue/mnli:2.0.0' -> 'mnli'; '' for datasets that are not GLUE."""
    if base_name(dataset) != "glue" or "/" not in dataset:
        return ""
    return dataset.split("/")[1].split(":")[0]


def check_classification_supported(dataset: str) -> None:
    """Refuses GLUE's regression task (STS-B), which the classification task cannot train."""
    if glue_config(dataset) == "stsb":
        raise ConfigError(
            f"data.dataset={dataset!r} is a regression task (similarity scores 0-5), which "
            "data.task='classification' does not support yet; pick another GLUE task."
        )


def sentence_keys(data_cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The one or two features holding a record's text (data.sentence_keys wins if set)."""
    check_classification_supported(data_cfg.dataset)
    keys = data_cfg.get("sentence_keys", "")
    if keys:
        names = tuple(k.strip() for k in keys.split(","))
        if not 1 <= len(names) <= 2 or not all(names):
            raise ConfigError(
                f"data.sentence_keys={keys!r}; give one or two comma-separated feature names."
            )
        return names
    default = GLUE_SENTENCE_KEYS.get(glue_config(data_cfg.dataset)) or _DATASET_SENTENCE_KEYS.get(
        base_name(data_cfg.dataset)
    )
    if default is None:
        raise ConfigError(
            f"No default sentence features for classification dataset {data_cfg.dataset!r}: "
            "set data.sentence_keys ('sentence' or 'sentence1,sentence2')."
        )
    return default


def prepare_hint(dataset: str, data_dir: str) -> str:
    """The command that prepares `dataset` into `data_dir`."""
    name, _, config = dataset.partition("/")
    if name in _LOCAL_KIND:
        kind = _LOCAL_KIND[name]
        sides = " --source_lang=SRC --target_lang=TGT" if kind == "parallel" else ""
        command = (
            f"python -m launch.prepare --kind={kind} --name={config or 'NAME'}{sides} "
            "--train=FILE[,FILE...] [--validation=FILE]"
        )
    else:
        command = f"python -m launch.prepare --kind=tfds --dataset={dataset}"
    return (
        f"Prepare it with: {command} --data_dir={data_dir} (or point data.data_dir / "
        "$LLM_DATA_DIR at the directory where it was prepared as array_record)."
    )


def builder(dataset: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """Returns the TFDS builder of `dataset` writing array_record to data_dir."""
    register(dataset)
    try:
        return tfds.builder(dataset, data_dir=data_dir, file_format=FILE_FORMAT)
    # An unknown config of a local_* builder exists only once prepared.
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        raise DatasetNotPreparedError(
            f"Dataset {dataset!r} is unknown to TFDS and not in {data_dir}. "
            + prepare_hint(dataset, data_dir)
        ) from e


def _diagnose(dataset: str, split: str, data_dir: str) -> str:
    """Why `split` of `dataset` cannot be read, as an actionable message."""
    try:
        b = builder(dataset, data_dir)
    except DatasetNotPreparedError as e:
        return str(e)
    if not b.is_prepared():
        return f"Dataset {dataset!r} is not prepared in {data_dir}. " + prepare_hint(
            dataset, data_dir
        )
    available = list(b.info.splits.keys())
    if split.split("[")[0] not in available:
        return (
            f"Split {split!r} of {dataset!r} is not in {data_dir}; available: "
            f"{available}. Fix data.train_split / data.eval_split."
        )
    if b.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        return (
            f"{dataset!r} in {data_dir} is stored as {b.info.file_format}, but random "
            "access needs array_record. " + prepare_hint(dataset, data_dir)
        )
    return ""


def get_source(data_cfg: ml_collections.ConfigDict, split: str) -> Sequence[Any]:
    """Returns the random-access source of one split (records are dicts)."""
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    register(data_cfg.dataset)
    try:
        return tfds.data_source(data_cfg.dataset, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # TFDS raises many types; explain them in one.
        reason = _diagnose(data_cfg.dataset, split, data_dir)
        if not reason:
            raise
        raise DatasetNotPreparedError(reason) from e
