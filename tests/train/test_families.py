"""Every model family trains through the one loop, sharded (2,2,2) == one device."""

import pathlib

import jax
import numpy as np
import pytest

from llm.config import load_config
from llm.train.loop import Trainer
from llm.train.metrics import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]

SHRINK = {
    "model.d_model": "32",
    "model.num_heads": "4",
    "model.d_ff": "64",
    "model.num_layers": "2",
    "train.batch_size": "8",
    "train.steps": "3",
    "train.warmup_steps": "1",
    "train.log_every": "1",
    "train.eval_every": "0",
    "train.checkpoint_every": "100",
    "train.sample_tokens": "0",
}
FAMILIES = {
    "llama": {"data.seq_len": "32", "model.max_len": "32", "model.num_kv_heads": "2"},
    "aiayn": {
        "data.inputs_len": "32",
        "data.targets_len": "16",
        "model.max_len": "32",
        "model.num_encoder_layers": "2",
        "model.num_decoder_layers": "1",
    },
    "bert": {"data.seq_len": "32", "model.max_len": "32"},
}


def _losses(name, data_dir, workdir, mesh, devices=None):
    overrides = {
        **SHRINK,
        **FAMILIES[name],
        "data.data_dir": data_dir,
        "mesh.data": str(mesh[0]),
        "mesh.fsdp": str(mesh[1]),
        "mesh.tensor": str(mesh[2]),
        "mesh.rules": "fsdp_tp",
    }
    config = load_config(str(ROOT / "experiments" / f"{name}.py:tiny"), list(overrides.items()))
    trainer = Trainer(config, workdir, devices=devices)
    try:
        trainer.run()
    finally:
        trainer.close()
    return [r["loss"] for r in read_metrics(workdir) if "loss" in r]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_sharded_like_one_device(name, data_dir, tmp_path):
    one = _losses(name, data_dir, tmp_path / "one", (1, 1, 1), devices=jax.devices()[:1])
    sharded = _losses(name, data_dir, tmp_path / "sharded", (2, 2, 2))
    assert len(one) == 3 and all(np.isfinite(one))
    np.testing.assert_allclose(sharded, one, rtol=1e-4)
