"""Weighted data mixtures: proportions, per-source streams, exact resume, token counts, errors."""

import numpy as np
import pytest

from llm.data import make_iterator, mixture, prepare
from llm.errors import ConfigError
from tests.data.conftest import _cfg

MIX = "tiny_grammar:0.7,tiny_grammar_docs:0.3"


@pytest.fixture
def mix_cfg(data_dir):
    prepare.ensure_dataset(_cfg(data_dir, mixture=MIX))  # builds both sources
    return _cfg(data_dir, seq_len=64, mixture=MIX)


def _batches(cfg, n, **kwargs):
    it = make_iterator(cfg, split="train", batch_size=16, seed=0, **kwargs)
    return [next(it) for _ in range(n)]


def test_row_shares_match_the_weights_within_sampling_error(mix_cfg):
    batches = _batches(mix_cfg, 100)  # 1,600 rows
    source = np.concatenate([b["source"] for b in batches])
    share = np.mean(source == 1)
    # Binomial standard error at p = 0.3, n = 1600: 0.0115; 4 of them.
    assert abs(share - 0.3) < 0.046
    tokens = np.concatenate([mixture.tokens_per_row(b) for b in batches])
    token_share = tokens[source == 1].sum() / tokens.sum()
    assert abs(token_share - 0.3) < 0.05  # rows are packed nearly full: rows ~ tokens
    # Every batch mixes: no batch of 16 is one source alone more than chance allows.
    pure = sum(np.all(b["source"] == b["source"][0]) for b in batches)
    assert pure <= 2  # P(pure) = 0.7**16 + 0.3**16 = 0.0033 per batch


def test_each_source_keeps_its_own_stream_and_shard(mix_cfg):
    """Rows of a source, in mixed order, are exactly what that source alone yields."""
    for shard in (0, 1):
        kwargs = dict(shard_index=shard, shard_count=2)
        mixed = _batches(mix_cfg, 20, **kwargs)
        inputs = np.concatenate([b["inputs"] for b in mixed])
        source = np.concatenate([b["source"] for b in mixed])
        for index, (name, _) in enumerate(mixture.parse_mixture(MIX)):
            alone = _batches(mixture.source_config(mix_cfg, name), 20, **kwargs)
            rows = np.concatenate([b["inputs"] for b in alone])
            mine = inputs[source == index]
            np.testing.assert_array_equal(mine, rows[: len(mine)])
            assert "source" not in alone[0]
        other = _batches(mix_cfg, 1, shard_index=1 - shard, shard_count=2)[0]
        assert not np.array_equal(other["inputs"], mixed[0]["inputs"])


def test_a_restored_mixture_yields_exactly_the_same_batches(mix_cfg):
    it = make_iterator(mix_cfg, split="train", batch_size=8, seed=3)
    for _ in range(7):
        next(it)
    state = it.get_state()
    want = [next(it) for _ in range(5)]
    resumed = make_iterator(mix_cfg, split="train", batch_size=8, seed=3)
    resumed.set_state(state)
    for a, b in zip(want, [next(resumed) for _ in range(5)], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_source_counter_counts_tokens_and_shares_and_restores():
    counter = mixture.SourceCounter(["a", "wmt14_translate/de-en"])
    batch = {
        "inputs": np.ones((3, 4), np.int32),
        "segment_ids": np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 2, 2, 0]]),
        "source": np.array([0, 1, 1], np.int32),
    }
    counter.add(batch)
    assert "source" not in batch  # the step never sees it
    got = counter.scalars()
    assert got == {
        "data/a/tokens": 2.0,
        "data/wmt14_translate_de_en/tokens": 7.0,
        "data/a/fraction": pytest.approx(2 / 9),
        "data/wmt14_translate_de_en/fraction": pytest.approx(7 / 9),
    }
    assert "data/a/fraction" not in counter.scalars()  # nothing new since the last call
    resumed = mixture.SourceCounter(["a", "wmt14_translate/de-en"])
    assert not resumed.restore([{"step": 4, "loss": 1.0}], 4)
    assert resumed.restore([{"step": 4, **counter.tokens()}], 4)
    resumed.add({"segment_ids": np.ones((1, 2)), "source": np.array([0])})
    assert resumed.tokens() == {"data/a/tokens": 4.0, "data/wmt14_translate_de_en/tokens": 7.0}


def test_bad_mixtures_name_the_value_and_the_fix(data_dir):
    assert mixture.parse_mixture("a:1,b:3") == [("a", 0.25), ("b", 0.75)]
    assert mixture.parse_mixture([("a", 2), ("b", 2)]) == [("a", 0.5), ("b", 0.5)]
    assert mixture.parse_mixture("") == []
    with pytest.raises(ConfigError, match="'a' is not 'dataset:weight'"):
        mixture.parse_mixture("a,b:1")
    with pytest.raises(ConfigError, match="the weight of 'b' is '-1'"):
        mixture.parse_mixture("a:1,b:-1")
    with pytest.raises(ConfigError, match="the weight of 'b' is 'x'"):
        mixture.parse_mixture("a:1,b:x")
    with pytest.raises(ConfigError, match="names a dataset twice"):
        mixture.parse_mixture("a:1,a:2")
    cfg = _cfg(data_dir, mixture="tiny_grammar:1,nope")
    with pytest.raises(ConfigError, match="'nope' is not 'dataset:weight'"):
        make_iterator(cfg, split="train", batch_size=4)
    cfg = _cfg(data_dir, mixture=MIX)
    with pytest.raises(ConfigError, match="endless training streams"):
        make_iterator(cfg, split="validation", batch_size=4, num_epochs=1)
