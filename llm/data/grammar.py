"""A small probabilistic English-like grammar with an exact entropy bound.

Sentences look like "the small dog sees a red ball near every tree ." Every
word belongs to one category and every rule has a distinct category
sequence, so a sentence has exactly one derivation: -log p(sentence) is the
sum of the -log probabilities of the rules used, and the entropy of the
sentence distribution equals the expected derivation cost, which a
dynamic program over the (non-recursive) grammar gives exactly.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

# Nonterminal -> [(probability, symbols)]; a symbol not in the dict is a
# word. Words are written followed by one space, except the final '.', which
# is how the byte count of a sentence is computed below.
Grammar = Mapping[str, Sequence[tuple[float, tuple[str, ...]]]]


def _uniform(words: Sequence[str]) -> list[tuple[float, tuple[str, ...]]]:
    return [(1.0 / len(words), (w,)) for w in words]


GRAMMAR: Grammar = {
    "S": [(1.0, ("NP", "VP", "."))],
    "NP": [(0.6, ("Det", "N")), (0.4, ("Det", "Adj", "N"))],
    "VP": [
        (0.2, ("Vi",)),
        (0.6, ("Vt", "NP")),
        (0.2, ("Vt", "NP", "PP")),
    ],
    "PP": [(1.0, ("P", "NP"))],
    "Det": [(0.5, ("the",)), (0.3, ("a",)), (0.2, ("every",))],
    "Adj": _uniform(["small", "big", "red", "old", "happy", "green"]),
    "N": _uniform(["dog", "cat", "bird", "child", "ball", "tree", "house", "fish"]),
    "Vi": _uniform(["sleeps", "runs", "sings"]),
    "Vt": _uniform(["sees", "likes", "finds", "chases"]),
    "P": _uniform(["near", "under", "with"]),
}
START = "S"


def _word_bytes(word: str) -> int:
    # A word is followed by a space; the final '.' is not.
    return len(word.encode()) + (0 if word == "." else 1)


@functools.cache
def _stats(symbol: str) -> tuple[float, float]:
    """(expected -log p in nats, expected bytes) of expanding `symbol`."""
    if symbol not in GRAMMAR:
        return 0.0, float(_word_bytes(symbol))
    nats = bytes_ = 0.0
    for p, rhs in GRAMMAR[symbol]:
        child = [_stats(s) for s in rhs]
        nats += p * (-math.log(p) + sum(c[0] for c in child))
        bytes_ += p * sum(c[1] for c in child)
    return nats, bytes_


def sentence_entropy() -> float:
    """Exact entropy of a sentence, in nats."""
    return _stats(START)[0]


def expected_bytes() -> float:
    """Exact expected UTF-8 length of a sentence, in bytes."""
    return _stats(START)[1]


def entropy_per_token() -> float:
    """Exact lower bound of the LM loss, in nats per byte-tokenizer target.

    The unit is what the LM task trains on: each sentence gives len(bytes)
    targets plus one EOS target (which is deterministic after the final '.').
    The bound is E[-log p(sentence)] / E[len(bytes) + 1], the limit of a
    token-weighted mean loss over many sentences; exp() of it is the best
    achievable held-out perplexity. It is what the eval loss of the LM task
    (weights-averaged cross-entropy) converges to for a perfect model, given
    data.tokenizer='byte' and data.pack_mode='first_fit' (every sentence
    whole in its own segment; 'concat' would cut some from their context).
    """
    return sentence_entropy() / (expected_bytes() + 1.0)


@functools.cache
def _cumulative(symbol: str) -> tuple[float, ...]:
    return tuple(itertools.accumulate(p for p, _ in GRAMMAR[symbol]))


def _expand(symbol: str, rng: np.random.Generator, out: list[str]) -> float:
    if symbol not in GRAMMAR:
        out.append(symbol)
        return 0.0
    rules = GRAMMAR[symbol]
    # bisect on a scalar draw: rng.choice costs ~20x more per call, and
    # building the dataset must take seconds.
    i = 0
    if len(rules) > 1:
        i = min(bisect.bisect_right(_cumulative(symbol), rng.random()), len(rules) - 1)
    p, rhs = rules[i]
    return -math.log(p) + sum(_expand(s, rng, out) for s in rhs)


def sample(rng: np.random.Generator) -> tuple[str, float]:
    """Returns one sentence and its exact -log p in nats."""
    words: list[str] = []
    nats = _expand(START, rng, words)
    return " ".join(words), nats


def generate(num: int, seed: int) -> list[str]:
    """Returns `num` sentences drawn deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    return [sample(rng)[0] for _ in range(num)]


def _is_category(symbol: str) -> bool:
    """A part of speech: a nonterminal whose rules each give one word."""
    rules = GRAMMAR.get(symbol, ())
    return bool(rules) and all(len(rhs) == 1 and rhs[0] not in GRAMMAR for _, rhs in rules)


@functools.cache
def _category_sequences(symbol: str = START) -> tuple[tuple[str, ...], ...]:
    """Every sequence of parts of speech `symbol` derives ('.' is its own category)."""
    if symbol not in GRAMMAR or _is_category(symbol):
        return ((symbol,),)
    out = []
    for _, rhs in GRAMMAR[symbol]:
        for parts in itertools.product(*(_category_sequences(s) for s in rhs)):
            out.append(tuple(itertools.chain.from_iterable(parts)))
    return tuple(out)


@functools.cache
def _word_categories() -> dict[str, str]:
    """word -> its part of speech (each word has exactly one)."""
    out = {".": "."}
    for symbol, rules in GRAMMAR.items():
        if _is_category(symbol):
            out.update({rhs[0]: symbol for _, rhs in rules})
    return out


def next_word_task(num: int, seed: int, choices: int = 4) -> list[dict]:
    """`num` multiple-choice examples: which word can continue a sentence's prefix.

    Each example cuts a sampled sentence after its first k >= 1 words; the gold choice is
    the sentence's next word, the others are words the grammar never allows there (a
    transitive verb needs an object, a determiner a noun, ...). Distractors are the
    ungrammatical words nearest in byte length to the gold one. An untrained model's
    per-byte score (acc_norm) sits at chance, 1 / choices; its summed log-probability
    still favours the shorter choices where lengths differ (0.37 for tiny_lm at init).
    Rows are {'context', 'choices', 'gold'}, the lm-eval-harness layout.
    """
    rng = np.random.default_rng(seed)
    categories = _word_categories()
    sequences = _category_sequences()
    words = sorted(categories)
    examples = []
    while len(examples) < num:
        sentence = sample(rng)[0].split(" ")
        k = int(rng.integers(1, len(sentence)))
        prefix = tuple(categories[w] for w in sentence[:k])
        allowed = {s[k] for s in sequences if len(s) > k and s[:k] == prefix}
        wrong = [w for w in words if categories[w] not in allowed]
        gold_word = sentence[k]
        nearest = sorted(wrong, key=lambda w: (abs(len(w) - len(gold_word)), rng.random()))
        options = [gold_word, *nearest[: choices - 1]]
        order = rng.permutation(len(options))
        examples.append(
            {
                "context": " ".join(sentence[:k]),
                "choices": [" " + options[i] for i in order],
                "gold": int(np.flatnonzero(order == 0)[0]),
            }
        )
    return examples
