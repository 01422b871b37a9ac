"""SQuAD v1.1 metrics (exact match, token F1) and answer spans from start/end logits.

The normalization is that of the official v1.1 evaluation script: lowercase,
drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.
Scores are in percent and take the best over each question's gold answers.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalization of an answer string."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: Sequence[str]) -> float:
    """1.0 if the normalized prediction equals a normalized gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in gold))


def _token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:  # Also when either side is empty (as the v1.1 script scores it).
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, gold: Sequence[str]) -> float:
    """Best token-overlap F1 (0-1) of the prediction against the gold answers."""
    return max((_token_f1(prediction, g) for g in gold), default=0.0)


def squad_scores(
    predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """{'exact_match', 'f1'} in percent over the questions of `gold` (extra predictions ignored)."""
    if not gold:
        raise ValueError("SQuAD scores of no questions are undefined: `gold` is empty.")
    missing = [qid for qid in gold if qid not in predictions]
    if missing:
        raise ValueError(
            f"No prediction for {len(missing)} of {len(gold)} questions, e.g. id {missing[0]!r}; "
            "predict every question of the split."
        )
    em = sum(exact_match(predictions[qid], answers) for qid, answers in gold.items())
    f1_sum = sum(f1(predictions[qid], answers) for qid, answers in gold.items())
    return {"exact_match": 100.0 * em / len(gold), "f1": 100.0 * f1_sum / len(gold)}


def best_span(
    start_logits_L: np.ndarray,
    end_logits_L: np.ndarray,
    offsets_Lx2: np.ndarray,
    *,
    max_answer_len: int = 30,
    n_best: int = 20,
) -> tuple[int, int, float]:
    """(char_start, char_end, score) of the best valid span of one window.

    As in BERT's run_squad: pairs of the n_best highest start and end logits
    of context tokens (offsets >= 0) with start <= end and at most
    max_answer_len tokens; score = start + end logit. Logits may be
    longer than the offsets (padded rows): the extra positions are ignored.
    (-1, -1, -inf) when no span is valid.
    """
    offsets_Lx2 = np.asarray(offsets_Lx2)
    n = len(offsets_Lx2)
    start_L = np.asarray(start_logits_L, np.float64)[:n]
    end_L = np.asarray(end_logits_L, np.float64)[:n]
    context_L = offsets_Lx2[:, 0] >= 0
    candidates = np.flatnonzero(context_L)
    if not len(candidates):
        return -1, -1, float("-inf")
    k = min(n_best, len(candidates))
    starts_K = candidates[np.argsort(-start_L[candidates], kind="stable")[:k]]
    ends_K = candidates[np.argsort(-end_L[candidates], kind="stable")[:k]]
    length_KxK = ends_K[None, :] - starts_K[:, None] + 1
    score_KxK = start_L[starts_K][:, None] + end_L[ends_K][None, :]
    score_KxK = np.where((length_KxK >= 1) & (length_KxK <= max_answer_len), score_KxK, -np.inf)
    i, j = np.unravel_index(int(np.argmax(score_KxK)), score_KxK.shape)
    if not np.isfinite(score_KxK[i, j]):
        return -1, -1, float("-inf")
    s, e = int(starts_K[i]), int(ends_K[j])
    return int(offsets_Lx2[s, 0]), int(offsets_Lx2[e, 1]), float(score_KxK[i, j])


def best_answer(
    windows: Sequence[tuple[Any, np.ndarray, np.ndarray]],
    *,
    max_answer_len: int = 30,
    n_best: int = 20,
) -> str:
    """The answer text of one example: the best span over its windows.

    windows: (window, start_logits_L, end_logits_L) for each window of the
    example, the window having `offsets` and `context` (llm.data.tasks.
    span_qa.Window). '' when no window has a valid span.
    """
    best = (-1, -1, float("-inf"))
    context = ""
    for window, start_L, end_L in windows:
        span = best_span(
            start_L, end_L, window.offsets, max_answer_len=max_answer_len, n_best=n_best
        )
        if span[2] > best[2]:
            best, context = span, window.context
    return context[best[0] : best[1]] if best[0] >= 0 else ""
