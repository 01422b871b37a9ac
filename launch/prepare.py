"""Prepare a dataset into a data_dir as array_record.

Local files (one builder per kind; the dataset is then 'local_<kind>/<name>'):
  python -m launch.prepare --kind=text --name=mycorpus --train=a.txt,b.txt \
      --validation=dev.txt --data_dir=DIR
  python -m launch.prepare --kind=parallel --name=deen --train=train.de,train.en \
      --validation=dev.tsv
  python -m launch.prepare --kind=summarization --name=news --train=train.jsonl
Named TFDS datasets (downloads; needs network) or generated ones:
  python -m launch.prepare --dataset=wmt14_translate/de-en --data_dir=DIR
Add --tokenizer=sentencepiece --vocab_size=N and/or --token_cache to train
the tokenizer and tokenize the splits once for a task (--task=lm|seq2seq|mlm).
"""

from __future__ import annotations

from absl import flags

from launch.cli import run_main
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
_MANUAL_DIR = flags.DEFINE_string("manual_dir", "", "Manually downloaded files (kind=tfds).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Rebuild a local dataset that exists.")
_TASK = flags.DEFINE_enum("task", "lm", list(config_lib.TASKS), "Task of the tokenizer/cache.")
_TOKENIZER = flags.DEFINE_enum("tokenizer", "", ["", *config_lib.TOKENIZERS], "Train/load it.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 32000, "Sentencepiece vocabulary size.")
_SPM_TYPE = flags.DEFINE_enum("spm_type", "unigram", ["unigram", "bpe"], "Sentencepiece model.")
_TOKEN_CACHE = flags.DEFINE_bool("token_cache", False, "Tokenize train/validation once.")


def main(argv: list[str]) -> None:
    del argv
    if _KIND.value == "tfds":
        if not _DATASET.value:
            raise ConfigError("--dataset is required with --kind=tfds.")
        dataset = _DATASET.value
        if sources.base_name(dataset) in sources.GENERATED:
            cfg = config_lib.default_data_config()
            cfg.dataset, cfg.data_dir = dataset, _DATA_DIR.value
            prepare.ensure_dataset(cfg)
        else:
            prepare.prepare_tfds(dataset, _DATA_DIR.value, manual_dir=_MANUAL_DIR.value)
    else:
        files = {s: f.value for s, f in _SPLITS.items() if f.value}
        dataset, skipped = prepare.prepare_local(
            _KIND.value,
            _NAME.value,
            files,
            _DATA_DIR.value,
            doc_sep=_DOC_SEP.value,
            inputs_field=_INPUTS_FIELD.value,
            targets_field=_TARGETS_FIELD.value,
            overwrite=_OVERWRITE.value,
        )
        print(f"skipped input lines: {skipped or 'none'}")
    print(
        f"data.dataset={dataset!r} data.data_dir={config_lib.resolve_data_dir(_DATA_DIR.value)!r}"
    )
    if _TOKENIZER.value or _TOKEN_CACHE.value:
        cfg = config_lib.default_data_config()
        cfg.dataset, cfg.data_dir, cfg.task = dataset, _DATA_DIR.value, _TASK.value
        cfg.tokenizer = _TOKENIZER.value or "byte"
        cfg.vocab_size, cfg.spm_type = _VOCAB_SIZE.value, _SPM_TYPE.value
        cfg.token_cache = _TOKEN_CACHE.value
        report = prepare.prepare_tokens(cfg)
        print(f"vocab_size={report['vocab_size']}")
        for split, stats in report["stats"].items():
            print(f"{split}: {stats}")
        for path in report["token_caches"]:
            print(f"token cache: {path}")


if __name__ == "__main__":
    run_main(main)
