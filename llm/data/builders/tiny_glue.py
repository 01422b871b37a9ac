"""TFDS builder `tiny_glue`: is a review positive? (GLUE-format, SST-2-like, with negation).

Each sentence reports a judgement of a templated object ("Mira said the red
kite in Oslo was lovely."); label 1 when the judgement is positive. A third
of the sentences negate it ("... was not lovely."), which flips the label, so
neither one word nor the bag of words gives it: the adjective and the "not"
before it must be read together, as SST-2's negations need. Balanced classes,
SST-2's features (`sentence`, `label`, `idx`), and unlike GLUE the test split
keeps its labels.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from llm.data.builders import base
from llm.data.builders.tiny_qa import CITIES, COLORS, NAMES, THINGS

_SPLITS = (("train", 5_000, 10), ("validation", 500, 11), ("test", 500, 12))
LABEL_NAMES = ("negative", "positive")
POSITIVE = ("lovely", "great", "superb", "charming", "splendid", "fine")
NEGATIVE = ("awful", "dreadful", "dull", "shabby", "poor", "ugly")
NEGATION_RATE = 1 / 3


def make_example(rng: np.random.Generator, index: int) -> dict:
    """One record: a judged object and whether the judgement is positive."""
    name, color, thing, city = (str(rng.choice(w)) for w in (NAMES, COLORS, THINGS, CITIES))
    label = int(rng.integers(2))
    negated = bool(rng.random() < NEGATION_RATE)
    # "not awful" is positive: the adjective's polarity is the label flipped by negation.
    adjective = str(rng.choice(POSITIVE if label != negated else NEGATIVE))
    judgement = f"not {adjective}" if negated else adjective
    sentence = f"{name} said the {color} {thing} in {city} was {judgement}."
    return {"sentence": sentence, "label": label, "idx": index}


class TinyGlue(base.Builder):
    """Judgement sentences labelled positive (1) or negative (0); deterministic, built in seconds."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Fact/claim pairs.",
        "2.0.0": "Single sentences with a possibly negated judgement (SST-2-like).",
    }
    EXAMPLES = sum(n for _, n, _ in _SPLITS)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="A judged object; label 1 when the (possibly negated) judgement is positive.",
            features=tfds.features.FeaturesDict(
                {
                    "sentence": tfds.features.Text(),
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
