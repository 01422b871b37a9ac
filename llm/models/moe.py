"""Mixture-of-experts feed-forward block: top-k router, routed (and shared) SwiGLU experts.

Two dispatches, chosen by `ModelConfig.moe_dispatch`:
- `capacity` (GShard, Switch): each sequence sends at most C = ceil(capacity_factor * k *
  L / E) tokens to each expert through one-hot dispatch and combine tensors, so every
  shape is static. The expert axis of the dispatched activations is constrained onto the
  `act_expert` logical axis while tokens arrive sharded over the batch: XLA's SPMD
  partitioner turns the resharding into an all-to-all over the expert mesh axis. Tokens
  beyond an expert's capacity skip the block (the residual carries them) and are counted.
- `dropless`: every (token, expert) assignment is computed. Tokens are sorted by expert
  and run through `jax.lax.ragged_dot`. How many tokens an expert gets is data-dependent,
  which the SPMD partitioner cannot split, so this runs under `shard_map`: each expert
  shard all-gathers its expert group's tokens, computes the assignments of its own
  experts, and a reduce-scatter returns each token's sum. That moves `expert`-axis-size
  times the activations an all-to-all would, and needs no capacity.

The router runs in float32. Each layer sows into the 'moe' collection (when it is
mutable): the weighted auxiliary loss the train step adds, the load-balancing and z-loss
values, the fraction of assignments per expert and the dropped fraction.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from llm.models.config import ModelConfig
from llm.models.layers import MLP, Dense, activation_fn, constrain, param_with_axes

ExpertWeights = tuple[jax.Array, jax.Array | None, jax.Array]


def route(logits_TxE: jax.Array, cfg: ModelConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(top-k weights T x k, expert ids T x k, per-token scores T x E summing to 1), float32."""
    logits_TxE = logits_TxE.astype(jnp.float32)
    if cfg.router_scores == "softmax":
        scores_TxE = jax.nn.softmax(logits_TxE, axis=-1)
    else:
        scores_TxE = jax.nn.sigmoid(logits_TxE)
    weights_TxK, experts_TxK = jax.lax.top_k(scores_TxE, cfg.experts_per_token)
    if cfg.router_renormalize:
        weights_TxK = weights_TxK / jnp.sum(weights_TxK, axis=-1, keepdims=True)
    weights_TxK = weights_TxK * cfg.router_scale
    probs_TxE = scores_TxE / jnp.sum(scores_TxE, axis=-1, keepdims=True)
    return weights_TxK, experts_TxK, probs_TxE


def load_balance_loss(probs_TxE: jax.Array, experts_TxK: jax.Array) -> jax.Array:
    """Switch/GShard auxiliary loss E * sum_e f_e * P_e; 1 at uniform routing, its minimum.

    f_e is the fraction of the T*k assignments that go to expert e and P_e the mean
    router probability of e.
    """
    num_experts = probs_TxE.shape[-1]
    return num_experts * jnp.sum(expert_load(experts_TxK, num_experts) * probs_TxE.mean(0))


def expert_load(experts_TxK: jax.Array, num_experts: int) -> jax.Array:
    """Fraction of the assignments that go to each expert, [E] summing to 1."""
    counts_E = jnp.sum(jax.nn.one_hot(experts_TxK, num_experts, dtype=jnp.float32), axis=(0, 1))
    return counts_E / experts_TxK.size


def router_z_loss(logits_TxE: jax.Array) -> jax.Array:
    """ST-MoE router z-loss: mean squared log-partition of the router logits."""
    return jnp.mean(jnp.square(jax.nn.logsumexp(logits_TxE.astype(jnp.float32), axis=-1)))


def _expert_ffn(
    h_in: jax.Array, weights: ExpertWeights, act: Callable, matmul: Callable
) -> jax.Array:
    """act(x wi) wo, or silu(x wg) * (x wi) wo, with `matmul(x, w)` per expert."""
    wi, wg, wo = weights
    h = matmul(h_in, wi)
    h = act(matmul(h_in, wg)) * h if wg is not None else act(h)
    return matmul(h, wo)


def capacity_of(cfg: ModelConfig, length: int) -> int:
    """Slots per expert and sequence: ceil(capacity_factor * k * length / E), at most k*length."""
    even_share = cfg.experts_per_token * length / cfg.num_experts
    return max(1, min(math.ceil(cfg.capacity_factor * even_share), cfg.experts_per_token * length))


