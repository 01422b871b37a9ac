import itertools
import os

import numpy as np
import pytest

from llm.bench.pipeline import benchmark_pipeline
from llm.data import pipeline, sources, token_cache, tokenizers


def test_cached_ids_give_the_same_batches_as_text(lm_cfg):
    lm_cfg.token_cache = True
    lm_cfg.eval_split = "validation[:300]"
    lm_cfg.train_split = "train[:500]"
    paths = pipeline.build_token_caches(lm_cfg)
    assert len(paths) == 2
    meta = token_cache.read_meta(paths[1])
    assert meta["num_records"] == 300 and meta["dtype"] == "uint16"
    kw = dict(split="validation[:300]", batch_size=4, seed=1)
    cached = list(itertools.islice(pipeline.make_iterator(lm_cfg, **kw), 5))
    lm_cfg.token_cache = False
    text = list(itertools.islice(pipeline.make_iterator(lm_cfg, **kw), 5))
    for a, b in zip(cached, text, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("fixture", ["seq2seq_cfg", "mlm_cfg"])
def test_cached_ids_match_text_for_other_tasks(fixture, request):
    cfg = request.getfixturevalue(fixture)
    cfg.token_cache = True
    cfg.train_split = "validation[:200]"
    pipeline.build_token_caches(cfg, ["validation[:200]"])
    kw = dict(split="validation[:200]", batch_size=4, seed=2)
    cached = list(itertools.islice(pipeline.make_iterator(cfg, **kw), 3))
    cfg.token_cache = False
    text = list(itertools.islice(pipeline.make_iterator(cfg, **kw), 3))
    for a, b in zip(cached, text, strict=True):
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_missing_cache_says_how_to_build(lm_cfg):
    lm_cfg.token_cache = True
    try:
        pipeline.make_iterator(lm_cfg, split="test", batch_size=2)
    except sources.DatasetNotPreparedError as e:
        assert "token_cache" in str(e)
    else:
        raise AssertionError("expected DatasetNotPreparedError")


def test_record_codec_round_trip():
    ids = {"targets": np.array([7, 8], np.int32), "inputs": np.array([1, 2, 3], np.int32)}
    for dtype in (np.uint16, np.int32):
        data = token_cache.encode_record(ids, np.dtype(dtype))
        got = token_cache.DecodeRecord(list(ids), np.dtype(dtype).name)(data)
        for k in ids:
            np.testing.assert_array_equal(got[k], ids[k])
    single = token_cache.DecodeRecord(["ids"], "uint16")(
        token_cache.encode_record({"ids": ids["inputs"]}, np.dtype(np.uint16))
    )
    np.testing.assert_array_equal(single["ids"], [1, 2, 3])


def test_benchmark_reports_tokens_per_second(lm_cfg):
    lm_cfg.token_cache = True
    lm_cfg.train_split = "train[:500]"
    pipeline.build_token_caches(lm_cfg, ["train[:500]"])
    out = benchmark_pipeline(lm_cfg, batch_size=4, seconds=0.2, warmup_batches=1)
    assert out["tokens_per_s"] > 0 and 0.5 < out["fill"] <= 1
    assert os.path.isdir(token_cache.cache_dir(lm_cfg, "train[:500]", tokenizers.ByteTokenizer()))
