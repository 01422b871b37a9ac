"""Causal LM task: documents -> the contracts' `decoder` batch rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grain
import numpy as np

from llm.data.tokenizers import Tokenizer


def _text(record: Mapping[str, Any], key: str) -> bytes | str:
    if key not in record:
        raise KeyError(f"Record has no feature {key!r} (data.text_key); it has {sorted(record)}.")
    return record[key]


class TokenizeLM(grain.transforms.Map):
    """Record -> {'inputs': [BOS]+ids, 'targets': ids+[EOS]} truncated to seq_len.

    Both arrays have the document length n+1, so every byte, and the EOS after
    the last one, is a target; the first input is BOS.
    """

    def __init__(self, tokenizer: Tokenizer, text_key: str, seq_len: int):
        self._tok = tokenizer
        self._key = text_key
        self._seq_len = seq_len

    def map(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        ids = self._tok.encode(_text(record, self._key))
        inputs = np.concatenate([[self._tok.bos_id], ids]).astype(np.int32)
        targets = np.concatenate([ids, [self._tok.eos_id]]).astype(np.int32)
        # Over-long documents keep their first seq_len tokens: the model still
        # sees each document's beginning, which is what BOS conditions on.
        return {"inputs": inputs[: self._seq_len], "targets": targets[: self._seq_len]}


class PadLM(grain.transforms.Map):
    """Unpacked row: one document per row, padded to seq_len."""

    def __init__(self, seq_len: int):
        self._seq_len = seq_len

    def map(self, ex: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(ex["inputs"])
        pad = self._seq_len - n
        seg = np.zeros(self._seq_len, np.int32)
        seg[:n] = 1
        pos = np.zeros(self._seq_len, np.int32)
        pos[:n] = np.arange(n, dtype=np.int32)
        return {
            "inputs": np.pad(ex["inputs"], (0, pad)),
            "targets": np.pad(ex["targets"], (0, pad)),
            "weights": (seg > 0).astype(np.float32),
            "segment_ids": seg,
            "positions": pos,
        }


class PackedToDecoder(grain.transforms.Map):
    """Renames grain's packed features to the contracts' `decoder` batch."""

    def map(self, ex: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        seg = ex["inputs_segment_ids"].astype(np.int32)
        return {
            "inputs": ex["inputs"].astype(np.int32),
            "targets": ex["targets"].astype(np.int32),
            "weights": (seg > 0).astype(np.float32),
            "segment_ids": seg,
            "positions": ex["inputs_positions"].astype(np.int32),
        }
