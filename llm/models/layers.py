"""Dense, embedding, normalisation and feed-forward layers with logical axes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.models.config import ModelConfig

Initializer = Callable[..., jax.Array]
LogicalNames = tuple[str | None, ...]


def kernel_init(
    in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1
) -> Initializer:
    """Fan-in truncated normal (variance 1/fan_in) for kernels of any rank."""
    return nn.initializers.variance_scaling(
        1.0, "fan_in", "truncated_normal", in_axis=in_axis, out_axis=out_axis
    )


def param_with_axes(
    module: nn.Module,
    name: str,
    init: Initializer,
    shape: tuple[int, ...],
    names: LogicalNames,
    dtype: jnp.dtype,
) -> jax.Array:
    """Creates a parameter boxed with logical axis names (unboxed on use)."""
    return module.param(name, nn.with_logical_partitioning(init, names), shape, dtype)


def constrain(x: jax.Array, names: LogicalNames) -> jax.Array:
    """Logical sharding constraint on an activation (no-op without a mesh)."""
    return nn.with_logical_constraint(x, names)


class Dense(nn.Module):
    """x @ W (+ b) over the last axis, with a 2-D logically named kernel."""

    features: int
    kernel_axes: tuple[str | None, str | None]
    use_bias: bool
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    init: Initializer | None = None

    @nn.compact
    def __call__(self, x_BxLxI: jax.Array) -> jax.Array:
        """Applies the dense layer to the last axis."""
        kernel_IxO = param_with_axes(
            self,
            "kernel",
            self.init or kernel_init(),
            (x_BxLxI.shape[-1], self.features),
            self.kernel_axes,
            self.param_dtype,
        )
        y = jnp.einsum("...i,io->...o", x_BxLxI.astype(self.dtype), kernel_IxO.astype(self.dtype))
        if self.use_bias:
            bias_O = param_with_axes(
                self,
                "bias",
                nn.initializers.zeros,
                (self.features,),
                (self.kernel_axes[1],),
                self.param_dtype,
            )
            y = y + bias_O.astype(self.dtype)
        return y


class Embed(nn.Module):
    """Token embedding table [V, D]; `attend` is the tied output projection."""

    num_embeddings: int
    features: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    stddev: float = 0.02
    axes: tuple[str | None, str | None] = ("vocab", "embed")

    def setup(self) -> None:
        self.embedding = param_with_axes(
            self,
            "embedding",
            nn.initializers.normal(stddev=self.stddev),
            (self.num_embeddings, self.features),
            self.axes,
            self.param_dtype,
        )

    def __call__(self, ids_BxL: jax.Array) -> jax.Array:
        """Looks up embeddings of integer ids."""
        return jnp.take(self.embedding, ids_BxL, axis=0).astype(self.dtype)

    def attend(self, x_BxLxD: jax.Array) -> jax.Array:
        """Projects onto the table: logits against every embedding, in float32."""
        return jnp.einsum(
            "bld,vd->blv", x_BxLxD.astype(jnp.float32), self.embedding.astype(jnp.float32)
        )


class LayerNorm(nn.Module):
    """LayerNorm (or RMSNorm when rms=True) computed in float32."""

    eps: float = 1e-5
    rms: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        """Normalises over the last axis."""
        d = x_BxLxD.shape[-1]
        x = x_BxLxD.astype(jnp.float32)
        if self.rms:
            x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        else:
            mean = jnp.mean(x, axis=-1, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
            x = (x - mean) * jax.lax.rsqrt(var + self.eps)
        scale_D = param_with_axes(
            self, "scale", nn.initializers.ones, (d,), ("norm",), self.param_dtype
        )
        x = x * scale_D.astype(jnp.float32)
        if not self.rms:
            bias_D = param_with_axes(
                self, "bias", nn.initializers.zeros, (d,), ("norm",), self.param_dtype
            )
            x = x + bias_D.astype(jnp.float32)
        return x.astype(self.dtype)


def make_norm(cfg: ModelConfig, name: str | None = None) -> LayerNorm:
    """The config's norm (LayerNorm or RMSNorm)."""
    return LayerNorm(
        eps=cfg.norm_eps,
        rms=cfg.norm == "rmsnorm",
        dtype=cfg.compute_dtype,
        param_dtype=cfg.params_dtype,
        name=name,
    )


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """relu, gelu (tanh approximation), gelu_exact (erf), silu, or silu as the swiglu gate."""
    return {
        "relu": jax.nn.relu,
        "gelu": lambda x: jax.nn.gelu(x, approximate=True),
        "gelu_exact": lambda x: jax.nn.gelu(x, approximate=False),
        "silu": jax.nn.silu,
        "swiglu": jax.nn.silu,
    }[name]


class MLP(nn.Module):
    """Position-wise feed-forward block: relu/gelu (2 matrices) or SwiGLU (3)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        """Applies wo(act(wi x)) or wo(silu(wg x) * wi x)."""
        cfg = self.cfg
        dense = lambda f, axes, name: Dense(  # noqa: E731
            f, axes, cfg.use_bias, cfg.compute_dtype, cfg.params_dtype, name=name
        )
        act = activation_fn(cfg.activation)
        h_BxLxF = dense(cfg.d_ff, ("embed", "mlp"), "wi")(x_BxLxD)
        if cfg.activation == "swiglu":
            gate_BxLxF = dense(cfg.d_ff, ("embed", "mlp"), "wg")(x_BxLxD)
            h_BxLxF = act(gate_BxLxF) * h_BxLxF
        else:
            h_BxLxF = act(h_BxLxF)
        h_BxLxF = constrain(h_BxLxF, ("act_batch", "act_len", "act_mlp"))
        return dense(cfg.d_model, ("mlp", "embed"), "wo")(h_BxLxF)


def mesh_axes_of(logical: str) -> tuple[str, ...]:
    """Mesh axes of size > 1 that the rules in scope map the logical name `logical` to."""
    mesh = jax.sharding.get_abstract_mesh()
    spec = nn.logical_to_mesh_axes((logical,))
    axes = spec[0] if spec else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return tuple(a for a in axes if a in mesh.shape and mesh.shape[a] > 1)
