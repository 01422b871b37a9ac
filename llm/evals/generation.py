"""Generation metrics of a seq2seq model on a data split: BLEU (translation) and ROUGE (summaries).

The sources of the split are decoded (beam search by default, as AIAYN
scored) and compared on detokenized text with sacrebleu and rouge-score.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import ml_collections
from absl import logging
from jax.sharding import Mesh

from llm.errors import ConfigError
from llm.evals.bleu import corpus_bleu
from llm.evals.rouge import rouge

# Dataset name fragments that mark summarization (ROUGE) rather than translation (BLEU).
SUMMARIZATION_DATASETS = ("cnn_dailymail", "xsum", "gigaword", "billsum", "samsum", "summar")
TRANSLATION_DATASETS = ("translate", "wmt", "tiny_numbers", "iwslt", "opus")
# sacrebleu tokenizers for datasets whose targets are not space-separated words:
# a number is one 13a token, so only character n-grams make BLEU meaningful.
BLEU_TOKENIZE = {"tiny_numbers": "char"}


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    """Scores (eval/bleu, eval/rouge1, ...), the sacrebleu signature and the decoded texts."""

    scores: dict[str, float]
    bleu_signature: str
    sources: list[str]
    hypotheses: list[str]
    references: list[str]


def metric_kinds(dataset: str) -> tuple[str, ...]:
    """Which generation metrics fit a dataset: ('bleu',), ('rouge',) or both when unknown."""
    name = dataset.lower()
    if any(s in name for s in SUMMARIZATION_DATASETS):
        return ("rouge",)
    if any(s in name for s in TRANSLATION_DATASETS):
        return ("bleu",)
    return ("bleu", "rouge")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_pairs(
    data_cfg: ml_collections.ConfigDict, split: str, max_examples: int
) -> tuple[list[str], list[str]]:
    """The first max_examples (all when <= 0) (source, reference) texts of a seq2seq split."""
    from llm import data as data_lib  # data pulls in TFDS; import it only when reading

    source = data_lib.get_source(data_cfg, split)
    inputs_key, targets_key = data_lib.pair_keys(data_cfg)
    count = len(source) if max_examples <= 0 else min(max_examples, len(source))
    if count == 0:
        raise ConfigError(f"Split {split!r} of {data_cfg.dataset!r} has no examples to decode.")
    records = [source[i] for i in range(count)]
    return [_text(r[inputs_key]) for r in records], [_text(r[targets_key]) for r in records]


def generation_eval(
    model: nn.Module,
    params: Any,
    data_cfg: ml_collections.ConfigDict,
    tokenizer: Any,
    *,
    mesh: Mesh | None,
    split: str,
    max_examples: int = 0,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_decode_len: int | None = None,
    rules: Any = (),
    batch_size: int = 64,
    max_len: int | None = None,
) -> GenerationResult:
    """Decodes a seq2seq split and scores it; see generation_metrics."""
    from llm.decode.text import DecodeOptions, decode_texts

    if data_cfg.task != "seq2seq":
        raise ConfigError(
            f"generation metrics need a seq2seq dataset (data.task='seq2seq'), not "
            f"data.task={data_cfg.task!r}; use perplexity or MLM accuracy instead."
        )
    sources, references = read_pairs(data_cfg, split, max_examples)
    options = DecodeOptions(
        max_decode_len=max_decode_len or int(data_cfg.targets_len),
        beam_size=beam_size,
        alpha=alpha,
        batch_size=batch_size,
    )
    hypotheses = decode_texts(
        model,
        params,
        tokenizer,
        sources,
        family="encoder_decoder",
        max_len=max_len or int(data_cfg.inputs_len),
        inputs_len=int(data_cfg.inputs_len),
        options=options,
        mesh=mesh,
        rules=rules,
        # A blank source is a data problem, not a reason to stop an eval.
        empty="blank",
    )
    scores: dict[str, float] = {}
    signature = ""
    kinds = metric_kinds(data_cfg.dataset)
    if "bleu" in kinds:
        tokenize = BLEU_TOKENIZE.get(data_cfg.dataset.split("/")[0])
        bleu = corpus_bleu(hypotheses, references, tokenize=tokenize)
        scores["eval/bleu"] = bleu.score
        signature = bleu.signature
        logging.info("%s", bleu.summary)
    if "rouge" in kinds:
        for name, value in rouge(hypotheses, references).items():
            scores[f"eval/{name}"] = value
    return GenerationResult(scores, signature, sources, hypotheses, references)


def generation_metrics(
    model: nn.Module,
    params: Any,
    data_cfg: ml_collections.ConfigDict,
    tokenizer: Any,
    *,
    mesh: Mesh | None,
    split: str,
    max_examples: int = 0,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_decode_len: int | None = None,
    rules: Any = (),
) -> dict[str, float]:
    """BLEU ('eval/bleu') and/or ROUGE ('eval/rouge1', 'eval/rouge2', 'eval/rougeL') on a split.

    Decodes the first max_examples sources (all when <= 0) of `split` with
    beam search (beam_size=1: greedy) and up to max_decode_len new tokens
    (default data.targets_len). Which metrics: see metric_kinds. Pass the
    training `rules` with its `mesh` to shard the batch (without them it is
    replicated).
    """
    return generation_eval(
        model,
        params,
        data_cfg,
        tokenizer,
        mesh=mesh,
        split=split,
        max_examples=max_examples,
        beam_size=beam_size,
        alpha=alpha,
        max_decode_len=max_decode_len,
        rules=rules,
    ).scores
