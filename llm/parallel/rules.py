"""Logical-axis rules: how parameter and activation axis names map onto mesh axes."""

from __future__ import annotations

from collections.abc import Sequence

from llm.errors import ConfigError

LogicalRules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# The batch is split over every data-parallel axis, `expert` included: outside the MoE
# blocks the expert axis is data parallelism (as in GShard and MaxText). FSDP shards
# parameters along `embed`; tensor parallelism splits heads, MLP and vocabulary; expert
# parallelism puts each expert's weights, and the tokens routed to it, on one `expert`
# shard. Dispatched MoE activations keep their batch on the other data axes.
_BATCH = ("act_batch", ("data", "fsdp", "expert"))
# Context parallelism splits the sequence of every activation (llm/models/context_parallel.py);
# parameters are replicated over `context`, which is data parallelism for the gradients.
_LENGTH = ("act_len", "context")
_EXPERT = (
    ("expert", "expert"),
    ("act_expert", "expert"),
    ("act_expert_batch", ("data", "fsdp")),
)

PRESETS: dict[str, LogicalRules] = {
    "dp": (_BATCH, _LENGTH, *_EXPERT),
    "fsdp": (
        _BATCH,
        _LENGTH,
        *_EXPERT,
        ("embed", "fsdp"),
    ),
    "fsdp_tp": (
        _BATCH,
        _LENGTH,
        *_EXPERT,
        ("embed", "fsdp"),
        ("vocab", "tensor"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv_heads", "tensor"),
        ("act_vocab", "tensor"),
        ("act_mlp", "tensor"),
        ("act_heads", "tensor"),
    ),
}


def resolve_rules(rules: str | Sequence[Sequence]) -> LogicalRules:
    """Returns rules from a preset name or a list of (logical, mesh axes) pairs."""
    if isinstance(rules, str):
        if rules not in PRESETS:
            raise ConfigError(
                f"Unknown sharding rules preset {rules!r}; choose one of {sorted(PRESETS)} or "
                "give a list of (logical_axis, mesh_axes) pairs."
            )
        return PRESETS[rules]
    resolved = []
    for pair in rules:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise ConfigError(
                f"Sharding rule {pair!r} must be a (logical_axis, mesh_axes) pair, e.g. "
                "('embed', 'fsdp') or ('act_batch', ('data', 'fsdp'))."
            )
        logical, mesh_axes = pair
        if isinstance(mesh_axes, list):
            mesh_axes = tuple(mesh_axes)
        resolved.append((logical, mesh_axes))
    return tuple(resolved)


def mesh_axes_for(logical_name: str, rules: LogicalRules) -> tuple[str, ...]:
    """Mesh axes that `logical_name` is mapped to (empty when replicated)."""
    for logical, mesh_axes in rules:
        if logical == logical_name:
            if mesh_axes is None:
                return ()
            return (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
    return ()
