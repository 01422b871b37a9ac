"""SQuAD exact match/F1, answer spans from logits, GLUE confusion-matrix metrics."""

import math
import types

import numpy as np
import pytest

from llm.evals import glue, squad


def test_official_normalization():
    assert squad.normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert squad.normalize_answer("an apple a day\tkeeps") == "apple day keeps"
    # Articles only as whole words; punctuation is removed before articles.
    assert squad.normalize_answer("Theater of anatomy") == "theater of anatomy"
    assert squad.normalize_answer("the-end") == "theend"
    assert squad.normalize_answer("(A) Denver Broncos.") == "denver broncos"


def test_exact_match_and_f1_known_values():
    # The official script's values: normalized 'cat sat' vs 'cat sat on mat'.
    assert squad.exact_match("the cat sat", ["a cat sat on the mat"]) == 0.0
    assert squad.f1("the cat sat", ["a cat sat on the mat"]) == pytest.approx(2 / 3)
    # Max over gold answers.
    assert squad.exact_match("Denver Broncos", ["Broncos", "the Denver Broncos"]) == 1.0
    assert squad.f1("Denver", ["Denver Broncos", "Carolina"]) == pytest.approx(2 / 3)
    # Repeated tokens count once per match: 'x x y' vs 'x y y' share 2 of 3.
    assert squad.f1("x x y", ["x y y"]) == pytest.approx(2 / 3)
    # Nothing left after normalization scores 0 F1 in v1.1 (EM still compares).
    assert squad.f1("the", ["a"]) == 0.0 and squad.exact_match("the", ["a"]) == 1.0


def test_squad_scores_average_in_percent_and_name_missing_ids():
    gold = {"q1": ["Denver Broncos"], "q2": ["Santa Clara, California"], "q3": ["blue"]}
    preds = {"q1": "denver broncos", "q2": "Santa Clara", "q3": "red", "extra": "x"}
    scores = squad.squad_scores(preds, gold)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # q2: P = 1, R = 2/3 -> F1 = 0.8.
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    with pytest.raises(ValueError, match="'q3'"):
        squad.squad_scores({"q1": "a", "q2": "b"}, gold)


def test_best_span_on_crafted_logits():
    # Tokens 0-2: [CLS] q [SEP]; 3-7 context (chars 0-4, 5-9, ...); 8 [SEP].
    offsets = np.array([[-1, -1]] * 3 + [[5 * i, 5 * i + 4] for i in range(5)] + [[-1, -1]])
    start = np.array([9.0, 9, 0, 1, 0, 0, 5, 0, 9])
    end = np.array([9.0, 9, 0, 0, 4, 0, 0, 0, 9])
    # The best start (token 6) is after the best end (4): invalid; the
    # best valid pair is 3..4 (1 + 4 = 5) over 6..6 (5 + 0) or 6..7 (5 + 0).
    start[3] = 1.5
    assert squad.best_span(start, end, offsets) == (0, 9, 5.5)
    # Too long for max_answer_len=1: single tokens only, best 6..6.
    assert squad.best_span(start, end, offsets, max_answer_len=1) == (15, 19, 5.0)
    # Padded logits beyond the offsets are ignored.
    padded = np.concatenate([start, [100.0] * 3]), np.concatenate([end, [100.0] * 3])
    assert squad.best_span(*padded, offsets) == (0, 9, 5.5)
    none = np.array([[-1, -1]] * 4)
    assert squad.best_span(np.zeros(4), np.zeros(4), none) == (-1, -1, -math.inf)


def test_best_answer_picks_the_best_window():
    context = "Mira keeps a red kite in Oslo."
    w1 = types.SimpleNamespace(context=context, offsets=np.array([[-1, -1], [0, 4], [5, 10]]))
    w2 = types.SimpleNamespace(context=context, offsets=np.array([[-1, -1], [25, 29], [29, 30]]))
    found = [
        (w1, np.array([0.0, 2, 0]), np.array([0.0, 2, 0])),  # 'Mira', score 4
        (w2, np.array([0.0, 3, 0]), np.array([0.0, 3, 0, 50])),  # 'Oslo', score 6
    ]
    assert squad.best_answer(found) == "Oslo"
    assert squad.best_answer(found[:1]) == "Mira"
    assert squad.best_answer([]) == ""


def test_binary_scores_from_the_confusion_matrix():
    labels = [1, 1, 1, 0, 0, 0, 0, 1]
    preds = [1, 0, 1, 0, 0, 1, 0, 1]
    # tp 3, fn 1, fp 1, tn 3: F1 = 6/8; MCC = (9 - 1) / sqrt(4^4) = 0.5.
    assert glue.confusion_matrix(preds, labels, 2).tolist() == [[3, 1], [1, 3]]
    scores = glue.classification_scores(preds, labels, num_labels=2)
    assert scores == pytest.approx({"accuracy": 75.0, "f1": 75.0, "matthews": 50.0})
    # Weight-0 rows (padding, unlabelled) are dropped.
    weighted = glue.classification_scores(
        preds + [0, 0], labels + [1, 1], num_labels=2, weights=[1] * 8 + [0, 0]
    )
    assert weighted == pytest.approx(scores)
    # Constant predictions: Matthews undefined -> 0; no true positive -> F1 0.
    flat = glue.classification_scores([0] * 4, [0, 1, 0, 1], num_labels=2)
    assert flat == {"accuracy": 50.0, "f1": 0.0, "matthews": 0.0}


def test_multiclass_matthews_by_hand():
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 0, 1, 2, 2, 2]
    # c = 5, s = 6, t = (2, 2, 2), p = (2, 1, 3): (5*6 - 12) / sqrt((36 - 14) (36 - 12)).
    scores = glue.classification_scores(preds, labels, num_labels=3)
    assert "f1" not in scores
    assert scores["accuracy"] == pytest.approx(500 / 6)
    assert scores["matthews"] == pytest.approx(100 * 18 / math.sqrt(22 * 24))
    assert glue.matthews(np.diag([3, 2, 4])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_labels=3"):
        glue.classification_scores([0, 3], [0, 1], num_labels=3)


def test_glue_headline_metrics():
    assert glue.GLUE_METRICS["cola"].metrics == ("matthews",)
    assert glue.GLUE_METRICS["mrpc"].metrics == ("f1", "accuracy")
    assert glue.GLUE_METRICS["mnli"].eval_splits == ("validation_matched", "validation_mismatched")
    assert glue.GLUE_METRICS["sst2"].eval_splits == ("validation",)
    assert glue.glue_score({"f1": 90.0, "accuracy": 80.0, "matthews": 1.0}, "qqp") == 85.0
