"""Read a finished (or running) workdir back: its config, model and the params of a checkpoint.

Used by evaluation, decoding and checkpoint averaging. Only the parameters are
restored (not the optimizer state), onto the shardings the training mesh gives
them, so a model that trained sharded restores sharded.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from llm import models
from llm.data.config import sequence_lengths
from llm.errors import CheckpointNotFoundError, ConfigError, OutputExistsError
from llm.parallel.rules import LogicalRules
from llm.train import checkpoint as ckpt_lib
from llm.train.checkpoint import checkpoint_dir, make_manager
from llm.train.program import model_and_mesh
from llm.train.state import abstract_state
from llm.train.trained import TrainedModel


@dataclasses.dataclass
class Restored(TrainedModel):
    """A model with restored params on its training mesh, and where they came from."""

    # The checkpoint steps whose params these are (several when averaged).
    steps: list[int]
    workdir: pathlib.Path

    @property
    def step(self) -> int:
        """The newest step the params come from (what metrics rows are written under)."""
        return max(self.steps)


def resolve_workdir(path: str | pathlib.Path) -> tuple[pathlib.Path, int | None]:
    """(workdir, step or None) for a workdir, its checkpoints/ dir or one checkpoints/<step>/ dir."""
    p = pathlib.Path(path).expanduser().absolute()
    if not p.exists():
        raise CheckpointNotFoundError(f"{p} does not exist; pass the --workdir of a training run.")
    if p.name.isdigit() and p.parent.name == "checkpoints":
        return p.parent.parent, int(p.name)
    if p.name == "checkpoints" and not (p / "config.json").exists():
        return p.parent, None
    return p, None


def load_run_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
    """The resolved config a run wrote to WORKDIR/config.json."""
    path = pathlib.Path(workdir) / "config.json"
    if not path.exists():
        raise CheckpointNotFoundError(
            f"{path} not found: {workdir} is not a training workdir (launch.train writes "
            "config.json there when it starts)."
        )
    saved = json.loads(path.read_text())
    return _with_current_defaults(saved)


def _with_current_defaults(saved: dict[str, Any]) -> ml_collections.ConfigDict:
    """The saved config over today's defaults, so a run written before a field existed still loads."""
    from llm.data.config import default_data_config
    from llm.parallel.config import default_mesh_config
    from llm.train.config import default_train_config

    defaults = {
        "data": default_data_config,
        "train": default_train_config,
        "mesh": default_mesh_config,
    }
    config = ml_collections.ConfigDict()
    for group, values in saved.items():
        if group in defaults and isinstance(values, dict):
            merged = defaults[group]().to_dict()
            merged.update(values)
            config[group] = ml_collections.ConfigDict(merged)
        else:
            config[group] = values
    return config


# Model fields that never change a parameter's shape: left out of the differences listed.
_SHAPE_NEUTRAL = frozenset(
    {
        "dropout_rate",
        "attention_dropout_rate",
        "attention_impl",
        "remat",
        "dtype",
        "norm_eps",
        "rope_theta",
        "sinusoidal_layout",
        "scale_embeddings",
        "pad_id",
    }
)
# Train fields that decide the optimizer state's structure (llm.train.optim.make_optimizer).
_OPTIMIZER_STATE = ("optimizer", "grad_clip_norm", "weight_decay", "decay_embeddings", "b1")


def state_config_changes(
    saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict
) -> list[str]:
    """'group.field: old (workdir) vs new (now)' for each field that may shape the state."""
    # Over the defaults on both sides: a field added since the run was written is no change.
    defaults = models.ModelConfig().to_dict()
    old_model = defaults | saved.model.to_dict()
    new_model = defaults | config.model.to_dict()
    pairs = [
        (f"model.{k}", old_model.get(k), new_model.get(k))
        for k in sorted(new_model.keys() | old_model.keys())
        if k not in _SHAPE_NEUTRAL
    ]
    pairs += [(f"train.{k}", saved.train.get(k), config.train.get(k)) for k in _OPTIMIZER_STATE]
    # JSON-equal counts as equal: config.json holds lists where configs hold tuples.
    return [
        f"{name}: {old!r} (workdir) vs {new!r} (now)"
        for name, old, new in pairs
        if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True)
    ]


def check_resumable(
    workdir: str | pathlib.Path, config: ml_collections.ConfigDict, abstract_state: Any
) -> None:
    """Raises ConfigError when WORKDIR's newest checkpoint cannot be restored into `config`'s state.

    The checkpoint's shapes decide (so a changed dropout, remat, mesh, step count or learning
    rate resumes); the message names the fields of WORKDIR/config.json that differ.
    """
    steps = available_steps(workdir)
    if not steps:
        return
    mismatches = ckpt_lib.shape_mismatches(checkpoint_dir(workdir), steps[-1], abstract_state)
    if not mismatches:
        return
    changes = []
    if (pathlib.Path(workdir) / "config.json").exists():
        changes = state_config_changes(load_run_config(workdir), config)
    what = "; ".join(changes) if changes else "; ".join(mismatches[:3])
    raise ConfigError(
        f"{workdir} holds checkpoints of another model or optimizer ({what}), which this "
        "config cannot resume from. Train it in a new --workdir, or resume with the "
        "workdir's settings."
    )


