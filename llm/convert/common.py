"""Pieces every architecture's mapping shares: config look-ups and per-module tensor moves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from llm.convert.hf_files import ConversionError, TensorReader
from llm.convert.layout import (
    Flat,
    kernel_to_linear,
    linear_to_kernel,
    merge_in_heads,
    merge_out_heads,
    split_heads_in,
    split_heads_out,
)

_MISSING = object()

# Hugging Face activation names -> ours (tanh-approximated GELUs are one function).
ACTIVATIONS_IN = {
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",
    "gelu": "gelu_exact",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
ACTIVATIONS_OUT = {"gelu": "gelu_new", "gelu_exact": "gelu", "relu": "relu", "silu": "silu"}


def get(hf: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """hf[key] (or default); a missing required key is a ConversionError naming it."""
    if key in hf and hf[key] is not None:
        return hf[key]
    if default is _MISSING:
        raise ConversionError(f"config.json lacks {key!r}, which this architecture needs.")
    return default


def require(ok: bool, message: str) -> None:
    """Raises ConversionError(message) unless ok."""
    if not ok:
        raise ConversionError(message)


def activation_in(name: str, key: str) -> str:
    """Our activation for a Hugging Face activation name."""
    require(
        name in ACTIVATIONS_IN,
        f"config.json {key}={name!r} is not supported; supported: {sorted(ACTIVATIONS_IN)}.",
    )
    return ACTIVATIONS_IN[name]


def activation_out(name: str) -> str:
    """The Hugging Face name of our (non-gated) activation."""
    require(name in ACTIVATIONS_OUT, f"activation {name!r} has no non-gated HF equivalent.")
    return ACTIVATIONS_OUT[name]


class Mapper:
    """Moves tensors from a reader into our flat params, one module at a time."""

    def __init__(self, reader: TensorReader, flat: Flat | None = None):
        self.reader = reader
        self.flat: Flat = {} if flat is None else flat

    def linear(self, hf: str, ours: str, din: int, dout: int, bias: bool) -> None:
        """torch Linear hf.weight [out, in] (+ hf.bias) -> ours/kernel [in, out] (+ ours/bias)."""
        self.flat[f"{ours}/kernel"] = linear_to_kernel(
            self.reader.take(f"{hf}.weight", (dout, din))
        )
        if bias:
            self.flat[f"{ours}/bias"] = self.reader.take(f"{hf}.bias", (dout,))

    def norm(self, hf: str, ours: str, d: int, bias: bool = True) -> None:
        """LayerNorm/RMSNorm weight (+ bias); legacy gamma/beta names accepted."""
        self.flat[f"{ours}/scale"] = self.reader.take(f"{hf}.weight", (d,), [f"{hf}.gamma"])
        if bias:
            self.flat[f"{ours}/bias"] = self.reader.take(f"{hf}.bias", (d,), [f"{hf}.beta"])

    def embedding(self, hf: str, ours: str, rows: int, d: int) -> None:
        """Embedding table [rows, d], same layout on both sides."""
        self.flat[ours] = self.reader.take(f"{hf}.weight", (rows, d))

    def attention(
        self, hf: dict[str, str], ours: str, d: int, h: int, n: int, k: int, bias: bool
    ) -> None:
        """q/k/v/o torch Linears (names in hf: q, k, v, o) -> our head-split kernels."""
        for key, name, heads in (("q", "query", h), ("k", "key", n), ("v", "value", n)):
            w = self.reader.take(f"{hf[key]}.weight", (heads * k, d))
            self.flat[f"{ours}/{name}"] = split_heads_in(w.T, heads, k)
            if bias:
                b = self.reader.take(f"{hf[key]}.bias", (heads * k,))
                self.flat[f"{ours}/{name}_bias"] = b.reshape(heads, k)
        w = self.reader.take(f"{hf['o']}.weight", (d, h * k))
        self.flat[f"{ours}/out"] = split_heads_out(w.T, h, k)
        if bias:
            self.flat[f"{ours}/out_bias"] = self.reader.take(f"{hf['o']}.bias", (d,))


class Writer:
    """Moves our flat params into Hugging Face tensor names (the inverse of Mapper)."""

    def __init__(self, flat: Flat):
        self.flat = flat
        self.tensors: dict[str, np.ndarray] = {}

    def linear(self, hf: str, ours: str, bias: bool) -> None:
        """ours/kernel [in, out] -> hf.weight [out, in] (+ bias)."""
        self.tensors[f"{hf}.weight"] = kernel_to_linear(self.flat[f"{ours}/kernel"])
        if bias:
            self.tensors[f"{hf}.bias"] = self.flat[f"{ours}/bias"]

    def norm(self, hf: str, ours: str, bias: bool = True) -> None:
        """scale (+ bias) -> weight (+ bias)."""
        self.tensors[f"{hf}.weight"] = self.flat[f"{ours}/scale"]
        if bias:
            self.tensors[f"{hf}.bias"] = self.flat[f"{ours}/bias"]

    def embedding(self, hf: str, ours: str) -> None:
        """Embedding table, same layout."""
        self.tensors[f"{hf}.weight"] = self.flat[ours]

    def attention(self, hf: dict[str, str], ours: str, bias: bool) -> None:
        """Our head-split kernels -> q/k/v/o torch Linears."""
        for key, name in (("q", "query"), ("k", "key"), ("v", "value")):
            self.tensors[f"{hf[key]}.weight"] = kernel_to_linear(
                merge_in_heads(self.flat[f"{ours}/{name}"])
            )
            if bias:
                self.tensors[f"{hf[key]}.bias"] = np.asarray(
                    self.flat[f"{ours}/{name}_bias"]
                ).reshape(-1)
        self.tensors[f"{hf['o']}.weight"] = kernel_to_linear(
            merge_out_heads(self.flat[f"{ours}/out"])
        )
        if bias:
            self.tensors[f"{hf['o']}.bias"] = self.flat[f"{ours}/out_bias"]
