"""Seq2seq task (translation, summarization) -> `encoder_decoder` rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.data import sources
from llm.data.packing import Columns, columns_of
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer


class Seq2SeqTask:
    """Pair -> encoder_inputs (src+EOS), targets (tgt+EOS), decoder_inputs.

    decoder_inputs is BOS + targets shifted right, built per example so that
    packing keeps the shift within each segment. Over-long sides keep their
    first tokens and are counted.
    """

    def __init__(self, data_cfg: ml_collections.ConfigDict, tok: Tokenizer):
        self._tok = tok
        self._keys = sources.pair_keys(data_cfg)
        self._inputs_len = data_cfg.inputs_len
        self._targets_len = data_cfg.targets_len
        self.lengths = {
            "encoder_inputs": data_cfg.inputs_len,
            "decoder_inputs": data_cfg.targets_len,
            "targets": data_cfg.targets_len,
        }
        self.pack = data_cfg.pack
        self.open_rows = data_cfg.num_packing_bins
        self.needs_text = False
        self.counter = Counter(
            "seq2seq",
            inputs=f"inputs longer than data.inputs_len={data_cfg.inputs_len} (with EOS)",
            targets=f"targets longer than data.targets_len={data_cfg.targets_len} (with EOS)",
            action="they keep their first tokens",
        )

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The token ids of a record (what the token-id cache stores)."""
        return {
            "inputs": self._tok.encode(sources.record_text(record, self._keys[0])),
            "targets": self._tok.encode(sources.record_text(record, self._keys[1])),
        }

    def example(
        self, ids: Mapping[str, np.ndarray], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The example of a source/target pair of token ids."""
        del rng  # Deterministic task.
        eos = [self._tok.eos_id]
        enc = np.concatenate([ids["inputs"], eos]).astype(np.int32)
        targets = np.concatenate([ids["targets"], eos]).astype(np.int32)
        self.counter.add(
            truncated=len(enc) > self._inputs_len,
            truncated_targets=len(targets) > self._targets_len,
        )
        enc = enc[: self._inputs_len]
        targets = targets[: self._targets_len]
        dec = np.concatenate([[self._tok.bos_id], targets[:-1]]).astype(np.int32)
        return {"encoder_inputs": enc, "decoder_inputs": dec, "targets": targets}

    def example_from_record(
        self, record: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The example of a record."""
        return self.example(self.encode(record), rng)

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns (packing.make_rows input) of a chunk of records or id dicts."""
        make = self.example if ids else self.example_from_record
        return columns_of([make(x, rng) for x in items], self.lengths)

    @staticmethod
    def to_batch(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the contracts' `encoder_decoder` format."""
        dec_seg = rows["decoder_inputs_segment_ids"].astype(np.int32)
        return {
            "encoder_inputs": rows["encoder_inputs"].astype(np.int32),
            "encoder_segment_ids": rows["encoder_inputs_segment_ids"].astype(np.int32),
            "encoder_positions": rows["encoder_inputs_positions"].astype(np.int32),
            "decoder_inputs": rows["decoder_inputs"].astype(np.int32),
            "decoder_segment_ids": dec_seg,
            "decoder_positions": rows["decoder_inputs_positions"].astype(np.int32),
            "targets": rows["targets"].astype(np.int32),
            "weights": (dec_seg > 0).astype(np.float32),
        }
