"""Generation metrics of a seq2seq model on a data split: BLEU (translation) and ROUGE (summaries).

The sources of the split are decoded (beam search by default, as AIAYN
scored) and compared on detokenized text with sacrebleu and rouge-score.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
from absl import logging

from llm.errors import ConfigError
from llm.evals.bleu import check_tokenize, corpus_bleu, tokenize_for_language
from llm.evals.rouge import rouge
from llm.train.trained import TrainedModel

# Dataset name fragments that mark summarization (ROUGE) rather than translation (BLEU).
SUMMARIZATION_DATASETS = ("cnn_dailymail", "xsum", "gigaword", "billsum", "samsum", "summar")
TRANSLATION_DATASETS = ("translate", "wmt", "tiny_numbers", "iwslt", "opus", "local_parallel")
# sacrebleu tokenizers for datasets whose targets are not space-separated words:
# a number is one 13a token, so only character n-grams make BLEU meaningful.
BLEU_TOKENIZE = {"tiny_numbers": "char"}


@dataclasses.dataclass(frozen=True)
class GenerationResult:
    """Scores (eval/bleu, eval/rouge1, ...), the sacrebleu signature and the decoded texts.

    The texts are those of the examples scored: len(sources) of split_examples.
    """

    scores: dict[str, float]
    bleu_signature: str
    sources: list[str]
    hypotheses: list[str]
    references: list[str]
    split_examples: int = 0


def metric_kinds(dataset: str) -> tuple[str, ...]:
    """Which generation metrics fit a dataset: ('bleu',), ('rouge',) or both when unknown."""
    name = dataset.lower()
    if any(s in name for s in SUMMARIZATION_DATASETS):
        return ("rouge",)
    if any(s in name for s in TRANSLATION_DATASETS):
        return ("bleu",)
    return ("bleu", "rouge")


def bleu_tokenize(data_cfg: ml_collections.ConfigDict, override: str = "") -> str:
    """sacrebleu tokenizer of a dataset: override, else the dataset's, else by target language.

    Target language: the one launch.prepare recorded for local_parallel, or the
    target feature of a TFDS translation pair ('zh' of wmt19_translate/zh-en
    read as en -> zh); zh -> 'zh', ja -> 'ja-mecab', ko -> 'ko-mecab', else '13a'.
    """
    if override:
        check_tokenize(override)
        return override
    fixed = BLEU_TOKENIZE.get(data_cfg.dataset.split("/")[0])
    if fixed:
        return fixed
    from llm.data.prepare import dataset_languages  # reads dataset metadata (TFDS)

    tokenize = tokenize_for_language(dataset_languages(data_cfg)[1])
    check_tokenize(tokenize)
    return tokenize


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_pairs(
    data_cfg: ml_collections.ConfigDict, split: str, max_examples: int
) -> tuple[list[str], list[str]]:
    """The first max_examples (all when <= 0) (source, reference) texts of a seq2seq split."""
    return _read_pairs(data_cfg, split, max_examples)[:2]


def _read_pairs(
    data_cfg: ml_collections.ConfigDict, split: str, max_examples: int
) -> tuple[list[str], list[str], int]:
    from llm import data as data_lib  # data pulls in TFDS; import it only when reading

    source = data_lib.get_source(data_cfg, split)
    inputs_key, targets_key = data_lib.pair_keys(data_cfg)
    count = len(source) if max_examples <= 0 else min(max_examples, len(source))
    if count == 0:
        raise ConfigError(f"Split {split!r} of {data_cfg.dataset!r} has no examples to decode.")
    records = [source[i] for i in range(count)]
    texts = [_text(r[inputs_key]) for r in records], [_text(r[targets_key]) for r in records]
    return *texts, len(source)


def generation_eval(
    run: TrainedModel,
    tokenizer: Any,
    *,
    split: str,
    max_examples: int = 0,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_decode_len: int = 0,
    batch_size: int = 64,
    decode_options: Any = None,
    bleu_tokenize_override: str = "",
) -> GenerationResult:
    """Decodes a seq2seq split of the run's data and scores it; see generation_metrics.

    decode_options (llm.decode.text.DecodeOptions) replaces beam_size, alpha,
    max_decode_len and batch_size; bleu_tokenize_override picks sacrebleu's
    tokenizer (default: bleu_tokenize).
    """
    from llm.decode.text import DecodeOptions, decode_texts

    data_cfg = run.config.data
    if data_cfg.task != "seq2seq":
        raise ConfigError(
            f"generation metrics need a seq2seq dataset (data.task='seq2seq'), not "
            f"data.task={data_cfg.task!r}; use perplexity or MLM accuracy instead."
        )
    kinds = metric_kinds(data_cfg.dataset)
    # Checked before decoding, which takes a while.
    tokenize = bleu_tokenize(data_cfg, bleu_tokenize_override) if "bleu" in kinds else ""
    sources, references, split_examples = _read_pairs(data_cfg, split, max_examples)
    options = decode_options or DecodeOptions(
        max_decode_len=max_decode_len,
        beam_size=beam_size,
        alpha=alpha,
        batch_size=batch_size,
    )
    # A blank source is a data problem, not a reason to stop an eval.
    hypotheses = decode_texts(run, tokenizer, sources, options=options, empty="blank")
    scores: dict[str, float] = {}
    signature = ""
    if "bleu" in kinds:
        bleu = corpus_bleu(hypotheses, references, tokenize=tokenize)
        scores["eval/bleu"] = bleu.score
        signature = bleu.signature
        logging.info("%s", bleu.summary)
    if "rouge" in kinds:
        for name, value in rouge(hypotheses, references).items():
            scores[f"eval/{name}"] = value
    return GenerationResult(scores, signature, sources, hypotheses, references, split_examples)


def generation_metrics(
    run: TrainedModel,
    tokenizer: Any,
    *,
    split: str,
    max_examples: int = 0,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_decode_len: int = 0,
) -> dict[str, float]:
    """BLEU ('eval/bleu') and/or ROUGE ('eval/rouge1', 'eval/rouge2', 'eval/rougeL') on a split.

    Decodes the first max_examples sources (all when <= 0) of `split` of the
    run's data with beam search (beam_size=1: greedy) on the run's mesh and up
    to max_decode_len new tokens (0: data.targets_len). Which metrics:
    see metric_kinds.
    """
    return generation_eval(
        run,
        tokenizer,
        split=split,
        max_examples=max_examples,
        beam_size=beam_size,
        alpha=alpha,
        max_decode_len=max_decode_len,
    ).scores
