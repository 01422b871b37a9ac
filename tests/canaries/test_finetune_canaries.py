"""Canaries: tiny BERTs fine-tuned for span QA (tiny_qa) and classification (tiny_glue).

Span QA: experiments/bert_squad.py:tiny trains from scratch on the generated tiny_qa
facts, and launch.eval's path (windows, best valid span, SQuAD normalization) must
reach exact match >= MIN_EXACT_MATCH on the validation questions. A question picks one
of two to four facts, so copying the span of a random fact of the right kind scores
about 36% EM (1 / facts, averaged): the canary asks for far more.
Classification: experiments/bert_glue.py:tiny must beat the majority class by a margin.
Measured results are in each test's docstring.
"""

import pytest

from llm.evals.finetune import classification_eval, span_qa_eval
from llm.train.loop import Trainer
from llm.train.restore import restore_params
from tests.canaries.common import Timer, experiment

MIN_EXACT_MATCH = 80.0
MIN_ACCURACY_MARGIN = 20.0


def _train(config, workdir):
    trainer = Trainer(config, workdir)
    try:
        trainer.run()
    finally:
        trainer.close()
    return restore_params(workdir), trainer.tokenizer


@pytest.mark.slow
def test_tiny_span_qa_reaches_exact_match(tmp_path):
    """Measured 2026-12-02 (2-core Xeon, other jobs running): see the issue #16 note."""
    timer = Timer()
    config = experiment(
        "bert_squad.py:tiny",
        str(tmp_path / "data"),
        train__eval_every=0,
        train__checkpoint_every=1000,
    )
    run, tokenizer = _train(config, tmp_path / "run")
    scores = span_qa_eval(run, tokenizer, split="validation")
    print(
        f"span QA canary: EM {scores['eval/exact_match']:.1f} F1 {scores['eval/f1']:.1f} "
        f"on {scores['eval/examples']:.0f} questions in {timer():.0f}s"
    )
    assert scores["eval/examples"] == 500
    assert scores["eval/exact_match"] >= MIN_EXACT_MATCH
    assert scores["eval/f1"] >= scores["eval/exact_match"]


@pytest.mark.slow
def test_tiny_classifier_beats_the_majority_class(tmp_path):
    """Measured 2026-12-02 (2-core Xeon, other jobs running): see the issue #16 note."""
    timer = Timer()
    config = experiment(
        "bert_glue.py:tiny",
        str(tmp_path / "data"),
        train__eval_every=0,
        train__checkpoint_every=1000,
    )
    run, _ = _train(config, tmp_path / "run")
    scores = classification_eval(run, split="validation")
    majority = majority_accuracy(config)
    print(
        f"classification canary: accuracy {scores['eval/accuracy']:.1f} (majority "
        f"{majority:.1f}) F1 {scores['eval/f1']:.1f} MCC {scores['eval/matthews']:.1f} "
        f"in {timer():.0f}s"
    )
    assert scores["eval/accuracy"] >= majority + MIN_ACCURACY_MARGIN


def majority_accuracy(config) -> float:
    """Accuracy (percent) of always predicting the validation split's commonest label."""
    import numpy as np

    from llm import data as data_lib

    source = data_lib.get_source(config.data, "validation")
    labels = np.array([int(source[i]["label"]) for i in range(len(source))])
    return 100.0 * np.bincount(labels).max() / len(labels)
