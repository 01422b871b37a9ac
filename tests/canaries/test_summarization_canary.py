"""Canary: the tiny summarizer beats lead-3 by >= 30 ROUGE-L on tiny_summaries' validation split.

experiments/summarization.py:tiny trains through the library (train_and_evaluate) and its
final eval decodes 200 validation articles, as launch.eval does from the checkpoint.
Lead-3 scores 23.0 ROUGE-L on them (the key sentences never all lead). Measured
2026-12-02 on this 2-core CPU machine (shared): ROUGE-1/2/L 80.5 / 57.5 / 80.5 after
the config's 200 steps of batch 16 (78.6 decoded from the checkpoint; 85.1 after 250,
85.8 after 300 of batch 32), lead-3 23.4 / 13.9 / 23.0, in 53 s (63 s under load). A margin of 30 (model >= 53) leaves room for seeds and
slower machines, and fails any model that copies the lead.
"""

import pytest

from llm.evals.lead import lead_eval
from llm.train.loop import train_and_evaluate
from tests.canaries.common import Timer, experiment

EXAMPLES = 200
MARGIN = 30.0


@pytest.mark.slow
def test_tiny_summarizer_beats_lead3(tmp_path):
    timer = Timer()
    # The trainer's final eval decodes EXAMPLES validation articles (beam and alpha of the
    # config), as launch.eval would from the checkpoint.
    config = experiment(
        "summarization.py:tiny",
        str(tmp_path / "data"),
        train__sample_tokens=0,
        train__eval_generation_examples=EXAMPLES,
    )
    metrics = train_and_evaluate(config, tmp_path / "run")
    lead3 = lead_eval(config.data, "validation", 3, max_examples=EXAMPLES)
    model_l, lead_l = metrics["eval/rougeL"], lead3["eval/lead3_rougeL"]
    print(
        f"summarization canary: ROUGE-1/2/L {metrics['eval/rouge1']:.1f} / "
        f"{metrics['eval/rouge2']:.1f} / {model_l:.1f}, lead-3 "
        f"{lead3['eval/lead3_rouge1']:.1f} / {lead3['eval/lead3_rouge2']:.1f} / {lead_l:.1f} "
        f"in {timer():.0f}s"
    )
    # Lead-3 of these examples is fixed by the data: a change means the generator changed.
    assert lead_l == pytest.approx(22.99, abs=0.01)
    assert model_l >= lead_l + MARGIN
