"""TFDS builder `tiny_grammar`: sentences of llm.data.grammar."""

from __future__ import annotations

import tensorflow_datasets as tfds

from llm.data import grammar
from llm.data.builders import base

# Sizes and seeds are part of the dataset version: change them together.
_SPLITS = {"train": (50_000, 0), "validation": (2_000, 1), "test": (2_000, 2)}


class TinyGrammar(base.Builder):
    """Generated English-like sentences with an exactly known entropy."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    EXAMPLES = sum(n for n, _ in _SPLITS.values())

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Sentences of a small probabilistic grammar; entropy bound "
                f"{grammar.entropy_per_token():.4f} nats per byte target."
            ),
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {name: self._generate_examples(num, seed) for name, (num, seed) in _SPLITS.items()}

    def _generate_examples(self, num: int, seed: int):
        for i, text in enumerate(grammar.generate(num, seed)):
            yield i, {"text": text}
