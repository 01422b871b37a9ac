"""Span question answering (SQuAD) -> `[CLS] question [SEP] context window [SEP]` rows.

BERT's run_squad recipe: the question keeps its first data.max_query_len
tokens; the context is split into windows of at most
seq_len - len(question) - 3 tokens whose starts are data.doc_stride tokens
apart (the last reaches the context's end). Every window is a row; the target
is the first gold answer's first and last token in the row, or 0 ([CLS])
where the answer is not wholly inside the window. `featurize` makes the
windows of one record for training and evaluation alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from llm.data.packing import Columns, columns_of
from llm.data.stats import Counter
from llm.data.tokenizers import Tokenizer
from llm.errors import ConfigError, ConfigKeyError

# Features of a SQuAD-format record (TFDS squad/v1.1).
FEATURES = ("id", "context", "question", "answers")


@dataclasses.dataclass(frozen=True, eq=False)
class Window:
    """One row of a record: model inputs, where its tokens lie in the context, the target.

    row: `inputs`, `token_type_ids`, `segment_ids` (ones), `positions`
      (0..n-1), int32 [n], unpadded (n <= seq_len; pad with zeros).
    offsets: int32 [n, 2], the (start, end) character offsets in `context` of
      each row token, end exclusive; (-1, -1) for [CLS], question and [SEP]s.
    start_position, end_position: the first gold answer's first and last
      token in the row, 0 ([CLS]) when it is not wholly inside this window.
    answerable: the record's first answer was found in its context (its
      rows train with weight 1; mock or corrupted records get 0).
    """

    example_id: str
    context: str
    row: dict[str, np.ndarray]
    offsets: np.ndarray
    start_position: int
    end_position: int
    answerable: bool
    question_truncated: bool = False


def _text(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8")
    return str(value)


def _field(record: Mapping[str, Any], key: str) -> Any:
    if key not in record:
        raise ConfigKeyError(
            f"Record has no feature {key!r}; span_qa needs SQuAD's features {FEATURES}, and "
            f"it has {sorted(record)}."
        )
    return record[key]


def answer_char_span(record: Mapping[str, Any]) -> tuple[int, int] | None:
    """(start, end) characters of the first gold answer in the context, or None.

    None when there is no answer or the text is not at its answer_start.
    """
    context = _text(_field(record, "context"))
    answers = _field(record, "answers")
    texts, starts = list(answers["text"]), list(answers["answer_start"])
    if not texts or not starts:
        return None
    text, start = _text(texts[0]), int(starts[0])
    end = start + len(text)
    if not text or start < 0 or context[start:end] != text:
        return None
    return start, end


def _answer_tokens(offsets_Nx2: np.ndarray, span: tuple[int, int] | None) -> tuple[int, int] | None:
    """First and last context token overlapping the answer's characters."""
    if span is None:
        return None
    overlap = np.flatnonzero((offsets_Nx2[:, 0] < span[1]) & (offsets_Nx2[:, 1] > span[0]))
    if not len(overlap):
        return None
    return int(overlap[0]), int(overlap[-1])


def window_starts(num_tokens: int, max_tokens: int, stride: int) -> list[int]:
    """Starts of the context windows: stride apart, the last one reaching the end."""
    starts, start = [0], 0
    while start + max_tokens < num_tokens:
        # A stride longer than a window would skip tokens (as in BERT's recipe).
        start += min(stride, max_tokens)
        starts.append(start)
    return starts


