"""BERT's fine-tuning heads: imported classification/QA models give transformers' logits."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from llm import models
from llm.convert import load_hf, save_hf
from tests.convert.hf_models import VOCAB, save, torch, transformers

TOL = 1e-4
NUM_LABELS = 3


def _tiny_config(num_labels: int):
    return transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=64,
        num_labels=num_labels,
    )


def _perturbed(model):
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # init leaves biases 0: perturb them too
    return model.eval()


HEADS = {
    "classification": "BertForSequenceClassification",
    "span": "BertForQuestionAnswering",
}


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(3, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 10:] = 0
    types = np.zeros_like(ids)
    types[:, 5:] = 1
    return np.where(mask == 1, ids, 0), mask, types * mask


def _torch_out(hf_model, ids, mask, types):
    with torch.no_grad():
        out = hf_model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            token_type_ids=torch.tensor(types),
        )
    if hasattr(out, "start_logits"):
        return np.stack([out.start_logits.numpy(), out.end_logits.numpy()], axis=-1)
    return out.logits.numpy()


def _ours(cfg, params, ids, mask, types):
    model = models.build_model(cfg)
    fn = jax.jit(lambda p, i, m, t: model.apply({"params": p}, i, segment_ids=m, token_type_ids=t))
    return np.asarray(fn(params, ids, mask, types))


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_logits_match_transformers_and_export_round_trips(head, tmp_path):
    hf_model = _perturbed(
        getattr(transformers, HEADS[head])(
            _tiny_config(NUM_LABELS if head == "classification" else 2)
        )
    )
    hf_model.save_pretrained(tmp_path / "hf")
    cfg, params, _ = load_hf(tmp_path / "hf")
    assert cfg.encoder_head == head
    if head == "classification":
        assert cfg.num_labels == NUM_LABELS
    ids, mask, types = _batch()
    ref = _torch_out(hf_model, ids, mask, types)
    ours = _ours(cfg, params, ids, mask, types)
    assert ours.shape == ref.shape
    if head == "span":  # padded tokens' logits are never used
        diff = np.abs(ours - ref)[mask.astype(bool)].max()
    else:
        diff = np.abs(ours - ref).max()
    assert diff <= TOL, diff

    save_hf(cfg, params, tmp_path / "export")
    reloaded = getattr(transformers, HEADS[head]).from_pretrained(tmp_path / "export").eval()
    back = _torch_out(reloaded, ids, mask, types)
    if head == "span":
        back, ours = back[mask.astype(bool)], ours[mask.astype(bool)]
    np.testing.assert_allclose(back, ours, atol=TOL)


def test_pretrained_bert_imports_with_a_new_head_keeping_the_encoder(tmp_path):
    save("bert", tmp_path / "mlm")  # a BertForMaskedLM
    mlm_cfg, mlm_params, _ = load_hf(tmp_path / "mlm")
    cls_cfg, cls_params, _ = load_hf(tmp_path / "mlm", encoder_head="classification")
    mlm = flatten_dict(mlm_params, sep="/")
    cls = flatten_dict(cls_params, sep="/")
    shared = [k for k in cls if k in mlm]
    assert {k.split("/")[0] for k in cls if k not in mlm} == {"classifier"}
    assert not any(k.startswith("mlm") for k in cls)
    assert len(shared) > 20
    for key in shared:
        np.testing.assert_array_equal(cls[key], mlm[key], err_msg=key)
    assert cls["classifier/kernel"].shape == (mlm_cfg.d_model, cls_cfg.num_labels)
