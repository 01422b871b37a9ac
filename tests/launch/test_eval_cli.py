"""launch.eval on a tiny decoder trained here: scores appended to metrics.jsonl, nothing dropped."""

import json

import pytest

from llm.evals.writer import append_metrics
from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from tests.launch.test_decode_cli import run_cli
from tests.train.tiny import tiny_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny decoder trained 4 steps with a checkpoint at 4."""
    base = tmp_path_factory.mktemp("eval_cli")
    config = tiny_config(str(base / "data"), steps=4, checkpoint_every=4)
    train_and_evaluate(config, base / "run")
    return base / "run"


def test_append_metrics_keeps_existing_rows(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 9, "loss": 1.0}) + "\n")
    append_metrics(tmp_path, 5, {"eval/bleu": 12.5})
    assert read_metrics(tmp_path) == [{"step": 9, "loss": 1.0}, {"step": 5, "eval/bleu": 12.5}]
    assert list((tmp_path / "tensorboard").iterdir())


# Subprocesses start JAX and compile again: over the default suite's budget.
@pytest.mark.slow
def test_eval_cli_appends_scores_at_the_checkpoint_step(workdir):
    before = read_metrics(workdir)
    done = run_cli("launch.eval", f"--workdir={workdir}", "--eval_steps=1")
    assert done.returncode == 0, done.stderr
    assert "eval/perplexity" in done.stdout
    rows = read_metrics(workdir)
    assert rows[: len(before)] == before
    assert rows[-1]["step"] == 4 and rows[-1]["eval/perplexity"] > 1.0

    # Another split than the config's eval split is keyed apart from it.
    test = run_cli("launch.eval", f"--workdir={workdir}", "--eval_steps=1", "--split=test")
    assert test.returncode == 0, test.stderr
    assert "eval_test/loss = " in test.stdout
    row = read_metrics(workdir)[-1]
    assert row["step"] == 4 and row["eval_test/perplexity"] > 1.0
    assert sorted(row) == ["eval_test/accuracy", "eval_test/loss", "eval_test/perplexity", "step"]

    # Multiple-choice tasks of a decoder, named on the command line, keyed as training does.
    scored = run_cli(
        "launch.eval",
        f"--workdir={workdir}",
        "--eval_steps=1",
        "--downstream=tiny_grammar_next_word",
        "--max_examples=40",
    )
    assert scored.returncode == 0, scored.stderr
    row = read_metrics(workdir)[-1]
    assert row["downstream/tiny_grammar_next_word/examples"] == 40
    assert 0.0 <= row["downstream/tiny_grammar_next_word/acc_norm"] <= 1.0

    missing = run_cli("launch.eval", f"--workdir={workdir}", "--step=3")
    assert missing.returncode == 2 and "No checkpoint for step 3" in missing.stderr
