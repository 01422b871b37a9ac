"""TFDS builder `tiny_glue`: does a claim follow from a fact? (GLUE-format pair classification).

sentence1 is a fact ("Mira keeps a red kite in Oslo."), sentence2 a claim
about the same person ("Mira keeps a red kite." or "Mira's kite is in
Oslo."); label 1 when the claim matches the fact, 0 when one word of it (the
color, thing or city) was swapped for another. No single character or word
of either sentence gives the label: the claim's words must be compared with
the fact's. Balanced classes, GLUE's features (`sentence1`, `sentence2`,
`label`, `idx`), and unlike GLUE the test split keeps its labels.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from llm.data.builders import base
from llm.data.builders.tiny_qa import CITIES, COLORS, NAMES, THINGS

_SPLITS = (("train", 5_000, 10), ("validation", 500, 11), ("test", 500, 12))
LABEL_NAMES = ("not_entailment", "entailment")


def _other(rng: np.random.Generator, words: list[str], word: str) -> str:
    return str(rng.choice([w for w in words if w != word]))


def make_example(rng: np.random.Generator, index: int) -> dict:
    """One record: a fact, a claim about it and whether the claim holds."""
    name, color, thing, city = (str(rng.choice(w)) for w in (NAMES, COLORS, THINGS, CITIES))
    fact = f"{name} keeps a {color} {thing} in {city}."
    label = int(rng.integers(2))
    if rng.integers(2):
        if not label:  # Swap the color or the thing.
            if rng.integers(2):
                color = _other(rng, COLORS, color)
            else:
                thing = _other(rng, THINGS, thing)
        claim = f"{name} keeps a {color} {thing}."
    else:
        if not label:  # Swap the city or the thing.
            if rng.integers(2):
                city = _other(rng, CITIES, city)
            else:
                thing = _other(rng, THINGS, thing)
        claim = f"{name}'s {thing} is in {city}."
    return {"sentence1": fact, "sentence2": claim, "label": label, "idx": index}


class TinyGlue(base.Builder):
    """Fact/claim pairs labelled entailment (1) or not (0); deterministic, built in seconds."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    EXAMPLES = sum(n for _, n, _ in _SPLITS)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="A fact, a claim about it, and whether the claim follows (1) or not (0).",
            features=tfds.features.FeaturesDict(
                {
                    "sentence1": tfds.features.Text(),
                    "sentence2": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=list(LABEL_NAMES)),
                    "idx": np.int32,
                }
            ),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {name: self._generate_examples(n, seed) for name, n, seed in _SPLITS}

    def _generate_examples(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        for i in range(n):
            yield i, make_example(rng, i)
