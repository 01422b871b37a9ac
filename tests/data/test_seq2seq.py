import collections

import numpy as np
import pytest

from llm.data import numbers, pipeline, sources, tokenizers
from llm.data.builders import tiny_numbers

TOK = tokenizers.ByteTokenizer()
KEYS = {
    "encoder_inputs",
    "encoder_segment_ids",
    "encoder_positions",
    "decoder_inputs",
    "decoder_segment_ids",
    "decoder_positions",
    "targets",
    "weights",
}


def _pairs(batches):
    out = []
    for b in batches:
        for r in range(b["targets"].shape[0]):
            enc_seg, dec_seg = b["encoder_segment_ids"][r], b["decoder_segment_ids"][r]
            assert set(np.unique(enc_seg[enc_seg > 0])) == set(np.unique(dec_seg[dec_seg > 0]))
            for s in np.unique(dec_seg[dec_seg > 0]):
                out.append(
                    (
                        TOK.decode(b["encoder_inputs"][r][enc_seg == s]),
                        TOK.decode(b["targets"][r][dec_seg == s]),
                    )
                )
    return out


@pytest.mark.parametrize("pack", [True, False])
def test_seq2seq_batches_match_contract_and_lose_nothing(seq2seq_cfg, pack):
    seq2seq_cfg.pack = pack
    split = "validation[:100]"
    batches = list(
        pipeline.make_iterator(seq2seq_cfg, split=split, batch_size=8, shuffle=False, num_epochs=1)
    )
    for b in batches:
        assert set(b) == KEYS
        assert b["encoder_inputs"].shape == (8, 96) and b["targets"].shape == (8, 16)
        dec_seg, tgt, dec = b["decoder_segment_ids"], b["targets"], b["decoder_inputs"]
        np.testing.assert_array_equal(b["weights"], (dec_seg > 0).astype(np.float32))
        for r in range(8):
            for s in np.unique(dec_seg[r][dec_seg[r] > 0]):
                idx = np.flatnonzero(dec_seg[r] == s)
                # BOS + targets shifted right within the segment; targets end in EOS.
                assert dec[r][idx[0]] == TOK.bos_id
                np.testing.assert_array_equal(dec[r][idx[1:]], tgt[r][idx[:-1]])
                assert tgt[r][idx[-1]] == TOK.eos_id
                np.testing.assert_array_equal(b["decoder_positions"][r][idx], np.arange(len(idx)))
    src = sources.get_source(seq2seq_cfg, split)
    want = [(src[i]["source"].decode(), src[i]["target"].decode()) for i in range(len(src))]
    assert collections.Counter(_pairs(batches)) == collections.Counter(want)


def test_number_words_map_to_digits(seq2seq_cfg):
    ex = sources.get_source(seq2seq_cfg, "validation")[0]
    assert ex["target"].decode().isdigit() and not any(c.isdigit() for c in ex["source"].decode())
    assert numbers.to_words(342105) == "three hundred forty-two thousand one hundred five"
    # Splits are consecutive runs of distinct numbers: held-out ones are unseen.
    nums = tiny_numbers._unique_numbers(5000, seed=0)
    assert len(set(nums)) == 5000 and {len(str(n)) for n in nums} == set(range(1, 8))


def test_truncation_is_counted(seq2seq_cfg):
    seq2seq_cfg.inputs_len = 20
    seq2seq_cfg.targets_len = 4
    stats = pipeline.split_stats(seq2seq_cfg, "validation[:50]")
    assert stats["examples"] == 50
    assert 0 < stats["truncated_inputs"] <= 50
    assert 0 < stats["truncated_targets"] <= 50
    b = next(pipeline.make_iterator(seq2seq_cfg, split="validation[:50]", batch_size=4))
    assert b["encoder_inputs"].shape == (4, 20) and b["targets"].shape == (4, 4)


def test_default_keys_of_named_datasets(seq2seq_cfg):
    cfg = seq2seq_cfg
    cfg.dataset = "wmt14_translate/de-en"
    assert sources.pair_keys(cfg) == ("de", "en")
    cfg.dataset = "cnn_dailymail"
    assert sources.pair_keys(cfg) == ("article", "highlights")
    cfg.inputs_key, cfg.targets_key = "highlights", "article"
    assert sources.pair_keys(cfg) == ("highlights", "article")


def test_truncation_log_line_names_its_denominator_and_limits(seq2seq_cfg):
    seq2seq_cfg.inputs_len = 20
    seq2seq_cfg.targets_len = 4
    task = pipeline.make_task(seq2seq_cfg, TOK)
    short, long = {"inputs": [1] * 5, "targets": [2]}, {"inputs": [1] * 30, "targets": [2]}
    rng = np.random.default_rng(0)
    for ids in (short, long, short, short):
        task.example({k: np.array(v) for k, v in ids.items()}, rng)
    assert task.counter.summary() == (
        "seq2seq: 1 (25.0%) of the first 4 examples read by this process had inputs longer "
        "than data.inputs_len=20 (with EOS), 0 (0.0%) had targets longer than "
        "data.targets_len=4 (with EOS); they keep their first tokens"
    )
