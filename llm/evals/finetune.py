"""Fine-tuning metrics of a BERT run on a split: GLUE classification and SQuAD span QA.

Both need every prediction of the split, not sums, so the model's head outputs are
gathered on the host: classification scores accuracy, F1 and Matthews correlation
(llm.evals.glue); span QA splits each context into the task's windows, picks the best
valid span over all windows of an example and scores exact match and F1 against every
gold answer with SQuAD's official normalization (llm.evals.squad).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from llm.errors import ConfigError
from llm.parallel.sharding import batch_sharding, data_parallel_size
from llm.train.trained import TrainedModel

# data.task -> the metric function below.
FINETUNE_TASKS = ("classification", "span_qa")


@functools.lru_cache(maxsize=8)
def _jitted_predict(model: nn.Module, mesh: Any, rules: Any) -> Callable[..., Any]:
    """model.predict jitted on the mesh, one per (model, mesh, rules): a run that scores
    at every train.eval_every reuses its trace and compiled programs instead of a new jit."""

    def predict(params, batch):
        return model.apply({"params": params}, batch, method="predict")

    return jax.jit(predict, in_shardings=(None, batch_sharding(mesh, rules)))


def _predict_fn(run: TrainedModel) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """Host batch -> the head's outputs (model.predict) as numpy, on the run's mesh."""
    jitted = _jitted_predict(run.model, run.mesh, run.rules)

    def call(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with jax.set_mesh(run.mesh), nn.logical_axis_rules(run.rules):
            out = jitted(run.params, {k: np.asarray(v) for k, v in batch.items()})
        return {k: np.asarray(v) for k, v in jax.device_get(out).items()}

    return call


def classification_eval(
    run: TrainedModel, *, split: str, batch_size: int = 0, max_examples: int = 0
) -> dict[str, float]:
    """eval/accuracy, eval/f1 (two classes) and eval/matthews of the split, in percent."""
    from llm import data as data_lib
    from llm.evals.glue import classification_scores

    cfg = run.config
    size = batch_size or cfg.train.batch_size
    iterator = data_lib.make_iterator(
        cfg.data, split=split, batch_size=size, seed=cfg.train.seed, shuffle=False, num_epochs=1
    )
    predict = _predict_fn(run)
    predictions, labels = [], []
    for batch in iterator:
        logits_BxC = predict(_model_inputs(batch))["logits"]
        real_B = batch["label_weights"] > 0
        predictions.append(np.argmax(logits_BxC, -1)[real_B])
        labels.append(batch["labels"][real_B])
        if max_examples and sum(len(p) for p in predictions) >= max_examples:
            break
    if not predictions or not sum(len(p) for p in predictions):
        raise ConfigError(
            f"split {split!r} of {cfg.data.dataset!r} has no labelled example to score "
            "(GLUE test splits have none: evaluate 'validation')."
        )
    pred = np.concatenate(predictions)[: max_examples or None]
    gold = np.concatenate(labels)[: max_examples or None]
    scores = classification_scores(pred, gold, num_labels=run.model_cfg.num_labels)
    out = {f"eval/{k}": float(v) for k, v in scores.items()}
    out["eval/examples"] = float(len(pred))
    return out


def _model_inputs(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys = ("inputs", "token_type_ids", "segment_ids", "positions")
    return {k: batch[k] for k in keys}


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def span_qa_predictions(
    run: TrainedModel,
    tokenizer: Any,
    records: list[Mapping[str, Any]],
    *,
    batch_size: int = 0,
    max_answer_len: int = 30,
) -> dict[str, str]:
    """{example id: predicted answer text}: the best valid span over each example's windows."""
    from llm.data.tasks.span_qa import featurize
    from llm.evals.squad import best_answer

    dcfg = run.config.data
    seq_len = dcfg.seq_len
    windows = [
        w
        for r in records
        for w in featurize(
            r,
            tokenizer,
            seq_len=seq_len,
            max_query_len=dcfg.max_query_len,
            doc_stride=dcfg.doc_stride,
        )
    ]
    dp = data_parallel_size(run.mesh, run.rules)
    size = batch_size or run.config.train.batch_size
    size = -(-size // dp) * dp  # rows split evenly over the data-parallel devices
    predict = _predict_fn(run)
    per_example: dict[str, list[tuple[Any, np.ndarray, np.ndarray]]] = {}
    for chunk in _batches(windows, size):
        batch = _pad_windows(chunk, size, seq_len)
        out = predict(batch)
        for i, window in enumerate(chunk):
            per_example.setdefault(window.example_id, []).append(
                (window, out["start"][i], out["end"][i])
            )
    return {
        example_id: best_answer(found, max_answer_len=max_answer_len)
        for example_id, found in per_example.items()
    }


def _pad_windows(windows: list[Any], rows: int, seq_len: int) -> dict[str, np.ndarray]:
    """The windows' model inputs as [rows, seq_len] arrays (missing rows all padding)."""
    out = {}
    for key in ("inputs", "token_type_ids", "segment_ids", "positions"):
        array = np.zeros((rows, seq_len), np.int32)
        for i, window in enumerate(windows):
            values = np.asarray(window.row[key])
            array[i, : len(values)] = values
        out[key] = array
    return out


def span_qa_eval(
    run: TrainedModel, tokenizer: Any, *, split: str, max_examples: int = 0
) -> dict[str, float]:
    """eval/exact_match and eval/f1 (percent, SQuAD v1.1 official normalization) of a split."""
    from llm import data as data_lib
    from llm.evals.squad import squad_scores

    source = data_lib.get_source(run.config.data, split)
    count = len(source) if max_examples <= 0 else min(max_examples, len(source))
    if count == 0:
        raise ConfigError(f"split {split!r} of {run.config.data.dataset!r} has no examples.")
    records = [source[i] for i in range(count)]
    predictions = span_qa_predictions(run, tokenizer, records)
    gold = {_text(r["id"]): [_text(a) for a in r["answers"]["text"]] for r in records}
    scores = squad_scores(predictions, gold)
    out = {f"eval/{k}": float(v) for k, v in scores.items()}
    out["eval/examples"] = float(count)
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def finetune_eval(
    run: TrainedModel, tokenizer: Any, *, split: str, max_examples: int = 0
) -> dict[str, float]:
    """The task's metrics (classification or span_qa) of a split; {} for other tasks."""
    task = run.config.data.task
    if task == "classification":
        return classification_eval(run, split=split, max_examples=max_examples)
    if task == "span_qa":
        return span_qa_eval(run, tokenizer, split=split, max_examples=max_examples)
    return {}
