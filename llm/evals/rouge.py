"""ROUGE F-measures through rouge-score, averaged over examples."""

from collections.abc import Sequence

from rouge_score import rouge_scorer

DEFAULT_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    rouge_types: Sequence[str] = DEFAULT_TYPES,
    use_stemmer: bool = True,
) -> dict[str, float]:
    """Mean F-measure per ROUGE type, in percent (0-100) as papers report it.

    'rougeLsum' expects sentences separated by newlines, as in rouge-score.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("ROUGE of an empty corpus is undefined")
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
    totals = dict.fromkeys(rouge_types, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        # rouge-score takes the reference (target) first.
        scores = scorer.score(reference, prediction)
        for name in rouge_types:
            totals[name] += scores[name].fmeasure
    return {name: 100.0 * total / len(predictions) for name, total in totals.items()}
