"""Pallas attention kernels that `attention_impl` selects: TPU splash attention and GPU flash.

`splash` (jax.experimental.pallas.ops.tpu.splash_attention) is a blockwise flash-attention
kernel that skips the blocks a static mask (causal, local window, full) leaves empty and
takes packed segments as ids, so no [L, L] mask or score matrix reaches HBM.
`pallas_gpu` (jax.experimental.pallas.ops.gpu.attention.mha) is the Triton flash-attention
kernel: causal or full, segment ids, no windows; its kv heads must match the query heads,
so GQA/MQA keys and values are repeated (memory the splash path does not spend).

Both take the model's [B, L, H, K] layout and softmax(q k^T / sqrt(K)) semantics; neither
kernel scales q, so it is scaled here. Off their platform (tests on CPU) they run in
Pallas interpret mode. GQA runs in splash's MHA kernel, which maps query head h onto kv
head h // (H / N) in its index maps and accumulates dK/dV over each group in the
kernel: no repeated kv in memory and one kernel for MHA, GQA and MQA (the MQA kernel
takes a single kv head, so GQA would need a vmap over groups).

Pallas kernels are not partitioned by XLA's SPMD partitioner: under a mesh they run in
jax.shard_map with the batch split over the mesh axes of `act_batch`, query heads over
those of `act_heads` and kv heads over those of `kv_heads`. Context parallelism (`act_len`
on a mesh axis of size C > 1) is splash's all-gather: queries stay split along the
sequence, keys, values and their segment ids are all-gathered, and the kernel is built
with q_seq_shards=C, so each shard reads its rows of the full causal/local mask.

Sequence lengths must be multiples of the kernels' 128-lane width; shorter or ragged
lengths (init, small evals) are padded up with keys no query of the sequence sees (a
segment id of their own, or past every query of a causal mask) and cut off again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.gpu import attention as gpu_attention
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
from jax.sharding import NamedSharding, PartitionSpec

from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.models.layers import mesh_axes_of

PALLAS_IMPLS = ("splash", "pallas_gpu")
# The TPU vector lane width: splash's kv compute block is a multiple of it.
LANES = 128
# Largest block `0 = auto` picks (MaxText's splash default).
AUTO_BLOCK = 512
# Segment id of the keys added to reach a multiple of LANES: unlike the model's padding
# id 0, no query of the sequence has it, so every query sees what it saw unpadded.
_PAD_SEGMENT = -1
# The GPU kernel's own defaults (forward 128, backward 32), clipped to the length.
_GPU_BLOCKS = (128, 128, 32, 32, 32, 32)


def pallas_attention(
    cfg: ModelConfig,
    q_BxLxHxK: jax.Array,
    k_BxLxNxK: jax.Array,
    v_BxLxNxK: jax.Array,
    segment_ids_BxL: jax.Array | None,
    *,
    causal: bool,
    window: int = 0,
) -> jax.Array:
    """Self-attention through cfg.attention_impl's Pallas kernel; [B, L, H, K].

    Query i sees key j when their segment ids match (0 = padding, None = one segment),
    j <= i if `causal`, and i - W <= j (causal) or |i - j| <= W if window W > 0.
    """
    if cfg.attention_impl not in PALLAS_IMPLS:
        raise ValueError(f"attention_impl={cfg.attention_impl!r} is not a Pallas kernel")
    if cfg.attention_impl == "pallas_gpu" and window:
        raise ConfigError(
            f"attention_impl='pallas_gpu' has no local window (attention_window={window}); "
            "use attention_impl='xla' or 'cudnn' (causal windows) or 'einsum'"
        )
    b, length, h, kd = q_BxLxHxK.shape
    n = k_BxLxNxK.shape[2]
    # softmax(q k^T / sqrt(K)) as dot_product_attention, with the scale on q in its dtype.
    q_BxLxHxK = q_BxLxHxK * jnp.asarray(kd**-0.5, q_BxLxHxK.dtype)
    layout = _Layout.of(b, length, h, n)
    padded = length if layout.seq_axes else _round_up(length, LANES)
    if padded != length:
        pad = ((0, 0), (0, padded - length), (0, 0), (0, 0))
        q_BxLxHxK, k_BxLxNxK, v_BxLxNxK = (
            jnp.pad(x, pad) for x in (q_BxLxHxK, k_BxLxNxK, v_BxLxNxK)
        )
        if segment_ids_BxL is None and not causal:
            # Without a causal mask the padding keys must be masked by their ids.
            segment_ids_BxL = jnp.ones((b, length), jnp.int32)
        if segment_ids_BxL is not None:
            segment_ids_BxL = jnp.pad(
                segment_ids_BxL, ((0, 0), (0, padded - length)), constant_values=_PAD_SEGMENT
            )
    if cfg.attention_impl == "splash":
        out_BxLxHxK = _splash(
            cfg, layout, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, segment_ids_BxL, causal, window
        )
    else:
        out_BxLxHxK = _gpu(layout, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, segment_ids_BxL, causal)
    return out_BxLxHxK[:, :length]


def splash_block_sizes(cfg: ModelConfig, q_len: int, kv_len: int) -> sk.BlockSizes:
    """Splash tiles for a (per-shard) query length and key length, from the model config.

    0 = auto: the largest multiple of 128 up to 512 that divides the length. Explicit
    sizes are clipped to the length and must divide it.
    """
    bq = _block("splash_block_q", cfg.splash_block_q, q_len, "query")
    bkv = _block("splash_block_kv", cfg.splash_block_kv, kv_len, "key")
    bkv_compute = _block(
        "splash_block_kv_compute", cfg.splash_block_kv_compute or bkv, bkv, "key block"
    )
    bq_bwd = _block("splash_block_q_bwd", cfg.splash_block_q_bwd or bq, q_len, "query")
    bkv_bwd = _block("splash_block_kv_bwd", cfg.splash_block_kv_bwd or bkv, kv_len, "key")
    fused = cfg.splash_fused_bwd
    return sk.BlockSizes(
        block_q=bq,
        block_kv=bkv,
        block_kv_compute=bkv_compute,
        block_q_dkv=bq_bwd,
        block_kv_dkv=bkv_bwd,
        block_kv_dkv_compute=bkv_bwd,
        block_q_dq=None if fused else bq_bwd,
        block_kv_dq=None if fused else bkv_bwd,
        use_fused_bwd_kernel=fused,
    )


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _block(name: str, value: int, length: int, what: str) -> int:
    """A block size for `length` tokens: auto (0) or the configured value, clipped."""
    divisors = [b for b in range(LANES, min(AUTO_BLOCK, length) + 1, LANES) if length % b == 0]
    if length % LANES or not divisors:
        raise ConfigError(
            f"splash attention needs {what} lengths that are multiples of {LANES}, got "
            f"{length}; make the sequence length (per context shard) a multiple of {LANES}"
        )
    if not value:
        return divisors[-1]
    block = min(value, length)
    if length % block:
        raise ConfigError(
            f"model.{name}={value} does not divide the {what} length {length}; set it to a "
            f"multiple of {LANES} that divides {length} (e.g. {divisors[-1]}) or to 0 (auto)"
        )
    return block


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How one attention call splits over the mesh in scope (all empty: no split)."""

    batch_axes: tuple[str, ...]
    seq_axes: tuple[str, ...]
    head_axes: tuple[str, ...]
    # kv heads split like the query heads, or () = replicated, each shard then taking the
    # kv_heads_local heads its query heads use.
    kv_axes: tuple[str, ...]
    kv_heads_local: int
    head_shards: int = 1
    seq_shards: int = 1

    @classmethod
    def of(cls, b: int, length: int, h: int, n: int) -> _Layout:
        """The split of [B, L, H|N, K] over the mesh and logical rules in scope."""
        mesh = jax.sharding.get_abstract_mesh()
        if mesh.empty:
            return cls((), (), (), (), n)
        size = lambda axes: math.prod(mesh.shape[a] for a in axes)  # noqa: E731
        batch_axes = mesh_axes_of("act_batch")
        if b % size(batch_axes):
            # A batch that does not split (restore traces one row): every shard takes
            # all rows, which is exact, only redundant.
            batch_axes = ()
        seq_axes = mesh_axes_of("act_len")
        if length % size(seq_axes):
            raise ConfigError(
                f"Sequence length {length} does not split into {size(seq_axes)} context "
                f"shards (mesh axes {seq_axes}); make it a multiple of {size(seq_axes)} or "
                "change config.mesh.context"
            )
        head_axes = mesh_axes_of("act_heads")
        t = size(head_axes)
        if h % t:
            raise ConfigError(
                f"num_heads={h} does not divide over the mesh axes {head_axes} (size {t}) "
                "that act_heads maps to; use a multiple of it or shard fewer heads"
            )
        kv_axes = mesh_axes_of("kv_heads")
        h_local, g = h // t, h // n
        if kv_axes == head_axes and n % t == 0:
            return cls(batch_axes, seq_axes, head_axes, kv_axes, n // t, t, size(seq_axes))
        if kv_axes and kv_axes != head_axes:
            raise ConfigError(
                f"kv_heads maps to mesh axes {kv_axes} but act_heads to {head_axes}; the "
                "splash kernel needs kv heads split like the query heads (or replicated)"
            )
        if h_local % g and g % h_local:
            raise ConfigError(
                f"num_heads={h} over {t} head shards leaves {h_local} query heads per shard, "
                f"which do not map onto whole groups of num_kv_heads={n}; use a head count "
                "whose shards hold whole groups or a single group's part"
            )
        kv_local = max(1, h_local // g)
        return cls(batch_axes, seq_axes, head_axes, (), kv_local, t, size(seq_axes))

    def spec(self, *rest) -> PartitionSpec:
        return PartitionSpec(self.batch_axes or None, self.seq_axes or None, *rest)

    def local_kv_heads(self, x_BxLxNxK: jax.Array, h_local: int, g: int) -> jax.Array:
        """This shard's kv heads of a replicated kv array (query heads split, kv not)."""
        if self.kv_axes or not self.head_axes or x_BxLxNxK.shape[2] == self.kv_heads_local:
            return x_BxLxNxK
        start = jax.lax.axis_index(self.head_axes) * h_local // g
        return jax.lax.dynamic_slice_in_dim(x_BxLxNxK, start, self.kv_heads_local, axis=2)


def _platform() -> str:
    """The platform of the mesh in scope (a TPU topology compiled from CPU), else JAX's."""
    device = getattr(jax.sharding.get_abstract_mesh(), "abstract_device", None)
    return device.platform if device is not None else jax.default_backend()


def _sharded(layout: _Layout, local, q, k, v, seg, *extra, extra_specs=()):
    """local(q, k, v, seg, *extra) per shard under jax.shard_map (directly without a mesh)."""
    if not (layout.batch_axes or layout.seq_axes or layout.head_axes):
        return local(q, k, v, seg, *extra)
    q_spec = layout.spec(layout.head_axes or None, None)
    kv_spec = layout.spec(layout.kv_axes or None, None)
    fn = jax.shard_map(
        local,
        in_specs=(q_spec, kv_spec, kv_spec, None if seg is None else layout.spec(), *extra_specs),
        out_specs=q_spec,
        check_vma=False,
    )
    return fn(q, k, v, seg, *extra)


@functools.lru_cache(maxsize=64)
def _splash_kernel(
    heads: int,
    q_len: int,
    kv_len: int,
    causal: bool,
    window: int,
    blocks: sk.BlockSizes,
    q_shards: int,
    interpret: bool,
) -> sk.SplashAttentionKernel:
    """The kernel and its block-sparse mask info, for the whole (unsharded) sequence.

    The mask is a static numpy-backed object; processing it into block-sparse mask info
    is host work (seconds at long lengths) done once per shape, not once per layer.
    """
    shape = (q_len, kv_len)
    if window:
        mask = sm.LocalMask(shape, (window, 0 if causal else window), offset=0)
    elif causal:
        mask = sm.CausalMask(shape)
    else:
        mask = sm.FullMask(shape)
    build = functools.partial(
        sk.make_splash_mha,
        sm.MultiHeadMask([mask] * heads),
        block_sizes=blocks,
        head_shards=1,
        q_seq_shards=q_shards,
        interpret=interpret,
    )
    # JAX keeps the trace and the mesh per thread: built on a fresh one, the mask info is
    # concrete host arrays (not tracers, not placed on a TPU topology's compile-only
    # devices), safe to cache and to close over in any later trace.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(build).result()


def _splash(cfg, layout, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL, causal, window):
    b, length, h, _ = q_BxLxHxK.shape
    n = k_BxLxNxK.shape[2]
    h_local, c = h // layout.head_shards, layout.seq_shards
    blocks = splash_block_sizes(cfg, length // c, length)
    kernel = _splash_kernel(
        h_local, length, length, causal, window, blocks, c, _platform() != "tpu"
    )

    def local(q_BxQxHxK, k_BxSxNxK, v_BxSxNxK, seg_BxQ, kernel):
        k_BxSxNxK = layout.local_kv_heads(k_BxSxNxK, h_local, h // n)
        v_BxSxNxK = layout.local_kv_heads(v_BxSxNxK, h_local, h // n)
        seg_kv_BxS = seg_BxQ
        if layout.seq_axes:
            # All-gather K/V context parallelism: every query shard sees every key.
            gather = functools.partial(
                jax.lax.all_gather, axis_name=layout.seq_axes, axis=1, tiled=True
            )
            k_BxSxNxK, v_BxSxNxK = gather(k_BxSxNxK), gather(v_BxSxNxK)
            seg_kv_BxS = None if seg_BxQ is None else gather(seg_BxQ)

        def one(q_HxQxK, k_NxSxK, v_NxSxK, seg_Q, seg_S):
            ids = None if seg_Q is None else sk.SegmentIds(q=seg_Q, kv=seg_S)
            return kernel(q_HxQxK, k_NxSxK, v_NxSxK, segment_ids=ids)

        heads_first = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731
        out_BxHxQxK = jax.vmap(one)(
            heads_first(q_BxQxHxK),
            heads_first(k_BxSxNxK),
            heads_first(v_BxSxNxK),
            seg_BxQ,
            seg_kv_BxS,
        )
        return heads_first(out_BxHxQxK)

    mesh = jax.sharding.get_abstract_mesh()
    kernel_spec = ()
    if not mesh.empty:
        # The mask info's rows follow the query shards; the rest is replicated.
        kernel_spec = (
            kernel.manual_sharding_spec(
                NamedSharding(mesh, PartitionSpec(None, layout.seq_axes or None))
            ),
        )
    return _sharded(
        layout, local, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL, kernel, extra_specs=kernel_spec
    )


def _gpu(layout, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL, causal):
    if layout.seq_axes:
        raise ConfigError(
            "attention_impl='pallas_gpu' cannot split the sequence over the context axis "
            "itself; context-parallel layers run the ring (model.context_attention)"
        )
    length = q_BxLxHxK.shape[1]
    blocks = gpu_attention.BlockSizes(*(min(x, length) for x in _GPU_BLOCKS))
    interpret = _platform() != "gpu"
    h, n = q_BxLxHxK.shape[2], k_BxLxNxK.shape[2]
    t = layout.head_shards

    def local(q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL):
        k_BxLxNxK = layout.local_kv_heads(k_BxLxNxK, h // t, h // n)
        v_BxLxNxK = layout.local_kv_heads(v_BxLxNxK, h // t, h // n)
        # The kernel pairs query head i with kv head i.
        g = q_BxLxHxK.shape[2] // k_BxLxNxK.shape[2]
        k_BxLxHxK = jnp.repeat(k_BxLxNxK, g, axis=2)
        v_BxLxHxK = jnp.repeat(v_BxLxNxK, g, axis=2)
        return gpu_attention.mha(
            q_BxLxHxK,
            k_BxLxHxK,
            v_BxLxHxK,
            seg_BxL,
            sm_scale=1.0,
            causal=causal,
            block_sizes=blocks,
            interpret=interpret,
        )

    return _sharded(layout, local, q_BxLxHxK, k_BxLxNxK, v_BxLxNxK, seg_BxL)
