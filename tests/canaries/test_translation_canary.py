"""Canary: experiments/aiayn.py:tiny learns tiny_numbers (number words -> digits) to BLEU >= 90.

Unlike tests/decode/test_decode_canary.py (hand-built task and train loop),
this goes through the real pieces: the generated dataset and data pipeline,
train_and_evaluate with its checkpoints, llm.train.restore and the beam
search of llm.evals.generation (beam 4, alpha 0.6), scored by sacrebleu with
character tokenization (a number is one 13a token).
"""

import pytest

from llm.data import get_tokenizer
from llm.evals.generation import generation_eval
from llm.train.loop import train_and_evaluate
from llm.train.restore import restore_params
from tests.canaries.common import Timer, experiment

STEPS = 1000


@pytest.mark.slow
def test_aiayn_tiny_translates_numbers_to_bleu_90(tmp_path):
    timer = Timer()
    config = experiment(
        "aiayn.py:tiny",
        str(tmp_path / "data"),
        train__steps=STEPS,
        train__eval_every=STEPS,
        train__checkpoint_every=STEPS,
    )
    train_and_evaluate(config, tmp_path / "run")
    trained_s = timer()
    run = restore_params(tmp_path / "run")
    result = generation_eval(
        run.model,
        run.params,
        run.config.data,
        get_tokenizer(run.config.data),
        mesh=run.mesh,
        rules=run.rules,
        split="validation",
        max_examples=500,
        beam_size=4,
        alpha=0.6,
    )
    bleu = result.scores["eval/bleu"]
    exact = sum(h == r for h, r in zip(result.hypotheses, result.references, strict=True))
    print(
        f"translation canary: BLEU {bleu:.2f} ({result.bleu_signature}), exact "
        f"{exact}/{len(result.references)}, trained in {trained_s:.0f}s, total {timer():.0f}s"
    )
    assert bleu >= 90.0
