"""Corpus BLEU through sacrebleu on detokenized text, with its signature for reproducibility."""

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU


@dataclass(frozen=True)
class BleuResult:
    """sacrebleu's corpus score (0-100), its signature string and the full summary line."""

    score: float
    signature: str
    summary: str


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    tokenize: str | None = None,
    lowercase: bool = False,
) -> BleuResult:
    """Corpus BLEU of detokenized hypotheses against one reference stream (list of str) or several.

    tokenize=None is sacrebleu's default for the language ('13a'); pass
    'intl', 'zh', 'ja-mecab', ... as the paper did.
    """
    hypotheses = list(hypotheses)
    if not hypotheses:
        raise ValueError("BLEU of an empty corpus is undefined: no hypotheses")
    if references and isinstance(references[0], str):
        streams = [list(references)]
    else:
        streams = [list(stream) for stream in references]
    for i, stream in enumerate(streams):
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"reference stream {i} has {len(stream)} lines but there are {len(hypotheses)} hypotheses"
            )
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    result = metric.corpus_score(hypotheses, streams)
    return BleuResult(
        score=float(result.score), signature=str(metric.get_signature()), summary=str(result)
    )