def capacity_dispatch(
    x_BxLxD: jax.Array,
    weights_BxLxK: jax.Array,
    experts_BxLxK: jax.Array,
    expert_weights: ExpertWeights,
    cfg: ModelConfig,
) -> tuple[jax.Array, jax.Array]:
    """GShard dispatch within each sequence; returns (y_BxLxD, dropped fraction).

    Assignments claim their experts' slots in position order (all of token 0's, then
    token 1's, ...), so whether a token is dropped depends only on earlier tokens and the
    block stays causal. GShard's priority by choice rank (every first choice before any
    second choice) would let a later token's first choice evict an earlier token's
    second choice: information flowing backwards in a decoder.
    """
    b, length, _ = x_BxLxD.shape
    num_experts, k = cfg.num_experts, cfg.experts_per_token
    capacity = capacity_of(cfg, length)
    onehot_BxAxE = jax.nn.one_hot(
        experts_BxLxK.reshape(b, length * k), num_experts, dtype=jnp.int32
    )
    # Slot of each assignment in its expert: how many earlier assignments chose that expert.
    slot_BxA = jnp.sum((jnp.cumsum(onehot_BxAxE, axis=1) - 1) * onehot_BxAxE, axis=-1)
    kept_BxLxK = (slot_BxA < capacity).reshape(b, length, k)
    slot_BxLxK = slot_BxA.reshape(b, length, k)
    dtype = x_BxLxD.dtype
    # Dropped assignments get the out-of-range slot `capacity`: one_hot gives them zeros.
    slot_BxLxK = jnp.where(kept_BxLxK, slot_BxLxK, capacity)
    dispatch_BxLxKxExC = (
        jax.nn.one_hot(experts_BxLxK, num_experts, dtype=dtype)[..., None]
        * jax.nn.one_hot(slot_BxLxK, capacity, dtype=dtype)[..., None, :]
    )
    dispatch_BxLxExC = constrain(
        jnp.sum(dispatch_BxLxKxExC, axis=2), ("act_batch", "act_len", None, None)
    )
    combine_BxLxExC = constrain(
        jnp.einsum("blkec,blk->blec", dispatch_BxLxKxExC, weights_BxLxK.astype(dtype)),
        ("act_batch", "act_len", None, None),
    )
    expert_axes = ("act_expert", "act_expert_batch", None, "act_embed")
    tokens_ExBxCxD = constrain(jnp.einsum("blec,bld->ebcd", dispatch_BxLxExC, x_BxLxD), expert_axes)
    act = activation_fn(cfg.activation)

    def matmul(h, w):
        h = jnp.einsum("ebci,eio->ebco", h, w.astype(dtype))
        return constrain(h, ("act_expert", "act_expert_batch", None, None))

    out_ExBxCxD = constrain(_expert_ffn(tokens_ExBxCxD, expert_weights, act, matmul), expert_axes)
    y_BxLxD = jnp.einsum("blec,ebcd->bld", combine_BxLxExC, out_ExBxCxD)
    dropped = 1.0 - jnp.mean(kept_BxLxK.astype(jnp.float32))
    return y_BxLxD, dropped


def _dropless_local(
    x_TxD: jax.Array,
    weights_TxK: jax.Array,
    experts_TxK: jax.Array,
    expert_weights: ExpertWeights,
    cfg: ModelConfig,
    expert_axes: tuple[str, ...],
) -> jax.Array:
    """One expert shard's part of dropless MoE over its expert group's tokens."""
    if expert_axes:
        # Tokens of the whole expert group, so that this shard's experts see all of theirs.
        x_TxD = jax.lax.all_gather(x_TxD, expert_axes, axis=0, tiled=True)
        weights_TxK = jax.lax.all_gather(weights_TxK, expert_axes, axis=0, tiled=True)
        experts_TxK = jax.lax.all_gather(experts_TxK, expert_axes, axis=0, tiled=True)
    local_experts = expert_weights[0].shape[0]
    first = jax.lax.axis_index(expert_axes) * local_experts if expert_axes else 0
    tokens, k = experts_TxK.shape
    local_A = experts_TxK.reshape(-1) - first
    # Assignments to other shards' experts sort last, into no group: ragged_dot gives zeros.
    group_A = jnp.where((local_A >= 0) & (local_A < local_experts), local_A, local_experts)
    order_A = jnp.argsort(group_A, stable=True)
    token_A = order_A // k
    group_sizes_G = jnp.bincount(group_A, length=local_experts + 1)[:local_experts]
    dtype = x_TxD.dtype

    def matmul(h, w):
        return jax.lax.ragged_dot(h, w.astype(dtype), group_sizes_G.astype(jnp.int32))

    out_AxD = _expert_ffn(x_TxD[token_A], expert_weights, activation_fn(cfg.activation), matmul)
    weight_A = weights_TxK.reshape(-1)[order_A].astype(dtype)
    y_TxD = jnp.zeros_like(x_TxD).at[token_A].add(out_AxD * weight_A[:, None])
    if expert_axes:
        y_TxD = jax.lax.psum_scatter(y_TxD, expert_axes, scatter_dimension=0, tiled=True)
    return y_TxD


