"""A Hugging Face tokenizer (e.g. bert-base-uncased's WordPiece) with the project's special ids.

What fine-tuning an imported checkpoint needs: the exact vocabulary the weights were
trained with. transformers' fast tokenizers do the work (and give character offsets,
which span QA maps answers with); this class only adapts their ids to the Tokenizer
protocol: [CLS] (or BOS) plays bos_id, [SEP] (or EOS) eos_id, as in llm.data.tasks.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

from llm.errors import ConfigError, InputFileNotFoundError

# Files a save_pretrained'ed tokenizer folder holds; launch.convert copies them.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def has_tokenizer(folder: str | pathlib.Path) -> bool:
    """Whether `folder` holds a Hugging Face tokenizer (tokenizer.json or a vocabulary)."""
    folder = pathlib.Path(folder)
    return any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "vocab.json"))


class HuggingFaceTokenizer:
    """transformers.AutoTokenizer from a local folder; ids without special tokens added."""

    def __init__(self, folder: str | pathlib.Path):
        folder = pathlib.Path(folder).expanduser()
        if not has_tokenizer(folder):
            raise InputFileNotFoundError(
                f"data.hf_tokenizer={str(folder)!r} holds no Hugging Face tokenizer "
                "(tokenizer.json or vocab.txt); pass a folder written by save_pretrained, or "
                "the workdir of `launch.convert` (which copies the tokenizer into it)."
            )
        try:
            import transformers
        except ImportError as e:  # the [hf] extra
            raise ConfigError(
                "data.tokenizer='huggingface' needs transformers: pip install -e '.[hf]'"
            ) from e
        self.folder = folder
        self._tok = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        if not self._tok.is_fast:
            raise ConfigError(f"{folder} has no fast tokenizer; span QA needs its offsets.")
        tok = self._tok
        self.vocab_size = len(tok)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.bos_id = _first_id(tok.cls_token_id, tok.bos_token_id, self.pad_id)
        self.eos_id = _first_id(tok.sep_token_id, tok.eos_token_id, self.bos_id)
        self.mask_id = tok.mask_token_id if tok.mask_token_id is not None else -1
        # Ids below this are special ([PAD], [unused*], [UNK], [CLS], [SEP], [MASK] in
        # BERT's vocabulary): MLM never draws them as random replacements.
        self.num_special = max(tok.all_special_ids, default=0) + 1

    def encode(self, text: str | bytes) -> np.ndarray:
        """Returns int32 ids of `text` (no [CLS]/[SEP])."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        return np.asarray(ids, np.int32)

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n] int32, character offsets [n, 2] int32 into `text`, end exclusive)."""
        out = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = np.asarray(out["input_ids"], np.int32)
        offsets = np.asarray(out["offset_mapping"], np.int32).reshape(-1, 2)
        return ids, offsets

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of `ids` without special tokens."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self._tok.decode(ids, skip_special_tokens=True)


def _first_id(*ids: int | None) -> int:
    return next(i for i in ids if i is not None)
