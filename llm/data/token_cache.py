"""Tokenize once: a split stored as token ids in array_record.

A record is the int32 lengths of its features (sorted by name) followed by
their ids, all in the cache's dtype (uint16 when the vocabulary fits, which
halves reads). `meta.json` beside the records names the features, dtype,
tokenizer and counts, so a cache is readable without the code that wrote it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import ml_collections
import numpy as np
from absl import logging
from array_record.python import array_record_module

from llm.data import config as config_lib
from llm.data import sources
from llm.data.tokenizers import Tokenizer
from llm.errors import InputFileError

RECORDS = "ids.array_record"
_READ_CHUNK = 1024
META = "meta.json"


def _tokenizer_tag(data_cfg: ml_collections.ConfigDict, tok: Tokenizer) -> str:
    if data_cfg.tokenizer == "byte":
        return "byte"
    return os.path.splitext(os.path.basename(tok.model_path))[0]


def cache_dir(data_cfg: ml_collections.ConfigDict, split: str, tok: Tokenizer) -> str:
    """Directory of the token-id cache of one split (inside data_dir)."""
    data_dir = config_lib.resolve_data_dir(data_cfg.data_dir)
    name = data_cfg.dataset.replace("/", "_").replace(":", "_")
    split_tag = split.replace("[", "_").replace("]", "").replace(":", "-").replace("%", "pct")
    tag = f"{_tokenizer_tag(data_cfg, tok)}.{data_cfg.task}"
    return os.path.join(data_dir, "token_cache", name, tag, split_tag)


def encode_record(ids: Mapping[str, np.ndarray], dtype: np.dtype) -> bytes:
    """Serializes a dict of 1-D id arrays."""
    keys = sorted(ids)
    header = np.array([len(ids[k]) for k in keys], np.int32).tobytes()
    return header + b"".join(np.asarray(ids[k]).astype(dtype).tobytes() for k in keys)


class DecodeRecord:
    """Bytes of encode_record -> dict of id arrays (read-only views)."""

    def __init__(self, keys: Sequence[str], dtype: str):
        self._keys = sorted(keys)
        self._dtype = np.dtype(dtype)

    def __call__(self, data: bytes) -> dict[str, np.ndarray]:
        # Views in the cache's dtype, not copies: tasks copy ids into int32
        # rows anyway, and this runs once per document on the hot path.
        n = len(self._keys)
        if n == 1:
            return {self._keys[0]: np.frombuffer(data, self._dtype, offset=4)}
        lengths = np.frombuffer(data, np.int32, count=n)
        body = np.frombuffer(data, self._dtype, offset=4 * n)
        out, start = {}, 0
        for k, length in zip(self._keys, lengths, strict=True):
            out[k] = body[start : start + length]
            start += length
        return out


def read_records(source: Sequence[Any], indices: Sequence[int]) -> Sequence[Any]:
    """source[i] for i in indices, in one batched read where supported."""
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return getitems(list(indices))
        except TypeError:
            # tfds.testing.mock_data's sources have a broken __getitems__
            # (tfds 4.9.10); single reads still work.
            pass
    return [source[i] for i in indices]


def read_meta(path: str) -> dict[str, Any]:
    """The metadata of a cache directory."""
    with open(os.path.join(path, META)) as f:
        return json.load(f)


def build(
    data_cfg: ml_collections.ConfigDict,
    split: str,
    tok: Tokenizer,
    encode: Callable[[Mapping[str, Any]], Mapping[str, np.ndarray]],
) -> str:
    """Tokenizes `split` once into its cache directory; returns it."""
    path = cache_dir(data_cfg, split, tok)
    source = sources.get_source(data_cfg, split)
    # A dataset rebuilt with other records invalidates its cache.
    if os.path.exists(os.path.join(path, META)) and read_meta(path)["num_records"] == len(source):
        return path
    dtype = np.dtype(np.uint16 if tok.vocab_size <= 2**16 else np.int32)
    tmp = path + ".incomplete"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # group_size:1 keeps records individually addressable: random access
    # reads one record, not a group of 65536.
    writer = array_record_module.ArrayRecordWriter(os.path.join(tmp, RECORDS), "group_size:1")
    keys, tokens = None, 0
    # Batched reads: one record at a time costs ~4x more per record.
    for start in range(0, len(source), _READ_CHUNK):
        indices = list(range(start, min(start + _READ_CHUNK, len(source))))
        for record in read_records(source, indices):
            ids = encode(record)
            keys = keys or sorted(ids)
            tokens += sum(len(v) for v in ids.values())
            writer.write(encode_record(ids, dtype))
    writer.close()
    meta = {
        "dataset": data_cfg.dataset,
        "split": split,
        "task": data_cfg.task,
        "tokenizer": _tokenizer_tag(data_cfg, tok),
        "vocab_size": tok.vocab_size,
        "keys": keys or [],
        "dtype": dtype.name,
        "num_records": len(source),
        "num_tokens": tokens,
    }
    with open(os.path.join(tmp, META), "w") as f:
        json.dump(meta, f, indent=2)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    logging.info("Token cache %s: %d records, %d tokens", path, len(source), tokens)
    return path


def open_cache(path: str) -> tuple[Sequence[bytes], DecodeRecord, dict[str, Any]]:
    """A cache's records (bytes), their decoder and its metadata."""
    meta = read_meta(path)
    if meta["num_records"] == 0:
        raise InputFileError(f"Token cache {path} is empty; its split has no records.")
    src = grain.sources.ArrayRecordDataSource([os.path.join(path, RECORDS)])
    return src, DecodeRecord(meta["keys"], meta["dtype"]), meta
