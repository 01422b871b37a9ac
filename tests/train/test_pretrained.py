"""Fine-tuning from a pretrained workdir: shared params copied, new heads kept, sizes adopted."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from llm import models
from llm.errors import ConfigError
from llm.train.pretrained import adopt_pretrained, transfer_params

BASE = dict(
    family="encoder",
    vocab_size=64,
    d_model=16,
    num_heads=2,
    d_ff=32,
    num_layers=2,
    max_len=32,
    type_vocab_size=2,
    pre_norm=False,
)


def _params(seed: int, **overrides):
    cfg = models.ModelConfig(**(BASE | overrides))
    variables = models.init_variables(cfg, jax.random.key(seed))
    return cfg, jax.device_get(nn.meta.unbox(variables["params"]))


def test_transfer_copies_the_encoder_keeps_the_new_head_and_drops_mlm():
    mlm_cfg, mlm = _params(0)
    cls_cfg, cls = _params(1, encoder_head="classification", num_labels=3)
    merged, report = transfer_params(cls_cfg, cls, mlm_cfg, mlm)
    flat, old, init = (flatten_dict(t, sep="/") for t in (merged, mlm, cls))
    assert flat.keys() == init.keys()
    for key in flat:
        expected = old[key] if key in old else init[key]
        np.testing.assert_array_equal(flat[key], expected, err_msg=key)
    assert {k.split("/")[0] for k in report.new} == {"classifier"}
    assert {k.split("/")[0] for k in report.dropped} == {
        "mlm_bias",
        "mlm_norm",
        "mlm_transform",
        "nsp_classifier",
    }
    assert "pooler/kernel" in report.loaded  # BERT's pooler carries over to GLUE
    assert report.loaded_count == sum(old[k].size for k in report.loaded)


def test_transfer_converts_between_unrolled_and_scanned_layers():
    mlm_cfg, mlm = _params(0)
    span_cfg, span = _params(1, encoder_head="span", scan_layers=True)
    merged, _ = transfer_params(span_cfg, span, mlm_cfg, mlm)
    flat = flatten_dict(merged, sep="/")
    old = flatten_dict(mlm, sep="/")
    scanned = [k for k in flat if k.startswith("stack/")]
    assert scanned and all(flat[k].shape[0] == 2 for k in scanned)  # [layers, ...]
    layer1 = "stack/layers_1/mlp/wi/kernel"
    stacked = next(k for k in scanned if k.endswith("mlp/wi/kernel"))
    np.testing.assert_array_equal(flat[stacked][1], old[layer1])


def test_transfer_names_mismatched_shapes():
    mlm_cfg, mlm = _params(0)
    wide_cfg, wide = _params(1, encoder_head="classification", d_ff=48)
    with pytest.raises(ConfigError, match=r"mlp/wi/kernel: pretrained \(16, 32\)"):
        transfer_params(wide_cfg, wide, mlm_cfg, mlm)


def test_adopt_pretrained_takes_sizes_and_tokenizer_keeps_the_recipe(tmp_path):
    from experiments import bert, bert_glue

    pretrained = bert.get_config("tiny")
    pretrained.model.update(d_model=96, num_layers=3, dropout_rate=0.0)
    pretrained.data.update(tokenizer="huggingface", hf_tokenizer="/somewhere/tokenizer")
    (tmp_path / "config.json").write_text(pretrained.to_json_best_effort())
    config = bert_glue.get_config("sst2")
    config.train.init_from = str(tmp_path)
    adopted = adopt_pretrained(config)
    assert (adopted.model.d_model, adopted.model.num_layers) == (96, 3)
    assert adopted.model.position == pretrained.model.position  # rotary, as pretrained
    assert adopted.model.encoder_head == "classification"  # the fine-tuning head
    assert adopted.model.dropout_rate == 0.1  # the recipe's, not the pretrained run's
    assert adopted.data.tokenizer == "huggingface"
    assert adopted.data.hf_tokenizer == "/somewhere/tokenizer"
    assert adopted.data.dataset == "glue/sst2"
    assert config.model.d_model == 768  # the input config is not changed


@pytest.mark.slow
def test_fine_tuning_starts_from_an_imported_hf_bert_with_its_tokenizer(tmp_path):
    """~35 s: a HF import, its tokenizer, the train program and the first state."""
    from experiments import bert_glue
    from llm.convert.workdir import import_to_workdir
    from llm.train.loop import Trainer
    from tests.convert.hf_models import save, save_wordpiece_tokenizer

    save("bert", tmp_path / "hf")  # a BertForMaskedLM: 2 layers, d_model 64, vocab 300
    save_wordpiece_tokenizer(tmp_path / "hf")
    imported = import_to_workdir(tmp_path / "hf", tmp_path / "pretrained")
    assert imported.data.tokenizer == "huggingface"
    assert (tmp_path / "pretrained" / "tokenizer" / "tokenizer.json").is_file()

    config = bert_glue.get_config("tiny")
    config.data.data_dir = str(tmp_path / "data")
    config.train.init_from = str(tmp_path / "pretrained")
    trainer = Trainer(config, tmp_path / "run")
    try:
        assert trainer.config.model.d_model == 64 and not trainer.config.model.pre_norm
        assert trainer.tokenizer.vocab_size == 300 and trainer.tokenizer.bos_id == 2
        state = trainer.initial_state()
    finally:
        trainer.close()
    _, hf_params = _hf_params(tmp_path / "hf")
    ours = flatten_dict(jax.device_get(state.params), sep="/")
    for key, value in flatten_dict(hf_params, sep="/").items():
        if key in ours:
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
    assert "classifier/kernel" in ours and "mlm_bias" not in ours


def _hf_params(folder):
    from llm.convert import load_hf

    cfg, params, _ = load_hf(folder)
    return cfg, params
