"""Tokenizers: a byte-level one for tests and tiny runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import ml_collections
import numpy as np

from llm.data.utf8 import utf8_char_index
from llm.errors import ConfigError


class Tokenizer(Protocol):
    """What the pipeline and the trainer need from a tokenizer."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int

    mask_id: int
    num_special: int

    def encode(self, text: str | bytes) -> np.ndarray: ...

    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as ids: pad=0, bos=1, eos=2, mask=3, byte b -> b + 4.

    vocab_size is 260. Decoding drops special ids, so the round trip
    decode(encode(s)) == s is exact for every str.
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    # [MASK] of the MLM task; reserved for every task so that one vocabulary
    # serves LM and MLM checkpoints alike.
    mask_id = 3
    num_special = 4
    vocab_size = 256 + num_special

    def encode(self, text: str | bytes) -> np.ndarray:
        """Returns int32 ids of the UTF-8 bytes of `text` (no BOS/EOS)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return np.frombuffer(data, np.uint8).astype(np.int32) + self.num_special

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n] int32, character offsets [n, 2] int32 into `text`, end exclusive).

        Every byte of a multi-byte character maps to that whole character.
        """
        data = text.encode("utf-8")
        char_N = utf8_char_index(data)[:-1]
        offsets = np.stack([char_N, char_N + 1], axis=1).astype(np.int32)
        return self.encode(data), offsets.reshape(-1, 2)

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """Returns the raw bytes of `ids`, dropping special ids."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        ids = ids[ids >= self.num_special] - self.num_special
        return ids.astype(np.uint8).tobytes()

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of `ids`; bytes that do not form UTF-8 (a cut-off character) are dropped."""
        # A model can emit the first bytes of a character without the rest; dropping
        # them keeps outputs free of U+FFFD, which would count as a wrong word in BLEU.
        return self.decode_bytes(ids).decode("utf-8", errors="ignore")


def get_tokenizer(data_cfg: ml_collections.ConfigDict) -> Tokenizer:
    """Returns the tokenizer a data config uses (its `vocab_size` is final).

    Sentencepiece: loads data.spm_model, or the model cached next to the
    data, or trains one from the train split and caches it.
    """
    if data_cfg.tokenizer == "byte":
        return ByteTokenizer()
    if data_cfg.tokenizer == "sentencepiece":
        # Imported here: sentencepiece training reads datasets (sources),
        # which the byte path never needs.
        from llm.data import spm

        return spm.get_sentencepiece(data_cfg)
    if data_cfg.tokenizer == "huggingface":
        from llm.data.hf_tokenizer import HuggingFaceTokenizer  # needs transformers ([hf])

        if not data_cfg.get("hf_tokenizer"):
            raise ConfigError(
                "data.tokenizer='huggingface' needs data.hf_tokenizer: the folder of a "
                "save_pretrained'ed tokenizer (e.g. --config.data.hf_tokenizer=bert-base-uncased/)."
            )
        return HuggingFaceTokenizer(data_cfg.hf_tokenizer)
    raise ConfigError(
        f"data.tokenizer={data_cfg.tokenizer!r}; use 'byte', 'sentencepiece' or 'huggingface'."
    )
