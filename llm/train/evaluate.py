"""Evaluation of params on a data split: the eval iterator, the jitted eval step, the summary.

One Evaluator serves the training loop (periodic evals) and `launch.eval` (a saved
checkpoint); both score exactly the same way. Loss terms are summed over every batch
(NLL, correct predictions, weights) and divided once at the end, so that batches
with more padding weigh less, as they should.

Scores of the config's eval split (what training logs) are keyed `eval/...`; scores of any
other split `eval_<split>/...` (`eval_test/loss`), so that metrics.jsonl and TensorBoard
keep them apart.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from llm import data as data_lib
from llm.data import mixture
from llm.errors import ConfigError
from llm.parallel import host_batch_to_global
from llm.train.program import TrainProgram


def eval_prefix(config: ml_collections.ConfigDict, split: str | None = None) -> str:
    """'eval' for the config's eval split (or None), else 'eval_<split>' ('eval_test')."""
    if split is None or split == config.data.eval_split:
        return "eval"
    # TFDS slices ('train[99%:]') become plain names: the key must read as one word.
    return "eval_" + (re.sub(r"[^0-9A-Za-z]+", "_", split).strip("_") or "split")


def with_prefix(scores: dict[str, float], prefix: str) -> dict[str, float]:
    """`scores` with their leading 'eval' replaced by `prefix` ('eval/bleu' -> 'eval_test/bleu')."""
    return {
        prefix + k.removeprefix("eval") if k.startswith("eval/") else k: v
        for k, v in scores.items()
    }


def summarize_eval(sums: dict[str, float]) -> dict[str, float]:
    """Summed NLL/correct/weights per loss term -> eval/ loss, perplexity, accuracy."""
    out = {}
    terms = sorted({k.split("/")[0] for k in sums})
    total = 0.0
    for term in terms:
        weight = max(sums[f"{term}/weight_sum"], 1.0)
        nll = sums[f"{term}/nll_sum"] / weight
        total += nll
        prefix = "eval" if term == "lm" else f"eval/{term}"
        if term != "lm":
            out[f"{prefix}/loss"] = nll
        out[f"{prefix}/accuracy"] = sums[f"{term}/correct_sum"] / weight
        if term in ("lm", "mlm"):
            out[f"{prefix}/perplexity"] = float(np.exp(min(nll, 50.0)))
    out["eval/loss"] = total
    return out


class Evaluator:
    """Scores params on `config.data.eval_split` with the program's jitted eval step."""

    def __init__(self, config: ml_collections.ConfigDict, program: TrainProgram):
        self.config = config
        self.program = program
        self.local_batch_size = config.train.batch_size // jax.process_count()

    def sums(
        self, params: Any, data_cfg: ml_collections.ConfigDict | None = None
    ) -> dict[str, float]:
        """Summed NLL, correct predictions and weights per loss term over the eval batches.

        `data_cfg` (default: the config's) says what to read: one source of a mixture.
        """
        cfg = self.config
        data_cfg = data_cfg or cfg.data
        eval_iter = data_lib.make_iterator(
            data_cfg,
            split=cfg.data.eval_split,
            batch_size=self.local_batch_size,
            seed=cfg.train.seed,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
            shuffle=False,
            num_epochs=1,
        )
        totals: dict[str, float] = {}
        with jax.set_mesh(self.program.mesh):
            for i, batch in enumerate(eval_iter):
                if 0 < cfg.train.eval_steps <= i:
                    break
                global_batch = host_batch_to_global(batch, self.program.batch_sharding)
                for k, v in jax.device_get(self.program.eval_step(params, global_batch)).items():
                    totals[k] = totals.get(k, 0.0) + float(v)
        if not totals:
            raise ConfigError(
                f"Eval split {cfg.data.eval_split!r} of {data_cfg.dataset!r} gave no full batch "
                f"of {self.local_batch_size}; lower config.train.batch_size or use a larger split."
            )
        return totals

    def evaluate(self, params: Any) -> dict[str, float]:
        """`eval_steps` batches (or the whole split when <= 0), summarised (eval/loss, ...).

        A data.mixture scores each source's eval split on its own, keyed
        eval/<source>/loss (perplexity, accuracy); eval/loss (perplexity, accuracy) is then
        the mixture-weighted mean of the sources' scores, the loss of the training mix.
        """
        weights = mixture.parse_mixture(self.config.data.get("mixture", ""))
        if not weights:
            return summarize_eval(self.sums(params))
        out: dict[str, float] = {}
        mean: dict[str, float] = {}
        for name, weight in weights:
            source = mixture.source_config(self.config.data, name)
            scores = summarize_eval(self.sums(params, source))
            tag = mixture.metric_name(name)
            for key, value in scores.items():
                out[f"eval/{tag}/" + key.removeprefix("eval/")] = value
                mean[key] = mean.get(key, 0.0) + weight * value
        if "eval/perplexity" in mean:
            mean["eval/perplexity"] = float(np.exp(min(mean["eval/loss"], 50.0)))
        return {**mean, **out}

    def evaluate_generation(self, params: Any, tokenizer: Any) -> dict[str, float]:
        """Scores of the model's outputs on the eval split, beyond the loss terms.

        BLEU/ROUGE of beam-search outputs (seq2seq runs that ask for it), or the fine-tuning
        task's metrics (classification: accuracy/F1/Matthews; span QA: exact match/F1) on
        the examples the loss eval covers (train.eval_steps batches; <= 0: the whole split).
        """
        cfg = self.config.train
        if self.config.data.task in ("classification", "span_qa"):
            from llm.evals.finetune import finetune_eval  # host-side predictions

            if jax.process_count() > 1:
                # The predictions are gathered on one host; multi-process runs score the
                # loss terms in the loop and the metrics with launch.eval afterwards.
                logging.log_first_n(
                    logging.WARNING,
                    "Fine-tuning metrics are computed by launch.eval on one process; the "
                    "multi-process loop logs the loss terms only.",
                    1,
                )
                return {}

            examples = cfg.eval_steps * cfg.batch_size if cfg.eval_steps > 0 else 0
            return finetune_eval(
                self.program.trained(params),
                tokenizer,
                split=self.config.data.eval_split,
                max_examples=examples,
            )
        if not cfg.eval_generation_examples or self.config.data.task != "seq2seq":
            return {}
        from llm.evals.generation import generation_metrics  # decoding: only when asked

        return generation_metrics(
            self.program.trained(params),
            tokenizer,
            split=self.config.data.eval_split,
            max_examples=cfg.eval_generation_examples,
            beam_size=cfg.eval_beam_size,
            alpha=cfg.eval_alpha,
        )
