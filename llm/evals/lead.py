"""Lead-N, the summarization baseline every CNN/DM paper reports: the first N sentences.

Sentences are split by a small regex rather than nltk's punkt: nltk is installed (with
rouge-score) but punkt's model is a separate download that offline machines lack, and
news text needs only a few rules: a '.', '!' or '?' (and closing quotes or brackets)
then whitespace ends a sentence, unless the word before is a common abbreviation or an
initial ("Mr. Smith", "J. K. Rowling") or the next word starts lowercase. A mark
standing alone (" . ", tokenized text such as tiny_summaries) always ends one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import ml_collections

from llm.errors import ConfigError
from llm.evals.rouge import rouge

# Words that end in '.' without ending a sentence (lowercase, without the dot).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr gen sen rep gov lt col sgt capt cmdr adm rev hon "
    "vs etc inc co corp ltd no jan feb mar apr jun jul aug sep sept oct nov dec".split()
)

# A candidate boundary: the mark, any closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?]+['\"\u2019\u201d)\]]*\s+")
_BASELINE = re.compile(r"lead(\d+)")


def _ends_sentence(text: str, start: int, end: int) -> bool:
    """Whether the boundary text[start:end] (mark ... whitespace) ends a sentence."""
    if start == 0 or text[start - 1].isspace():
        return True  # A detached mark: tokenized text.
    following = text[end : end + 1]
    if following.islower():
        return False
    word = re.split(r"\s", text[:start])[-1].lstrip("(\"'\u2018\u201c").lower()
    if text[start] == "." and (word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
        return False
    return True


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order (empty text: none)."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if _ends_sentence(text, match.start(), match.end()):
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def lead(text: str, n: int = 3) -> str:
    """The first n sentences of `text`, joined by a space."""
    if n < 1:
        raise ConfigError(f"lead-{n}: n must be >= 1 (lead-3 is the usual baseline).")
    return " ".join(split_sentences(text)[:n])


def lead_rouge(sources: Sequence[str], references: Sequence[str], n: int = 3) -> dict[str, float]:
    """ROUGE-1/2/L (percent, stemmed) of lead-n against the references, keyed lead{n}_rouge1 ..."""
    scores = rouge([lead(s, n) for s in sources], references)
    return {f"lead{n}_{name}": value for name, value in scores.items()}


def parse_baseline(value: str) -> int:
    """N of a baseline flag 'leadN' (e.g. 'lead3'); '' (no baseline) is 0."""
    if not value:
        return 0
    match = _BASELINE.fullmatch(value.strip().lower())
    if not match or int(match.group(1)) < 1:
        raise ConfigError(
            f"--baseline={value!r} is not a baseline; use 'lead3' (the first 3 sentences of "
            "each source, or leadN for N >= 1) or '' for none."
        )
    return int(match.group(1))


def lead_eval(
    data_cfg: ml_collections.ConfigDict, split: str, n: int = 3, *, max_examples: int = 0
) -> dict[str, float]:
    """eval/lead{n}_rouge1/2/L on the first max_examples (all when <= 0) pairs of a summarization split."""
    from llm.evals.generation import metric_kinds, read_pairs  # reads TFDS

    if data_cfg.task != "seq2seq" or "rouge" not in metric_kinds(data_cfg.dataset):
        raise ConfigError(
            f"lead-{n} is a summarization baseline, but this run is data.task="
            f"{data_cfg.task!r} on {data_cfg.dataset!r}; drop --baseline for it."
        )
    sources, references = read_pairs(data_cfg, split, max_examples)
    # Keyed eval/... like the model's scores, so a split prefix applies to both alike.
    return {f"eval/{k}": v for k, v in lead_rouge(sources, references, n).items()}
