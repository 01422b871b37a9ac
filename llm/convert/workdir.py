"""Hugging Face folder <-> workdir (config.json + orbax checkpoint) that launch.train/decode use.

The import writes a full train state at step 0 (params, the optimizer state of
config.train, counters) on the config's mesh, so `launch.train` resumes from it
(fine-tuning) and `launch.decode`/`launch.eval` restore its params.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import jax
import ml_collections
import numpy as np

from llm import models
from llm.config_checks import task_of_model
from llm.convert.api import load_hf, save_hf
from llm.convert.hf_files import ConversionError
from llm.data.config import default_data_config
from llm.data.hf_tokenizer import TOKENIZER_FILES, has_tokenizer
from llm.parallel.config import default_mesh_config
from llm.train import checkpoint as ckpt_lib
from llm.train.config import default_train_config

# The imported checkpoint's own config.json, kept for its token ids on export.
HF_CONFIG_FILE = "hf_config.json"


def experiment_config(
    model_cfg: models.ModelConfig, base: ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
    """A full experiment config for the imported model: base's data/train/mesh, else defaults.

    The defaults use the byte tokenizer and the generated tiny_grammar data: they
    make the workdir runnable, not a meaningful fine-tuning recipe (see docs/convert.md).
    """
    config = ml_collections.ConfigDict()
    config.model = model_cfg.to_dict()
    if base is not None:
        for group in ("data", "train", "mesh"):
            config[group] = ml_collections.ConfigDict(base[group].to_dict())
        return config
    config.data = default_data_config()
    config.data.task = task_of_model(model_cfg)
    length = min(128, model_cfg.max_len)
    config.data.seq_len = config.data.inputs_len = config.data.targets_len = length
    if model_cfg.family == "encoder_decoder":
        config.data.dataset = "tiny_numbers"
    config.train = default_train_config()
    config.mesh = default_mesh_config()
    return config


def _train_state(config: ml_collections.ConfigDict, params: Any) -> Any:
    """Step-0 TrainState holding `params`, laid out as the trainer shards it."""
    from llm.train.program import build_train_program
    from llm.train.state import TrainState

    program = build_train_program(config)
    mesh = program.mesh
    shardings = program.state_shardings
    with jax.set_mesh(mesh):
        sharded = jax.device_put(params, shardings.params)
        opt_state = jax.jit(program.tx.init, out_shardings=shardings.opt_state)(sharded)
        zero = jax.device_put(np.zeros((), np.int32), shardings.step)
    return TrainState(
        step=zero,
        params=sharded,
        opt_state=opt_state,
        nonfinite_in_row=zero,
        nonfinite_total=zero,
    )


def _copy_tokenizer(
    hf_dir: pathlib.Path, workdir: pathlib.Path, config: ml_collections.ConfigDict
) -> None:
    """Copies the checkpoint's tokenizer into WORKDIR/tokenizer and makes the config use it.

    Only for BERT-style encoders: fine-tuning needs the exact WordPiece vocabulary, and
    their [CLS]/[SEP]/[PAD]/[MASK] map onto our special ids. GPT-2 and LLaMA tokenizers
    have no pad token, so their workdirs keep the byte tokenizer (docs/convert.md).
    """
    target = workdir / "tokenizer"
    target.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        if (hf_dir / name).is_file():
            shutil.copyfile(hf_dir / name, target / name)
    config.data.tokenizer = "huggingface"
    config.data.hf_tokenizer = str(target.resolve())


def import_to_workdir(
    hf_dir: str | pathlib.Path,
    workdir: str | pathlib.Path,
    *,
    base_config: ml_collections.ConfigDict | None = None,
    **model_overrides: Any,
) -> ml_collections.ConfigDict:
    """Converts a HF folder into WORKDIR/config.json + checkpoints/0; returns the config."""
    workdir = pathlib.Path(workdir)
    checkpoints = ckpt_lib.checkpoint_dir(workdir)
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise ConversionError(f"{checkpoints} is not empty; import into a new --workdir.")
    model_cfg, params, hf = load_hf(hf_dir, **model_overrides)
    config = experiment_config(model_cfg, base_config)
    state = _train_state(config, params)
    workdir.mkdir(parents=True, exist_ok=True)
    if base_config is None and model_cfg.family == "encoder" and has_tokenizer(hf_dir):
        _copy_tokenizer(pathlib.Path(hf_dir), workdir, config)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    (workdir / HF_CONFIG_FILE).write_text(json.dumps(hf, indent=2) + "\n")
    manager = ckpt_lib.make_manager(workdir, keep=config.train.keep_checkpoints, async_save=False)
    try:
        ckpt_lib.save(manager, 0, state, None)
        manager.wait_until_finished()
    finally:
        manager.close()
    return config


def export_workdir(
    workdir: str | pathlib.Path, hf_dir: str | pathlib.Path, *, step: int | None = None
) -> pathlib.Path:
    """Writes the params of a workdir's checkpoint (latest or `step`) as a HF folder."""
    from llm.train.restore import resolve_workdir, restore_params

    run = restore_params(workdir, step=step)
    root, _ = resolve_workdir(workdir)
    base = None
    if (root / HF_CONFIG_FILE).is_file():
        base = json.loads((root / HF_CONFIG_FILE).read_text())
    elif run.config.data.tokenizer == "byte":
        from llm.data.tokenizers import ByteTokenizer

        tok = ByteTokenizer()
        base = {"pad_token_id": tok.pad_id, "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id}
        if run.model_cfg.family == "encoder_decoder":
            base["decoder_start_token_id"] = tok.bos_id
            base["forced_eos_token_id"] = tok.eos_id
    return save_hf(run.model_cfg, run.params, hf_dir, base)
