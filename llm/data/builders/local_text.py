"""TFDS builder `local_text/<name>`: plain text files as an LM dataset."""

from __future__ import annotations

import tensorflow_datasets as tfds

from llm.data import local_files
from llm.data.builders import base
from llm.data.builders.local import LocalConfig


class LocalText(base.Builder):
    """Documents from text files: one per line, or blank-line separated."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIG_CLS = LocalConfig

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local plain text prepared by launch.prepare.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        self.counts = local_files.Counts()
        return {
            split: self._generate_examples(paths)
            for split, paths in self.builder_config.files.items()
        }

    def _generate_examples(self, paths: list[str]):
        for path in paths:
            for i, doc in enumerate(
                local_files.text_documents(path, self.builder_config.doc_sep, self.counts)
            ):
                yield f"{path}:{i}", {"text": doc}
        local_files.log_counts(self.name, self.counts)
