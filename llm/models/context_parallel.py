"""Context parallelism: self-attention over a sequence split along the `context` mesh axis.

The sequence of every activation is sharded over the mesh axes of the logical name
`act_len` (C shards). Attention is the one layer that mixes positions; under
jax.shard_map it brings every key to every query in one of two ways:

- `ring`: C steps; at each, the local query block attends to the key/value block it holds
  and hands that block on to its ring neighbour (ppermute). A float32 online softmax
  (running max, denominator, accumulator) merges the steps, so memory stays one block.
  The backward pass (custom_vjp) is a second ring in which the key/value gradients travel
  with their blocks and arrive back at their owner after the last step.
- `all_gather`: keys, values and segment ids are all-gathered once, then the same
  blockwise loop runs over the gathered blocks; key/value gradients are reduce-scattered.

With a causal mask and the sequence in natural order the shards are uneven (shard 0 sees
one block, the last all C). Zig-zag load balancing cuts the sequence into 2C chunks and
gives shard i chunks i and 2C-1-i, so every shard does the same work; the model reorders
its inputs once (to_zigzag) and its final hidden states back (from_zigzag). Masks are
built here from each token's natural index, never as a dense [L, L] array.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.models.layers import mesh_axes_of

# attention.MASK_VALUE (attention.py imports this module, so it cannot be imported here).
_MASK = -0.7 * float(jnp.finfo(jnp.float32).max)
MODES = ("ring", "all_gather")
# Keys per inner step of a block: the float32 scores of one step are [B, H, L / C, KV_TILE].
KV_TILE = 512


def context_shards() -> int:
    """Shards the sequence of activations is split into by the mesh and rules in scope."""
    mesh = jax.sharding.get_abstract_mesh()
    return math.prod(mesh.shape[a] for a in mesh_axes_of("act_len"))


def attention_mode(cfg: ModelConfig) -> str:
    """How context-parallel self-attention moves keys: 'ring' or 'all_gather' ('auto' = ring)."""
    return "ring" if cfg.context_attention == "auto" else cfg.context_attention


def uses_context_attention(cfg: ModelConfig, *, self_attention: bool, decode: bool) -> bool:
    """Whether this attention layer runs through context_attention (the sequence is split)."""
    if decode or not self_attention or cfg.attention_impl == "splash" or context_shards() == 1:
        # Decoding (the KV cache, prefill included) and cross-attention keep the plain
        # kernels, which XLA partitions over any mesh; splash splits its queries over the
        # context axis itself.
        return False
    if cfg.attention_dropout_rate > 0:
        raise ConfigError(
            f"attention_dropout_rate={cfg.attention_dropout_rate} is not supported with "
            "context parallelism (the ring never materialises the attention weights); set "
            "model.attention_dropout_rate=0 or config.mesh.context=1."
        )
    return True


def zigzag_shards(cfg: ModelConfig, causal: bool, decode: bool = False) -> int:
    """C when a tower runs its sequence in zig-zag order over C context shards, else 0."""
    shards = context_shards()
    if (
        shards == 1
        or decode
        or not causal
        or not cfg.context_load_balance
        or cfg.attention_impl == "splash"
    ):
        return 0
    if cfg.is_moe and cfg.moe_dispatch == "capacity":
        raise ConfigError(
            "moe_dispatch='capacity' claims expert slots in sequence order, which zig-zag "
            "load balancing permutes (a later token could take an earlier one's slot); set "
            "model.context_load_balance=False or model.moe_dispatch='dropless'."
        )
    return shards


def zigzag_order(length: int, shards: int) -> np.ndarray:
    """Natural indices of the tokens in zig-zag order: shard i holds chunks i and 2C-1-i."""
    _check_zigzag(length, shards)
    c = length // (2 * shards)
    chunks = [k for i in range(shards) for k in (i, 2 * shards - 1 - i)]
    return np.concatenate([np.arange(k * c, (k + 1) * c) for k in chunks])


def to_zigzag(x: jax.Array, shards: int, axis: int = 1) -> jax.Array:
    """Permutes `axis` from natural into zig-zag order (as x[:, zigzag_order(L, C)])."""
    # Slices, a reverse and a concatenation rather than a gather: on an axis that is
    # already sharded, XLA moves shards (all-to-all) instead of gathering the whole axis.
    x_Lx = jnp.moveaxis(x, axis, 0)
    _check_zigzag(x_Lx.shape[0], shards)
    natural_2xCxc = x_Lx.reshape(2, shards, -1, *x_Lx.shape[1:])
    zigzag_Cx2xc = jnp.stack([natural_2xCxc[0], natural_2xCxc[1, ::-1]], axis=1)
    return jnp.moveaxis(zigzag_Cx2xc.reshape(x_Lx.shape), 0, axis)


def from_zigzag(x: jax.Array, shards: int, axis: int = 1) -> jax.Array:
    """Permutes `axis` from zig-zag order back into natural order (to_zigzag's inverse)."""
    x_Lx = jnp.moveaxis(x, axis, 0)
    _check_zigzag(x_Lx.shape[0], shards)
    zigzag_Cx2xc = x_Lx.reshape(shards, 2, -1, *x_Lx.shape[1:])
    natural_2xCxc = jnp.stack([zigzag_Cx2xc[:, 0], zigzag_Cx2xc[::-1, 1]])
    return jnp.moveaxis(natural_2xCxc.reshape(x_Lx.shape), 0, axis)


def _check_zigzag(length: int, shards: int) -> None:
    if length % (2 * shards):
        raise ConfigError(
            f"Zig-zag load balancing cuts the sequence into 2 x {shards} context shards = "
            f"{2 * shards} chunks, but its length {length} does not divide; make the "
            f"sequence length (data.seq_len / targets_len) a multiple of {2 * shards} or set "
            "model.context_load_balance=False."
        )


def self_attention(
    cfg: ModelConfig,
    q_BxLxHxK: jax.Array,
    k_BxLxNxK: jax.Array,
    v_BxLxNxK: jax.Array,
    segment_ids_BxL: jax.Array | None,
    *,
    causal: bool,
) -> jax.Array:
    """The model's context-parallel self-attention, as the config and the mesh ask."""
    return context_attention(
        q_BxLxHxK,
        k_BxLxNxK,
        v_BxLxNxK,
        segment_ids_BxL,
        causal=causal,
        window=cfg.attention_window,
        zigzag=zigzag_shards(cfg, causal) > 0,
        mode=attention_mode(cfg),
    )


def context_attention(
    q_BxLxHxK: jax.Array,
    k_BxLxNxK: jax.Array,
    v_BxLxNxK: jax.Array,
    segment_ids_BxL: jax.Array | None = None,
    *,
    causal: bool,
    window: int = 0,
    zigzag: bool = False,
    mode: str = "ring",
    skip_masked: bool = True,
    kv_tile: int = KV_TILE,
) -> jax.Array:
    """softmax(q k^T / sqrt(K)) v over a sequence sharded on the act_len mesh axes; [B, L, H, K].

    Query i sees key j when their segment ids are equal (as attention.segment_mask: ids
    [B, L], 0 = padding, None = one segment), j <= i if `causal`, and |i - j| <= `window`
    if window > 0; i and j are natural token indices, and `zigzag` says the arrays hold
    the sequence in zig-zag order (to_zigzag). Each block is processed `kv_tile` keys at a
    time. `skip_masked=False` computes the fully masked (half-)blocks too: the same numbers,
    for tests.
    """
    if mode not in MODES:
        raise ConfigError(f"context attention mode {mode!r} is not one of {', '.join(MODES)}")
    if zigzag and not causal:
        raise ValueError("zig-zag order balances causal attention; it needs causal=True")
    b, length, h, _ = q_BxLxHxK.shape
    n = k_BxLxNxK.shape[2]
    mesh = jax.sharding.get_abstract_mesh()
    len_axes = mesh_axes_of("act_len") if not mesh.empty else ()
    shards = math.prod(mesh.shape[a] for a in len_axes)
    if length % (shards * (2 if zigzag else 1)):
        raise ConfigError(
            f"Sequence length {length} does not split into {shards} context shards"
            f"{' of 2 zig-zag chunks' if zigzag else ''}; make data.seq_len a multiple of "
            f"{shards * (2 if zigzag else 1)} or change config.mesh.context."
        )
    if segment_ids_BxL is None:
        segment_ids_BxL = jnp.ones((b, length), jnp.int32)
    gather = mode == "all_gather"
    plan = _Plan(len_axes, shards, causal, window, zigzag, gather, skip_masked, kv_tile)
    if mesh.empty:
        return _attend(plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, segment_ids_BxL)

    def sized(axes: tuple[str, ...], dim: int) -> tuple[str, ...]:
        # An axis that does not split the dimension is left replicated.
        return axes if dim % math.prod(mesh.shape[a] for a in axes) == 0 else ()

    batch_axes = sized(mesh_axes_of("act_batch"), b)
    head_axes = sized(mesh_axes_of("act_heads"), h)
    if head_axes and (mesh_axes_of("kv_heads") != head_axes or sized(head_axes, n) == ()):
        # Query heads split where kv heads cannot follow (MQA on a tensor axis): one kv
        # head per query head keeps each shard's heads paired.
        k_BxLxNxK = jnp.repeat(k_BxLxNxK, h // n, axis=2)
        v_BxLxNxK = jnp.repeat(v_BxLxNxK, h // n, axis=2)
    spec = lambda *rest: PartitionSpec(batch_axes or None, len_axes or None, *rest)  # noqa: E731
    heads_spec = spec(head_axes or None, None)
    fn = jax.shard_map(
        functools.partial(_attend, plan),
        in_specs=(heads_spec, heads_spec, heads_spec, spec()),
        out_specs=heads_spec,
        check_vma=False,
    )
    return fn(q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, segment_ids_BxL)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The static shape of one context-parallel attention call."""

    axes: tuple[str, ...]  # mesh axes the sequence is split over (the ring)
    shards: int
    causal: bool
    window: int
    zigzag: bool
    gather: bool  # all_gather mode (else ring)
    skip: bool  # skip the fully masked (half-)blocks
    kv_tile: int  # keys per inner step: scores are [queries, kv_tile], never [block, block]


def _shard_index(plan: _Plan) -> jax.Array:
    return lax.axis_index(plan.axes) if plan.axes else jnp.zeros((), jnp.int32)


def _token_index(plan: _Plan, shard: jax.Array, length: int) -> jax.Array:
    """Natural indices [length] of the tokens shard `shard` holds."""
    if plan.zigzag:
        c = length // 2
        ar = jnp.arange(c, dtype=jnp.int32)
        return jnp.concatenate([shard * c + ar, (2 * plan.shards - 1 - shard) * c + ar])
    return shard * length + jnp.arange(length, dtype=jnp.int32)


def _mask(
    plan: _Plan,
    q_idx_Q: jax.Array,
    kv_idx_S: jax.Array,
    q_seg_BxQ: jax.Array,
    kv_seg_BxS: jax.Array,
) -> jax.Array:
    """Bool [B, 1, 1, Q, S] (broadcast over kv heads and groups): who sees whom in a block."""
    mask_BxQxS = q_seg_BxQ[:, :, None] == kv_seg_BxS[:, None, :]
    delta_QxS = q_idx_Q[:, None] - kv_idx_S[None, :]
    if plan.causal:
        mask_BxQxS &= delta_QxS >= 0
    if plan.window:
        mask_BxQxS &= jnp.abs(delta_QxS) <= plan.window
    return mask_BxQxS[:, None, None]


def _blocks_meet(plan: _Plan, i: jax.Array, j: jax.Array, length: int) -> jax.Array:
    """Whether contiguous blocks i != j of `length` tokens hold a visible pair."""
    meet = j < i if plan.causal else jnp.asarray(True)
    if plan.window:
        # The closest tokens of two distinct blocks are |i - j| - 1 blocks + 1 apart.
        meet &= (jnp.abs(i - j) - 1) * length + 1 <= plan.window
    return meet


def _visit(plan: _Plan, diagonal: bool, i: jax.Array, j: jax.Array, length: int, carry, run):
    """run(carry, q_from, kv_to) on the part of block (queries of i, keys of j) worth computing.

    run computes queries [q_from:] against keys [:kv_to] (static bounds) and returns the
    updated carry.
    """
    if diagonal or not plan.skip or not (plan.causal or plan.window):
        return run(carry, 0, length)
    if plan.zigzag:
        # Shard i holds chunks a = i and b = 2C-1-i (c tokens each); shard j != i holds
        # a' = j and b' = 2C-1-j. As i, j < C <= 2C-1-i, 2C-1-j, a causal mask on chunks
        # gives: a sees a' iff j < i; a never sees b' (b' >= C > a); b always sees a'
        # (a' < C <= b); b sees b' iff 2C-1-j < 2C-1-i, i.e. iff j > i. No two chunks are
        # equal, so each visible pair is a whole chunk pair. Hence j < i: both query chunks
        # see exactly the first kv chunk (queries [0:2c] x keys [0:c]); j > i: only the
        # second query chunk sees, both kv chunks (queries [c:2c] x keys [0:2c]). Either
        # way exactly half of the block, so every shard does the same work at every step.
        half = length // 2
        return lax.cond(j < i, lambda c: run(c, 0, half), lambda c: run(c, half, length), carry)
    return lax.cond(
        _blocks_meet(plan, i, j, length), lambda c: run(c, 0, length), lambda c: c, carry
    )


def _tile_size(plan: _Plan, keys: int) -> int:
    """The largest divisor of `keys` up to kv_tile (all keys when that is much smaller)."""
    tile = next(t for t in range(min(plan.kv_tile, keys), 0, -1) if keys % t == 0)
    return tile if tile >= min(keys, plan.kv_tile) // 8 else keys


def _over_tiles(plan: _Plan, keys: int, fold, carry):
    """fold(carry, start) over the key tiles [start, start + tile) of the first `keys` keys."""
    tile = _tile_size(plan, keys)
    if tile == keys:
        return fold(carry, 0)[0]
    return lax.scan(fold, carry, jnp.arange(0, keys, tile))[0]


def _kv_tile(plan: _Plan, keys: int, start, k_BxSxNxK, v_BxSxNxK, kv_idx_S, kv_seg_BxS):
    """The key tile at `start` of the first `keys` keys: k, v, natural indices, segment ids."""
    tile = _tile_size(plan, keys)
    cut = lambda x, axis: lax.dynamic_slice_in_dim(x, start, tile, axis)  # noqa: E731
    return cut(k_BxSxNxK, 1), cut(v_BxSxNxK, 1), cut(kv_idx_S, 0), cut(kv_seg_BxS, 1)


def _add_rows(x_BxSx: jax.Array, g_BxTx: jax.Array, start) -> jax.Array:
    """x with g added to its rows [start, start + T) along axis 1."""
    rows = lax.dynamic_slice_in_dim(x_BxSx, start, g_BxTx.shape[1], 1)
    return lax.dynamic_update_slice_in_dim(x_BxSx, rows + g_BxTx, start, 1)


def _scores(q_BxNxGxQxK: jax.Array, k_BxSxNxK: jax.Array, mask: jax.Array) -> jax.Array:
    s_BxNxGxQxS = jnp.einsum(
        "bngqk,bsnk->bngqs", q_BxNxGxQxK, k_BxSxNxK, preferred_element_type=jnp.float32
    )
    return jnp.where(mask, s_BxNxGxQxS, _MASK)


def _forward_block(stats, q_BxNxGxQxK, k_BxSxNxK, v_BxSxNxK, mask):
    """One online-softmax step: folds a key block into (max, denominator, accumulator)."""
    m_BxNxGxQ, l_BxNxGxQ, acc_BxNxGxQxK = stats
    s_BxNxGxQxS = _scores(q_BxNxGxQxK, k_BxSxNxK, mask)
    m_new = jnp.maximum(m_BxNxGxQ, s_BxNxGxQxS.max(-1))
    # Masked keys weigh 0 even for a row that has seen no key yet (m = _MASK).
    p_BxNxGxQxS = jnp.where(mask, jnp.exp(s_BxNxGxQxS - m_new[..., None]), 0.0)
    rescale = jnp.exp(m_BxNxGxQ - m_new)
    l_new = l_BxNxGxQ * rescale + p_BxNxGxQxS.sum(-1)
    pv_BxNxGxQxK = jnp.einsum(
        "bngqs,bsnk->bngqk",
        p_BxNxGxQxS.astype(v_BxSxNxK.dtype),
        v_BxSxNxK,
        preferred_element_type=jnp.float32,
    )
    return m_new, l_new, acc_BxNxGxQxK * rescale[..., None] + pv_BxNxGxQxK


def _backward_block(q_BxNxGxQxK, k_BxSxNxK, v_BxSxNxK, mask, do_BxNxGxQxK, lse_BxNxGxQ, delta):
    """Gradients of one block (dq, dk, dv) from the forward's log-sum-exp (flash attention)."""
    f32 = jnp.float32
    s_BxNxGxQxS = _scores(q_BxNxGxQxK, k_BxSxNxK, mask)
    p_BxNxGxQxS = jnp.where(mask, jnp.exp(s_BxNxGxQxS - lse_BxNxGxQ[..., None]), 0.0)
    dv_BxSxNxK = jnp.einsum(
        "bngqs,bngqk->bsnk",
        p_BxNxGxQxS.astype(do_BxNxGxQxK.dtype),
        do_BxNxGxQxK,
        preferred_element_type=f32,
    )
    dp_BxNxGxQxS = jnp.einsum(
        "bngqk,bsnk->bngqs", do_BxNxGxQxK, v_BxSxNxK, preferred_element_type=f32
    )
    ds_BxNxGxQxS = p_BxNxGxQxS * (dp_BxNxGxQxS - delta[..., None])
    dq_BxNxGxQxK = jnp.einsum(
        "bngqs,bsnk->bngqk",
        ds_BxNxGxQxS.astype(k_BxSxNxK.dtype),
        k_BxSxNxK,
        preferred_element_type=f32,
    )
    dk_BxSxNxK = jnp.einsum(
        "bngqs,bngqk->bsnk",
        ds_BxNxGxQxS.astype(q_BxNxGxQxK.dtype),
        q_BxNxGxQxK,
        preferred_element_type=f32,
    )
    return dq_BxNxGxQxK, dk_BxSxNxK, dv_BxSxNxK


def _shift(plan: _Plan, tree):
    """Hands every array of `tree` to the next shard of the ring."""
    perm = [(p, (p + 1) % plan.shards) for p in range(plan.shards)]
    return jax.tree.map(lambda x: lax.ppermute(x, plan.axes, perm), tree)


def _gathered(plan: _Plan, tree):
    return jax.tree.map(lambda x: lax.all_gather(x, plan.axes), tree)


def _block(tree, j: jax.Array):
    return jax.tree.map(lambda x: lax.dynamic_index_in_dim(x, j, keepdims=False), tree)


def _heads_last(x_BxLxHxK: jax.Array, n: int) -> jax.Array:
    """[B, L, H, K] -> [B, N, G, L, K]: query head n * G + g is kv head n's g-th."""
    b, length, h, k = x_BxLxHxK.shape
    return x_BxLxHxK.reshape(b, length, n, h // n, k).transpose(0, 2, 3, 1, 4)


def _heads_back(x_BxNxGxLxK: jax.Array) -> jax.Array:
    b, n, g, length, k = x_BxNxGxLxK.shape
    return x_BxNxGxLxK.transpose(0, 3, 1, 2, 4).reshape(b, length, n * g, k)


def _queries(plan: _Plan, q_BxLxHxK: jax.Array, n: int):
    """(scaled queries [B, N, G, L, K], their natural indices [L], this shard's index)."""
    scale = jnp.asarray(q_BxLxHxK.shape[-1] ** -0.5, q_BxLxHxK.dtype)
    i = _shard_index(plan)
    return _heads_last(q_BxLxHxK * scale, n), _token_index(plan, i, q_BxLxHxK.shape[1]), i


def _forward(plan: _Plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL):
    """Local output [B, L, H, K] and log-sum-exp [B, N, G, L] of this shard's queries."""
    b, length, h, kd = q_BxLxHxK.shape
    n, c = k_BxLxNxK.shape[2], plan.shards
    q, q_idx, i = _queries(plan, q_BxLxHxK, n)
    shape = (b, n, h // n, length)
    stats = (
        jnp.full(shape, _MASK, jnp.float32),
        jnp.zeros(shape, jnp.float32),
        jnp.zeros((*shape, kd), jnp.float32),
    )

    def attend(stats, kv, j, diagonal):
        k, v, kv_seg = kv
        kv_idx = _token_index(plan, j, length)

        def run(stats, q0, k1):
            def fold(part, start):
                k_t, v_t, idx_t, seg_t = _kv_tile(plan, k1, start, k, v, kv_idx, kv_seg)
                mask = _mask(plan, q_idx[q0:], idx_t, seg_BxL[:, q0:], seg_t)
                return _forward_block(part, q[..., q0:, :], k_t, v_t, mask), None

            part = (stats[0][..., q0:], stats[1][..., q0:], stats[2][..., q0:, :])
            part = _over_tiles(plan, k1, fold, part)
            m, l_, acc = stats
            return (
                m.at[..., q0:].set(part[0]),
                l_.at[..., q0:].set(part[1]),
                acc.at[..., q0:, :].set(part[2]),
            )

        return _visit(plan, diagonal, i, j, length, stats, run)

    local = (k_BxLxNxK, v_BxLxNxK, seg_BxL)
    stats = attend(stats, local, i, True)
    if c > 1 and plan.gather:
        every = _gathered(plan, local)

        def gather_step(stats, s):
            j = (i - s) % c
            return attend(stats, _block(every, j), j, False), None

        stats, _ = lax.scan(gather_step, stats, jnp.arange(1, c))
    elif c > 1:
        # Each step sends on the block it works on, so the transfer can overlap the compute.
        held = _shift(plan, local)

        def ring_step(carry, s):
            held, stats = carry
            return (_shift(plan, held), attend(stats, held, (i - s) % c, False)), None

        if c > 2:
            (held, stats), _ = lax.scan(ring_step, (held, stats), jnp.arange(1, c - 1))
        stats = attend(stats, held, (i - (c - 1)) % c, False)
    m, l_, acc = stats
    # l > 0: every token sees at least itself (same segment, distance 0).
    out = _heads_back(acc / l_[..., None]).astype(q_BxLxHxK.dtype)
    return out, m + jnp.log(l_)


def _backward(plan: _Plan, residuals, do_BxLxHxK):
    """(dq, dk, dv) of this shard's blocks: a second pass over the ring (or the gathered keys)."""
    q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL, out_BxLxHxK, lse = residuals
    length, kd = q_BxLxHxK.shape[1], q_BxLxHxK.shape[-1]
    n, c = k_BxLxNxK.shape[2], plan.shards
    q, q_idx, i = _queries(plan, q_BxLxHxK, n)
    do = _heads_last(do_BxLxHxK.astype(q_BxLxHxK.dtype), n)
    delta = jnp.sum(
        do.astype(jnp.float32) * _heads_last(out_BxLxHxK, n).astype(jnp.float32), axis=-1
    )

    def attend(dq, kv, dkv, j, diagonal):
        k, v, kv_seg = kv
        kv_idx = _token_index(plan, j, length)

        def run(grads, q0, k1):
            def fold(carry, start):
                gq, dk, dv = carry
                k_t, v_t, idx_t, seg_t = _kv_tile(plan, k1, start, k, v, kv_idx, kv_seg)
                mask = _mask(plan, q_idx[q0:], idx_t, seg_BxL[:, q0:], seg_t)
                gq_t, gk_t, gv_t = _backward_block(
                    q[..., q0:, :],
                    k_t,
                    v_t,
                    mask,
                    do[..., q0:, :],
                    lse[..., q0:],
                    delta[..., q0:],
                )
                dk, dv = (_add_rows(x, g, start) for x, g in ((dk, gk_t), (dv, gv_t)))
                return (gq + gq_t, dk, dv), None

            dq, dk, dv = grads
            gq, dk, dv = _over_tiles(plan, k1, fold, (jnp.zeros_like(dq[..., q0:, :]), dk, dv))
            return dq.at[..., q0:, :].add(gq), dk, dv

        dq, dk, dv = _visit(plan, diagonal, i, j, length, (dq, *dkv), run)
        return dq, (dk, dv)

    local = (k_BxLxNxK, v_BxLxNxK, seg_BxL)
    zeros = lambda x: jnp.zeros(x.shape, jnp.float32)  # noqa: E731
    dq, dkv = attend(zeros(q), local, (zeros(k_BxLxNxK), zeros(v_BxLxNxK)), i, True)
    if c > 1 and plan.gather:
        every = _gathered(plan, local)
        dkv_every = jax.tree.map(lambda x: jnp.zeros((c, *x.shape), x.dtype), dkv)

        def gather_step(carry, s):
            dq, dkv_every = carry
            j = (i - s) % c
            dq, dkv_j = attend(dq, _block(every, j), _block(dkv_every, j), j, False)
            dkv_every = jax.tree.map(
                lambda all_, x: lax.dynamic_update_index_in_dim(all_, x, j, 0), dkv_every, dkv_j
            )
            return (dq, dkv_every), None

        (dq, dkv_every), _ = lax.scan(gather_step, (dq, dkv_every), jnp.arange(1, c))
        # Every shard's contributions to block i, summed on shard i.
        scattered = jax.tree.map(lambda x: lax.psum_scatter(x, plan.axes), dkv_every)
        dkv = jax.tree.map(jnp.add, dkv, scattered)
    elif c > 1:
        # The key/value gradients travel with their block and, after the C-th shift, are
        # back on the shard that owns it.
        held, dkv = _shift(plan, local), _shift(plan, dkv)

        def ring_step(carry, s):
            held, dkv, dq = carry
            sent = _shift(plan, held)
            dq, dkv = attend(dq, held, dkv, (i - s) % c, False)
            return (sent, _shift(plan, dkv), dq), None

        if c > 2:
            (held, dkv, dq), _ = lax.scan(ring_step, (held, dkv, dq), jnp.arange(1, c - 1))
        dq, dkv = attend(dq, held, dkv, (i - (c - 1)) % c, False)
        dkv = _shift(plan, dkv)
    dq_BxLxHxK = _heads_back(dq) * kd**-0.5
    dk, dv = dkv
    return (
        dq_BxLxHxK.astype(q_BxLxHxK.dtype),
        dk.astype(k_BxLxNxK.dtype),
        dv.astype(v_BxLxNxK.dtype),
        None,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _attend(plan: _Plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL):
    """Per-shard attention with an O(block) backward pass (residuals: inputs, output, lse)."""
    return _forward(plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL)[0]


def _attend_fwd(plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL):
    out, lse = _forward(plan, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL)
    return out, (q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL, out, lse)


_attend.defvjp(_attend_fwd, _backward)
