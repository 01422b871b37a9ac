"""TFDS builder `local_parallel/<name>`: parallel text for translation."""

from __future__ import annotations

import tensorflow_datasets as tfds

from llm.data import local_files
from llm.data.builders import base
from llm.data.builders.local import LocalConfig


class LocalParallel(base.Builder):
    """(source, target) pairs from two aligned files or one TSV per split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIG_CLS = LocalConfig

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Local parallel text prepared by launch.prepare.",
            features=tfds.features.FeaturesDict(
                {"source": tfds.features.Text(), "target": tfds.features.Text()}
            ),
            supervised_keys=("source", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        self.counts = local_files.Counts()
        return {
            split: self._generate_examples(paths)
            for split, paths in self.builder_config.files.items()
        }

    def _generate_examples(self, paths: list[str]):
        for i, (src, tgt) in enumerate(local_files.parallel_pairs(paths, self.counts)):
            yield i, {"source": src, "target": tgt}
        local_files.log_counts(self.name, self.counts)
