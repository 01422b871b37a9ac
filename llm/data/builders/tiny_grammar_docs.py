"""TFDS builder `tiny_grammar_docs`: documents of grammar sentences (MLM, NSP)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from llm.data import grammar
from llm.data.builders import base

_SPLITS = {"train": (5_000, 10), "validation": (500, 11), "test": (500, 12)}
# Sentences per document, uniform: at least two so that NSP can split one.
_MIN_SENTENCES, _MAX_SENTENCES = 2, 6


class TinyGrammarDocs(base.Builder):
    """Documents of 2-6 sentences of llm.data.grammar, one per record."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    EXAMPLES = sum(n for n, _ in _SPLITS.values())

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Multi-sentence documents of a small grammar, for MLM and NSP.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {name: self._generate_examples(n, seed) for name, (n, seed) in _SPLITS.items()}

    def _generate_examples(self, num: int, seed: int):
        rng = np.random.default_rng(seed)
        for i in range(num):
            k = int(rng.integers(_MIN_SENTENCES, _MAX_SENTENCES + 1))
            yield i, {"text": " ".join(grammar.sample(rng)[0] for _ in range(k))}
