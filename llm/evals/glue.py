"""GLUE classification metrics from a confusion matrix, and each task's headline metrics.

Computed here with numpy rather than scikit-learn, which is not a dependency
of the project; the definitions are the standard ones (binary F1 of class 1,
Matthews correlation in Gorodkin's multi-class form, 0 where undefined, as
scikit-learn returns).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """What the GLUE paper reports for a task: its metrics and the splits they are read on."""

    metrics: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("validation",)


# Headline metrics per task (Wang et al. 2019, table 1): a task's score is
# the mean of its metrics. STS-B (Pearson/Spearman) is regression, not here.
GLUE_METRICS = {
    "cola": GlueTask(("matthews",)),
    "sst2": GlueTask(("accuracy",)),
    "mrpc": GlueTask(("f1", "accuracy")),
    "qqp": GlueTask(("f1", "accuracy")),
    "mnli": GlueTask(("accuracy",), ("validation_matched", "validation_mismatched")),
    "qnli": GlueTask(("accuracy",)),
    "rte": GlueTask(("accuracy",)),
    "wnli": GlueTask(("accuracy",)),
    # The diagnostic set is scored with R3, the Matthews correlation.
    "ax": GlueTask(("matthews",), ("test",)),
    "tiny_glue": GlueTask(("accuracy", "f1")),
}


def confusion_matrix(
    predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, num_labels: int
) -> np.ndarray:
    """[num_labels, num_labels] counts: rows are true labels, columns predictions."""
    pred_N = np.asarray(predictions, np.int64).reshape(-1)
    gold_N = np.asarray(labels, np.int64).reshape(-1)
    if pred_N.shape != gold_N.shape:
        raise ValueError(f"{len(pred_N)} predictions but {len(gold_N)} labels.")
    for name, values in (("predictions", pred_N), ("labels", gold_N)):
        if len(values) and (values.min() < 0 or values.max() >= num_labels):
            raise ValueError(
                f"{name} hold classes {values.min()}..{values.max()} outside 0..{num_labels - 1} "
                f"(num_labels={num_labels}); drop unlabelled (-1) records first."
            )
    return np.bincount(gold_N * num_labels + pred_N, minlength=num_labels**2).reshape(
        num_labels, num_labels
    )


def matthews(cm_CxC: np.ndarray) -> float:
    """Matthews correlation (-1..1) of a confusion matrix; 0 when undefined."""
    cm = np.asarray(cm_CxC, np.float64)
    total, correct = cm.sum(), np.trace(cm)
    true_C, pred_C = cm.sum(axis=1), cm.sum(axis=0)
    cov = correct * total - pred_C @ true_C
    denom = np.sqrt((total**2 - pred_C @ pred_C) * (total**2 - true_C @ true_C))
    return float(cov / denom) if denom > 0 else 0.0


def classification_scores(
    predictions: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    num_labels: int,
    weights: Sequence[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """{'accuracy', 'f1' (num_labels == 2: class 1 positive), 'matthews'} in percent.

    weights: optional per-example weights of a batch; examples of weight 0
    (padding rows, unlabelled records) are dropped.
    """
    pred_N = np.asarray(predictions).reshape(-1)
    gold_N = np.asarray(labels).reshape(-1)
    if weights is not None:
        keep_N = np.asarray(weights).reshape(-1) > 0
        pred_N, gold_N = pred_N[keep_N], gold_N[keep_N]
    if not len(gold_N):
        raise ValueError("Classification scores of no examples are undefined.")
    cm = confusion_matrix(pred_N, gold_N, num_labels)
    out = {"accuracy": 100.0 * np.trace(cm) / cm.sum()}
    if num_labels == 2:
        tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
        out["f1"] = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    out["matthews"] = 100.0 * matthews(cm)
    return {k: float(v) for k, v in out.items()}


def glue_score(scores: Mapping[str, float], task: str) -> float:
    """A task's GLUE score: the mean of its headline metrics in `scores`."""
    if task not in GLUE_METRICS:
        raise ValueError(f"Unknown GLUE task {task!r}; known: {sorted(GLUE_METRICS)}.")
    metrics = GLUE_METRICS[task].metrics
    return float(np.mean([scores[m] for m in metrics]))
