"""Sentencepiece tokenizers: train from a dataset split, cache, load."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence

import ml_collections
import numpy as np
import sentencepiece as sp
from absl import logging

from llm.data import config as config_lib
from llm.data import sources
from llm.data.utf8 import utf8_char_index
from llm.errors import ConfigError, InputFileNotFoundError

MASK_PIECE = "[MASK]"


class SentencePieceTokenizer:
    """A sentencepiece model with the project's special ids.

    Models trained here have pad=0, bos=1, eos=2, unk=3, [MASK]=4. Models from
    elsewhere keep their ids; one without BOS uses EOS as BOS (GPT-2 style), one
    without [MASK] cannot feed the MLM task.
    """

    def __init__(self, model_path: str):
        self.model_path = model_path
        with open(model_path, "rb") as f:
            self._sp = sp.SentencePieceProcessor(model_proto=f.read())
        self.vocab_size = self._sp.get_piece_size()
        self.pad_id = max(self._sp.pad_id(), 0)
        self.eos_id = self._sp.eos_id()
        self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else self.eos_id
        self.unk_id = self._sp.unk_id()
        mask = self._sp.piece_to_id(MASK_PIECE)
        self.mask_id = mask if mask != self.unk_id else -1
        special = {self.pad_id, self.eos_id, self.bos_id, self.unk_id, self.mask_id}
        # Ids the MLM task may draw as random replacements.
        self.num_special = max(special) + 1

    def encode(self, text: str | bytes) -> np.ndarray:
        """Returns int32 ids of `text` (no BOS/EOS)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return np.asarray(self._sp.encode(text), np.int32)

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n] int32, character offsets [n, 2] int32 into `text`, end exclusive).

        Sentencepiece gives byte offsets into the input; a character split into
        byte-fallback pieces gives all but its last piece an empty span, so
        every such piece maps to the whole character here. The whitespace a
        word piece absorbs ('▁the' of ' the') is left out of its span, as
        Hugging Face tokenizers do, so spans of words are the words.
        """
        pieces = self._sp.encode(text, return_type="proto").pieces
        char_of_byte = utf8_char_index(text.encode("utf-8"))
        ids = np.fromiter((p.id for p in pieces), np.int32, len(pieces))
        begin_N = np.fromiter((p.begin for p in pieces), np.int64, len(pieces))
        end_N = np.fromiter((p.end for p in pieces), np.int64, len(pieces))
        is_byte_N = np.fromiter((self._sp.is_byte(p.id) for p in pieces), bool, len(pieces))
        start_N = char_of_byte[begin_N]
        # A non-empty span ends after the character holding its last byte.
        stop_N = np.where(end_N > begin_N, char_of_byte[np.maximum(end_N - 1, 0)] + 1, start_N)
        stop_N = np.where(is_byte_N & (end_N == begin_N), start_N + 1, stop_N)
        for i in np.flatnonzero(stop_N - start_N > 1):
            start, stop = int(start_N[i]), int(stop_N[i])
            while start < stop - 1 and text[start].isspace():
                start += 1
            if not text[start].isspace():  # Pieces of whitespace only keep their span.
                start_N[i] = start
        return ids, np.stack([start_N, stop_N], axis=1).astype(np.int32).reshape(-1, 2)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Returns the text of `ids`, dropping pad/bos/eos/mask and cut-off characters.

        Byte-fallback pieces that do not form whole UTF-8 characters (a model
        can emit a character's first bytes only) are dropped rather than
        decoded to U+FFFD, which would count as a wrong word in BLEU.
        """
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        drop = {self.pad_id, self.bos_id, self.eos_id, self.mask_id}
        return self._sp.decode(self._whole_characters([i for i in ids if i not in drop]))

    def _whole_characters(self, ids: list[int]) -> list[int]:
        """`ids` without the byte pieces of each run of them that form no whole character."""
        out: list[int] = []
        run: list[int] = []
        for i in [*ids, None]:
            if i is not None and 0 <= i < self.vocab_size and self._sp.is_byte(i):
                run.append(i)
                continue
            if run:
                # Byte pieces are named '<0xE4>'.
                data = bytes(int(self._sp.id_to_piece(b)[3:5], 16) for b in run)
                out.extend(run[k] for k in _complete_utf8(data))
                run = []
            if i is not None:
                out.append(i)
        return out


