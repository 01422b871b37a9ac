"""The grain pipeline: a data config -> a checkpointable iterator of batches.

Stages (all random access until the last two, so state is a few integers):
record indices -> shard -> shuffle -> repeat -> chunks of `chunk_size`
indices -> per chunk: one batched read, tokenize (or decode cached ids),
task example, pack into rows -> rebatch rows to `batch_size` -> prefetch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import ml_collections
import numpy as np
from absl import flags

from llm.data import config as config_lib
from llm.data import mixture, packing, sources, token_cache, tokenizers
from llm.data.tasks import ClassificationTask, LMTask, MLMTask, Seq2SeqTask, SpanQATask, Task
from llm.errors import ConfigError

_TASKS = {
    "lm": LMTask,
    "seq2seq": Seq2SeqTask,
    "mlm": MLMTask,
    "classification": ClassificationTask,
    "span_qa": SpanQATask,
}


def make_task(
    data_cfg: ml_collections.ConfigDict,
    tok: tokenizers.Tokenizer,
    records: Sequence[Any] | None = None,
) -> Task:
    """The task of a config (data.task); MLM's NSP draws from `records`."""
    if data_cfg.task == "mlm":
        return MLMTask(data_cfg, tok, records)
    return _TASKS[data_cfg.task](data_cfg, tok)


class ChunkToRows(grain.transforms.RandomMap):
    """Record indices -> a dict of row arrays `[rows, ...]` in the task's format."""

    def __init__(
        self,
        source: Sequence[Any],
        decode: Callable[[Any], Mapping[str, np.ndarray]] | None,
        task: Task,
    ):
        self._source = source
        self._decode = decode
        self._task = task

    def random_map(self, indices: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        items = token_cache.read_records(self._source, indices.tolist())
        if self._decode is not None:
            items = [self._decode(x) for x in items]
        columns, meta = self._task.chunk(items, rng, ids=self._decode is not None)
        rows = packing.make_rows(
            columns,
            self._task.lengths,
            pack=self._task.pack,
            open_rows=self._task.open_rows,
            meta=meta,
        )
        return self._task.to_batch(rows)


class PadBatch(grain.transforms.Map):
    """Pads a short final batch with all-zero rows (weights 0)."""

    def __init__(self, batch_size: int):
        self._batch_size = batch_size

    def map(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        def pad(x):
            missing = self._batch_size - x.shape[0]
            return np.pad(x, [(0, missing)] + [(0, 0)] * (x.ndim - 1)) if missing else x

        return {k: pad(v) for k, v in batch.items()}


def _source(data_cfg, split, tok, task_needs_text: bool):
    """(random-access records, decoder of cached ids or None)."""
    if not data_cfg.token_cache or task_needs_text:
        return sources.get_source(data_cfg, split), None
    path = token_cache.cache_dir(data_cfg, split, tok)
    if not os.path.exists(os.path.join(path, token_cache.META)):
        raise sources.DatasetNotPreparedError(
            f"No token-id cache of {data_cfg.dataset!r} split {split!r} at {path}. Build it with "
            "llm.data.ensure_dataset(cfg) or python -m launch.prepare --token_cache, or set "
            "data.token_cache=False."
        )
    records, decode, _ = token_cache.open_cache(path)
    return records, decode


def build_token_caches(
    data_cfg: ml_collections.ConfigDict, splits: Sequence[str] | None = None
) -> list[str]:
    """Tokenizes splits (default: train and eval) once into array_record caches."""
    tok = tokenizers.get_tokenizer(data_cfg)
    task = make_task(data_cfg, tok, records=())
    if task.needs_text:
        raise ConfigError(
            f"data.task={data_cfg.task!r} needs the records' text (NSP splits sentences, "
            "span QA maps answers by character offsets); set data.token_cache=False."
        )
    return [
        token_cache.build(data_cfg, split, tok, task.encode)
        for split in (splits or (data_cfg.train_split, data_cfg.eval_split))
        if split
    ]


class TagSource(grain.transforms.Map):
    """Adds the rows' source index (data.mixture) as a `source` [rows] column."""

    def __init__(self, index: int):
        self._index = index

    def map(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(next(iter(rows.values())))
        return {**rows, mixture.SOURCE_KEY: np.full(count, self._index, np.int32)}


def _rows(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str,
    seed: int,
    shard_index: int,
    shard_count: int,
    shuffle: bool,
    num_epochs: int | None,
) -> grain.IterDataset:
    """The IterDataset of packed row chunks of one dataset (before workers and batching)."""
    tok = tokenizers.get_tokenizer(data_cfg)
    needs_text = (data_cfg.task == "mlm" and data_cfg.nsp) or data_cfg.task == "span_qa"
    records, decode = _source(data_cfg, split, tok, needs_text)
    if len(records) < shard_count:
        raise ConfigError(
            f"Split {split!r} has {len(records)} records, fewer than {shard_count} shards."
        )
    # Shard before shuffling so that shards are disjoint by construction and
    # each process reads only its own records.
    indices = grain.MapDataset.range(len(records))[shard_index::shard_count]
    if shuffle:
        indices = indices.shuffle(seed=seed)
    if num_epochs != 1:
        # repeat() reseeds the shuffle and the random maps each epoch.
        indices = indices.repeat(num_epochs)
    # NSP draws its random B sentences from this shard's records only.
    shard_records = (
        grain.MapDataset.source(records)[shard_index::shard_count] if needs_text else None
    )
    task = make_task(data_cfg, tok, shard_records)
    chunks = indices.batch(data_cfg.chunk_size).random_map(
        ChunkToRows(records, decode, task), seed=seed
    )
    # One chunk in flight per thread: grain's default buffer (500 elements)
    # would hold 500 chunks, gigabytes at long seq_len.
    threads = data_cfg.read_threads
    return chunks.to_iter_dataset(
        grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads)
    )


def _mixed_rows(
    data_cfg: ml_collections.ConfigDict, weights: Sequence[tuple[str, float]], **kwargs: Any
) -> grain.IterDataset:
    """Single rows of every source, drawn by weight (llm.data.mixture)."""
    if kwargs["num_epochs"] is not None:
        raise ConfigError(
            f"data.mixture={data_cfg.mixture!r} mixes endless training streams; read one "
            "source's finite pass with llm.data.mixture.source_config(cfg, name) instead."
        )
    streams = {}
    for index, (name, _) in enumerate(weights):
        rows = _rows(mixture.source_config(data_cfg, name), **kwargs).map(TagSource(index))
        # One row per element: the mix draws rows, so weights are shares of (full) rows.
        streams[name] = grain.experimental.RebatchIterDataset(rows, 1, drop_remainder=False)
    return grain.IterDataset.mix(streams, dict(weights))


def make_dataset(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str,
    batch_size: int,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    shuffle: bool | None = None,
    num_epochs: int | None = None,
) -> grain.IterDataset:
    """Returns the grain IterDataset of host-local numpy batch dicts.

    See make_iterator for the arguments; this form lets callers add stages.
    """
    config_lib.validate(data_cfg)
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}; it must be >= 1 (per process).")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} not in [0, shard_count={shard_count}).")
    shuffle = data_cfg.shuffle if shuffle is None else shuffle
    kwargs = dict(
        split=split,
        seed=seed,
        shard_index=shard_index,
        shard_count=shard_count,
        shuffle=shuffle,
        num_epochs=num_epochs,
    )
    weights = mixture.parse_mixture(data_cfg.get("mixture", ""))
    rows = _mixed_rows(data_cfg, weights, **kwargs) if weights else _rows(data_cfg, **kwargs)
    if data_cfg.num_workers > 0:
        # grain's workers read absl flags; outside an absl main (pytest,
        # notebooks) they are unparsed and reading them raises. Their defaults
        # are what we want.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        rows = rows.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=data_cfg.num_workers,
                per_worker_buffer_size=max(1, data_cfg.prefetch_buffer),
            )
        )
    batches = grain.experimental.RebatchIterDataset(
        rows, batch_size, drop_remainder=num_epochs is None
    )
    if num_epochs is not None:
        # A finite pass keeps every example: the last batch is padded with
        # all-zero rows (weights 0) so that batch shapes stay static under jit.
        batches = batches.map(PadBatch(batch_size))
    if data_cfg.num_workers == 0 and data_cfg.prefetch_buffer > 0:
        batches = grain.experimental.ThreadPrefetchIterDataset(
            batches, prefetch_buffer_size=data_cfg.prefetch_buffer
        )
    return batches


