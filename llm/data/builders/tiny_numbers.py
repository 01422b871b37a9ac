"""TFDS builder `tiny_numbers`: English number words -> digits (translation canary)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from llm.data import numbers
from llm.data.builders import base

_SPLITS = (("train", 20_000), ("validation", 1_000), ("test", 1_000))
_SEED = 0
_MAX_DIGITS = 7


def _unique_numbers(total: int, seed: int) -> list[int]:
    """Distinct numbers, digit count uniform in 1..7 so short ones appear too."""
    rng = np.random.default_rng(seed)
    seen: set[int] = set()
    out: list[int] = []
    while len(out) < total:
        d = int(rng.integers(1, _MAX_DIGITS + 1))
        n = int(rng.integers(0 if d == 1 else 10 ** (d - 1), 10**d))
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out


class TinyNumbers(base.Builder):
    """Pairs ('four hundred two', '402'); splits hold disjoint numbers."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    EXAMPLES = sum(n for _, n in _SPLITS)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="English number words (source) and their digits (target).",
            features=tfds.features.FeaturesDict(
                {"source": tfds.features.Text(), "target": tfds.features.Text()}
            ),
            supervised_keys=("source", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        nums = _unique_numbers(sum(n for _, n in _SPLITS), _SEED)
        out, start = {}, 0
        for name, n in _SPLITS:
            out[name] = self._generate_examples(nums[start : start + n])
            start += n
        return out

    def _generate_examples(self, nums: list[int]):
        for i, n in enumerate(nums):
            yield i, {"source": numbers.to_words(n), "target": str(n)}
