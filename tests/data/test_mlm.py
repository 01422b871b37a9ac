import itertools

import numpy as np
import pytest

from llm.data import pipeline, tokenizers
from llm.data.tasks import mlm

TOK = tokenizers.ByteTokenizer()
KEYS = {"inputs", "token_type_ids", "segment_ids", "positions", "targets", "weights"}


def test_mask_tokens_rates():
    rng = np.random.default_rng(0)
    tokens = np.concatenate(
        [[TOK.bos_id], rng.integers(TOK.num_special, 260, 10_000), [TOK.eos_id]]
    )
    inputs, weights = mlm.mask_tokens(tokens, rng, TOK, rate=0.15, mask_prob=0.8, random_prob=0.1)
    chosen = weights > 0
    assert chosen.sum() == round(0.15 * 10_000)
    assert not chosen[0] and not chosen[-1]  # specials are never chosen
    np.testing.assert_array_equal(inputs[~chosen], tokens[~chosen])
    masked = (inputs == TOK.mask_id)[chosen].mean()
    same = (inputs == tokens)[chosen].mean()
    # Random replacements equal the original token with probability 1/256.
    assert abs(masked - 0.8) < 0.03 and abs(same - 0.1) < 0.03
    assert inputs.max() < TOK.vocab_size


@pytest.mark.parametrize("pack", [True, False])
def test_mlm_batches_match_contract(mlm_cfg, pack):
    mlm_cfg.pack = pack
    b = next(pipeline.make_iterator(mlm_cfg, split="train", batch_size=4, seed=0))
    assert set(b) == KEYS
    assert all(v.shape == (4, 128) for v in b.values())
    seg = b["segment_ids"]
    assert np.all(b["weights"][seg == 0] == 0)
    assert np.all(b["token_type_ids"] == 0)
    # Only chosen positions may differ from the original.
    changed = b["inputs"] != b["targets"]
    assert np.all(b["weights"][changed] == 1)
    frac = b["weights"].sum() / (seg > 0).sum()
    assert 0.08 < frac < 0.2
    text = TOK.decode(b["targets"][0][seg[0] == 1])
    assert text.split()[0] in ("the", "a", "every")


def test_nsp_pairs(mlm_cfg):
    mlm_cfg.nsp = True
    b = next(pipeline.make_iterator(mlm_cfg, split="train", batch_size=32, seed=0))
    assert set(b) == KEYS | {"nsp_labels"}
    assert b["nsp_labels"].shape == (32,) and set(b["nsp_labels"].tolist()) == {0, 1}
    for r in range(32):
        tgt, types, seg = b["targets"][r], b["token_type_ids"][r], b["segment_ids"][r]
        n = int((seg > 0).sum())
        assert tgt[0] == TOK.bos_id and tgt[n - 1] == TOK.eos_id
        sep = np.flatnonzero(tgt[:n] == TOK.eos_id)
        assert len(sep) == 2
        # Type 0 up to the first [SEP], type 1 after it.
        np.testing.assert_array_equal(types[:n], (np.arange(n) > sep[0]).astype(np.int32))


def test_mlm_resume_repeats_masks(mlm_cfg):
    def run():
        return pipeline.make_iterator(mlm_cfg, split="train", batch_size=4, seed=5)

    reference = list(itertools.islice(run(), 6))
    it = run()
    for _ in range(3):
        next(it)
    resumed = run()
    resumed.set_state(it.get_state())
    for want, got in zip(reference[3:], itertools.islice(resumed, 3), strict=True):
        for k in KEYS:
            np.testing.assert_array_equal(want[k], got[k])


def test_split_sentences():
    assert mlm.split_sentences("a b . c d ! e\nf") == ["a b .", "c d !", "e", "f"]
