"""The Task protocol: what the pipeline needs from a task (lm, mlm, seq2seq)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from llm.data.packing import Columns
from llm.data.stats import Counter


class Task(Protocol):
    """Records (or their cached token ids) -> packed rows -> a batch format.

    lengths: the row length of each sequence feature (packing.make_rows caps).
    pack: pack several examples into a row; False pads one per row.
    open_rows: rows first-fit packing keeps open (packing.make_rows).
    needs_text: examples need the record's text, so a token-id cache cannot
      serve them (MLM with NSP splits sentences).
    counter: examples seen and truncated, for logs and split_stats.
    """

    lengths: Mapping[str, int]
    pack: bool
    open_rows: int
    needs_text: bool
    counter: Counter

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The token ids of a record (what the token-id cache stores)."""
        ...

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns and meta (packing.make_rows input) of records or id dicts."""
        ...

    def to_batch(self, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the task's docs/contracts.md format."""
        ...