def featurize(
    record: Mapping[str, Any],
    tok: Tokenizer,
    *,
    seq_len: int,
    max_query_len: int,
    doc_stride: int,
) -> list[Window]:
    """The windows (rows) of one SQuAD-format record, in context order."""
    if not hasattr(tok, "encode_with_offsets"):
        raise ConfigError(
            f"Tokenizer {type(tok).__name__} gives no character offsets (encode_with_offsets); "
            "span_qa needs them: use data.tokenizer='byte', 'sentencepiece' or 'huggingface'."
        )
    q_ids = tok.encode(_text(_field(record, "question")))
    question_truncated = len(q_ids) > max_query_len
    q_ids = q_ids[:max_query_len]
    max_tokens = seq_len - len(q_ids) - 3
    if max_tokens < 1:
        raise ConfigError(
            f"data.seq_len={seq_len} leaves no room for the context after a question of "
            f"{len(q_ids)} tokens; raise seq_len or lower data.max_query_len={max_query_len}."
        )
    context = _text(_field(record, "context"))
    ctx_ids, ctx_offsets_Nx2 = tok.encode_with_offsets(context)
    span = answer_char_span(record)
    answer = _answer_tokens(ctx_offsets_Nx2, span)
    head = np.concatenate([[tok.bos_id], q_ids, [tok.eos_id]]).astype(np.int32)
    example_id = _text(_field(record, "id"))
    windows = []
    for start in window_starts(len(ctx_ids), max_tokens, doc_stride):
        stop = min(start + max_tokens, len(ctx_ids))
        inputs = np.concatenate([head, ctx_ids[start:stop], [tok.eos_id]]).astype(np.int32)
        n = len(inputs)
        types = np.zeros(n, np.int32)
        types[len(head) :] = 1
        offsets = np.full((n, 2), -1, np.int32)
        offsets[len(head) : n - 1] = ctx_offsets_Nx2[start:stop]
        first = last = 0
        if answer is not None and start <= answer[0] and answer[1] < stop:
            first = len(head) + answer[0] - start
            last = len(head) + answer[1] - start
        row = {
            "inputs": inputs,
            "token_type_ids": types,
            "segment_ids": np.ones(n, np.int32),
            "positions": np.arange(n, dtype=np.int32),
        }
        windows.append(
            Window(
                example_id=example_id,
                context=context,
                row=row,
                offsets=offsets,
                start_position=first,
                end_position=last,
                answerable=answer is not None,
                question_truncated=question_truncated,
            )
        )
    return windows


class SpanQATask:
    """SQuAD-format record -> one row per context window (see featurize).

    Rows keep no packing (one target per row). Needs the records' text:
    windows map answers through character offsets, which a token-id cache
    does not keep.
    """

    def __init__(self, data_cfg: ml_collections.ConfigDict, tok: Tokenizer):
        self._tok = tok
        self._seq_len = data_cfg.seq_len
        self._max_query_len = data_cfg.max_query_len
        self._doc_stride = data_cfg.doc_stride
        self.lengths = {"inputs": data_cfg.seq_len, "token_type_ids": data_cfg.seq_len}
        self.pack = False
        self.open_rows = 1
        self.needs_text = True
        self.counter = Counter(
            "span_qa",
            inputs=f"questions longer than data.max_query_len={data_cfg.max_query_len} tokens",
            targets="no first answer at its answer_start in the context (rows get span_weights 0)",
            action="questions keep their first tokens",
        )

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Not supported: span QA reads text (needs_text); a token-id cache cannot serve it."""
        raise ConfigError(
            "data.task='span_qa' maps answers by character offsets, which a token-id cache "
            "does not keep; set data.token_cache=False."
        )

    def windows(self, record: Mapping[str, Any]) -> list[Window]:
        """featurize() with this config's lengths."""
        return featurize(
            record,
            self._tok,
            seq_len=self._seq_len,
            max_query_len=self._max_query_len,
            doc_stride=self._doc_stride,
        )

    def chunk(
        self, items: Sequence[Any], rng: np.random.Generator, *, ids: bool
    ) -> tuple[Columns, dict]:
        """Columns and meta (packing.make_rows input): every window of every record."""
        del rng  # Deterministic task.
        if ids:
            raise ValueError("span_qa reads records, not cached token ids (needs_text).")
        examples = []
        for record in items:
            windows = self.windows(record)
            self.counter.add(
                truncated=windows[0].question_truncated,
                truncated_targets=not windows[0].answerable,
            )
            examples += [
                {
                    "inputs": w.row["inputs"],
                    "token_type_ids": w.row["token_type_ids"],
                    "start_positions": np.int32(w.start_position),
                    "end_positions": np.int32(w.end_position),
                    "span_weights": np.float32(w.answerable),
                }
                for w in windows
            ]
        return columns_of(examples, self.lengths)

    @staticmethod
    def to_batch(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of packing.make_rows -> the span QA batch (start/end positions [B])."""
        return {
            "inputs": rows["inputs"].astype(np.int32),
            "token_type_ids": rows["token_type_ids"].astype(np.int32),
            "segment_ids": rows["inputs_segment_ids"].astype(np.int32),
            "positions": rows["inputs_positions"].astype(np.int32),
            "start_positions": rows["start_positions"].astype(np.int32).reshape(-1),
            "end_positions": rows["end_positions"].astype(np.int32).reshape(-1),
            "span_weights": rows["span_weights"].astype(np.float32).reshape(-1),
        }
