"""Periodic BLEU during training of a seq2seq run."""

import pytest

from llm.data import get_tokenizer
from llm.evals import corpus_bleu
from llm.evals.generation import bleu_tokenize, generation_eval
from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from llm.train.restore import restore_params
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
        train__warmup_steps=1,
        train__batch_size=8,
        train__eval_every=2,
        train__eval_steps=1,
        train__checkpoint_every=100,
        train__eval_generation_examples=4,
        train__eval_beam_size=2,
    )
    metrics = train_and_evaluate(config, tmp_path)
    rows = [r for r in read_metrics(tmp_path) if "eval/bleu" in r]
    assert [r["step"] for r in rows] == [2] and rows[0]["eval/loss"] > 0
    # The logged BLEU is sacrebleu's score of what the final params decode on those sources.
    run = restore_params(tmp_path)
    result = generation_eval(
        run,
        get_tokenizer(run.config.data),
        split=run.config.data.eval_split,
        max_examples=4,
        beam_size=2,
    )
    assert len(result.hypotheses) == 4 and result.split_examples > 4
    tokenize = bleu_tokenize(run.config.data)
    assert tokenize == "char" and "tok:char" in result.bleu_signature
    expected = corpus_bleu(result.hypotheses, result.references, tokenize=tokenize).score
    assert metrics["eval/bleu"] == pytest.approx(expected, abs=1e-6)
    assert rows[0]["eval/bleu"] == pytest.approx(expected, abs=1e-6)
