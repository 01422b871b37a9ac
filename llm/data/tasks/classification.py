"""Sentence (pair) classification (GLUE) -> one `[CLS] a [SEP] (b [SEP])` row per record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.data import sources
from llm.data.packing import Columns, columns_of
from llm.data.sources import (  # noqa: F401  (the feature tables live with the sources)
    GLUE_SENTENCE_KEYS,
    check_classification_supported,
    glue_config,
    sentence_keys,
)
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer
from llm.errors import ConfigError, ConfigKeyError

# Classes of each GLUE classification task (MNLI and AX: entailment,
# neutral, contradiction). STS-B is regression and has none.
GLUE_NUM_LABELS = {
    "cola": 2,
    "sst2": 2,
    "mrpc": 2,
    "qqp": 2,
    "mnli": 3,
    "mnli_matched": 3,
    "mnli_mismatched": 3,
    "qnli": 2,
    "rte": 2,
    "wnli": 2,
    "ax": 3,
}
_DATASET_NUM_LABELS = {"tiny_glue": 2}

# Label value of records without a label (GLUE's test splits).
NO_LABEL = -1


def label_key(data_cfg: ml_collections.ConfigDict) -> str:
    """The feature holding a record's class id (data.label_key, default 'label')."""
    return data_cfg.get("label_key", "") or "label"


def num_labels(dataset: str) -> int:
    """Classes of a known classification dataset (GLUE configs, tiny_glue)."""
    check_classification_supported(dataset)
    n = GLUE_NUM_LABELS.get(glue_config(dataset)) or _DATASET_NUM_LABELS.get(
        sources.base_name(dataset)
    )
    if n is None:
        raise ConfigError(
            f"Number of classes of {dataset!r} is unknown; known: glue/"
            f"{{{','.join(GLUE_NUM_LABELS)}}} and {sorted(_DATASET_NUM_LABELS)}; set it in the "
            "model config (model.num_labels)."
        )
    return n


def truncate_pair(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths after BERT's longest-first truncation of a pair to `budget` tokens.

    The same as dropping the last token of the longer side (of b on ties)
    one at a time until the pair fits, in closed form.
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    short = min(len_a, len_b)
    if short <= budget - short:  # Only the longer side is cut.
        return (budget - len_b, len_b) if len_a > len_b else (len_a, budget - len_a)
    return budget - budget // 2, budget // 2


def _label(record: Mapping[str, Any], key: str) -> int:
    if key not in record:
        raise ConfigKeyError(
            f"Record has no label feature {key!r} (data.label_key); it has {sorted(record)}."
        )
    return int(np.asarray(record[key]).reshape(()))


class ClassificationTask:
    """Record -> `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` padded to data.seq_len.

    BOS and EOS play BERT's [CLS] and [SEP]. Pairs longer than a row are cut
    longest-first (BERT's run_classifier), single sentences keep their first
    tokens; both are counted. Records labelled -1 (GLUE test splits) get
    label 0 and label_weights 0.
    """

    def __init__(self, data_cfg: ml_collections.ConfigDict, tok: Tokenizer):
        self._tok = tok
        self._keys = sentence_keys(data_cfg)
        self._label_key = label_key(data_cfg)
        self._seq_len = data_cfg.seq_len
        length = data_cfg.seq_len
        self.lengths = {"inputs": length, "token_type_ids": length}
        # One label per row: examples cannot share a row.
        self.pack = False
        self.open_rows = 1
        self.needs_text = False
        self.counter = Counter(
            "classification",
            inputs=f"more tokens than a row of data.seq_len={length} holds (with [CLS] and [SEP]s)",
            action="the longer side of a pair is cut (longest first), a sentence keeps its start",
        )

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Token ids of the sentence(s) and the label (what the token-id cache stores).

        The label is stored shifted by one ('label_plus_one'), so that -1
        survives the cache's unsigned ids.
        """
        out = {"a": self._tok.encode(sources.record_text(record, self._keys[0]))}
        if len(self._keys) == 2:
            out["b"] = self._tok.encode(sources.record_text(record, self._keys[1]))
        label = _label(record, self._label_key)
        if label < NO_LABEL:
            raise ConfigError(
                f"Label {label} in feature {self._label_key!r} is negative; classification "
                "labels are class ids >= 0, or -1 for unlabelled records."
            )
        out["label_plus_one"] = np.array([label + 1], np.int32)
        return out

    def example(self, ids: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The row of a record's token ids (encode's output)."""
        bos, eos = [self._tok.bos_id], [self._tok.eos_id]
        a = ids["a"]
        if "b" in ids:
            b = ids["b"]
            n_a, n_b = truncate_pair(len(a), len(b), self._seq_len - 3)
            self.counter.add(truncated=(n_a, n_b) != (len(a), len(b)))
            tokens = np.concatenate([bos, a[:n_a], eos, b[:n_b], eos])
        else:
            n_a = min(len(a), self._seq_len - 2)
            self.counter.add(truncated=n_a < len(a))
            tokens = np.concatenate([bos, a[:n_a], eos])
        types = np.zeros(len(tokens), np.int32)
        types[n_a + 2 :] = 1  # b and its [SEP]
        label = int(ids["label_plus_one"][0]) - 1
        return {
            "inputs": tokens.astype(np.int32),
            "token_type_ids": types,
            "labels": np.int32(max(label, 0)),
            "label_weights": np.float32(label != NO_LABEL),
        }

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns and meta (packing.make_rows input) of records or id dicts."""
        del rng  # Deterministic task.
        examples = [self.example(x if ids else self.encode(x)) for x in items]
        return columns_of(examples, self.lengths)

    @staticmethod
    def to_batch(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the classification batch (labels [B])."""
        return {
            "inputs": rows["inputs"].astype(np.int32),
            "token_type_ids": rows["token_type_ids"].astype(np.int32),
            "segment_ids": rows["inputs_segment_ids"].astype(np.int32),
            "positions": rows["inputs_positions"].astype(np.int32),
            "labels": rows["labels"].astype(np.int32).reshape(-1),
            "label_weights": rows["label_weights"].astype(np.float32).reshape(-1),
        }
