"""Shared config of the local_* builders: which files make which split."""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds


@dataclasses.dataclass
class LocalConfig(tfds.core.BuilderConfig):
    """A local dataset; `name` is the user's name for it.

    files: split -> input paths (text: any number; parallel: two aligned files
    or one TSV; summarization: JSONL files).
    """

    files: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    doc_sep: str = "line"
    inputs_field: str = "document"
    targets_field: str = "summary"
