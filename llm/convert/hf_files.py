"""Hugging Face checkpoint folders: config.json and safetensors, read lazily, never pickle."""

from __future__ import annotations

import json
import pathlib
import re
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import ml_dtypes
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from llm.errors import ConversionError

# Files that hold pickled tensors: loading them can run arbitrary code, so they are refused.
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "model.ckpt")
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def read_config(folder: str | pathlib.Path) -> dict[str, Any]:
    """The folder's config.json as a dict."""
    path = pathlib.Path(folder) / "config.json"
    if not path.is_file():
        raise ConversionError(
            f"{path} not found: pass a folder written by transformers' save_pretrained "
            "(config.json + model.safetensors)."
        )
    return json.loads(path.read_text())


def safetensors_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """The folder's safetensors files (single file or the shards of an index)."""
    folder = pathlib.Path(folder)
    if (folder / INDEX_FILE).is_file():
        index = json.loads((folder / INDEX_FILE).read_text())
        names = sorted(set(index.get("weight_map", {}).values()))
        for name in names:
            _check_inside(folder, name)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ConversionError(f"{folder / INDEX_FILE} names shards that are missing: {missing}")
        return [folder / n for n in names]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    pickles = [p for p in PICKLE_FILES if (folder / p).exists()]
    found = f" It has {pickles}, which are pickle-based and never loaded here." if pickles else ""
    raise ConversionError(
        f"No {SINGLE_FILE} (or {INDEX_FILE}) in {folder}.{found} Convert it to safetensors "
        "first, e.g. `model.save_pretrained(dir, safe_serialization=True)` in a trusted "
        "environment."
    )


def _check_inside(folder: pathlib.Path, name: str) -> None:
    """A shard name of the index must name a file in the folder, not elsewhere on disk."""
    path = pathlib.Path(name)
    inside = (folder / path).resolve().is_relative_to(folder.resolve())
    if path.is_absolute() or ".." in path.parts or not inside:
        raise ConversionError(
            f"{folder / INDEX_FILE} names the shard {name!r}, which is outside {folder}; "
            "shards must be files in the checkpoint folder (fix the index's weight_map)."
        )


def _invalid(path: pathlib.Path, why: object) -> ConversionError:
    return ConversionError(
        f"{path} is not a valid safetensors file ({why}); it is truncated or damaged: "
        "download or save_pretrained it again."
    )


def _open(path: pathlib.Path):
    """safe_open(path), with a damaged file (bad header, offsets past its end) named."""
    try:
        return safe_open(str(path), framework="numpy")
    except SafetensorError as e:
        raise _invalid(path, e) from e


def _read_raw(path: pathlib.Path, name: str) -> np.ndarray:
    # numpy has no bfloat16, so safetensors' numpy reader refuses BF16: read the bytes at the
    # header's offsets and view them as ml_dtypes.bfloat16 instead. The header is checked
    # here too: it may have changed since safe_open read it.
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) < 8:
            raise _invalid(path, "no header")
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > size - 8:
            raise _invalid(path, f"header length {header_len} exceeds the file's {size} bytes")
        try:
            entry = json.loads(f.read(header_len))[name]
            start, end = (int(x) for x in entry["data_offsets"])
            shape = [int(n) for n in entry["shape"]]
        except (ValueError, KeyError, TypeError) as e:
            raise _invalid(path, f"header: {type(e).__name__}: {e}") from e
        if entry["dtype"] != "BF16":
            raise ConversionError(
                f"tensor {name!r} in {path} has unsupported dtype {entry['dtype']}"
            )
        expected = 2 * int(np.prod(shape))
        if not 0 <= start <= end <= size - 8 - header_len or end - start != expected:
            raise _invalid(
                path, f"tensor {name!r} has offsets [{start}, {end}) for {expected} bytes"
            )
        f.seek(8 + header_len + start)
        data = f.read(end - start)
    return np.frombuffer(data, ml_dtypes.bfloat16).reshape(shape)


class TensorReader:
    """Named tensors of a folder, checked for presence and shape as they are taken."""

    def __init__(self, folder: str | pathlib.Path):
        self.folder = pathlib.Path(folder)
        self._where: dict[str, pathlib.Path] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._dtypes: dict[str, str] = {}
        for path in safetensors_files(self.folder):
            with _open(path) as f:
                for name in f.keys():
                    sl = f.get_slice(name)
                    self._where[name] = path
                    self._shapes[name] = tuple(sl.get_shape())
                    self._dtypes[name] = sl.get_dtype()
        self.taken: set[str] = set()

    def names(self) -> list[str]:
        """Every tensor name in the folder."""
        return sorted(self._where)

    def has(self, name: str) -> bool:
        """Whether the folder holds `name`."""
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of `name` as stored."""
        return self._shapes[name]

    def take(self, name: str, shape: tuple[int, ...], aliases: Iterable[str] = ()) -> np.ndarray:
        """The tensor `name` (or its first present alias) as float32, checked against `shape`."""
        found = next((n for n in (name, *aliases) if n in self._where), None)
        if found is None:
            raise ConversionError(
                f"tensor {name!r} is missing from {self.folder}: the checkpoint is incomplete "
                "or config.json describes a different model; re-save it with save_pretrained."
            )
        if self._shapes[found] != tuple(shape):
            raise ConversionError(
                f"tensor {found!r} has shape {self._shapes[found]} but config.json implies "
                f"{tuple(shape)}; fix config.json or the checkpoint so they agree."
            )
        self.taken.add(found)
        path = self._where[found]
        if self._dtypes[found] == "BF16":
            return _read_raw(path, found).astype(np.float32)
        with _open(path) as f:
            try:
                return np.asarray(f.get_tensor(found), np.float32)
            except SafetensorError as e:
                raise _invalid(path, e) from e

    def check_all_taken(self, ignore: Iterable[str] = ()) -> None:
        """Fails naming the tensors nothing took (an architecture variant we do not map)."""
        patterns = [re.compile(p) for p in ignore]
        left = [
            n
            for n in self.names()
            if n not in self.taken and not any(p.fullmatch(n) for p in patterns)
        ]
        if left:
            more = f" (and {len(left) - 5} more)" if len(left) > 5 else ""
            raise ConversionError(
                f"tensors {left[:5]}{more} in {self.folder} have no place in the converted "
                "model: the checkpoint has parts (heads, biases, layers) that config.json does "
                "not describe or this converter does not support."
            )


def write_folder(
    folder: str | pathlib.Path, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray]
) -> pathlib.Path:
    """Writes config.json and model.safetensors (float32, contiguous) that from_pretrained loads."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in tensors.items()}
    # transformers reads the 'format' metadata to know the tensors are PyTorch-layout.
    save_file(arrays, str(folder / SINGLE_FILE), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(dict(config), indent=2, sort_keys=True) + "\n")
    return folder
