"""Counts of what preprocessing dropped or cut, logged as they grow."""

from __future__ import annotations

import dataclasses

from absl import logging


@dataclasses.dataclass
class Counter:
    """Examples seen and truncated by one transform in this process.

    Worker processes each hold their own copy, so the log lines are running
    counts of one process; `llm.data.pipeline.split_stats` gives whole-split
    numbers. `inputs` and `targets` say what the two counts count (naming the
    config field of the limit) and `action` what happens to those examples.
    """

    name: str
    inputs: str = "inputs longer than a row"
    targets: str = ""
    action: str = "they are truncated"
    unit: str = "examples"
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
        """One line for logs: the counts with their denominator and limits named."""

        def share(count: int) -> str:
            return f"{count:,} ({count / max(self.examples, 1):.1%})"

        line = f"{self.name}: {share(self.truncated)} of the first {self.examples:,} {self.unit}"
        line += f" read by this process had {self.inputs}"
        if self.targets:
            line += f", {share(self.truncated_targets)} had {self.targets}"
        return f"{line}; {self.action}"
