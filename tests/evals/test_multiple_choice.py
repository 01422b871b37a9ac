"""Log-likelihood multiple-choice evals: task files, row encoding, scores, the training loop."""

import json

import jax
import numpy as np
import pytest

from llm import data as data_lib
from llm.data import grammar
from llm.data.tokenizers import ByteTokenizer
from llm.errors import ConfigError, InputFileError
from llm.evals import multiple_choice as mc
from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from llm.train.program import build_train_program
from tests.train.tiny import tiny_config

TASK = "tiny_grammar_next_word"


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """tiny_lm (2 layers of 64) at init on the 8 simulated devices, and its tokenizer."""
    config = tiny_config(str(tmp_path_factory.mktemp("data")))
    program = build_train_program(config)
    return program.trained(program.init_state().params), data_lib.get_tokenizer(config.data)


def test_next_word_task_only_the_gold_choice_is_grammatical():
    examples = grammar.next_word_task(300, seed=3)
    categories = grammar._word_categories()
    sequences = grammar._category_sequences()
    for e in examples:
        words = e["context"].split(" ")
        prefix = tuple(categories[w] for w in words)
        allowed = {s[len(words)] for s in sequences if s[: len(words)] == prefix}
        grammatical = [categories[c.strip()] in allowed for c in e["choices"]]
        assert grammatical == [i == e["gold"] for i in range(4)], e
    # Gold positions are shuffled: each of the 4 slots holds it about a quarter of the time.
    counts = np.bincount([e["gold"] for e in examples], minlength=4)
    assert counts.min() > 50
    assert grammar.next_word_task(5, seed=3) == examples[:5]  # deterministic


def test_rows_mark_exactly_the_continuation_and_keep_the_end_of_long_contexts():
    tok = ByteTokenizer()
    example = mc.Example("the dog", (" sleeps", " a"), 0)
    rows, owners = mc.encode_rows(tok, [example], max_len=64)
    assert owners.tolist() == [0, 0]
    assert rows["inputs"].shape == (2, 16)  # the smallest bucket
    cont = tok.encode(" sleeps").tolist()
    n = 1 + len("the dog") + len(cont) - 1  # BOS + context + continuation, shifted
    assert rows["inputs"][0, 0] == tok.bos_id
    assert rows["targets"][0, :n].tolist() == tok.encode("the dog sleeps").tolist()
    assert rows["weights"][0].tolist() == [0.0] * 7 + [1.0] * 7 + [0.0] * 2
    assert rows["weights"][1].sum() == 2
    # A context longer than the model keeps its last tokens, the whole continuation scored.
    long = mc.Example("x" * 100, (" yes", " no"), 1)
    rows, _ = mc.encode_rows(tok, [long], max_len=32)
    assert rows["inputs"].shape == (2, 32)
    assert rows["targets"][0, -4:].tolist() == tok.encode(" yes").tolist()
    assert rows["weights"][0].sum() == 4
    with pytest.raises(InputFileError, match="does not fit the model's 8 positions"):
        mc.encode_rows(tok, [mc.Example("a", (" " + "z" * 20, " b"), 0)], max_len=8)


def test_row_logprobs_equal_a_direct_log_softmax(untrained):
    run, tok = untrained
    examples = [mc.Example("the cat", (" sees", " near", " ."), 2), mc.Example("a", (" dog",), 0)]
    rows, _ = mc.encode_rows(tok, examples, run.model_cfg.max_len)
    # 4 rows in batches of 3 (rounded up to the 8 data shards): padding rows are dropped.
    got = mc.row_logprobs(run, rows, batch_rows=3)
    logits = run.model.apply({"params": run.params}, rows["inputs"])
    logp = np.asarray(jax.nn.log_softmax(logits))
    picked = np.take_along_axis(logp, rows["targets"][..., None], -1)[..., 0]
    want = (picked * rows["weights"]).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert got.shape == (4,) and np.all(got < 0)


def test_an_untrained_model_scores_at_chance(untrained):
    run, tok = untrained
    task = mc.load_task(TASK, 500)
    scores = mc.score_task(run, tok, task, batch_rows=256)
    prefix = f"downstream/{TASK}"
    assert scores[f"{prefix}/chance"] == 0.25 and scores[f"{prefix}/examples"] == 500
    # 3 standard errors of a 500-example binomial at p = 0.25 (0.019 each).
    assert abs(scores[f"{prefix}/acc_norm"] - 0.25) < 0.06
    # The summed score prefers short choices: above chance, far below a trained model.
    assert 0.25 < scores[f"{prefix}/acc"] < 0.5


def test_jsonl_tasks_load_with_lm_eval_spellings_and_name_bad_rows(tmp_path):
    path = tmp_path / "hellaswag.jsonl"
    rows = [
        {"context": "a", "choices": [" b", " c"], "gold": 1},
        {"ctx": "d", "endings": [" e", " f", " g"], "label": "2"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = mc.load_task(str(path))
    assert task.name == "hellaswag"
    assert task.examples[1] == mc.Example("d", (" e", " f", " g"), 2)
    assert task.chance == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert len(mc.load_task(str(path), max_examples=1).examples) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"context": "a", "choices": [" b", " c"], "gold": 2}) + "\n")
    with pytest.raises(InputFileError, match=r"bad.jsonl:1: gold=2 must be the index \(0..1\)"):
        mc.load_task(str(bad))
    bad.write_text(json.dumps({"question": "a", "choices": [" b"], "gold": 0}) + "\n")
    with pytest.raises(InputFileError, match="none of the keys"):
        mc.load_task(str(bad))
    bad.write_text("{oops\n")
    with pytest.raises(InputFileError, match="bad.jsonl:1 is not JSON"):
        mc.load_task(str(bad))
    with pytest.raises(ConfigError, match="neither a shipped task"):
        mc.load_task(str(tmp_path / "missing.jsonl"))


def test_config_checks_name_the_downstream_fields(tmp_path):
    with pytest.raises(ConfigError, match="train.downstream_every=5 has no tasks"):
        tiny_config(str(tmp_path), downstream_every=5, downstream_tasks="")
    with pytest.raises(ConfigError, match="train.downstream_every=-1"):
        tiny_config(str(tmp_path), downstream_every=-1)


def test_the_training_loop_logs_downstream_scores(tmp_path):
    choices = tmp_path / "choices.jsonl"
    choices.write_text(
        "\n".join(
            json.dumps({"context": c, "choices": [" dog", " sees"], "gold": 0})
            for c in ("the", "a", "every")
        )
    )
    config = tiny_config(
        str(tmp_path / "data"),
        downstream_every=3,
        downstream_tasks=f"{TASK},{choices}",
        downstream_examples=40,
    )
    metrics = train_and_evaluate(config, tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run") if f"downstream/{TASK}/acc" in r]
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        assert row[f"downstream/{TASK}/examples"] == 40
        assert row["downstream/choices/examples"] == 3
        assert row["downstream/choices/chance"] == 0.5
        assert 0.0 <= row[f"downstream/{TASK}/acc_norm"] <= 1.0
    assert metrics[f"downstream/{TASK}/acc"] == rows[-1][f"downstream/{TASK}/acc"]
