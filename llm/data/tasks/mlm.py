"""Masked LM task (BERT) -> `encoder` rows, optionally with NSP pairs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.data import sources
from llm.data.packing import Columns, columns_of
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer
from llm.errors import ConfigError

# Sentence ends for NSP: a terminator followed by whitespace, or a newline.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Splits a document into sentences (rough, language-agnostic)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _as_str(text: str | bytes) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text


def mask_tokens(
    tokens: np.ndarray,
    rng: np.random.Generator,
    tok: Tokenizer,
    *,
    rate: float,
    mask_prob: float,
    random_prob: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (masked inputs, weights): BERT's 80/10/10 corruption.

    Exactly round(rate * n) of the n non-special tokens (at least one) are
    chosen, as BERT's data generator does, so every row has a target.
    """
    special = np.array([tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id])
    candidates = np.flatnonzero(~np.isin(tokens, special))
    inputs = tokens.copy()
    weights = np.zeros(len(tokens), np.float32)
    if len(candidates):
        n = max(1, int(round(rate * len(candidates))))
        chosen = rng.choice(candidates, size=n, replace=False)
        r = rng.random(n)
        masked = chosen[r < mask_prob]
        randomized = chosen[(r >= mask_prob) & (r < mask_prob + random_prob)]
        inputs[masked] = tok.mask_id
        inputs[randomized] = rng.integers(tok.num_special, tok.vocab_size, len(randomized))
        weights[chosen] = 1.0
    return inputs, weights


class MLMTask:
    """Document -> [CLS] ids [SEP] masked, or NSP pairs [CLS] A [SEP] B [SEP].

    BOS and EOS play BERT's [CLS] and [SEP]. With NSP, half the pairs take B
    from a random other record of the shard (`records`), as in BERT 3.1, and
    a pair is trimmed from its longer side to fit seq_len.
    """

    def __init__(
        self,
        data_cfg: ml_collections.ConfigDict,
        tok: Tokenizer,
        records: Sequence[Any] | None = None,
    ):
        if tok.mask_id < 0:
            raise ConfigError("The tokenizer has no [MASK] token; the MLM task needs one.")
        if data_cfg.nsp and records is None:
            raise ValueError("NSP needs the shard's records to draw random sentences from.")
        self._tok = tok
        self._key = sources.text_key(data_cfg)
        self._seq_len = data_cfg.seq_len
        self._nsp = data_cfg.nsp
        self._records = records
        self._mask = dict(
            rate=data_cfg.mask_rate,
            mask_prob=data_cfg.mask_token_prob,
            random_prob=data_cfg.random_token_prob,
        )
        length = data_cfg.seq_len
        self.lengths = {
            "inputs": length,
            "targets": length,
            "weights": length,
            "token_type_ids": length,
        }
        # One NSP label per row: pairs cannot share a row.
        self.pack = data_cfg.pack and not data_cfg.nsp
        self.open_rows = data_cfg.num_packing_bins
        # NSP splits text into sentences, which token ids no longer show.
        self.needs_text = data_cfg.nsp
        self.counter = Counter(
            "mlm",
            inputs=f"more tokens than a row of data.seq_len={data_cfg.seq_len} holds "
            "(with [CLS] and [SEP]s)",
            action="the longer side is cut" if self._nsp else "they keep their first tokens",
            unit="pairs" if self._nsp else "documents",
        )

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The token ids of a record (what the token-id cache stores)."""
        return {"ids": self._tok.encode(sources.record_text(record, self._key))}

    def example(self, ids: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
        """The masked example of a document's token ids."""
        body = ids["ids"]
        self.counter.add(truncated=len(body) + 2 > self._seq_len)
        body = body[: self._seq_len - 2]
        tokens = np.concatenate([[self._tok.bos_id], body, [self._tok.eos_id]]).astype(np.int32)
        return self._masked(tokens, np.zeros_like(tokens), rng)

    def example_from_record(
        self, record: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        """The example of a record (NSP pairs need its text)."""
        if not self._nsp:
            return self.example(self.encode(record), rng)
        sents = split_sentences(_as_str(sources.record_text(record, self._key)))
        if len(sents) >= 2 and rng.random() < 0.5:
            k = int(rng.integers(1, len(sents)))
            a, b, label = sents[:k], sents[k:], 0
        else:
            other = self._records[int(rng.integers(len(self._records)))]
            other_sents = split_sentences(_as_str(sources.record_text(other, self._key))) or [""]
            k = int(rng.integers(1, len(sents))) if len(sents) >= 2 else len(sents)
            a, b, label = sents[:k], other_sents[int(rng.integers(len(other_sents))) :], 1
        ids_a = self._tok.encode(" ".join(a))
        ids_b = self._tok.encode(" ".join(b))
        budget = self._seq_len - 3
        truncated = len(ids_a) + len(ids_b) > budget
        while len(ids_a) + len(ids_b) > budget:
            if len(ids_a) > len(ids_b):
                ids_a = ids_a[:-1]
            else:
                ids_b = ids_b[:-1]
        self.counter.add(truncated=truncated)
        bos, eos = [self._tok.bos_id], [self._tok.eos_id]
        tokens = np.concatenate([bos, ids_a, eos, ids_b, eos]).astype(np.int32)
        types = np.zeros_like(tokens)
        types[len(ids_a) + 2 :] = 1
        out = self._masked(tokens, types, rng)
        out["nsp_labels"] = np.int32(label)
        return out

    def _masked(self, tokens, types, rng) -> dict[str, Any]:
        inputs, weights = mask_tokens(tokens, rng, self._tok, **self._mask)
        return {"inputs": inputs, "targets": tokens, "weights": weights, "token_type_ids": types}

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns (packing.make_rows input) of a chunk of records or id dicts."""
        make = self.example if ids else self.example_from_record
        return columns_of([make(x, rng) for x in items], self.lengths)

    @staticmethod
    def to_batch(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the contracts' `encoder` format."""
        out = {
            "inputs": rows["inputs"].astype(np.int32),
            "token_type_ids": rows["token_type_ids"].astype(np.int32),
            "segment_ids": rows["inputs_segment_ids"].astype(np.int32),
            "positions": rows["inputs_positions"].astype(np.int32),
            "targets": rows["targets"].astype(np.int32),
            "weights": rows["weights"].astype(np.float32),
        }
        if "nsp_labels" in rows:
            out["nsp_labels"] = rows["nsp_labels"].astype(np.int32)
        return out
