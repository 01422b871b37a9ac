"""Causal LM task: documents -> the contracts' `decoder` batch rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.data import sources
from llm.data.packing import Columns
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer
from llm.errors import ConfigError


def _long_doc_action(concat: bool, split: bool) -> str:
    """What happens to a document longer than a row, for the log line."""
    if concat:
        return "they continue in the next rows (data.pack_mode='concat')"
    if split:
        return "they are cut into row-sized pieces (data.lm_long_docs='split')"
    return "they keep their first tokens (data.lm_long_docs='truncate')"


class LMTask:
    """Document -> {'inputs': [BOS]+ids, 'targets': ids+[EOS]} cut to seq_len.

    Both arrays have the document length n+1, so every token, and the EOS
    after the last one, is a target; the first input is BOS.
    """

    def __init__(self, data_cfg: ml_collections.ConfigDict, tok: Tokenizer):
        self._tok = tok
        self._key = sources.text_key(data_cfg)
        self._seq_len = data_cfg.seq_len
        self.lengths = {"inputs": data_cfg.seq_len, "targets": data_cfg.seq_len}
        self.pack = data_cfg.pack
        self.needs_text = False
        if data_cfg.lm_long_docs not in ("split", "truncate"):
            raise ConfigError(
                f"data.lm_long_docs={data_cfg.lm_long_docs!r}; use 'split' or 'truncate'."
            )
        self._split = data_cfg.lm_long_docs == "split"
        if data_cfg.pack_mode not in ("first_fit", "concat"):
            raise ConfigError(
                f"data.pack_mode={data_cfg.pack_mode!r}; use 'first_fit' or 'concat'."
            )
        self._concat = data_cfg.pack and data_cfg.pack_mode == "concat"
        # Concat pieces fill the current row exactly: one open row suffices.
        self.open_rows = 1 if self._concat else data_cfg.num_packing_bins
        self.counter = Counter(
            "lm",
            inputs=f"more tokens than a row of data.seq_len={data_cfg.seq_len} holds (with BOS)",
            action=_long_doc_action(self._concat, self._split),
            unit="documents",
        )

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The token ids of a record (what the token-id cache stores)."""
        return {"ids": self._tok.encode(sources.record_text(record, self._key))}

    def example(
        self, ids: Mapping[str, np.ndarray], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The LM example of a document's token ids."""
        del rng  # Deterministic task.
        tokens = ids["ids"]
        # Over-long documents keep their first seq_len tokens: the model still
        # sees each document's beginning, which is what BOS conditions on.
        n = min(len(tokens) + 1, self._seq_len)
        self.counter.add(truncated=len(tokens) + 1 > self._seq_len)
        # Filled in place: this runs once per document on the hot path.
        inputs = np.empty(n, np.int32)
        inputs[0] = self._tok.bos_id
        inputs[1:] = tokens[: n - 1]
        targets = np.empty(n, np.int32)
        targets[: n - 1] = tokens[: n - 1]
        targets[n - 1] = tokens[n - 1] if n <= len(tokens) else self._tok.eos_id
        return {"inputs": inputs, "targets": targets}

    def example_from_record(
        self, record: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The example of a record."""
        return self.example(self.encode(record), rng)

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns (packing.make_rows input) of a chunk of records or id dicts.

        Built for the whole chunk with a few numpy calls (this is the
        pipeline's hot path). Documents longer than a row are cut into
        row-sized pieces (data.lm_long_docs='split'; each piece is its own
        segment) or keep their first seq_len tokens ('truncate', like
        example()).
        """
        del rng  # Deterministic task.
        docs = [x["ids"] for x in items] if ids else [self.encode(x)["ids"] for x in items]
        length = self._seq_len
        n_N = np.fromiter((len(d) for d in docs), np.int64, len(docs))
        over_N = n_N + 1 > length
        self.counter.add_many(len(docs), truncated=int(over_N.sum()))
        size_N = n_N + 1 if self._split or self._concat else np.minimum(n_N + 1, length)
        keep_N = size_N - 1  # Document tokens that are inputs.
        if not docs:
            body = np.zeros(0, np.int32)
        elif self._split or self._concat or not over_N.any():
            body = np.concatenate(docs)
        else:
            body = np.concatenate([d[:k] for d, k in zip(docs, keep_N.tolist(), strict=True)])
        total = int(size_N.sum())
        starts_N = np.cumsum(size_N) - size_N
        ends_N = starts_N + size_N - 1
        inputs = np.empty(total, np.int32)
        not_first = np.ones(total, bool)
        not_first[starts_N] = False
        inputs[starts_N] = self._tok.bos_id
        inputs[not_first] = body
        targets = np.empty(total, np.int32)
        not_last = np.ones(total, bool)
        not_last[ends_N] = False
        targets[not_last] = body
        # The last target is EOS, or for a truncated document its next token.
        last = np.full(len(docs), self._tok.eos_id, np.int32)
        if not (self._split or self._concat):
            for i in np.flatnonzero(over_N):
                last[i] = docs[i][keep_N[i]]
        targets[ends_N] = last
        if self._concat:
            # Cut the chunk's token stream at every row boundary and every
            # document end: rows fill completely, in order, and each piece
            # stays its own segment.
            cuts = np.union1d(np.cumsum(size_N), np.arange(length, total, length))
            size_N = np.diff(cuts, prepend=0)
        elif self._split:
            # Pieces of `length` tokens and a remainder, contiguous in the
            # streams, so only the sizes change.
            pieces_N = -(-size_N // length)
            doc_P = np.repeat(np.arange(len(docs)), pieces_N)
            k_P = np.arange(int(pieces_N.sum())) - np.repeat(
                np.cumsum(pieces_N) - pieces_N, pieces_N
            )
            size_N = np.minimum(length, size_N[doc_P] - k_P * length)
        return {"inputs": (inputs, size_N), "targets": (targets, size_N)}, {}

    @staticmethod
    def to_batch(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the contracts' `decoder` format."""
        seg = rows["inputs_segment_ids"].astype(np.int32)
        return {
            "inputs": rows["inputs"].astype(np.int32),
            "targets": rows["targets"].astype(np.int32),
            "weights": (seg > 0).astype(np.float32),
            "segment_ids": seg,
            "positions": rows["inputs_positions"].astype(np.int32),
        }
