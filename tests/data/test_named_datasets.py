"""Named TFDS datasets end to end into batches, on tfds.testing.mock_data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from llm.data import config as config_lib
from llm.data import pipeline, prepare, sources

CASES = [
    ("lm1b", "lm"),
    ("c4", "lm"),
    ("wikipedia/20230601.en", "mlm"),
    ("cnn_dailymail", "seq2seq"),
    ("wmt14_translate/de-en", "seq2seq"),
    ("wmt17_translate/de-en", "seq2seq"),
    ("wmt_t2t_translate/de-en", "seq2seq"),
]


@pytest.mark.parametrize("dataset,task", CASES)
def test_named_dataset_into_batches(dataset, task, tmp_path):
    cfg = config_lib.default_data_config()
    cfg.update(dataset=dataset, task=task, data_dir=str(tmp_path), seq_len=32)
    cfg.update(inputs_len=32, targets_len=16, prefetch_buffer=0, read_threads=0, chunk_size=8)
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=12):
        prepare.ensure_dataset(cfg)
        train = next(pipeline.make_iterator(cfg, split="train", batch_size=2, seed=0))
        evals = list(
            pipeline.make_iterator(cfg, split="train", batch_size=2, shuffle=False, num_epochs=1)
        )
    key = "encoder_inputs" if task == "seq2seq" else "inputs"
    assert train[key].shape[0] == 2 and train["weights"].sum() > 0
    assert all(b[key].shape == train[key].shape for b in evals)
    assert sum(float((b["targets"] > 0).sum()) for b in evals) > 0
    assert np.all(
        train["weights"][train.get("segment_ids", train.get("decoder_segment_ids")) == 0] == 0
    )


def test_named_dataset_not_prepared_says_how(tmp_path):
    cfg = config_lib.default_data_config()
    cfg.update(dataset="wmt14_translate/de-en", task="seq2seq", data_dir=str(tmp_path))
    with pytest.raises(
        sources.DatasetNotPreparedError, match="launch.prepare --kind=tfds --dataset=wmt14"
    ):
        prepare.ensure_dataset(cfg)
