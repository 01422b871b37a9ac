"""Weighted data mixtures: `data.mixture = 'name:weight,name:weight'`, mixed row by row.

Every source runs its own pipeline (records -> shard -> shuffle -> repeat -> packed rows,
as a single dataset would), each row tagged with its source's index; grain's
`IterDataset.mix` then draws rows by the normalised weights, deterministically, and the
mixed rows are batched. Rows are packed full, so the weights are shares of tokens, which is
what a pretraining mixture means. The mixed iterator checkpoints like any other (its state
holds each source's position, keyed by name) and each process reads only its shard of
every source.

Batches carry the rows' source ids as `source` [B] int32; the trainer pops them before the
step (`SourceCounter`) and logs tokens seen per source. Evaluation scores each source's
eval split on its own (`eval/<source>/loss`, llm.train.evaluate).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.errors import ConfigError

SOURCE_KEY = "source"


def parse_mixture(spec: Any) -> list[tuple[str, float]]:
    """'a:0.7,b:0.3' (or [('a', 0.7), ('b', 0.3)]) -> [(name, weight / total)]; [] if unset."""
    if not spec:
        return []
    if isinstance(spec, str):
        pairs = []
        for part in (p.strip() for p in spec.split(",")):
            name, sep, weight = part.rpartition(":")
            if not sep or not name.strip():
                raise ConfigError(
                    f"data.mixture={spec!r}: {part!r} is not 'dataset:weight'; write e.g. "
                    "'tiny_grammar:0.7,tiny_numbers:0.3'."
                )
            pairs.append((name.strip(), weight))
    else:
        pairs = [tuple(p) for p in spec]
    out = []
    for name, weight in pairs:
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0 or not np.isfinite(value):
            raise ConfigError(
                f"data.mixture: the weight of {name!r} is {weight!r}; weights must be "
                "positive numbers (they are normalised to sum to 1)."
            )
        out.append((str(name), value))
    names = [n for n, _ in out]
    if len(set(names)) < len(names):
        raise ConfigError(f"data.mixture={spec!r} names a dataset twice; merge its weights.")
    total = sum(w for _, w in out)
    return [(n, w / total) for n, w in out]


def source_config(data_cfg: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """The data config of one source: `data_cfg` reading `name`, no mixture."""
    cfg = ml_collections.ConfigDict(data_cfg.to_dict())
    cfg.dataset = name
    cfg.mixture = ""
    return cfg


def source_configs(data_cfg: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    """One data config per source of the mixture; [data_cfg] without one."""
    mixture = parse_mixture(data_cfg.get("mixture", ""))
    return [source_config(data_cfg, n) for n, _ in mixture] or [data_cfg]


def metric_name(dataset: str) -> str:
    """A dataset name as one metric path segment ('wmt14_translate/de-en' -> 'wmt14_translate_de_en')."""
    return re.sub(r"[^0-9A-Za-z]+", "_", dataset).strip("_") or "source"


def tokens_per_row(batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """Non-padding tokens of each row: positions with a segment id, over every sequence."""
    counts = [
        (np.asarray(v) > 0).reshape(len(v), -1).sum(-1)
        for k, v in batch.items()
        if k.endswith("segment_ids")
    ]
    if not counts:
        raise ConfigError(
            "data.mixture counts tokens by segment ids, which this task's batches have none "
            f"of (keys {sorted(batch)}); mix token tasks (lm, seq2seq, mlm)."
        )
    return np.sum(counts, axis=0)


class SourceCounter:
    """Tokens seen per source: counted on each host's batches, summed over processes."""

    def __init__(self, names: Sequence[str]):
        self.names = [metric_name(n) for n in names]
        self._base = np.zeros(len(names), np.int64)  # restored from the resumed run
        self._total = np.zeros(len(names), np.int64)  # this process, since the start
        self._since_log = np.zeros(len(names), np.int64)

    def add(self, batch: dict[str, np.ndarray]) -> None:
        """Counts a host batch's tokens by source and removes its `source` column."""
        source = np.asarray(batch.pop(SOURCE_KEY))
        counts = np.bincount(source, weights=tokens_per_row(batch), minlength=len(self.names))
        counts = counts.astype(np.int64)
        self._total += counts
        self._since_log += counts

    def restore(self, rows: Sequence[Mapping[str, Any]], step: int) -> bool:
        """Starts from the counts metrics.jsonl holds at `step`; False if it has none."""
        keys = [f"data/{n}/tokens" for n in self.names]
        for row in rows:
            if row.get("step") == step and all(k in row for k in keys):
                self._base = np.asarray([int(row[k]) for k in keys], np.int64)
                return True
        return False

    def _global(self, local: np.ndarray) -> np.ndarray:
        import jax

        if jax.process_count() == 1:
            return local
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(local)).sum(0)

    def tokens(self) -> dict[str, float]:
        """data/<source>/tokens: tokens seen since step 0 (every process calls it together)."""
        total = self._base + self._global(self._total)
        return {f"data/{n}/tokens": float(t) for n, t in zip(self.names, total, strict=True)}

    def scalars(self) -> dict[str, float]:
        """tokens() and data/<source>/fraction, the sources' shares since the last call.

        Every process must call it at the same steps (it sums over processes).
        """
        both = self._global(np.stack([self._total, self._since_log]))
        total, since = self._base + both[0], both[1]
        self._since_log[:] = 0
        out = {f"data/{n}/tokens": float(t) for n, t in zip(self.names, total, strict=True)}
        if since.sum() > 0:
            shares = since / since.sum()
            out.update(
                {f"data/{n}/fraction": float(s) for n, s in zip(self.names, shares, strict=True)}
            )
        return out
