"""Causal LM task: documents -> the contracts' `decoder` batch rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from llm.data import sources
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer


def record_text(record: Mapping[str, Any], key: str) -> bytes | str:
    """The text feature of a record, or an error naming the features there are."""
    if key not in record:
        raise KeyError(f"Record has no feature {key!r} (data.*_key); it has {sorted(record)}.")
    return record[key]


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
        self.counter = Counter("lm")

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The token ids of a record (what the token-id cache stores)."""
        return {"ids": self._tok.encode(record_text(record, self._key))}

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
