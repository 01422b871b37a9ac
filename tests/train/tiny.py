"""A tiny decoder config shared by the training tests."""

import pathlib

import ml_collections

from llm.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny_config(data_dir: str, **train) -> ml_collections.ConfigDict:
    """tiny_lm shrunk to seconds: 2 layers of width 64, rows of 32 tokens."""
    overrides = {
        "model.d_model": "64",
        "model.num_heads": "4",
        "model.d_ff": "128",
        "model.num_layers": "2",
        "model.max_len": "32",
        "data.seq_len": "32",
        "data.data_dir": data_dir,
        "train.batch_size": "8",
        "train.steps": "6",
        "train.warmup_steps": "2",
        "train.log_every": "1",
        "train.eval_every": "0",
        "train.checkpoint_every": "3",
        "train.sample_tokens": "0",
    }
    overrides.update({f"train.{k}": str(v) for k, v in train.items()})
    return load_config(str(ROOT / "experiments" / "tiny_lm.py"), list(overrides.items()))