def available_steps(workdir: str | pathlib.Path) -> list[int]:
    """Steps of the complete checkpoints of a workdir, ascending (orbax's temporary dirs excluded)."""
    directory = checkpoint_dir(workdir)
    if not directory.is_dir():
        return []
    # Orbax renames a checkpoint to its bare step number only once it is complete.
    return sorted(int(p.name) for p in directory.iterdir() if re.fullmatch(r"\d+", p.name))


def _select_steps(workdir: pathlib.Path, step: int | None, last: int) -> list[int]:
    steps = available_steps(workdir)
    if not steps:
        raise CheckpointNotFoundError(
            f"No checkpoint in {checkpoint_dir(workdir)}; train first (launch.train "
            f"--workdir={workdir}) or point --workdir at a run that saved one."
        )
    if step is not None:
        if step not in steps:
            raise CheckpointNotFoundError(
                f"No checkpoint for step {step} in {checkpoint_dir(workdir)}; it has steps {steps}."
            )
        upto = [s for s in steps if s <= step]
    else:
        upto = steps
    if last < 1:
        raise ConfigError(f"average_last={last} must be >= 1 (1 = no averaging).")
    if last > len(upto):
        raise CheckpointNotFoundError(
            f"Averaging the last {last} checkpoints needs {last}, but {checkpoint_dir(workdir)} "
            f"has {len(upto)} up to step {upto[-1]} ({upto}); raise config.train.keep_checkpoints "
            "when training or average fewer."
        )
    return upto[-last:]


def abstract_params(
    config: ml_collections.ConfigDict, model: nn.Module, mesh: Mesh, rules: LogicalRules
) -> Any:
    """ShapeDtypeStructs (with shardings) of the params, as the training loop lays them out."""
    model_cfg = models.ModelConfig.from_dict(config.model.to_dict())
    # Batch 1 suffices for shapes: params do not depend on the batch. The
    # optimizer is irrelevant to params, so none is built (its state layout may
    # have changed since the run was written).
    example = models.dummy_batch(model_cfg, 1, *sequence_lengths(config.data))
    state, _ = abstract_state(
        jax.random.key(0),
        model=model,
        tx=optax.identity(),
        example_batch=example,
        mesh=mesh,
        rules=rules,
    )
    return state.params


def restore_params_at(workdir: str | pathlib.Path, step: int, abstract: Any) -> Any:
    """Only the params of checkpoints/<step> (not the optimizer state), onto `abstract`'s shardings.

    They are checked against the checksums saved with them and for NaN/inf
    (CheckpointCorruptError otherwise).
    """
    manager = make_manager(workdir)
    try:
        return ckpt_lib.restore_params(manager, step, abstract)
    finally:
        manager.close()


def restore_params(
    path: str | pathlib.Path,
    *,
    step: int | None = None,
    average_last: int = 1,
    devices: Sequence[jax.Device] | None = None,
    mesh_overrides: dict[str, int] | None = None,
) -> Restored:
    """Config, model and params of the latest (or given) checkpoint of a workdir, on its mesh.

    average_last=N > 1 averages the params of the last N checkpoints up to that
    step (AIAYN averaged 5 for base, 20 for big). `path` may be the workdir,
    its checkpoints/ dir or one checkpoints/<step>/ dir. mesh_overrides
    replaces config.mesh sizes (e.g. {'data': -1} to decode on fewer devices).
    """
    from llm.decode.averaging import average_params

    workdir, path_step = resolve_workdir(path)
    if step is None:
        step = path_step
    config = load_run_config(workdir)
    steps = _select_steps(workdir, step, average_last)
    on_mesh = ml_collections.ConfigDict(config.to_dict())
    for key, value in (mesh_overrides or {}).items():
        on_mesh.mesh[key] = value
    model_cfg, model, mesh, rules = model_and_mesh(on_mesh, devices)
    abstract = abstract_params(config, model, mesh, rules)
    params_list = [restore_params_at(workdir, s, abstract) for s in steps]
    if len(params_list) == 1:
        params = params_list[0]
    else:
        shardings = jax.tree.map(lambda a: a.sharding, abstract)
        with jax.set_mesh(mesh):
            params = jax.jit(average_params, out_shardings=shardings)(params_list)
    return Restored(
        config=config,
        model_cfg=model_cfg,
        model=model,
        params=params,
        steps=steps,
        mesh=mesh,
        rules=rules,
        workdir=workdir,
    )


def save_averaged(
    workdir: str | pathlib.Path,
    output_workdir: str | pathlib.Path,
    *,
    last: int,
    step: int | None = None,
    output_step: int | None = None,
) -> tuple[list[int], pathlib.Path]:
    """Writes OUT/checkpoints/<step> with the average of the last `last` checkpoints' params.

    The checkpoint's 'state' item holds `step` and `params` only (no optimizer
    state): restore_params (hence launch.eval / launch.decode) reads it like
    any other, but training cannot resume from it. Returns (averaged steps,
    checkpoint path).
    """
    run = restore_params(workdir, step=step, average_last=last)
    state = {"step": np.asarray(run.step, np.int32), "params": run.params}
    target = output_step if output_step is not None else run.step
    out_dir = checkpoint_dir(output_workdir)
    if (out_dir / str(target)).exists():
        raise OutputExistsError(f"{out_dir / str(target)} exists; pick another --output_step.")
    manager = make_manager(output_workdir)
    try:
        ckpt_lib.save(manager, target, state, None)
        ckpt_lib.wait(manager)
    finally:
        manager.close()
    return run.steps, out_dir / str(target)
