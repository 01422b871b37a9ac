"""Start a run from a pretrained workdir (config.train.init_from): fine-tuning.

The pretrained run (ours, or a Hugging Face checkpoint imported by launch.convert) fixes
the model's shape and vocabulary, so its model sizes and tokenizer are adopted; the
fine-tuning config keeps what a fine-tuning recipe chooses (the head, its classes,
dropout, remat, dtypes). At the first step, every parameter whose path and shape both
runs share is copied; the new head keeps its initialisation, and the pretrained heads
the new model lacks (BERT's MLM and NSP) are dropped. Both are logged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from absl import logging
from flax.traverse_util import flatten_dict, unflatten_dict

from llm import models
from llm.errors import ConfigError
from llm.train.restore import load_run_config, restore_params

# Model fields a fine-tuning config sets itself; every other one comes from the pretrained run.
FINE_TUNING_FIELDS = (
    "encoder_head",
    "num_labels",
    "dropout_rate",
    "attention_dropout_rate",
    "remat",
    "scan_layers",
    "attention_impl",
    "dtype",
    "param_dtype",
)
# Data fields that must match the pretrained run: its vocabulary.
TOKENIZER_FIELDS = ("tokenizer", "spm_model", "hf_tokenizer", "vocab_size", "spm_type")


def adopt_pretrained(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with the model sizes and tokenizer of config.train.init_from."""
    source = config.train.get("init_from", "")
    if not source:
        return config
    pretrained = load_run_config(source)
    out = ml_collections.ConfigDict(config.to_dict())
    for key, value in pretrained.model.items():
        if key not in FINE_TUNING_FIELDS and key in out.model:
            out.model[key] = value
    data = pretrained.data
    for key in TOKENIZER_FIELDS:
        if key in data and key in out.data:
            out.data[key] = data[key]
    if data.tokenizer == "sentencepiece" and not data.spm_model:
        # The pretrained run trained its model and cached it beside its own dataset.
        from llm.data import spm

        out.data.spm_model = spm.cache_path(data)
    return out


@dataclasses.dataclass(frozen=True)
class Transfer:
    """What init_from copied: loaded, new (kept from init) and dropped parameter paths."""

    loaded: list[str]
    new: list[str]
    dropped: list[str]
    loaded_count: int


def _flat_unrolled(cfg: models.ModelConfig, params: Any) -> dict[str, np.ndarray]:
    from llm.convert.layout import to_flat  # scan and unrolled layouts -> one flat layout

    return to_flat(cfg, params)


def transfer_params(
    model_cfg: models.ModelConfig,
    params: Any,
    pretrained_cfg: models.ModelConfig,
    pretrained_params: Any,
) -> tuple[Any, Transfer]:
    """`params` (unboxed) with every same-path, same-shape pretrained tensor copied in (numpy)."""
    from llm.convert.layout import stack_layers

    ours = _flat_unrolled(model_cfg, params)
    theirs = _flat_unrolled(pretrained_cfg, pretrained_params)
    mismatched = [
        f"{k}: pretrained {theirs[k].shape}, this model {ours[k].shape}"
        for k in ours
        if k in theirs and theirs[k].shape != ours[k].shape
    ]
    if mismatched:
        raise ConfigError(
            "config.train.init_from has parameters of other shapes than this model's:\n  "
            + "\n  ".join(mismatched[:8])
            + "\nThe model sizes come from the pretrained run; a fine-tuning config may only "
            "change " + ", ".join(FINE_TUNING_FIELDS) + "."
        )
    loaded = sorted(k for k in ours if k in theirs)
    if not loaded:
        raise ConfigError(
            "config.train.init_from shares no parameter with this model: is it a run of "
            f"another family (pretrained {pretrained_cfg.family!r}, this {model_cfg.family!r})?"
        )
    merged = {k: theirs[k] if k in theirs else ours[k] for k in ours}
    dtypes = {k: v.dtype for k, v in flatten_dict(nn.meta.unbox(params), sep="/").items()}
    if model_cfg.scan_layers:
        merged = stack_layers(merged)
    merged = {k: np.asarray(v).astype(dtypes[k]) for k, v in merged.items()}
    report = Transfer(
        loaded=loaded,
        new=sorted(k for k in ours if k not in theirs),
        dropped=sorted(k for k in theirs if k not in ours),
        loaded_count=int(sum(theirs[k].size for k in loaded)),
    )
    return unflatten_dict(merged, sep="/"), report


def load_pretrained(config: ml_collections.ConfigDict, params: Any, shardings: Any) -> Any:
    """Freshly initialised `params` (on `shardings`) with config.train.init_from's copied in."""
    source = config.train.init_from
    run = restore_params(source)
    model_cfg = models.ModelConfig.from_dict(config.model.to_dict())
    host = jax.device_get(params)
    merged, report = transfer_params(model_cfg, host, run.model_cfg, jax.device_get(run.params))
    logging.info(
        "init_from %s (step %d): loaded %d tensors (%.1fM params); new: %s; dropped: %s.",
        source,
        run.step,
        len(report.loaded),
        report.loaded_count / 1e6,
        _heads(report.new),
        _heads(report.dropped),
    )
    return jax.device_put(merged, shardings)


def _heads(paths: list[str]) -> str:
    """Top-level module names of `paths` (the heads), for one short log line."""
    return ", ".join(sorted({p.split("/")[0] for p in paths})) or "none"
