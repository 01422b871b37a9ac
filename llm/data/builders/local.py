"""TFDS builders `local_text`, `local_parallel`, `local_summarization`/<name>.

Each builds the user's files (LocalConfig.files: split -> paths) into one
dataset; `name` is the user's name for it. The class names give the TFDS
dataset names, and the names, versions and features are those of data already
prepared: change them only with a new version.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator

import tensorflow_datasets as tfds

from llm.data import local_files
from llm.data.builders import base


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
    # Parallel text: languages of the source and target side ('' = not given).
    source_lang: str = ""
    target_lang: str = ""


class _LocalBuilder(base.Builder):
    """One split per LocalConfig.files entry; skipped input lines are counted.

    Abstract (`_records`), so TFDS does not register it as a dataset.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIG_CLS = LocalConfig
    # Set by each builder: DatasetInfo.description, the text features in
    # order, and whether they are (inputs, targets) supervised keys.
    DESCRIPTION: str
    FEATURES: tuple[str, ...]
    SUPERVISED = False

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({k: tfds.features.Text() for k in self.FEATURES}),
            supervised_keys=self.FEATURES if self.SUPERVISED else None,
            # Saved as metadata.json beside the data, so readers (eval's BLEU
            # tokenizer) learn the languages without the builder config.
            metadata=tfds.core.MetadataDict(self._metadata()),
        )

    def _metadata(self) -> dict[str, str]:
        return {}

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files only.
        self.counts = local_files.Counts()
        return {
            split: self._generate_examples(paths)
            for split, paths in self.builder_config.files.items()
        }

    def _generate_examples(self, paths: list[str]):
        for key, values in self._records(paths):
            yield key, dict(zip(self.FEATURES, values, strict=True))
        local_files.log_counts(self.name, self.counts)

    @abc.abstractmethod
    def _records(self, paths: list[str]) -> Iterator[tuple[int | str, tuple[str, ...]]]:
        """(example key, feature values) of a split's files.

        The keys are those of prepared data (TFDS orders examples by them).
        """


class LocalText(_LocalBuilder):
    """Documents from text files: one per line, or blank-line separated."""

    DESCRIPTION = "Local plain text prepared by launch.prepare."
    FEATURES = ("text",)

    def _records(self, paths: list[str]) -> Iterator[tuple[str, tuple[str]]]:
        for path in paths:
            docs = local_files.text_documents(path, self.builder_config.doc_sep, self.counts)
            for i, doc in enumerate(docs):
                yield f"{path}:{i}", (doc,)


class LocalParallel(_LocalBuilder):
    """(source, target) pairs from two aligned files or one TSV per split."""

    DESCRIPTION = "Local parallel text prepared by launch.prepare."
    FEATURES = ("source", "target")
    SUPERVISED = True

    def _metadata(self) -> dict[str, str]:
        cfg = self.builder_config
        return {"source_lang": cfg.source_lang, "target_lang": cfg.target_lang}

    def _records(self, paths: list[str]) -> Iterator[tuple[int, tuple[str, str]]]:
        yield from enumerate(local_files.parallel_pairs(paths, self.counts))


class LocalSummarization(_LocalBuilder):
    """(document, summary) pairs from JSON lines."""

    DESCRIPTION = "Local summarization data prepared by launch.prepare."
    FEATURES = ("document", "summary")
    SUPERVISED = True

    def _records(self, paths: list[str]) -> Iterator[tuple[str, tuple[str, str]]]:
        cfg = self.builder_config
        for path in paths:
            pairs = local_files.jsonl_pairs(path, cfg.inputs_field, cfg.targets_field, self.counts)
            for i, pair in enumerate(pairs):
                yield f"{path}:{i}", pair
