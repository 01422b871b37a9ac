"""The `mesh` config group: mesh axis sizes and logical-axis rules."""

from __future__ import annotations

import ml_collections


def default_mesh_config(rules: str = "fsdp") -> ml_collections.ConfigDict:
    """Returns the `mesh` group: all devices on the data axis unless set otherwise."""
    c = ml_collections.ConfigDict()
    # Sizes of the mesh axes; their product is the device count, and one may be -1 to
    # take the remaining devices. The batch is split over data x fsdp.
    c.data = -1
    c.fsdp = 1
    # Expert parallelism: each expert shard holds num_experts / expert of an MoE layer's
    # experts (a data-parallel axis for everything else).
    c.expert = 1
    # Context parallelism: the sequence of every activation is split over this axis, and
    # attention runs as a ring of key/value blocks (model.context_attention).
    c.context = 1
    c.tensor = 1
    # Multi-slice TPU jobs: how many of the data / fsdp shards lie in different slices,
    # talking over the data-centre network (DCN) instead of the chips' interconnect (ICI).
    # data and fsdp stay the totals, so each slice holds data/dcn_data x fsdp/dcn_fsdp;
    # expert, context and tensor always stay inside a slice. Their product must equal the
    # slice count; both 1 on several slices puts all slices on data (a gradient
    # all-reduce once per step is what crosses DCN most cheaply).
    c.dcn_data = 1
    c.dcn_fsdp = 1
    # Logical-axis rules: a preset ('dp', 'fsdp', 'fsdp_tp'; see llm/parallel/rules.py)
    # or a list of (logical_axis, mesh_axes) pairs.
    c.rules = rules
    return c
