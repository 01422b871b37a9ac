"""Model options added for Hugging Face interop: defaults unchanged, values validated."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from llm.models import ModelConfig
from llm.models.positions import sinusoidal
from tests.models.helpers import tiny


def test_split_sinusoids_are_the_interleaved_columns_reordered():
    pos = jnp.arange(7)[None]
    inter = np.asarray(sinusoidal(pos, 8))
    split = np.asarray(sinusoidal(pos, 8, layout="split"))
    np.testing.assert_array_equal(split[..., :4], inter[..., 0::2])
    np.testing.assert_array_equal(split[..., 4:], inter[..., 1::2])


def test_defaults_keep_old_behaviour():
    cfg = ModelConfig()
    assert (cfg.sinusoidal_layout, cfg.logits_bias, cfg.pad_id) == ("interleaved", False, 0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sinusoidal_layout": "halves"}, r"sinusoidal_layout='halves'"),
        ({"pad_id": 37}, r"pad_id=37 must be below vocab_size=37"),
        ({"pad_id": -1}, r"pad_id=-1 must be a non-negative"),
        ({"family": "encoder", "logits_bias": True}, r"logits_bias=True is for decoder"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)
