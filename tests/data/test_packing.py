import numpy as np
import pytest

from llm.data import config as config_lib
from llm.data import packing, tokenizers
from llm.data.tasks import LMTask

TOK = tokenizers.ByteTokenizer()


@pytest.mark.parametrize("pack", [True, False])
def test_make_rows_places_every_token_once(pack):
    rng = np.random.default_rng(0)
    lengths = {"a": 16, "b": 8}
    examples = [
        {
            "a": rng.integers(1, 100, rng.integers(1, 17)),
            "b": rng.integers(1, 100, rng.integers(1, 9)),
        }
        for _ in range(200)
    ]
    cols, meta = packing.columns_of(examples, lengths)
    rows = packing.make_rows(cols, lengths, pack=pack, open_rows=4, meta=meta)
    num_rows = rows["a"].shape[0]
    assert num_rows == 200 if not pack else num_rows < 200
    got = {k: [] for k in lengths}
    for r in range(num_rows):
        segs_a = set(np.unique(rows["a_segment_ids"][r])) - {0}
        assert segs_a == set(np.unique(rows["b_segment_ids"][r])) - {0}
        assert segs_a == set(range(1, len(segs_a) + 1))
        for s in sorted(segs_a):
            for k in lengths:
                idx = np.flatnonzero(rows[f"{k}_segment_ids"][r] == s)
                np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
                np.testing.assert_array_equal(rows[f"{k}_positions"][r][idx], np.arange(len(idx)))
                got[k].append(tuple(rows[k][r][idx]))
    for k in lengths:
        assert sorted(got[k]) == sorted(tuple(ex[k]) for ex in examples)


def test_first_fit_respects_caps_and_window():
    rows, n = packing.first_fit([[3], [3], [2], [4], [1]], [5], open_rows=2)
    assert rows == [0, 1, 0, 2, 1] and n == 3


def test_lm_chunk_matches_per_document_examples():
    cfg = config_lib.default_data_config()
    cfg.seq_len = 8
    cfg.lm_long_docs = "truncate"
    task = LMTask(cfg, TOK)
    rng = np.random.default_rng(0)
    docs = [{"ids": TOK.encode("x" * n)} for n in (0, 1, 6, 7, 8, 20)]
    cols, _ = task.chunk(docs, rng, ids=True)
    want, _ = packing.columns_of([task.example(d, rng) for d in docs], task.lengths)
    for k in ("inputs", "targets"):
        np.testing.assert_array_equal(cols[k][0], want[k][0])
        np.testing.assert_array_equal(cols[k][1], want[k][1])


def test_lm_split_mode_keeps_every_token():
    cfg = config_lib.default_data_config()
    cfg.seq_len = 8
    task = LMTask(cfg, TOK)
    cols, _ = task.chunk(
        [{"ids": TOK.encode("abcdefghijklmnopq")}], np.random.default_rng(0), ids=True
    )
    inputs, sizes = cols["inputs"]
    assert sizes.tolist() == [8, 8, 2]
    assert TOK.decode(inputs) == "abcdefghijklmnopq" and inputs[0] == TOK.bos_id
    assert cols["targets"][0][-1] == TOK.eos_id


def test_lm_concat_mode_fills_rows():
    cfg = config_lib.default_data_config()
    cfg.seq_len = 8
    cfg.pack_mode = "concat"
    task = LMTask(cfg, TOK)
    docs = [{"ids": TOK.encode(t)} for t in ("abcdefghijk", "lmn", "opqrstuvwxyz")]
    cols, _ = task.chunk(docs, np.random.default_rng(0), ids=True)
    rows = packing.make_rows(cols, task.lengths, pack=True, open_rows=task.open_rows)
    assert rows["inputs"].shape == (4, 8)
    assert (rows["inputs_segment_ids"][:3] > 0).all()  # Full rows but the last.
    assert TOK.decode(rows["inputs"]) == "abcdefghijklmnopqrstuvwxyz"
    # Segments restart positions at each piece; targets stay next tokens.
    assert rows["inputs_positions"][1, 0] == 0 and rows["inputs"][1, 0] != TOK.bos_id
