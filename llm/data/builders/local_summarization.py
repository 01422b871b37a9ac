"""TFDS builder `local_summarization/<name>`: JSONL documents and summaries."""

from __future__ import annotations

import tensorflow_datasets as tfds

from llm.data import local_files
from llm.data.builders import base
from llm.data.builders.local import LocalConfig


class LocalSummarization(base.Builder):
    """(document, summary) pairs from JSON lines."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIG_CLS = LocalConfig

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local summarization data prepared by launch.prepare.",
            features=tfds.features.FeaturesDict(
                {"document": tfds.features.Text(), "summary": tfds.features.Text()}
            ),
            supervised_keys=("document", "summary"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        self.counts = local_files.Counts()
        return {
            split: self._generate_examples(paths)
            for split, paths in self.builder_config.files.items()
        }

    def _generate_examples(self, paths: list[str]):
        cfg = self.builder_config
        for path in paths:
            pairs = local_files.jsonl_pairs(path, cfg.inputs_field, cfg.targets_field, self.counts)
            for i, (doc, summary) in enumerate(pairs):
                yield f"{path}:{i}", {"document": doc, "summary": summary}
        local_files.log_counts(self.name, self.counts)
