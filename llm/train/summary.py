"""What a training run prints about itself: the start-up block and the end-of-run loss bound.

The start-up block replaces a dump of the whole config (that stays in WORKDIR/config.json):
a few lines a researcher checks before waiting for a run, with the numbers worked out
(parameters, per-device batch, tokens per step).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import jax
import ml_collections

from llm import models
from llm.data.config import sequence_lengths
from llm.parallel.sharding import data_parallel_size
from llm.train.program import TrainProgram


def count_params(params: Any) -> int:
    """Number of scalars in a params tree (arrays or ShapeDtypeStructs)."""
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(params))


def format_count(n: int) -> str:
    """A count with a K/M/B/T suffix and three significant figures: 0.80M, 124M, 6.74B."""
    # Small models read as fractions of a million (0.80M), as papers quote them.
    for scale, suffix, least in (
        (1e12, "T", 1e12),
        (1e9, "B", 1e9),
        (1e6, "M", 1e5),
        (1e3, "K", 1e3),
    ):
        if n >= least:
            value = n / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f}{suffix}"
    return str(n)


def _rules(rules: Any) -> str:
    return rules if isinstance(rules, str) else f"custom ({len(rules)} pairs)"


def _schedule(cfg: ml_collections.ConfigDict) -> str:
    warmup = f"warmup {cfg.warmup_steps}"
    if cfg.schedule in ("cosine", "linear", "wsd"):
        end = f"{cfg.learning_rate * cfg.end_lr_factor:.3g}"
        return f"{warmup}, {cfg.schedule} decay to {end} at step {cfg.steps}"
    return f"{warmup}, then {cfg.schedule}; {cfg.steps} steps"


def startup_summary(
    program: TrainProgram,
    workdir: str | pathlib.Path,
    *,
    experiment: str = "",
    resume_step: int | None = None,
) -> str:
    """The block a run logs when it starts: experiment, model, devices, batch, optimizer, workdir."""
    config, mesh = program.config, program.mesh
    tcfg = config.train
    workdir = pathlib.Path(workdir)
    lengths = sequence_lengths(config.data)
    shards = data_parallel_size(mesh, program.rules)
    batch_axes = program.batch_sharding.spec[0] or ()
    batch_axes = (batch_axes,) if isinstance(batch_axes, str) else batch_axes
    batch_axes = tuple(a for a in batch_axes if not (a == "expert" and mesh.shape[a] == 1))
    split = f"split over {' x '.join(batch_axes)} = {shards}" if batch_axes else "not split"
    per_device = tcfg.batch_size // shards
    micro = f" in {tcfg.microbatches} microbatches" if tcfg.microbatches > 1 else ""
    row = " + ".join(str(n) for n in lengths)
    row = f"({row})" if len(lengths) > 1 else row  # seq2seq: inputs + targets
    tokens = tcfg.batch_size * sum(lengths)
    devices = mesh.devices.flat
    platform = next(iter(devices)).platform
    processes = f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""
    # expert=1 and context=1 (most runs) are left out.
    axes = " ".join(
        f"{name}={size}"
        for name, size in mesh.shape.items()
        if not (name in ("expert", "context") and size == 1)
    )
    n_params = count_params(program.abstract_state.params)
    mcfg = program.model_cfg
    moe = (
        f"; {mcfg.moe_layers} MoE layers of {mcfg.num_experts} experts, top {mcfg.experts_per_token}"
        f" ({mcfg.moe_dispatch}), {format_count(models.count_active_params(mcfg))} active"
        if mcfg.is_moe
        else ""
    )
    resume = f"; resuming from step {resume_step}" if resume_step is not None else ""
    lines = [
        f"Training {experiment or 'a config'} (full config: {workdir / 'config.json'})",
        f"  model      {program.model_cfg.family}, {format_count(n_params)} parameters "
        f"({n_params:,}){moe}",
        f"  devices    {mesh.size} {platform}{processes}; mesh {axes}; rules {_rules(config.mesh.rules)}",
        f"  batch      {tcfg.batch_size} global, {per_device} per device ({split}){micro}; "
        f"{tokens:,} tokens per step ({tcfg.batch_size} x {row})",
        f"  optimizer  {tcfg.optimizer}, peak lr {tcfg.learning_rate:g}, {_schedule(tcfg)}",
        *_loss_lines(tcfg, mcfg),
        f"  workdir    {workdir}{resume}",
    ]
    return "\n".join(lines)


def _loss_lines(tcfg: ml_collections.ConfigDict, mcfg: models.ModelConfig) -> list[str]:
    """Says that the logged train loss is not the NLL eval/loss is, where it differs."""
    lines = []
    if tcfg.label_smoothing:
        lines.append(
            f"  loss       train 'loss' is label-smoothed ({tcfg.label_smoothing:g}) "
            "cross-entropy minus the smoothed targets' entropy; eval/loss is plain NLL "
            "(perplexity = exp)"
        )
    if mcfg.is_moe:
        lines.append(
            "  loss       train 'loss' includes the MoE auxiliary losses (moe/aux_loss: "
            f"load balance x {mcfg.load_balance_loss_weight:g} + router z x "
            f"{mcfg.router_z_loss_weight:g}); eval/loss is the LM's NLL alone"
        )
    return lines


def loss_bound(config: ml_collections.ConfigDict) -> float | None:
    """The exact lower bound of the eval loss (nats/token) where the data has one, else None.

    Only the generated tiny_grammar corpus has one, and only in the setting its derivation
    assumes (llm.data.grammar.entropy_per_token): LM task, byte tokens, whole sentences.
    """
    data = config.data
    if (data.dataset, data.task, data.tokenizer) != ("tiny_grammar", "lm", "byte"):
        return None
    if data.pack and data.pack_mode != "first_fit":
        return None
    from llm.data import grammar

    return grammar.entropy_per_token()


def bound_line(config: ml_collections.ConfigDict, metrics: dict[str, float]) -> str | None:
    """'eval loss L nats/token; the grammar's entropy bound is B (perplexity P)', or None."""
    bound = loss_bound(config)
    if bound is None or "eval/loss" not in metrics:
        return None
    return (
        f"eval loss {metrics['eval/loss']:.3f} nats/token; the grammar's entropy bound is "
        f"{bound:.3f} (perplexity {math.exp(bound):.3f})"
    )