def make_iterator(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str,
    batch_size: int,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    shuffle: bool | None = None,
    num_epochs: int | None = None,
) -> grain.DatasetIterator:
    """Returns a checkpointable iterator of host-local numpy batch dicts.

    Args:
      data_cfg: the `data` config group (llm.data.config).
      split: TFDS split spec, usually data_cfg.train_split or eval_split.
      batch_size: rows per batch on this process (global batch / processes).
      seed: seeds the shuffle (reshuffled per epoch), MLM masks and NSP.
      shard_index, shard_count: this process's shard of the records, usually
        jax.process_index() and jax.process_count(); shards are disjoint.
      shuffle: shuffle records; None = data_cfg.shuffle.
      num_epochs: None = repeat forever (training); an int = that many passes,
        the last batch padded with zero rows (evaluation: num_epochs=1,
        shuffle=False).

    Batches (docs/contracts.md): task 'lm' -> decoder format, 'seq2seq' ->
    encoder_decoder format, 'mlm' -> encoder format (+ nsp_labels if
    data.nsp). The iterator has get_state()/set_state() and saves into orbax
    checkpoints with grain.checkpoint.CheckpointSave/CheckpointRestore; a
    restored one yields exactly the batch the original would have yielded
    next (for the same config and num_workers). The dataset (and its token-id
    cache if data.token_cache) must exist: call llm.data.ensure_dataset first.
    With several processes, eval passes may end after different numbers of
    batches per process (shards differ in packed rows).
    """
    return iter(
        make_dataset(
            data_cfg,
            split=split,
            batch_size=batch_size,
            seed=seed,
            shard_index=shard_index,
            shard_count=shard_count,
            shuffle=shuffle,
            num_epochs=num_epochs,
        )
    )


def split_stats(
    data_cfg: ml_collections.ConfigDict, split: str, *, limit: int | None = None
) -> dict[str, int]:
    """Counts over a split as the task sees it: examples, truncations, tokens.

    Truncation (or, for LM with lm_long_docs='split', splitting) happens
    per chunk in training and is logged per process; this gives the
    whole-split numbers to report. input_tokens counts (encoder) input
    tokens after truncation.
    """
    tok = tokenizers.get_tokenizer(data_cfg)
    records = sources.get_source(data_cfg, split)
    task = make_task(data_cfg, tok, records)
    n = len(records) if limit is None else min(limit, len(records))
    rng = np.random.default_rng(0)
    key = "encoder_inputs" if data_cfg.task == "seq2seq" else "inputs"
    tokens = 0
    for start in range(0, n, data_cfg.chunk_size):
        chunk = token_cache.read_records(records, range(start, min(n, start + data_cfg.chunk_size)))
        columns, _ = task.chunk(chunk, rng, ids=False)
        tokens += int(columns[key][1].sum())
    c = task.counter
    return {
        "examples": c.examples,
        "truncated_inputs": c.truncated,
        "truncated_targets": c.truncated_targets,
        "input_tokens": tokens,
    }
