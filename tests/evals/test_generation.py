"""generation_metrics: which metrics a dataset gets, and BLEU of a (barely) trained AIAYN on tiny_numbers."""

import pytest

from llm.evals.generation import generation_metrics, metric_kinds


def test_metric_kinds_follow_the_dataset():
    assert metric_kinds("wmt14_translate/de-en") == ("bleu",)
    assert metric_kinds("tiny_numbers") == ("bleu",)
    assert metric_kinds("cnn_dailymail") == ("rouge",)
    assert metric_kinds("local_parallel") == ("bleu", "rouge")


@pytest.mark.slow
def test_generation_metrics_on_a_trained_encoder_decoder(tmp_path):
    from llm.data import get_tokenizer
    from llm.train.loop import train_and_evaluate
    from llm.train.restore import restore_params
    from tests.canaries.common import experiment

    config = experiment(
        "aiayn.py:tiny",
        str(tmp_path / "data"),
        model__d_model=32,
        model__d_ff=64,
        model__num_encoder_layers=1,
        model__num_decoder_layers=1,
        train__steps=2,
        train__warmup_steps=1,
        train__eval_every=0,
        train__checkpoint_every=2,
        train__batch_size=8,
    )
    train_and_evaluate(config, tmp_path / "run")
    run = restore_params(tmp_path / "run")
    scores = generation_metrics(
        run,
        get_tokenizer(run.config.data),
        split="validation",
        max_examples=8,
        beam_size=2,
        alpha=0.6,
        max_decode_len=8,
    )
    assert set(scores) == {"eval/bleu"}
    assert 0.0 <= scores["eval/bleu"] <= 100.0
