"""BERT fine-tuning data: classification rows, span-QA windows, offsets, named and tiny sets."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from llm.data import config as config_lib
from llm.data import packing, pipeline, prepare, spm, tokenizers
from llm.data.builders import tiny_glue, tiny_qa
from llm.data.tasks import classification, span_qa
from llm.errors import ConfigError

BYTE = tokenizers.ByteTokenizer()


def _cfg(**overrides):
    cfg = config_lib.default_data_config()
    cfg.update(prefetch_buffer=0, read_threads=0, chunk_size=8)
    cfg.update(overrides)
    return cfg


def _rows(task, records):
    columns, meta = task.chunk(records, np.random.default_rng(0), ids=False)
    rows = packing.make_rows(columns, task.lengths, pack=task.pack, meta=meta)
    return task.to_batch(rows)


def _ids(text: str) -> list[int]:
    return [b + BYTE.num_special for b in text.encode()]


@pytest.fixture(scope="module")
def spm_tok(tmp_path_factory):
    """A small BPE model trained on tiny_qa's words (byte fallback for the rest)."""
    rng = np.random.default_rng(0)
    texts = [tiny_qa.make_example(rng, i, "train")["context"] for i in range(300)]
    cfg = config_lib.default_data_config()
    cfg.update(vocab_size=320, spm_type="bpe", spm_train_examples=300)
    path = str(tmp_path_factory.mktemp("spm") / "qa.model")
    return spm.SentencePieceTokenizer(spm.train(cfg, iter(texts), path))


# --- classification ---------------------------------------------------------


def test_truncate_pair_matches_popping_the_longer_side():
    def reference(a, b, budget):
        while a + b > budget:
            if a > b:
                a -= 1
            else:
                b -= 1
        return a, b

    for a in range(12):
        for b in range(12):
            for budget in range(1, 14):
                assert classification.truncate_pair(a, b, budget) == reference(a, b, budget)


def test_classification_pair_rows_exact():
    cfg = _cfg(dataset="glue/mrpc", task="classification", seq_len=12)
    task = classification.ClassificationTask(cfg, BYTE)
    records = [
        {"sentence1": b"abcdefgh", "sentence2": b"xyz", "label": 1, "idx": 0},
        {"sentence1": "hi", "sentence2": "yo", "label": -1, "idx": 1},
    ]
    batch = _rows(task, records)
    # Budget 12 - 3 = 9: the longer side a is cut to 6, b keeps 3.
    assert batch["inputs"][0].tolist() == [1, *_ids("abcdef"), 2, *_ids("xyz"), 2]
    assert batch["token_type_ids"][0].tolist() == [0] * 8 + [1] * 4
    assert batch["inputs"][1].tolist() == [1, *_ids("hi"), 2, *_ids("yo"), 2] + [0] * 5
    assert batch["token_type_ids"][1].tolist() == [0] * 4 + [1] * 3 + [0] * 5
    assert batch["segment_ids"][1].tolist() == [1] * 7 + [0] * 5
    assert batch["positions"][1].tolist() == list(range(7)) + [0] * 5
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == np.int32
    assert batch["label_weights"].tolist() == [1.0, 0.0]
    assert batch["label_weights"].dtype == np.float32
    assert (task.counter.examples, task.counter.truncated) == (2, 1)


def test_classification_single_sentence_and_keys():
    cfg = _cfg(dataset="glue/sst2", task="classification", seq_len=6)
    task = classification.ClassificationTask(cfg, BYTE)
    batch = _rows(task, [{"sentence": "abcdefg", "label": 0}])
    assert batch["inputs"][0].tolist() == [1, *_ids("abcd"), 2]
    assert batch["token_type_ids"][0].tolist() == [0] * 6
    assert classification.sentence_keys(_cfg(dataset="glue/qnli")) == ("question", "sentence")
    assert classification.sentence_keys(_cfg(dataset="glue/mnli:2.0.0")) == (
        "premise",
        "hypothesis",
    )
    assert classification.sentence_keys(_cfg(dataset="x", sentence_keys="p, q")) == ("p", "q")
    assert classification.num_labels("glue/mnli") == 3 == classification.GLUE_NUM_LABELS["mnli"]
    with pytest.raises(ConfigError, match="regression"):
        classification.ClassificationTask(_cfg(dataset="glue/stsb"), BYTE)
    with pytest.raises(ConfigError, match="sentence_keys"):
        classification.sentence_keys(_cfg(dataset="my_set"))
    bad = classification.ClassificationTask(_cfg(dataset="x", sentence_keys="text"), BYTE)
    with pytest.raises(KeyError, match=r"'text'.*\['label', 'sentence'\]"):
        bad.encode({"sentence": "a", "label": 0})
    with pytest.raises(ConfigError, match="sentence_keys"):
        config_lib.validate(_cfg(task="classification", sentence_keys="a,b,c"))


# --- span QA ----------------------------------------------------------------

