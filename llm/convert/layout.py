"""Weight layouts: torch Linear/Conv1D <-> our kernels, and flat path dicts <-> param trees."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from llm import models
from llm.convert.hf_files import ConversionError

Flat = dict[str, np.ndarray]
_LAYER = re.compile(r"^(.*)/layers_(\d+)/(.*)$")


def linear_to_kernel(w_OxI: np.ndarray) -> np.ndarray:
    """torch Linear weight [out, in] -> our Dense kernel [in, out]."""
    return np.ascontiguousarray(w_OxI.T)


def kernel_to_linear(kernel_IxO: np.ndarray) -> np.ndarray:
    """Our Dense kernel [in, out] -> torch Linear weight [out, in]."""
    return np.ascontiguousarray(np.asarray(kernel_IxO).T)


def split_heads_in(kernel_DxHK: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """[D, H*K] (columns head-major, as torch splits them) -> our q/k/v kernel [D, H, K]."""
    return kernel_DxHK.reshape(kernel_DxHK.shape[0], heads, head_dim)


def split_heads_out(kernel_HKxD: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """[H*K, D] -> our output kernel [H, K, D]."""
    return kernel_HKxD.reshape(heads, head_dim, kernel_HKxD.shape[-1])


def merge_in_heads(kernel_DxHxK: np.ndarray) -> np.ndarray:
    """Our q/k/v kernel [D, H, K] -> [D, H*K]."""
    k = np.asarray(kernel_DxHxK)
    return k.reshape(k.shape[0], -1)


def merge_out_heads(kernel_HxKxD: np.ndarray) -> np.ndarray:
    """Our output kernel [H, K, D] -> [H*K, D]."""
    k = np.asarray(kernel_HxKxD)
    return k.reshape(-1, k.shape[-1])


def abstract_params(cfg: models.ModelConfig) -> Flat:
    """Flat 'a/b/c' -> ShapeDtypeStruct of the model's params (no allocation)."""
    shapes = jax.eval_shape(lambda rng: models.init_variables(cfg, rng), jax.random.key(0))
    return flatten_dict(nn.meta.unbox(shapes["params"]), sep="/")


def unrolled(cfg: models.ModelConfig) -> models.ModelConfig:
    """The same model with layers unrolled (layers_0, layers_1, ...): the converters' layout."""
    return cfg.replace(scan_layers=False, remat="none")


def to_tree(cfg: models.ModelConfig, flat: Mapping[str, np.ndarray], fill_seed: int = 0) -> Any:
    """Checks `flat` (unrolled paths) against the model and returns its param tree.

    Params the model has but a Hugging Face checkpoint lacks (BERT's NSP head of a
    BertForMaskedLM) are taken from the model's init with `fill_seed`; scanned
    configs get their layers stacked on a leading axis.
    """
    expected = abstract_params(unrolled(cfg))
    unknown = sorted(set(flat) - set(expected))
    if unknown:
        raise ConversionError(f"converter produced params the model lacks: {unknown[:5]}")
    out = {}
    missing = [k for k in expected if k not in flat]
    if missing:
        init = models.init_variables(unrolled(cfg), jax.random.key(fill_seed))
        init_flat = flatten_dict(nn.meta.unbox(init["params"]), sep="/")
    for key, spec in expected.items():
        value = np.asarray(flat[key]) if key in flat else np.asarray(init_flat[key])
        if value.shape != spec.shape:
            raise ConversionError(f"param {key} has shape {value.shape}, the model {spec.shape}")
        out[key] = value.astype(cfg.params_dtype)
    if cfg.scan_layers:
        out = stack_layers(out)
    return unflatten_dict(out, sep="/")


def to_flat(cfg: models.ModelConfig, params: Any) -> Flat:
    """A param tree (scanned or not, boxed or not) -> flat unrolled numpy float32 dict."""
    flat = flatten_dict(nn.meta.unbox(params), sep="/")
    flat = {k: np.asarray(jax.device_get(v), np.float32) for k, v in flat.items()}
    return unstack_layers(flat) if cfg.scan_layers else flat


def stack_layers(flat: Mapping[str, np.ndarray]) -> Flat:
    """'x/layers_i/rest' -> 'x/layers/rest' with the layers on a leading axis (nn.scan layout)."""
    groups: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    out = {}
    for key, value in flat.items():
        m = _LAYER.match(key)
        if m:
            groups.setdefault((m[1], m[3]), {})[int(m[2])] = value
        else:
            out[key] = value
    for (prefix, rest), layers in groups.items():
        out[f"{prefix}/layers/{rest}"] = np.stack([layers[i] for i in sorted(layers)])
    return out


def unstack_layers(flat: Mapping[str, np.ndarray]) -> Flat:
    """Inverse of stack_layers."""
    out = {}
    for key, value in flat.items():
        prefix, sep, rest = key.partition("/layers/")
        if sep and prefix.endswith("stack"):
            for i, layer in enumerate(value):
                out[f"{prefix}/layers_{i}/{rest}"] = layer
        else:
            out[key] = value
    return out
