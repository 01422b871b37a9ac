"""Canary: a tiny BERT (experiments/bert.py:tiny) learns masked bytes far above the unigram baseline.

The unigram baseline is the accuracy of always predicting the most frequent
masked target of the held-out batches themselves (an upper bound on any
context-free guess). Stated target: MLM accuracy >= 0.60 and >= baseline + 0.40.
Measured (2026-11-30): post-LN after 150 steps sat exactly on the unigram plateau
(0.209 = baseline 0.209); pre-LN (bert.py:tiny now) reached 0.295 at 150 and 0.303 at
300 steps: above the baseline but far from the target, so the test is marked as a
known failure until the cause is found.
"""

import collections

import numpy as np
import pytest

from llm import data as data_lib
from llm.train.loop import train_and_evaluate
from tests.canaries.common import Timer, experiment

STEPS = 300
MIN_ACCURACY = 0.60
MIN_MARGIN = 0.40


def unigram_baseline(config, batches: int) -> float:
    """Accuracy of predicting the commonest masked target id, on the eval batches the loop scores."""
    it = data_lib.make_iterator(
        config.data,
        split=config.data.eval_split,
        batch_size=config.train.batch_size,
        seed=config.train.seed,
        shuffle=False,
        num_epochs=1,
    )
    counts: collections.Counter = collections.Counter()
    for i, batch in enumerate(it):
        if i >= batches:
            break
        chosen = batch["weights"] > 0
        counts.update(np.asarray(batch["targets"])[chosen].tolist())
    return counts.most_common(1)[0][1] / sum(counts.values())


@pytest.mark.slow
@pytest.mark.xfail(
    run=False,
    reason="Known failure, issue #5 open: tiny BERT reaches MLM accuracy 0.303 (pre-LN, 300 "
    "steps) vs unigram 0.209; post-LN stays at 0.22. Context is barely used: suspect the encoder "
    "or the MLM batches before tuning.",
)
def test_tiny_bert_beats_unigram_baseline(tmp_path):
    timer = Timer()
    config = experiment(
        "bert.py:tiny",
        str(tmp_path / "data"),
        train__steps=STEPS,
        train__eval_every=STEPS,
        train__eval_steps=8,
        train__checkpoint_every=STEPS,
    )
    metrics = train_and_evaluate(config, tmp_path / "run")
    accuracy = metrics["eval/mlm/accuracy"]
    baseline = unigram_baseline(config, batches=8)
    print(
        f"bert canary: MLM accuracy {accuracy:.4f} vs unigram baseline {baseline:.4f} "
        f"in {timer():.0f}s"
    )
    assert accuracy >= MIN_ACCURACY
    assert accuracy >= baseline + MIN_MARGIN