# 48 characters of context; the answer 'kite' is characters 23..27.
CONTEXT = "Mira keeps a red box. Tomas keeps a kite here."
RECORD = {
    "id": b"q1",
    "title": b"t",
    "context": CONTEXT.encode(),
    "question": b"What?",
    "answers": {"text": [b"kite", b"a kite"], "answer_start": [36, 34]},
}


def test_span_windows_stride_and_answer_mapping():
    assert CONTEXT[36:40] == "kite"
    # Row: [CLS] What? [SEP] + 14 context bytes + [SEP] = 22; stride 10.
    windows = span_qa.featurize(RECORD, BYTE, seq_len=22, max_query_len=64, doc_stride=10)
    assert span_qa.window_starts(len(CONTEXT), 14, 10) == [0, 10, 20, 30, 40]
    assert len(windows) == 5 and all(w.example_id == "q1" for w in windows)
    head = [1, *_ids("What?"), 2]
    for w, start in zip(windows, [0, 10, 20, 30, 40], strict=True):
        piece = CONTEXT[start : start + 14]
        assert w.row["inputs"].tolist() == [*head, *_ids(piece), 2]
        assert w.row["token_type_ids"].tolist() == [0] * 7 + [1] * (len(piece) + 1)
        assert w.row["positions"].tolist() == list(range(len(piece) + 8))
        assert w.offsets[:7].tolist() == [[-1, -1]] * 7 and w.offsets[-1].tolist() == [-1, -1]
        assert w.offsets[7:-1, 0].tolist() == list(range(start, start + len(piece)))
    # Only windows 30..44 (wholly) holds chars 36..40; the others point at [CLS].
    assert [(w.start_position, w.end_position) for w in windows] == [
        (0, 0),
        (0, 0),
        (0, 0),
        (13, 16),
        (0, 0),
    ]
    w = windows[3]
    assert BYTE.decode(w.row["inputs"][13:17]) == "kite"
    assert CONTEXT[w.offsets[13, 0] : w.offsets[16, 1]] == "kite"


def test_span_question_truncated_and_bad_answer_gets_weight_zero():
    record = dict(RECORD, question=b"x" * 40, answers={"text": [b"kite"], "answer_start": [3]})
    cfg = _cfg(task="span_qa", seq_len=64, max_query_len=16, doc_stride=8)
    task = span_qa.SpanQATask(cfg, BYTE)
    batch = _rows(task, [RECORD, record])
    # RECORD fits one row (64 - 7 - 3 >= 48); the second has a 16-byte question.
    assert batch["inputs"].shape == (3, 64)
    assert batch["inputs"][1, :18].tolist() == [1, *_ids("x" * 16), 2]
    assert batch["span_weights"].tolist() == [1.0, 0.0, 0.0]
    s, e = batch["start_positions"][0], batch["end_positions"][0]
    assert BYTE.decode(batch["inputs"][0, s : e + 1]) == "kite"
    assert (batch["start_positions"][1:] == 0).all()
    assert (task.counter.truncated, task.counter.truncated_targets) == (1, 1)


def test_offsets_non_ascii_byte_and_sentencepiece(spm_tok):
    text = "Grüße, 世界 Mira keeps a red kite."
    for tok in (BYTE, spm_tok):
        ids, offsets = tok.encode_with_offsets(text)
        assert ids.tolist() == tok.encode(text).tolist()
        assert offsets.dtype == np.int32 and offsets.shape == (len(ids), 2)
        assert (offsets[:, 1] >= offsets[:, 0]).all() and offsets[:, 1].max() == len(text)
    _, byte_offsets = BYTE.encode_with_offsets("ü世")
    assert byte_offsets.tolist() == [[0, 1], [0, 1], [1, 2], [1, 2], [1, 2]]
    # Byte-fallback pieces of one character all span that character (after
    # sentencepiece's dummy-prefix piece, which spans nothing).
    ids, offsets = spm_tok.encode_with_offsets("世")
    assert len(ids) == 4 and offsets.tolist() == [[0, 0]] + [[0, 1]] * 3
    # Word pieces span the word, not the space before it.
    _, offsets = spm_tok.encode_with_offsets("Mira keeps")
    assert [("Mira keeps")[a:b] for a, b in offsets][-1] == "keeps"


@pytest.mark.parametrize("name", ["byte", "spm"])
def test_offsets_map_back_to_answers_exactly(name, spm_tok):
    tok = BYTE if name == "byte" else spm_tok
    rng = np.random.default_rng(5)
    for i in range(30):
        record = tiny_qa.make_example(rng, i, "train")
        answer = record["answers"]["text"][0]
        windows = span_qa.featurize(record, tok, seq_len=48, max_query_len=20, doc_stride=8)
        hits = [w for w in windows if w.start_position > 0]
        assert hits, record
        for w in hits:
            start, end = w.offsets[w.start_position, 0], w.offsets[w.end_position, 1]
            assert record["context"][start:end] == answer
            assert w.end_position < len(w.row["inputs"]) - 1


