"""Maximal update parametrization (muP, Yang et al. 2022, "Tensor Programs V", arXiv:2203.03466).

The multiplier form of the paper's Table 8 (equivalent to its Table 3), for Adam, with
width multiplier m = d_model / mup_base_width:

| parameters | init | Adam learning rate | forward |
|---|---|---|---|
| input-like: token and position embeddings | unchanged | unchanged | |
| hidden matrices: q, k, v, out, MLP in/out | fan-in (variance 1/fan_in), as standard | x 1/m | |
| output: tied embedding or lm_head | unchanged | unchanged | logits x 1/m |
| vector-like: biases, norm scales | unchanged | unchanged | |
| attention logits | | | q.k / head_size x sqrt(base head_size) |

Widths grow with a fixed number of heads (head_size = d_model / num_heads), so the base
model's head size is mup_base_width / num_heads (with an explicit model.head_dim the head
size is fixed and the attention scale stays 1/sqrt(head_size)); at m = 1 every factor is 1 and the model
is the standard one, whose tuned hyperparameters are the base of the transfer. The
decoupled weight decay of AdamW is scaled with the update (as the `mup` package's
MuAdamW does, whose learning rate per parameter group includes it).
"""

from __future__ import annotations

from typing import Any

from llm.models.config import ModelConfig

# Parameters of the hidden matrices (both dimensions grow with width), by leaf name; the
# lm_head kernel is an output weight, whose 1/m is the logits multiplier.
_HIDDEN_LEAVES = ("query", "key", "value", "out", "kernel")
_OUTPUT_MODULES = ("lm_head",)


def enabled(cfg: ModelConfig) -> bool:
    """Whether `cfg` uses muP."""
    return cfg.parametrization == "mup"


def width_multiplier(cfg: ModelConfig) -> float:
    """m = d_model / mup_base_width (1 under the standard parametrization)."""
    if not enabled(cfg) or not cfg.mup_base_width:
        return 1.0
    return cfg.d_model / cfg.mup_base_width


def logits_multiplier(cfg: ModelConfig) -> float:
    """The output multiplier 1/m."""
    return 1.0 / width_multiplier(cfg)


def query_multiplier(cfg: ModelConfig) -> float:
    """Turns the standard 1/sqrt(head_size) into sqrt(base head_size) / head_size."""
    if not enabled(cfg):
        return 1.0
    if cfg.head_dim is not None:
        return 1.0  # a fixed head size does not grow with width: 1/sqrt(head_size) stays
    base_head = (cfg.mup_base_width or cfg.d_model) / cfg.num_heads
    return (base_head / cfg.head_size) ** 0.5


def _names(path: tuple) -> list[str]:
    # Dict keys only: a boxed parameter's path ends in the box's `.value` attribute.
    return [str(k.key) for k in path if hasattr(k, "key")]


def lr_multiplier(path: tuple, leaf: Any, *, cfg: ModelConfig) -> float:
    """The Adam learning-rate multiplier of the parameter at `path`: 1/m for hidden matrices."""
    names = _names(path)
    if getattr(leaf, "ndim", 0) < 2 or not names or names[-1] not in _HIDDEN_LEAVES:
        return 1.0
    if any(module in names for module in _OUTPUT_MODULES):
        return 1.0
    return 1.0 / width_multiplier(cfg)


def coordinate_activations(intermediates: dict, num_layers: int) -> dict[str, Any]:
    """The activations a coordinate check measures, from a Decoder's captured intermediates.

    The embedding output, each layer's attention and MLP outputs and its output, the
    logits (llm.train.coord_check).
    """
    out = {"embedding": intermediates["embedding"]["__call__"][0]}
    stack = intermediates["stack"]
    for i in range(num_layers):
        layer = stack[f"layers_{i}"]
        out[f"layer{i}/attention"] = layer["self_attn"]["__call__"][0]
        out[f"layer{i}/mlp"] = layer["mlp"]["__call__"][0]
        block = layer["__call__"][0]
        out[f"layer{i}/output"] = block[0] if isinstance(block, tuple) else block
    out["logits"] = intermediates["head"]["__call__"][0]
    return out
