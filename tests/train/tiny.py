"""A tiny decoder config shared by the training tests."""

import ml_collections

from tests.canaries.common import experiment

# tiny_lm (experiments/tiny_lm.py) shrunk from minutes to seconds.
SECONDS = dict(
    model__d_model=64,
    model__num_heads=4,
    model__d_ff=128,
    model__num_layers=2,
    model__max_len=32,
    data__seq_len=32,
    train__batch_size=8,
    train__steps=6,
    train__warmup_steps=2,
    train__log_every=1,
    train__eval_every=0,
    train__checkpoint_every=3,
    train__sample_tokens=0,
    train__downstream_every=0,
)


def tiny_config(data_dir: str, **train: object) -> ml_collections.ConfigDict:
    """tiny_lm shrunk to seconds: 2 layers of width 64, rows of 32 tokens; `train` overrides."""
    return experiment(
        "tiny_lm.py", data_dir, **(SECONDS | {f"train__{k}": v for k, v in train.items()})
    )
