"""TFDS builder `tiny_summaries`: generated news stories and their highlights (summarization canary).

Each article is 6-8 sentences: an event ("the mayor of lyon opened the new bridge near
the river on monday ."), a figure about it ("officials said the bridge cost 12 million
euros .") and distractors (weather, traffic, a spokesman of some other official). One to
four distractors lead, so the event sits at sentence 2-5 and the figure after it. The
highlights compress the two key sentences ("the mayor of lyon opened the bridge . it
cost 12 million euros ."): a model that learned the rule scores near 100 ROUGE, while the
first three sentences (lead-3) miss or dilute them. Features are named as cnn_dailymail's
(`article` -> `highlights`), so its experiment configs work on it unchanged.
"""

from __future__ import annotations

import random

import tensorflow_datasets as tfds

from llm.data.builders import base

# Sizes and seeds are part of the dataset version: change them together.
_SPLITS = {"train": (20_000, 0), "validation": (1_000, 1), "test": (1_000, 2)}

ROLES = ("mayor", "minister", "coach", "captain", "director", "governor", "chef", "judge")
CITIES = ("lyon", "oslo", "lima", "cairo", "perth", "quito", "turin", "dakar", "hanoi", "porto")
VERBS = ("opened", "closed", "sold", "bought", "built", "visited", "praised", "approved")
OBJECTS = ("bridge", "museum", "stadium", "school", "harbour", "library", "factory", "market")
ADJECTIVES = ("new", "old", "large", "small", "modern", "historic")
WHEN = ("on monday", "on tuesday", "on friday", "last week", "this morning", "yesterday")
WHERE = ("near the river", "in the north", "on the coast", "in the old town", "by the lake")
CURRENCIES = ("euros", "dollars", "pounds", "francs")
WEATHER = ("cold", "warm", "windy", "grey", "sunny", "wet")
STREETS = ("main street", "the ring road", "the old bridge road", "the harbour road")
MONTHS = ("two", "three", "six", "nine", "eleven")


def _event(rng: random.Random, role: str, city: str, verb: str, obj: str) -> str:
    when, where, adj = rng.choice(WHEN), rng.choice(WHERE), rng.choice(ADJECTIVES)
    core = f"the {role} of {city} {verb} the {adj} {obj} {where}"
    # The time phrase leads or trails, so no fixed offset finds the actor.
    return f"{when} , {core} ." if rng.random() < 0.5 else f"{core} {when} ."


def _distractor(rng: random.Random, role: str, city: str) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"the weather was {rng.choice(WEATHER)} and {rng.choice(WEATHER)} all day ."
    if kind == 1:
        return f"traffic on {rng.choice(STREETS)} was slow for {rng.choice(MONTHS)} hours ."
    if kind == 2:
        return f"residents said they had waited {rng.choice(MONTHS)} months for news ."
    # Another official: the summary's actor is the one who acted, not any named one.
    other_role = rng.choice([r for r in ROLES if r != role])
    other_city = rng.choice([c for c in CITIES if c != city])
    return f"a spokesman for the {other_role} of {other_city} declined to comment ."


def example(rng: random.Random) -> tuple[str, str]:
    """One (article, highlights) pair drawn from rng."""
    role, city = rng.choice(ROLES), rng.choice(CITIES)
    verb, obj = rng.choice(VERBS), rng.choice(OBJECTS)
    amount, currency = rng.randint(2, 99), rng.choice(CURRENCIES)
    num_sentences = rng.randint(6, 8)
    # 1-4 distractors lead; the figure follows the event somewhere later.
    event_at = rng.randint(1, 4)
    figure_at = rng.randint(event_at + 1, num_sentences - 1)
    sentences = [_distractor(rng, role, city) for _ in range(num_sentences)]
    sentences[event_at] = _event(rng, role, city, verb, obj)
    sentences[figure_at] = f"officials said the {obj} cost {amount} million {currency} ."
    highlights = f"the {role} of {city} {verb} the {obj} . it cost {amount} million {currency} ."
    return " ".join(sentences), highlights


def generate(num: int, seed: int) -> list[tuple[str, str]]:
    """`num` (article, highlights) pairs, the same for the same seed."""
    rng = random.Random(seed)
    return [example(rng) for _ in range(num)]


class TinySummaries(base.Builder):
    """Generated stories whose highlights are two compressed key sentences, never the lead."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    EXAMPLES = sum(n for n, _ in _SPLITS.values())

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Generated news stories (article) and their highlights.",
            features=tfds.features.FeaturesDict(
                {"article": tfds.features.Text(), "highlights": tfds.features.Text()}
            ),
            supervised_keys=("article", "highlights"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {name: self._generate_examples(num, seed) for name, (num, seed) in _SPLITS.items()}

    def _generate_examples(self, num: int, seed: int):
        for i, (article, highlights) in enumerate(generate(num, seed)):
            yield i, {"article": article, "highlights": highlights}
