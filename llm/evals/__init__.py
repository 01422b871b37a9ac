"""Evaluation metrics: thin wrappers over sacrebleu and rouge-score; perplexity and MLM accuracy sums."""

from llm.evals.bleu import BleuResult, corpus_bleu
from llm.evals.rouge import rouge
from llm.evals.token_metrics import AccuracySums, NllSums, mlm_accuracy_sums, nll_sums

__all__ = [
    "AccuracySums",
    "BleuResult",
    "NllSums",
    "corpus_bleu",
    "mlm_accuracy_sums",
    "nll_sums",
    "rouge",
]