# --- named TFDS datasets on mock data ----------------------------------------


@pytest.mark.parametrize(
    "dataset,task,label_keys",
    [
        ("glue/sst2", "classification", ("labels", "label_weights")),
        ("glue/mnli", "classification", ("labels", "label_weights")),
        ("squad/v1.1", "span_qa", ("start_positions", "end_positions", "span_weights")),
    ],
)
def test_mock_datasets_into_batches(dataset, task, label_keys, tmp_path):
    cfg = _cfg(dataset=dataset, task=task, data_dir=str(tmp_path), seq_len=48)
    cfg.update(max_query_len=16, doc_stride=16)
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=10):
        prepare.ensure_dataset(cfg)
        batch = next(pipeline.make_iterator(cfg, split="train", batch_size=4, seed=0))
        evals = list(
            pipeline.make_iterator(cfg, split="train", batch_size=4, shuffle=False, num_epochs=1)
        )
    keys = {"inputs", "token_type_ids", "segment_ids", "positions", *label_keys}
    assert set(batch) == keys
    for k in ("inputs", "token_type_ids", "segment_ids", "positions"):
        assert batch[k].shape == (4, 48) and batch[k].dtype == np.int32
    for k in label_keys:
        assert batch[k].shape == (4,)
        assert batch[k].dtype == (np.float32 if k.endswith("weights") else np.int32)
    assert (batch["inputs"][:, 0] == BYTE.bos_id).all()
    rows = sum(int((b["segment_ids"][:, 0] > 0).sum()) for b in evals)
    assert rows == 10 if task == "classification" else rows >= 10
    if task == "classification":
        assert batch["label_weights"].tolist() == [1.0] * 4
        assert batch["labels"].max() < classification.num_labels(dataset)


# --- the generated sets -------------------------------------------------------


def test_tiny_qa_and_tiny_glue_through_the_pipeline(data_dir):
    cfg = _cfg(dataset="tiny_qa", task="span_qa", data_dir=data_dir, seq_len=96)
    cfg.update(max_query_len=32, doc_stride=32, chunk_size=64)
    prepare.ensure_dataset(cfg)
    batch = next(pipeline.make_iterator(cfg, split="validation", batch_size=64, shuffle=False))
    assert batch["span_weights"].tolist() == [1.0] * 64
    hit = batch["start_positions"] > 0
    assert hit.mean() > 0.5
    for i in np.flatnonzero(hit):
        s, e = batch["start_positions"][i], batch["end_positions"][i]
        assert BYTE.decode(batch["inputs"][i, s : e + 1]) in BYTE.decode(batch["inputs"][i])
    cfg = _cfg(dataset="tiny_glue", task="classification", data_dir=data_dir, seq_len=64)
    prepare.ensure_dataset(cfg)
    rows = list(pipeline.make_iterator(cfg, split="test", batch_size=100, num_epochs=1))
    labels = np.concatenate([b["labels"] for b in rows])
    assert len(labels) == 500 and 200 < labels.sum() < 300
    assert all(b["segment_ids"][:, -1].max() == 0 for b in rows)  # nothing truncated


def test_tiny_generators_are_exact_and_deterministic():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    for i in range(200):
        ex = tiny_qa.make_example(rng_a, i, "test")
        assert ex == tiny_qa.make_example(rng_b, i, "test")
        (text,), (start,) = ex["answers"]["text"], ex["answers"]["answer_start"]
        assert ex["context"][start : start + len(text)] == text
        assert ex["context"].count(text) == 1 and len(ex["context"].encode()) < 200
    rng = np.random.default_rng(4)
    negated = 0
    for i in range(300):
        ex = tiny_glue.make_example(rng, i)
        words = ex["sentence"].rstrip(".").split()
        positive = words[-1] in tiny_glue.POSITIVE
        assert positive or words[-1] in tiny_glue.NEGATIVE
        # A negation flips the adjective's polarity.
        assert ex["label"] == int(positive != (words[-2] == "not"))
        negated += words[-2] == "not"
    assert 70 < negated < 130


def test_classification_token_cache_gives_the_same_batches(data_dir):
    cfg = _cfg(dataset="tiny_glue", task="classification", data_dir=data_dir, seq_len=64)
    prepare.ensure_dataset(cfg)
    kwargs = dict(split="validation", batch_size=32, shuffle=False, num_epochs=1)
    text = list(pipeline.make_iterator(cfg, **kwargs))
    cfg.token_cache = True
    prepare.ensure_dataset(cfg)
    cached = list(pipeline.make_iterator(cfg, **kwargs))
    assert len(cached) == len(text) == 16
    for a, b in zip(text, cached, strict=True):
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    span = _cfg(dataset="tiny_qa", task="span_qa", data_dir=data_dir, token_cache=True)
    with pytest.raises(ConfigError, match="token_cache=False"):
        pipeline.build_token_caches(span)
