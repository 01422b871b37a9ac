"""Analytical per-device memory of a training step: state, gradients and activations.

The count the planner prunes with and the tests hold compiled programs to. Per device,
with b = rows per device per microbatch (global batch / batch shards / microbatches),
T the sequence length, D d_model, K the head size, c the compute dtype's bytes and
H, N, F, V the query heads, kv heads, d_ff and vocabulary divided by the mesh axes
their activations are split over (`act_heads`, `act_mlp`, `act_vocab` rules):

  state        = params (param dtype) + optimizer state (AdamW: 2 float32 moments,
                 SGD: 1, Adafactor: factored, ~0), each sharded as its parameter
  gradients    = params in float32 (x2 with microbatches: the accumulator)
  saved        = per layer, what the backward pass keeps (remat policy):
                   full: the layer input                         b*T*D*c
                   dots: + the projections' outputs  b*T*(2D + (H+2N)K + gF + D)*c
                         (g = 2 for SwiGLU's two input matrices, else 1)
                   none: + attention probabilities b*H*T*T*(4 + c) and the norms' and
                         activation's inputs and outputs b*T*(2D + 2gF)*(4 + c)
  working      = the largest transient: one layer's backward (scores and probabilities
                 in float32, 2*b*H*T*T*4, plus 2*b*T*F*4 + 6*b*T*D*4) or the float32
                 logits b*T*V*4 (the TPU compiler fuses softmax and its gradient)
  gathered     = with FSDP, two layers' weights all-gathered in float32 (one in use,
                 one prefetched) and the gathered token embedding with its gradient

temporaries = gradients + saved + working + gathered; total = state + temporaries.
Cross-attention layers of an encoder-decoder add their query/output projections over
T and keys/values over the source length S. The count is an estimate: XLA's buffer
assignment reuses and fuses buffers the count keeps apart, and keeps small ones it
ignores. tests/train/test_memory_scaling.py states how close it comes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from llm.models.config import ModelConfig
from llm.parallel.rules import LogicalRules, mesh_axes_for

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class ParamLeaf:
    """One parameter's shape, logical axis names and dtype size."""

    path: str
    shape: tuple[int, ...]
    names: tuple[str | None, ...]
    itemsize: int


@dataclasses.dataclass
class MemoryEstimate:
    """Per-device bytes of one train step, by part (see the module docstring)."""

    state: float
    gradients: float
    saved_activations: float
    working: float
    gathered_params: float

    @property
    def temporaries(self) -> float:
        """Everything but the (donated) train state: what XLA reports as temporaries."""
        return self.gradients + self.saved_activations + self.working + self.gathered_params

    @property
    def total(self) -> float:
        """State plus temporaries: the per-device peak."""
        return self.state + self.temporaries


@functools.lru_cache(maxsize=32)
def param_layout(cfg: ModelConfig) -> tuple[ParamLeaf, ...]:
    """Every parameter's shape and logical axis names, from an abstract init (no memory)."""
    from llm import models  # models import this module's siblings; keep the import local

    model = models.build_model(cfg)
    batch = models.dummy_batch(cfg, 1, 8)
    boxed = jax.eval_shape(
        lambda: model.init(jax.random.key(0), batch, deterministic=True, method="loss_terms")
    )["params"]
    leaves = jax.tree_util.tree_leaves_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned)
    )
    out = []
    for path, leaf in leaves:
        names = tuple(leaf.names) if isinstance(leaf, nn.Partitioned) else ()
        value = leaf.value if isinstance(leaf, nn.Partitioned) else leaf
        names = names + (None,) * (len(value.shape) - len(names))
        out.append(
            ParamLeaf(jax.tree_util.keystr(path), tuple(value.shape), names, value.dtype.itemsize)
        )
    return tuple(out)


def param_count(cfg: ModelConfig) -> int:
    """Number of parameters of `cfg`."""
    return sum(int(np.prod(leaf.shape)) for leaf in param_layout(cfg))


def shard_factor(logical: str | None, mesh_shape: Mapping[str, int], rules: LogicalRules) -> int:
    """How many ways the rules split an axis named `logical` on a mesh of `mesh_shape`."""
    if logical is None:
        return 1
    return int(np.prod([mesh_shape.get(a, 1) for a in mesh_axes_for(logical, rules)]))


