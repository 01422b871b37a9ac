"""What a run reports: the start-up summary's numbers, the grammar's loss bound, eval keys."""

import dataclasses
import math
import pathlib
import re

import jax
import pytest

from llm.data import grammar
from llm.train.evaluate import eval_prefix, with_prefix
from llm.train.program import build_train_program
from llm.train.summary import (
    bound_line,
    count_params,
    format_count,
    loss_bound,
    startup_summary,
)
from tests.canaries.common import experiment
from tests.train.tiny import SECONDS

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """The tiny decoder on a 2 x 2 x 2 mesh of the 8 simulated devices."""
    mesh = dict(mesh__data=2, mesh__fsdp=2, mesh__tensor=2, mesh__rules="fsdp_tp")
    config = experiment("tiny_lm.py", str(tmp_path_factory.mktemp("data")), **SECONDS, **mesh)
    return build_train_program(config, devices=jax.devices()[:8])


def test_summary_numbers_are_the_programs(program, tmp_path):
    text = startup_summary(
        program, tmp_path / "run", experiment="experiments/tiny_lm.py", resume_step=6
    )
    # The real count: the initialised parameters, not a formula.
    real = sum(x.size for x in jax.tree_util.tree_leaves(program.init_state().params))
    assert count_params(program.abstract_state.params) == real
    lines = text.splitlines()
    assert lines[0] == (
        f"Training experiments/tiny_lm.py (full config: {tmp_path / 'run' / 'config.json'})"
    )
    assert f"decoder, {format_count(real)} parameters ({real:,})" in lines[1]
    assert "8 cpu; mesh data=2 fsdp=2 tensor=2; rules fsdp_tp" in lines[2]
    # 8 sequences over data x fsdp = 4 batch shards; tensor devices share theirs.
    assert "8 global, 2 per device (split over data x fsdp = 4)" in lines[3]
    assert f"{8 * 32:,} tokens per step (8 x 32)" in lines[3]
    assert "adamw, peak lr 0.003, warmup 2, cosine decay to 0.0003 at step 6" in lines[4]
    assert lines[5] == f"  workdir    {tmp_path / 'run'}; resuming from step 6"
    assert len(lines) == 6
    fresh = startup_summary(program, tmp_path / "run").splitlines()
    assert fresh[0].startswith("Training a config") and fresh[5].endswith(str(tmp_path / "run"))


@pytest.mark.parametrize(
    "n, text",
    [
        (999, "999"),
        (1_500, "1.50K"),
        (50_000, "50.0K"),
        (834_304, "0.83M"),
        (124_439_808, "124M"),
        (6_738_415_616, "6.74B"),
        (1_000_000_000_000, "1.00T"),
    ],
)
def test_format_count(n, text):
    assert format_count(n) == text


def test_grammar_bound_matches_the_documented_one():
    documented = re.search(
        r"exact entropy bound of ([\d.]+)\s+\(perplexity\s+([\d.]+)\)",
        (ROOT / "experiments" / "tiny_lm.py").read_text(),
    )
    bound, perplexity = float(documented.group(1)), float(documented.group(2))
    assert bound == 0.375
    config = experiment("tiny_lm.py", "/unused")
    assert loss_bound(config) == grammar.entropy_per_token()
    assert abs(loss_bound(config) - bound) < 1e-3
    assert abs(math.exp(loss_bound(config)) - perplexity) < 1e-3
    line = bound_line(config, {"eval/loss": 0.3854, "loss": 0.4})
    assert line == (
        "eval loss 0.385 nats/token; the grammar's entropy bound is 0.375 (perplexity 1.455)"
    )
    assert bound_line(config, {"loss": 0.4}) is None  # no eval, nothing to compare


def test_no_bound_where_the_data_has_none():
    config = experiment("tiny_lm.py", "/unused")
    config.data.pack_mode = "concat"  # cuts sentences from their context
    assert loss_bound(config) is None
    config = experiment("tiny_lm.py", "/unused", data__dataset="tiny_numbers")
    assert loss_bound(config) is None and bound_line(config, {"eval/loss": 1.0}) is None


def test_other_splits_get_their_own_eval_keys():
    config = experiment("tiny_lm.py", "/unused")
    assert eval_prefix(config, "validation") == eval_prefix(config) == "eval"
    assert eval_prefix(config, "test") == "eval_test"
    assert eval_prefix(config, "train[99%:]") == "eval_train_99"
    scores = {"eval/loss": 1.0, "eval/mlm/accuracy": 0.5, "eval/bleu": 20.0, "loss": 2.0}
    assert with_prefix(scores, "eval_test") == {
        "eval_test/loss": 1.0,
        "eval_test/mlm/accuracy": 0.5,
        "eval_test/bleu": 20.0,
        "loss": 2.0,
    }
    assert with_prefix(scores, "eval") == scores


def test_summary_says_the_train_loss_is_label_smoothed(program, tmp_path):
    config = program.config.copy_and_resolve_references()
    with config.unlocked():
        config.train.label_smoothing = 0.1
    smoothed = dataclasses.replace(program, config=config)
    lines = startup_summary(smoothed, tmp_path / "run").splitlines()
    loss = [line for line in lines if line.startswith("  loss ")]
    assert loss == [
        "  loss       train 'loss' is label-smoothed (0.1) cross-entropy minus the smoothed "
        "targets' entropy; eval/loss is plain NLL (perplexity = exp)"
    ]
    # Without smoothing the two are the same quantity: no line.
    assert not any(
        line.startswith("  loss ") for line in startup_summary(program, tmp_path).splitlines()
    )
