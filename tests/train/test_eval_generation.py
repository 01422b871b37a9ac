"""Periodic BLEU during training of a seq2seq run."""

import pytest

from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from tests.canaries.common import experiment


@pytest.mark.slow
def test_seq2seq_eval_rows_carry_bleu(data_dir, tmp_path):
    config = experiment(
        "aiayn.py:tiny",
        data_dir,
        model__d_model=32,
        model__d_ff=64,
        model__num_layers=1,
        model__num_encoder_layers=1,
        model__num_decoder_layers=1,
        train__steps=2,
        train__batch_size=8,
        train__eval_every=2,
        train__eval_steps=1,
        train__checkpoint_every=100,
        train__eval_generation_examples=4,
        train__eval_beam_size=2,
    )
    metrics = train_and_evaluate(config, tmp_path)
    assert 0.0 <= metrics["eval/bleu"] <= 100.0
    rows = [r for r in read_metrics(tmp_path) if "eval/bleu" in r]
    assert [r["step"] for r in rows] == [2] and rows[0]["eval/loss"] > 0
