"""Training on a data mixture: tokens per source logged and resumed, eval loss per source."""

import numpy as np
import pytest

from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from tests.canaries.common import experiment
from tests.train.tiny import SECONDS

MIX = "tiny_grammar:0.7,tiny_grammar_docs:0.3"
SOURCES = ("tiny_grammar", "tiny_grammar_docs")


def _config(data_dir, **overrides):
    settings = SECONDS | dict(
        data__mixture=MIX, train__steps=6, train__eval_every=6, train__eval_steps=2
    )
    settings |= overrides
    # Logged every 2 steps, checkpointed at 3: the counts at 3 get a row of their own.
    return experiment("tiny_lm.py", data_dir, **settings)


def _rows(workdir, key):
    return {r["step"]: r for r in read_metrics(workdir) if key in r}


def test_mixture_logs_tokens_per_source_resumes_them_and_scores_each_source(data_dir, tmp_path):
    config = _config(data_dir, train__log_every=2, train__checkpoint_every=3)
    metrics = train_and_evaluate(config, tmp_path / "straight")
    tokens = _rows(tmp_path / "straight", "data/tiny_grammar/tokens")
    assert sorted(tokens) == [2, 3, 4, 6]
    seen = [sum(tokens[s][f"data/{n}/tokens"] for n in SOURCES) for s in (2, 4, 6)]
    # 8 rows of 32 per step, packed nearly full: ~256 tokens a step, all counted.
    assert 0.9 * 512 <= seen[0] <= 512 and np.allclose(np.diff(seen), seen[0], rtol=0.1)
    shares = [tokens[s]["data/tiny_grammar_docs/fraction"] for s in (2, 4, 6)]
    assert 0.05 < np.mean(shares) < 0.6  # 0.3 of 48 rows: a wide binomial

    # Each source's eval split scored alone; eval/loss is their 0.7 / 0.3 mean.
    per_source = [metrics[f"eval/{n}/loss"] for n in SOURCES]
    assert metrics["eval/loss"] == pytest.approx(0.7 * per_source[0] + 0.3 * per_source[1])
    assert metrics["eval/perplexity"] == pytest.approx(np.exp(metrics["eval/loss"]))
    assert per_source[0] != per_source[1]

    # Stopped at the checkpoint of step 3 and resumed: the same losses and counts.
    train_and_evaluate(config, tmp_path / "resumed", stop_at_step=3)
    resumed_metrics = train_and_evaluate(config, tmp_path / "resumed")
    resumed = _rows(tmp_path / "resumed", "data/tiny_grammar/tokens")
    for n in SOURCES:
        assert resumed[6][f"data/{n}/tokens"] == tokens[6][f"data/{n}/tokens"]
    losses = {s: r["loss"] for s, r in _rows(tmp_path / "straight", "loss").items()}
    again = {s: r["loss"] for s, r in _rows(tmp_path / "resumed", "loss").items()}
    assert sorted(again) == [2, 3, 4, 6]  # the stopped run logged its last step, 3
    np.testing.assert_allclose([again[s] for s in losses], list(losses.values()), atol=1e-6)
    assert resumed_metrics["eval/loss"] == pytest.approx(metrics["eval/loss"], abs=1e-6)
