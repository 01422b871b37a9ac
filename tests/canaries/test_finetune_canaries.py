"""Canaries: tiny BERTs fine-tuned for span QA (tiny_qa) and classification (tiny_glue).

Span QA: experiments/bert_squad.py:tiny trains from scratch on the generated tiny_qa
facts, and launch.eval's path (windows, best valid span, SQuAD normalization) scores the
validation questions. A question picks one of two or three facts, so the span of the
right kind from a random fact scores the random-fact EM (the mean of 1 / facts, ~42%).
Stated target: EM >= the random-fact EM + 10, and F1 >= EM. Measured 2026-12-02
(2-core Xeon, alone): EM 59.4 (random fact 41.7; 'Who keeps ...?' questions 70.0,
the kinds that must match the question's name lower) after 400 steps, 249 s; 800
steps at lr 2e-3 reached 64.2 and were still rising (see the note of issue #16). Fewer
steps leave too little margin (2026-12-02, 2-core CPU, one device): EM 53.0 after 300
(50.0 at lr 2e-3), 48.0 after 250, against the threshold 51.7; the test's 400 took 196 s.
Classification: experiments/bert_glue.py:tiny (negated judgements) must reach accuracy
>= 90 and Matthews correlation >= 80; the majority class scores about 50.
"""

import numpy as np
import pytest

from llm import data as data_lib
from llm.evals.finetune import classification_eval, span_qa_predictions
from llm.evals.squad import squad_scores
from llm.train.loop import Trainer
from llm.train.restore import restore_params
from tests.canaries.common import Timer, experiment

MIN_MARGIN_OVER_RANDOM_FACT = 10.0
MIN_ACCURACY = 90.0
MIN_MATTHEWS = 80.0
# bert_glue.py:tiny trains 150; 100 already score as high (the test's docstring).
CLASSIFIER_STEPS = 100


def _train(config, workdir):
    trainer = Trainer(config, workdir)
    try:
        trainer.run()
    finally:
        trainer.close()
    return restore_params(workdir), trainer.tokenizer


@pytest.mark.slow
def test_tiny_span_qa_reaches_exact_match(tmp_path):
    """A canary (about 4 minutes here): the module docstring has its measured numbers."""
    timer = Timer()
    config = experiment(
        "bert_squad.py:tiny",
        str(tmp_path / "data"),
        train__eval_every=0,
        train__checkpoint_every=1000,
    )
    run, tokenizer = _train(config, tmp_path / "run")
    source = data_lib.get_source(config.data, "validation")
    records = [source[i] for i in range(len(source))]
    predictions = span_qa_predictions(run, tokenizer, records)
    gold = {_text(r["id"]): [_text(a) for a in r["answers"]["text"]] for r in records}
    scores = squad_scores(predictions, gold)
    who = [r for r in records if _text(r["question"]).startswith("Who ")]
    who_em = squad_scores(
        {_text(r["id"]): predictions[_text(r["id"])] for r in who},
        {_text(r["id"]): gold[_text(r["id"])] for r in who},
    )["exact_match"]
    random_fact = 100.0 * np.mean([1 / _text(r["context"]).count(" keeps ") for r in records])
    print(
        f"span QA canary: EM {scores['exact_match']:.1f} F1 {scores['f1']:.1f} on "
        f"{len(records)} questions ('Who' EM {who_em:.1f} on {len(who)}; random fact "
        f"{random_fact:.1f}) in {timer():.0f}s"
    )
    assert len(records) == 500
    assert scores["exact_match"] >= random_fact + MIN_MARGIN_OVER_RANDOM_FACT
    assert scores["f1"] >= scores["exact_match"]


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@pytest.mark.slow
def test_tiny_classifier_beats_the_majority_class(tmp_path):
    """Measured 2026-12-02 (2-core CPU, alone): accuracy 99.6, MCC 99.2 after the canary's 100
    steps, 38 s; the same after bert_glue.py:tiny's 150 (48 s)."""
    timer = Timer()
    config = experiment(
        "bert_glue.py:tiny",
        str(tmp_path / "data"),
        train__steps=CLASSIFIER_STEPS,
        train__warmup_steps=CLASSIFIER_STEPS // 10,
        train__eval_every=0,
        train__checkpoint_every=1000,
    )
    run, _ = _train(config, tmp_path / "run")
    scores = classification_eval(run, split="validation")
    source = data_lib.get_source(config.data, "validation")
    labels = np.array([int(source[i]["label"]) for i in range(len(source))])
    majority = 100.0 * np.bincount(labels).max() / len(labels)
    print(
        f"classification canary: accuracy {scores['eval/accuracy']:.1f} (majority "
        f"{majority:.1f}) F1 {scores['eval/f1']:.1f} MCC {scores['eval/matthews']:.1f} "
        f"on {scores['eval/examples']:.0f} in {timer():.0f}s"
    )
    assert scores["eval/examples"] == len(labels) == 500
    assert scores["eval/accuracy"] >= MIN_ACCURACY
    assert scores["eval/matthews"] >= MIN_MATTHEWS