def indivisible(
    layout: Sequence[ParamLeaf], mesh_shape: Mapping[str, int], rules: LogicalRules
) -> str | None:
    """The first parameter dimension its mesh axes do not divide, described; else None."""
    for leaf in layout:
        for dim, (size, name) in enumerate(zip(leaf.shape, leaf.names, strict=True)):
            factor = shard_factor(name, mesh_shape, rules)
            if factor > 1 and size % factor:
                return f"{leaf.path} dim {dim} ({name!r}, {size}) over {factor} devices"
    return None


def _per_device(leaf: ParamLeaf, mesh_shape: Mapping[str, int], rules: LogicalRules) -> float:
    elements = 1.0
    for size, name in zip(leaf.shape, leaf.names, strict=True):
        elements *= size / shard_factor(name, mesh_shape, rules)
    return elements


def _optimizer_moments(optimizer: str) -> float:
    """float32 parameter-sized buffers the optimizer keeps (Adafactor's are factored)."""
    return {"adamw": 2.0, "sgd": 1.0, "adafactor": 0.0}.get(optimizer, 2.0)


def estimate_memory(
    cfg: ModelConfig,
    *,
    batch_size: int,
    lengths: Sequence[int],
    mesh_shape: Mapping[str, int],
    rules: LogicalRules,
    microbatches: int = 1,
    optimizer: str = "adamw",
    layout: Sequence[ParamLeaf] | None = None,
) -> MemoryEstimate:
    """Per-device memory of a train step of `cfg` on a mesh of `mesh_shape` (an estimate)."""
    layout = param_layout(cfg) if layout is None else layout
    split = lambda name: shard_factor(name, mesh_shape, rules)  # noqa: E731
    param_elements = sum(_per_device(leaf, mesh_shape, rules) for leaf in layout)
    param_bytes = sum(_per_device(leaf, mesh_shape, rules) * leaf.itemsize for leaf in layout)
    state = param_bytes + 4 * param_elements * _optimizer_moments(optimizer)
    gradients = 4 * param_elements * (2 if microbatches > 1 else 1)

    b = batch_size / split("act_batch") / microbatches
    c = cfg.compute_dtype.itemsize
    d, k = cfg.d_model, cfg.head_size
    h, n = cfg.num_heads / split("act_heads"), cfg.kv_heads / split("act_heads")
    f, v = cfg.d_ff / split("act_mlp"), cfg.vocab_size / split("act_vocab")
    g = 2 if cfg.activation == "swiglu" else 1
    src_len = lengths[0]
    tgt_len = lengths[-1]

    def saved_per_layer(t: int, kv_len: int, cross_src: int | None) -> float:
        x = b * t * d * c
        if cfg.remat == "full":
            return x
        dots = b * t * (2 * d + (h + 2 * n) * k + g * f + d) * c
        if cross_src is not None:
            dots += b * (t * (h * k + d) + 2 * cross_src * n * k) * c
        if cfg.remat == "dots":
            return x + dots
        kv_total = kv_len + (cross_src or 0)
        probs = b * h * t * kv_total * (4 + c)
        elementwise = b * t * (2 * d + 2 * g * f) * (4 + c)
        return x + dots + probs + elementwise

    def working_per_layer(t: int, kv_len: int) -> float:
        return b * (2 * h * t * kv_len * 4 + 2 * t * f * 4 + 6 * t * d * 4)

    if cfg.family == "encoder_decoder":
        saved = cfg.encoder_layers * saved_per_layer(src_len, src_len, None)
        saved += cfg.decoder_layers * saved_per_layer(tgt_len, tgt_len, src_len)
        layer_work = max(working_per_layer(src_len, src_len), working_per_layer(tgt_len, src_len))
    else:
        saved = cfg.num_layers * saved_per_layer(src_len, src_len, None)
        layer_work = working_per_layer(src_len, src_len)
    # The TPU compiler fuses softmax and its gradient into the logits' consumers.
    logits = b * tgt_len * v * 4
    working = max(layer_work, logits)

    gathered = 0.0
    if split("embed") > 1:
        layers = max(cfg.num_layers, cfg.encoder_layers + cfg.decoder_layers)
        embed_elements = sum(
            _per_device(leaf, mesh_shape, rules)
            for leaf in layout
            if "embed" in leaf.path and "layers" not in leaf.path
        )
        layer_elements = (param_elements - embed_elements) / max(layers, 1)
        gathered = 4 * (2 * layer_elements + 2 * embed_elements) * split("embed")
    return MemoryEstimate(
        state=state,
        gradients=gradients,
        saved_activations=saved,
        working=working,
        gathered_params=gathered,
    )
