"""Counts of what preprocessing dropped or cut, logged as they grow."""

from __future__ import annotations

import dataclasses

from absl import logging


@dataclasses.dataclass
class Counter:
    """Examples seen and truncated by one transform in this process.

    Worker processes each hold their own copy, so the log lines are per
    process; `llm.data.stats.scan` gives whole-split numbers.
    """

    name: str
    examples: int = 0
    truncated: int = 0
    truncated_targets: int = 0

    def add(self, *, truncated: bool = False, truncated_targets: bool = False) -> None:
        """Counts one example."""
        self.examples += 1
        self.truncated += int(truncated)
        self.truncated_targets += int(truncated_targets)
        if truncated or truncated_targets:
            logging.log_every_n_seconds(logging.INFO, "%s", 60, self.summary())

    def add_many(self, examples: int, *, truncated: int = 0, truncated_targets: int = 0) -> None:
        """Counts a chunk of examples."""
        self.examples += examples
        self.truncated += truncated
        self.truncated_targets += truncated_targets
        if truncated or truncated_targets:
            logging.log_every_n_seconds(logging.INFO, "%s", 60, self.summary())

    def summary(self) -> str:
        """One line for logs and reports."""
        return (
            f"{self.name}: {self.examples} examples, {self.truncated} truncated inputs, "
            f"{self.truncated_targets} truncated targets"
        )