def _mesh_axes(logical: str) -> tuple[str, ...]:
    """Mesh axes the rules in scope map `logical` to, among the current mesh's axes."""
    mesh = jax.sharding.get_abstract_mesh()
    spec = nn.logical_to_mesh_axes((logical,))
    axes = spec[0] if spec else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return tuple(a for a in axes if a in mesh.shape and mesh.shape[a] > 1)


def dropless_dispatch(
    x_BxLxD: jax.Array,
    weights_BxLxK: jax.Array,
    experts_BxLxK: jax.Array,
    expert_weights: ExpertWeights,
    cfg: ModelConfig,
) -> jax.Array:
    """Sorted-token dropless MoE; sharded over the mesh in scope with shard_map."""
    b, length, d = x_BxLxD.shape
    k = cfg.experts_per_token

    def local(x, w, e, *weights, expert_axes=()):
        bl = x.shape[0]
        y = _dropless_local(
            x.reshape(bl * length, d),
            w.reshape(bl * length, k),
            e.reshape(bl * length, k),
            weights,
            cfg,
            expert_axes,
        )
        return y.reshape(bl, length, d)

    wi, wg, wo = expert_weights
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return local(x_BxLxD, weights_BxLxK, experts_BxLxK, wi, wg, wo)
    batch_axes = _mesh_axes("act_batch")
    if b % math.prod(mesh.shape[a] for a in batch_axes):
        # A batch that does not split (restore traces one row): every shard takes all the
        # tokens. Still exact: each all-gathered copy gets its sum back from the scatter.
        batch_axes = ()
    expert_axes = _mesh_axes("expert")
    tokens_spec = PartitionSpec(batch_axes or None, None, None)
    weights_spec = PartitionSpec(expert_axes or None, None, None)
    fn = jax.shard_map(
        lambda x, w, e, *ws: local(x, w, e, *ws, expert_axes=expert_axes),
        in_specs=(tokens_spec, tokens_spec, tokens_spec) + (weights_spec,) * 3,
        out_specs=tokens_spec,
        check_vma=False,
    )
    return fn(x_BxLxD, weights_BxLxK, experts_BxLxK, wi, wg, wo)


class MoE(nn.Module):
    """Router + routed experts (+ shared experts): the feed-forward block of an MoE layer."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        """Returns the combined expert outputs, [B, L, D] in the compute dtype."""
        cfg = self.cfg
        b, length, d = x_BxLxD.shape
        num_experts, f = cfg.num_experts, cfg.expert_hidden
        router = Dense(
            num_experts, ("embed", None), False, jnp.float32, cfg.params_dtype, name="router"
        )
        logits_BxLxE = router(x_BxLxD.astype(jnp.float32))
        weights_TxK, experts_TxK, probs_TxE = route(logits_BxLxE.reshape(-1, num_experts), cfg)

        # Fan-in init per expert: the expert axis is a batch axis, not part of the fan-in.
        init = nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=1, out_axis=2, batch_axis=(0,)
        )

        def expert_param(name, shape, axes):
            return param_with_axes(self, name, init, shape, axes, cfg.params_dtype)

        up_axes, down_axes = ("expert", "embed", "mlp"), ("expert", "mlp", "embed")
        wi = expert_param("wi", (num_experts, d, f), up_axes)
        wg = (
            expert_param("wg", (num_experts, d, f), up_axes) if cfg.activation == "swiglu" else None
        )
        wo = expert_param("wo", (num_experts, f, d), down_axes)
        x = x_BxLxD.astype(cfg.compute_dtype)
        weights_BxLxK = weights_TxK.reshape(b, length, -1)
        experts_BxLxK = experts_TxK.reshape(b, length, -1)
        if cfg.moe_dispatch == "capacity":
            y_BxLxD, dropped = capacity_dispatch(x, weights_BxLxK, experts_BxLxK, (wi, wg, wo), cfg)
        else:
            y_BxLxD = dropless_dispatch(x, weights_BxLxK, experts_BxLxK, (wi, wg, wo), cfg)
            dropped = jnp.zeros((), jnp.float32)
        if cfg.num_shared_experts:
            shared_cfg = cfg.replace(d_ff=cfg.num_shared_experts * f)
            y_BxLxD = y_BxLxD + MLP(shared_cfg, name="shared")(x)
        if not self.is_initializing():
            balance = load_balance_loss(probs_TxE, experts_TxK)
            z = router_z_loss(logits_BxLxE.reshape(-1, num_experts))
            aux = cfg.load_balance_loss_weight * balance + cfg.router_z_loss_weight * z
            self.sow("moe", "aux_loss", aux)
            self.sow("moe", "load_balance_loss", balance)
            self.sow("moe", "router_z_loss", z)
            self.sow("moe", "dropped_fraction", dropped)
            self.sow("moe", "expert_load", expert_load(experts_TxK, num_experts))
        return constrain(y_BxLxD.astype(cfg.compute_dtype), ("act_batch", "act_len", "act_embed"))
