"""Evaluation metrics: thin wrappers over sacrebleu and rouge-score.

Perplexity and accuracy are sums of the eval step (llm.train.evaluate).
"""

from llm.evals.bleu import BleuResult, corpus_bleu
from llm.evals.rouge import rouge

__all__ = [
    "BleuResult",
    "corpus_bleu",
    "rouge",
]
