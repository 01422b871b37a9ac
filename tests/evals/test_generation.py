"""generation_metrics: which metrics a dataset gets, and BLEU of a (barely) trained AIAYN on tiny_numbers."""

import pytest

from llm.errors import ConfigError
from llm.evals import bleu
from llm.evals.bleu import corpus_bleu, tokenize_for_language
from llm.evals.generation import bleu_tokenize, generation_metrics, metric_kinds


def test_metric_kinds_follow_the_dataset():
    assert metric_kinds("wmt14_translate/de-en") == ("bleu",)
    assert metric_kinds("tiny_numbers") == ("bleu",)
    assert metric_kinds("cnn_dailymail") == ("rouge",)
    assert metric_kinds("local_parallel/ende") == ("bleu",)
    assert metric_kinds("local_summarization/news") == ("rouge",)
    assert metric_kinds("my_corpus") == ("bleu", "rouge")


@pytest.mark.parametrize(
    "lang, tokenize",
    [
        ("zh", "zh"),
        ("zh-Hans", "zh"),
        ("ja", "ja-mecab"),
        ("ko", "ko-mecab"),
        ("de", "13a"),
        ("", "13a"),
    ],
)
def test_bleu_tokenizer_follows_the_target_language(lang, tokenize):
    assert tokenize_for_language(lang) == tokenize


def _data_cfg(dataset, targets_key=""):
    from llm.data.config import default_data_config

    cfg = default_data_config()
    cfg.update(dataset=dataset, task="seq2seq", inputs_key="en" if targets_key else "")
    cfg.targets_key = targets_key
    return cfg


def test_bleu_tokenize_of_a_dataset_and_its_override():
    assert bleu_tokenize(_data_cfg("wmt19_translate/zh-en", targets_key="zh")) == "zh"
    assert bleu_tokenize(_data_cfg("wmt14_translate/de-en", targets_key="de")) == "13a"
    assert bleu_tokenize(_data_cfg("tiny_numbers")) == "char"
    assert bleu_tokenize(_data_cfg("tiny_numbers"), override="intl") == "intl"
    with pytest.raises(ConfigError, match="'nope' is not a sacrebleu tokenizer"):
        bleu_tokenize(_data_cfg("tiny_numbers"), override="nope")


def test_zh_tokenizer_scores_chinese_by_character():
    hyp, ref = ["我们今天去北京"], ["我们明天去北京"]
    assert corpus_bleu(hyp, ref).score == 0.0  # 13a: one 'word' each, and they differ
    assert corpus_bleu(hyp, ref, tokenize="zh").score > 30


def test_missing_mecab_names_the_pip_extra(monkeypatch):
    monkeypatch.setattr(bleu, "_installed", lambda module: False)
    with pytest.raises(ConfigError, match=r"pip install 'sacrebleu\[ja\]'"):
        bleu.check_tokenize("ja-mecab")
    with pytest.raises(ConfigError, match=r"pip install 'sacrebleu\[ko\]'"):
        bleu.check_tokenize("ko-mecab")


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
