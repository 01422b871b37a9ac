"""Data: TFDS sources, tokenizers, tasks, packing and the grain pipeline.

The trainer needs four names:
  default_data_config()  the `data` config group (llm/data/config.py);
  ensure_dataset(cfg)    builds a generated dataset if missing (and token-id
                         caches with data.token_cache), else checks it exists;
  get_tokenizer(cfg)     vocab_size, special ids and decode() for samples;
  make_iterator(cfg, split=..., batch_size=..., ...)  checkpointable batches
                         in the docs/contracts.md format of data.task.
Preparing data: llm.data.prepare (python -m launch.prepare). Throughput:
llm.bench.pipeline. Canary bound: llm.data.grammar.entropy_per_token().
"""

from llm.data.config import default_data_config, resolve_data_dir
from llm.data.pipeline import (
    build_token_caches,
    make_dataset,
    make_iterator,
    make_task,
    split_stats,
)
from llm.data.prepare import ensure_dataset
from llm.data.sources import DatasetNotPreparedError, get_source, pair_keys, text_key
from llm.data.tokenizers import ByteTokenizer, Tokenizer, get_tokenizer

__all__ = [
    "ByteTokenizer",
    "DatasetNotPreparedError",
    "Tokenizer",
    "build_token_caches",
    "default_data_config",
    "ensure_dataset",
    "get_source",
    "get_tokenizer",
    "make_dataset",
    "make_iterator",
    "make_task",
    "pair_keys",
    "resolve_data_dir",
    "split_stats",
    "text_key",
]
