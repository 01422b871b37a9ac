"""experiments/summarization.py: TransformerAbs's cited settings and the CPU-scale variant."""

import pytest

from llm.config import load_config
from llm.errors import ConfigError


def test_paper_config_has_transformerabs_settings():
    config = load_config("experiments/summarization.py")
    data, model, train = config.data, config.model, config.train
    assert (data.dataset, data.inputs_key, data.targets_key) == (
        "cnn_dailymail/3.0.0",
        "article",
        "highlights",
    )
    assert (data.inputs_len, data.targets_len) == (512, 140)
    assert (train.eval_beam_size, train.eval_alpha) == (5, 0.95)
    assert (model.num_encoder_layers, model.num_decoder_layers, model.d_model, model.d_ff) == (
        6,
        6,
        512,
        2048,
    )
    assert (model.num_heads, model.dropout_rate) == (8, 0.1)
    assert (train.steps, train.warmup_steps, train.b2) == (200_000, 8000, 0.999)
    assert train.learning_rate == pytest.approx(0.05 * 8000**-0.5)
    assert train.label_smoothing == 0.1 and train.grad_clip_norm == 0.0


def test_tiny_variant_trains_on_generated_stories():
    config = load_config("experiments/summarization.py:tiny")
    assert (config.data.dataset, config.data.task) == ("tiny_summaries", "seq2seq")
    assert config.model.vocab_size >= config.data.vocab_size
    assert config.train.steps <= 300


def test_unknown_variant_is_refused():
    with pytest.raises(ConfigError, match="'cnndm' or 'tiny', not 'xsum'"):
        load_config("experiments/summarization.py:xsum")