def _utf8_length(lead: int) -> int:
    """Bytes of the character a UTF-8 lead byte starts; 0 for a byte no character starts with."""
    if lead < 0x80:
        return 1
    for length, low, high in ((2, 0xC2, 0xE0), (3, 0xE0, 0xF0), (4, 0xF0, 0xF5)):
        if low <= lead < high:
            return length
    return 0


def _complete_utf8(data: bytes) -> list[int]:
    """Indices of the bytes of `data` that belong to whole, valid UTF-8 characters."""
    keep: list[int] = []
    i = 0
    while i < len(data):
        n = _utf8_length(data[i])
        if n and i + n <= len(data):
            try:
                data[i : i + n].decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                keep.extend(range(i, i + n))
                i += n
                continue
        i += 1
    return keep


def cache_path(data_cfg: ml_collections.ConfigDict) -> str:
    """Where the model trained for `data_cfg` is cached (next to the data)."""
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    name = data_cfg.dataset.replace("/", "_").replace(":", "_")
    keys = "+".join(_training_keys(data_cfg))
    split = data_cfg.train_split.replace("[", "_").replace("]", "").replace(":", "-")
    fname = f"{name}.{split}.{keys}.{data_cfg.spm_type}{data_cfg.vocab_size}.model"
    return os.path.join(data_dir, "spm", fname)


def _training_keys(data_cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
    # Translation shares one vocabulary between source and target (AIAYN 5.1),
    # so it trains on both sides.
    if data_cfg.task == "seq2seq":
        return sources.pair_keys(data_cfg)
    if data_cfg.task == "classification":
        return sources.sentence_keys(data_cfg)
    if data_cfg.task == "span_qa":
        return ("question", "context")
    return (sources.text_key(data_cfg),)


def _texts(data_cfg: ml_collections.ConfigDict) -> Iterator[str]:
    source = sources.get_source(data_cfg, data_cfg.train_split)
    keys = _training_keys(data_cfg)
    n = min(len(source), data_cfg.spm_train_examples)
    for i in range(n):
        record = source[i]
        for key in keys:
            value = record[key]
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            if value:
                yield value


def train(data_cfg: ml_collections.ConfigDict, texts: Iterator[str], path: str) -> str:
    """Trains a model on `texts` with the config's type and size; returns path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        prefix = os.path.join(tmp, "spm")
        try:
            sp.SentencePieceTrainer.train(
                sentence_iterator=texts,
                model_prefix=prefix,
                model_type=data_cfg.spm_type,
                vocab_size=data_cfg.vocab_size,
                pad_id=0,
                bos_id=1,
                eos_id=2,
                unk_id=3,
                user_defined_symbols=[MASK_PIECE],
                # Exact round trips: no normalization, whitespace kept as is, and
                # characters outside the vocabulary fall back to bytes.
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                byte_fallback=True,
                character_coverage=0.9995,
                # A corpus too small for vocab_size gets a smaller vocabulary rather
                # than an error; the loaded model reports its real size.
                hard_vocab_limit=False,
                input_sentence_size=data_cfg.spm_train_examples,
                shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1,
                minloglevel=2,
            )
        except RuntimeError as e:
            # Byte fallback needs 256 byte pieces plus every character seen.
            raise ConfigError(
                f"data.vocab_size={data_cfg.vocab_size} is too small for sentencepiece "
                f"on {data_cfg.dataset!r} (it needs > 256 byte pieces + the "
                f"characters of the corpus): {e}"
            ) from e
        # Rename into place so that concurrent readers never see half a file.
        os.replace(prefix + ".model", path)
    return path


def get_sentencepiece(data_cfg: ml_collections.ConfigDict) -> SentencePieceTokenizer:
    """Loads data.spm_model, else the cached model, else trains and caches one."""
    if data_cfg.spm_model:
        path = os.path.expanduser(data_cfg.spm_model)
        if not os.path.exists(path):
            raise InputFileNotFoundError(
                f"data.spm_model={data_cfg.spm_model!r} does not exist; fix the path or set "
                "it to '' to train one from the train split."
            )
        return SentencePieceTokenizer(path)
    path = cache_path(data_cfg)
    if not os.path.exists(path):
        logging.info("Training sentencepiece model %s", path)
        train(data_cfg, _texts(data_cfg), path)
    return SentencePieceTokenizer(path)
