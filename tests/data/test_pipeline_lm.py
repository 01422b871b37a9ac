import collections
import functools
import itertools

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from llm.data import pipeline, sources, tokenizers

TOK = tokenizers.ByteTokenizer()
KEYS = {"inputs", "targets", "weights", "segment_ids", "positions"}


def _documents(batches) -> list[str]:
    """Texts of every packed segment, read back from the inputs."""
    docs = []
    for b in batches:
        for row in range(b["inputs"].shape[0]):
            seg = b["segment_ids"][row]
            for s in np.unique(seg[seg > 0]):
                docs.append(TOK.decode(b["inputs"][row][seg == s]))
    return docs


def _split_texts(cfg, split) -> list[str]:
    src = sources.get_source(cfg, split)
    return [src[i]["text"].decode() for i in range(len(src))]


def _eval_batches(cfg, split, **kw):
    return list(
        pipeline.make_iterator(cfg, split=split, batch_size=4, shuffle=False, num_epochs=1, **kw)
    )


def test_lm_batch_matches_contract(lm_cfg):
    b = next(pipeline.make_iterator(lm_cfg, split="train", batch_size=4, seed=0))
    assert set(b) == KEYS
    for k, v in b.items():
        assert v.shape == (4, 64), k
        assert v.dtype == (np.float32 if k == "weights" else np.int32), k


@pytest.mark.parametrize("pack", [True, False])
def test_packing_keeps_documents_apart(lm_cfg, pack):
    lm_cfg.pack = pack
    batches = _eval_batches(lm_cfg, "validation[:200]")
    for b in batches:
        seg, pos, inp, tgt, w = (
            b[k] for k in ("segment_ids", "positions", "inputs", "targets", "weights")
        )
        np.testing.assert_array_equal(w, (seg > 0).astype(np.float32))
        assert np.all(inp[seg == 0] == 0) and np.all(tgt[seg == 0] == 0)
        for row in range(seg.shape[0]):
            for s in np.unique(seg[row][seg[row] > 0]):
                idx = np.flatnonzero(seg[row] == s)
                # One contiguous run per document, positions restart at 0, so a
                # segment-masked causal attention sees only its own document.
                np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + len(idx)))
                np.testing.assert_array_equal(pos[row][idx], np.arange(len(idx)))
                assert inp[row][idx[0]] == TOK.bos_id
                # Targets are the next input within the document; the last predicts EOS.
                np.testing.assert_array_equal(tgt[row][idx[:-1]], inp[row][idx[1:]])
                assert tgt[row][idx[-1]] == TOK.eos_id


def test_packing_loses_and_duplicates_nothing(lm_cfg):
    got = _documents(_eval_batches(lm_cfg, "validation[:200]"))
    assert collections.Counter(got) == collections.Counter(_split_texts(lm_cfg, "validation[:200]"))


def test_packing_fills_rows(lm_cfg):
    b = next(pipeline.make_iterator(lm_cfg, split="train", batch_size=8, seed=0))
    assert b["weights"].mean() > 0.8


def test_eval_pass_is_finite_and_padded(lm_cfg):
    lm_cfg.pack = False
    batches = _eval_batches(lm_cfg, "validation[:10]")
    assert len(batches) == 3  # 10 documents, 4 per batch: last has 2 zero rows.
    assert batches[-1]["weights"][2:].sum() == 0
    assert all(b["inputs"].shape == (4, 64) for b in batches)


def test_shards_are_disjoint_and_cover_the_split(lm_cfg):
    split = "validation[:200]"
    shards = [
        _documents(_eval_batches(lm_cfg, split, shard_index=i, shard_count=2)) for i in range(2)
    ]
    whole = collections.Counter(_split_texts(lm_cfg, split))
    assert collections.Counter(shards[0]) + collections.Counter(shards[1]) == whole
    # Disjoint as records: each shard holds about half.
    assert abs(len(shards[0]) - len(shards[1])) <= 1


def test_seeded_shuffle_is_deterministic_and_epochs_differ(lm_cfg):
    def first(seed):
        return next(
            pipeline.make_iterator(lm_cfg, split="validation[:40]", batch_size=2, seed=seed)
        )["inputs"]

    np.testing.assert_array_equal(first(0), first(0))
    assert not np.array_equal(first(0), first(1))
    # Two epochs of 40 documents: each document exactly twice.
    lm_cfg.pack = False
    it = pipeline.make_iterator(lm_cfg, split="validation[:40]", batch_size=4, seed=0, num_epochs=2)
    docs = _documents(list(it))
    assert collections.Counter(docs) == collections.Counter(
        2 * _split_texts(lm_cfg, "validation[:40]")
    )
    assert docs[:40] != docs[40:]


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        for k in KEYS:
            np.testing.assert_array_equal(x[k], y[k])


def test_resume_from_state_continues_exactly(lm_cfg):
    lm_cfg.prefetch_buffer = 2  # The threaded prefetch must checkpoint too.
    make = functools.partial(pipeline.make_iterator, lm_cfg, split="train", batch_size=4, seed=7)
    reference = list(itertools.islice(make(), 10))
    it = make()
    for _ in range(4):
        next(it)
    state = it.get_state()
    resumed = make()
    resumed.set_state(state)
    _assert_same(reference[4:], list(itertools.islice(resumed, 6)))


def test_resume_through_orbax_checkpoint(lm_cfg, tmp_path):
    make = functools.partial(pipeline.make_iterator, lm_cfg, split="train", batch_size=2, seed=3)
    reference = list(itertools.islice(make(), 6))
    it = make()
    for _ in range(3):
        next(it)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
        restored = mngr.restore(
            3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(make()))
        )
    _assert_same(reference[3:], list(itertools.islice(restored["data"], 3)))


@pytest.mark.slow
def test_worker_processes_give_deterministic_batches(lm_cfg):
    lm_cfg.num_workers = 2
    make = functools.partial(pipeline.make_iterator, lm_cfg, split="train", batch_size=2, seed=0)
    a, b = make(), make()
    _assert_same(list(itertools.islice(a, 3)), list(itertools.islice(b, 3)))
    a.close()
    b.close()


@pytest.mark.parametrize(
    "long_docs, action",
    [
        ("split", "they are cut into row-sized pieces (data.lm_long_docs='split')"),
        ("truncate", "they keep their first tokens (data.lm_long_docs='truncate')"),
    ],
)
def test_long_document_log_line_names_its_denominator_and_limit(lm_cfg, long_docs, action):
    lm_cfg.lm_long_docs = long_docs
    task = pipeline.make_task(lm_cfg, TOK)
    docs = [{"ids": np.ones(n, np.int32)} for n in (10, 63, 64, 200)]  # seq_len 64 holds 63 + BOS
    task.chunk(docs, np.random.default_rng(0), ids=True)
    assert task.counter.summary() == (
        "lm: 2 (50.0%) of the first 4 documents read by this process had more tokens than a "
        f"row of data.seq_len=64 holds (with BOS); {action}"
    )
