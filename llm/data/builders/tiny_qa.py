"""TFDS builder `tiny_qa`: templated facts and questions in SQuAD's format (span QA canary).

A context is two or three facts about different people ("Mira keeps a red kite
in Oslo. Jon keeps a blue drum in Lima."); a question names one of them
and asks for another part of that fact ("What does Jon keep?" -> "a blue
drum", "Where does Mira keep the kite?" -> "Oslo", "Who keeps the blue
drum?" -> "Jon", "What color is Mira's kite?" -> "red"). Answering needs
matching the question's entity to its fact. Contexts are at most ~100 bytes,
words come from small lists, and every split is generated from its own seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from llm.data.builders import base

_SPLITS = (("train", 5_000, 0), ("validation", 500, 1), ("test", 500, 2))
# Words of each list start with distinct letters: a byte-level model can
# match an entity by its first letter, which keeps the canary fast to learn.
NAMES = "Ana Bo Cleo Dina Eva Finn Gus Hana Ivo Jon Kai Lena Mira Nico Omar".split()
COLORS = "red blue green pink white tan orange".split()
THINGS = "bell cup drum fan hat jar kite lamp mug pen".split()
CITIES = "Oslo Lima Rome Kyiv Baku Doha Nice Pune Graz Turin".split()
_FACTS = (2, 3)  # Facts per context, inclusive.


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_example(rng: np.random.Generator, index: int, split: str) -> dict:
    """One record: a context of facts and a question whose answer is a span of it."""
    n = int(rng.integers(_FACTS[0], _FACTS[1] + 1))
    # Distinct people, colors, things and cities within a context, so each
    # answer occurs once and only the question's entity picks it out.
    names, colors, things, cities = (
        [str(x) for x in rng.choice(words, n, replace=False)]
        for words in (NAMES, COLORS, THINGS, CITIES)
    )
    facts, spans = [], []
    offset = 0
    for name, color, thing, city in zip(names, colors, things, cities, strict=True):
        obj = f"{_article(color)} {color} {thing}"
        fact = f"{name} keeps {obj} in {city}."
        start_obj = offset + len(name) + len(" keeps ")
        start_color = start_obj + len(_article(color)) + 1
        start_city = start_obj + len(obj) + len(" in ")
        spans.append(
            {
                "name": (offset, name),
                "obj": (start_obj, obj),
                "color": (start_color, color),
                "city": (start_city, city),
            }
        )
        facts.append(fact)
        offset += len(fact) + 1
    context = " ".join(facts)
    k = int(rng.integers(n))
    kind = ("obj", "city", "name", "color")[int(rng.integers(4))]
    name, color, thing = names[k], colors[k], things[k]
    question = {
        "obj": f"What does {name} keep?",
        "city": f"Where does {name} keep the {thing}?",
        "name": f"Who keeps the {color} {thing}?",
        "color": f"What color is {name}'s {thing}?",
    }[kind]
    start, text = spans[k][kind]
    assert context[start : start + len(text)] == text
    return {
        "id": f"{split}-{index:05d}",
        "title": "facts",
        "context": context,
        "question": question,
        "answers": {"text": [text], "answer_start": [start]},
    }


class TinyQa(base.Builder):
    """SQuAD-format records over templated facts; deterministic, built in seconds."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Two or three facts per context; words with distinct first letters.",
    }
    EXAMPLES = sum(n for _, n, _ in _SPLITS)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Templated facts (context), a question about one, its answer span.",
            # The features of TFDS squad/v1.1.
            features=tfds.features.FeaturesDict(
                {
                    "id": np.str_,
                    "title": tfds.features.Text(),
                    "context": tfds.features.Text(),
                    "question": tfds.features.Text(),
                    "answers": tfds.features.Sequence(
                        {"text": tfds.features.Text(), "answer_start": np.int32}
                    ),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {name: self._generate_examples(name, n, seed) for name, n, seed in _SPLITS}

    def _generate_examples(self, split: str, n: int, seed: int):
        rng = np.random.default_rng(seed)
        for i in range(n):
            example = make_example(rng, i, split)
            yield example["id"], example
