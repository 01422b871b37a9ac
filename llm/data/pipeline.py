"""The grain pipeline: a data config -> a checkpointable iterator of batches."""

from __future__ import annotations

import functools

import grain
import ml_collections
from absl import flags

from llm.data import config as config_lib
from llm.data import lm, sources, tokenizers


def _records(data_cfg, split, *, seed, shard_index, shard_count, shuffle, num_epochs):
    source = sources.get_source(data_cfg, split)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} not in [0, shard_count={shard_count}).")
    ds = grain.MapDataset.source(source)
    if len(ds) < shard_count:
        raise ValueError(f"Split {split!r} has {len(ds)} records, fewer than {shard_count} shards.")
    # Shard before shuffling so that shards are disjoint by construction and
    # each process opens only its own records.
    ds = ds[shard_index::shard_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    # repeat() reseeds the shuffle each epoch; None repeats forever.
    return ds.repeat(num_epochs) if num_epochs != 1 else ds


def _lm_rows(ds: grain.MapDataset, data_cfg, tok, *, seed) -> grain.IterDataset:
    ds = ds.map(lm.TokenizeLM(tok, sources.text_key(data_cfg), data_cfg.seq_len))
    if not data_cfg.pack:
        return ds.map(lm.PadLM(data_cfg.seq_len)).to_iter_dataset(_read_options(data_cfg))
    rows = grain.experimental.FirstFitPackIterDataset(
        ds.to_iter_dataset(_read_options(data_cfg)),
        length_struct={"inputs": data_cfg.seq_len, "targets": data_cfg.seq_len},
        num_packing_bins=data_cfg.num_packing_bins,
        seed=seed,
        shuffle_bins=False,
    )
    return rows.map(lm.PackedToDecoder())


def _read_options(data_cfg) -> grain.ReadOptions:
    return grain.ReadOptions(num_threads=data_cfg.read_threads, prefetch_buffer_size=500)


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
        raise ValueError(f"batch_size={batch_size}; it must be >= 1 (per process).")
    shuffle = data_cfg.shuffle if shuffle is None else shuffle
    tok = tokenizers.get_tokenizer(data_cfg)
    ds = _records(
        data_cfg,
        split,
        seed=seed,
        shard_index=shard_index,
        shard_count=shard_count,
        shuffle=shuffle,
        num_epochs=num_epochs,
    )
    if data_cfg.task == "lm":
        rows = _lm_rows(ds, data_cfg, tok, seed=seed)
    else:
        raise NotImplementedError(f"data.task={data_cfg.task!r} is not available yet.")
    if num_epochs is None:
        batches = rows.batch(batch_size, drop_remainder=True)
    else:
        # A finite pass keeps every example: the last batch is padded with
        # all-zero rows (weights 0) so that batch shapes stay static under jit.
        batches = rows.batch(
            batch_size,
            batch_fn=functools.partial(grain.experimental.batch_and_pad, batch_size=batch_size),
        )
    if data_cfg.num_workers > 0:
        # grain's workers read absl flags; outside an absl main (pytest,
        # notebooks) they are unparsed and reading them raises. Their defaults
        # are what we want.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        return batches.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=data_cfg.num_workers,
                per_worker_buffer_size=max(1, data_cfg.prefetch_buffer),
            )
        )
    if data_cfg.prefetch_buffer > 0:
        return grain.experimental.ThreadPrefetchIterDataset(
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
      seed: seeds the shuffle (reshuffled per epoch) and the packer.
      shard_index, shard_count: this process's shard of the records, usually
        jax.process_index() and jax.process_count(); shards are disjoint.
      shuffle: shuffle records; None = data_cfg.shuffle.
      num_epochs: None = repeat forever (training; the last partial batch of
        nothing is dropped); an int = that many passes, the last batch padded
        with zero rows (evaluation: num_epochs=1, shuffle=False).

    The iterator has get_state()/set_state() and saves into orbax checkpoints
    with grain.checkpoint.CheckpointSave/CheckpointRestore; a restored one
    yields exactly the batch the original would have yielded next. The dataset
    must exist (sources.ensure_dataset).
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
