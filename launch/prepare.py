"""Prepare a dataset into a data_dir as array_record.

Local files (one builder per kind; the dataset is then 'local_<kind>/<name>'):
  python -m launch.prepare --kind=text --name=mycorpus --train=a.txt,b.txt \
      --validation=dev.txt --data_dir=DIR
  python -m launch.prepare --kind=parallel --name=ende --source_lang=en --target_lang=de \
      --train=train.en,train.de --validation=dev.en,dev.de
  python -m launch.prepare --kind=summarization --name=news --train=train.jsonl
Parallel text names its sides: --source_lang is what the model reads, --target_lang
what it writes. Two files are matched to them by suffix (train.de,train.en with
--source_lang=en gives EN->DE); without language suffixes the first file is the source,
as is a TSV's first column. The languages are kept with the dataset (eval picks the
BLEU tokenizer from the target's).
Named TFDS datasets (downloads; needs network), generated ones, or one prepared before:
  python -m launch.prepare --dataset=wmt14_translate/de-en --data_dir=DIR
  python -m launch.prepare --dataset=local_parallel/ende --config=experiments/aiayn.py
Tokenizer: --config=experiments/X.py[:arg] trains the one that experiment uses (its data
group: tokenizer, spm_type, vocab_size, task; --config.data.vocab_size=N overrides), so a
later `launch.train --config=... --config.data.dataset=...` finds it. Or say it here:
--tokenizer=sentencepiece --spm_type=bpe --vocab_size=N (--task=lm|seq2seq|mlm).
--token_cache also tokenizes the splits once.
"""

from __future__ import annotations

import ml_collections
from absl import flags

from launch.cli import run_main
from llm.config import load_config, split_config_overrides
from llm.data import config as config_lib
from llm.data import prepare, sources
from llm.errors import ConfigError

_KIND = flags.DEFINE_enum(
    "kind",
    "tfds",
    ["tfds", *prepare.LOCAL_KINDS],
    "What to prepare: a TFDS dataset or local files.",
)
_DATASET = flags.DEFINE_string("dataset", "", "TFDS name (kind=tfds), e.g. lm1b.")
_NAME = flags.DEFINE_string("name", "", "Name of a local dataset (kind!=tfds).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Data directory ('' = $LLM_DATA_DIR, ...).")
_SPLITS = {
    split: flags.DEFINE_list(split, [], f"Input files of the {split} split (local kinds).")
    for split in ("train", "validation", "test")
}
_DOC_SEP = flags.DEFINE_enum(
    "doc_sep", "line", ["line", "blank"], "Text documents: per line or per paragraph."
)
_INPUTS_FIELD = flags.DEFINE_string("inputs_field", "document", "JSONL field of the input.")
_TARGETS_FIELD = flags.DEFINE_string("targets_field", "summary", "JSONL field of the target.")
_SOURCE_LANG = flags.DEFINE_string(
    "source_lang", "", "Parallel text: language the model reads, e.g. en (kind=parallel)."
)
_TARGET_LANG = flags.DEFINE_string(
    "target_lang", "", "Parallel text: language the model writes, e.g. de (kind=parallel)."
)
_CONFIG = flags.DEFINE_string(
    "config", "", "Experiment whose data group gives the tokenizer, e.g. experiments/aiayn.py."
)
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "Manually downloaded files (kind=tfds).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Rebuild a local dataset that exists.")
_TASK = flags.DEFINE_enum("task", "lm", list(config_lib.TASKS), "Task of the tokenizer/cache.")
_TOKENIZER = flags.DEFINE_enum("tokenizer", "", ["", *config_lib.TOKENIZERS], "Train/load it.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 32000, "Sentencepiece vocabulary size.")
_SPM_TYPE = flags.DEFINE_enum("spm_type", "unigram", ["unigram", "bpe"], "Sentencepiece model.")
_TOKEN_CACHE = flags.DEFINE_bool("token_cache", False, "Tokenize train/validation once.")
# Flags that say the tokenizer here; --config says it through the experiment instead.
_TOKENIZER_FLAGS = ("tokenizer", "vocab_size", "spm_type", "task")

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    return flags.FLAGS(rest)


def _tokenizer_config(dataset: str) -> tuple[ml_collections.ConfigDict | None, str]:
    """The data group the tokenizer is trained for (the experiment's, or the flags'), and
    the overrides a training run of the experiment needs to read `dataset` with it."""
    if _CONFIG.value:
        given = [f"--{n}" for n in _TOKENIZER_FLAGS if flags.FLAGS[n].present]
        if given:
            raise ConfigError(
                f"{', '.join(given)} and --config both say the tokenizer; drop {given[0]} "
                "or override the experiment's with --config.data.<field>=VALUE."
            )
        cfg = load_config(_CONFIG.value, _OVERRIDES).data
        cfg.unlock()
        cfg.token_cache = cfg.token_cache or _TOKEN_CACHE.value
    elif _OVERRIDES:
        raise ConfigError(f"--config.{_OVERRIDES[0][0]} needs --config=experiments/X.py.")
    elif _TOKENIZER.value or _TOKEN_CACHE.value:
        cfg = config_lib.default_data_config()
        cfg.task, cfg.tokenizer = _TASK.value, _TOKENIZER.value or "byte"
        cfg.vocab_size, cfg.spm_type = _VOCAB_SIZE.value, _SPM_TYPE.value
        cfg.token_cache = _TOKEN_CACHE.value
    else:
        return None, ""
    cfg.dataset, cfg.data_dir = dataset, _DATA_DIR.value
    given = "".join(f" --config.{k}={v}" for k, v in _OVERRIDES)
    keys = _local_pair_keys(cfg)
    if keys:
        # An experiment's WMT feature names ('en', 'de') are not a local dataset's.
        cfg.inputs_key = cfg.targets_key = ""
    return cfg, f"--config={_CONFIG.value}{given} --config.data.dataset={dataset}{keys}"


def _local_pair_keys(cfg: ml_collections.ConfigDict) -> str:
    """The key overrides a seq2seq experiment needs to read a local pair dataset, or ''."""
    if cfg.task != "seq2seq" or sources.base_name(cfg.dataset) not in (
        "local_parallel",
        "local_summarization",
    ):
        return ""
    defaults = config_lib.default_data_config()
    defaults.dataset = cfg.dataset
    keys = sources.pair_keys(defaults)
    if (cfg.inputs_key or keys[0], cfg.targets_key or keys[1]) == keys:
        return ""
    return f" --config.data.inputs_key={keys[0]} --config.data.targets_key={keys[1]}"


def _tokenizer_note(cfg: ml_collections.ConfigDict, vocab_size: int, uses: str) -> str:
    """What was made, and the overrides that make a training run use it."""
    if cfg.tokenizer != "sentencepiece":
        return f"tokenizer: {cfg.tokenizer} (vocab_size={vocab_size})"
    from llm.data import spm

    path = cfg.spm_model or spm.cache_path(cfg)
    if not _CONFIG.value:
        uses = (
            f"--config.data.dataset={cfg.dataset} --config.data.tokenizer=sentencepiece "
            f"--config.data.spm_type={cfg.spm_type} --config.data.vocab_size={cfg.vocab_size}"
        )
    return (
        f"tokenizer: sentencepiece {cfg.spm_type} {cfg.vocab_size} (real size {vocab_size}) "
        f"at {path}\n  a training run uses it with {uses}"
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    if _KIND.value == "tfds":
        if not _DATASET.value:
            raise ConfigError("--dataset is required with --kind=tfds.")
        dataset = _DATASET.value
        if sources.base_name(dataset) in (*sources.GENERATED, *prepare.LOCAL_KINDS.values()):
            cfg = config_lib.default_data_config()
            cfg.dataset, cfg.data_dir = dataset, _DATA_DIR.value
            prepare.ensure_dataset(cfg)
        else:
            prepare.prepare_tfds(dataset, _DATA_DIR.value, manual_dir=_MANUAL_DIR.value)
    else:
        files = {s: f.value for s, f in _SPLITS.items() if f.value}
        if _KIND.value == "parallel":
            if not (_SOURCE_LANG.value and _TARGET_LANG.value):
                raise ConfigError(
                    "--kind=parallel needs --source_lang and --target_lang (e.g. "
                    "--source_lang=en --target_lang=de): the model reads the source and "
                    "writes the target."
                )
            sides = prepare.parallel_sides(files, _SOURCE_LANG.value, _TARGET_LANG.value)
            for split, paths in sides.items():
                which = (
                    f"source ({_SOURCE_LANG.value}) {paths[0]}, target ({_TARGET_LANG.value}) "
                    f"{paths[1]}"
                    if len(paths) == 2
                    else f"{paths[0]} (TSV: source first, target second)"
                )
                print(f"{split}: {which}")
        dataset, skipped = prepare.prepare_local(
            _KIND.value,
            _NAME.value,
            files,
            _DATA_DIR.value,
            doc_sep=_DOC_SEP.value,
            inputs_field=_INPUTS_FIELD.value,
            targets_field=_TARGETS_FIELD.value,
            source_lang=_SOURCE_LANG.value,
            target_lang=_TARGET_LANG.value,
            overwrite=_OVERWRITE.value,
        )
        print(f"skipped input lines: {skipped or 'none'}")
    print(
        f"data.dataset={dataset!r} data.data_dir={config_lib.resolve_data_dir(_DATA_DIR.value)!r}"
    )
    cfg, uses = _tokenizer_config(dataset)
    if cfg is not None:
        report = prepare.prepare_tokens(cfg)
        print(_tokenizer_note(cfg, report["vocab_size"], uses))
        for split, stats in report["stats"].items():
            print(f"{split}: {stats}")
        for path in report["token_caches"]:
            print(f"token cache: {path}")


if __name__ == "__main__":
    run_main(main, _parse)
