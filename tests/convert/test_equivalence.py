"""Imported models give transformers' logits and greedy tokens; export loads back; round trips."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from llm import models
from llm.convert import load_hf, save_hf
from llm.decode import (
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    greedy,
    init_cache,
)
from tests.convert.hf_models import PAD, save, torch, transformers

ARCHS = ("gpt2", "llama", "bert", "marian", "marian_tied")
TOL = 1e-4
NEW_TOKENS = 20
HF_CLASSES = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "bert": "BertForMaskedLM",
    "marian": "MarianMTModel",
    "marian_tied": "MarianMTModel",
}


@pytest.fixture(scope="module", params=ARCHS)
def imported(request, tmp_path_factory):
    """(arch, HF folder, torch model, our cfg, our params)."""
    arch = request.param
    folder = tmp_path_factory.mktemp(arch)
    hf_model = save(arch, folder)
    cfg, params, _ = load_hf(folder)
    return arch, folder, hf_model, cfg, params


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, PAD, size=(3, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    mask[2, 10:] = 0
    ids = np.where(mask == 1, ids, PAD)
    dec = rng.integers(1, PAD, size=(3, 9))
    dec[:, 0] = PAD  # Marian's decoder start
    return ids, mask, dec


def _torch_logits(arch, hf_model, ids, mask, dec):
    kwargs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    if arch.startswith("marian"):
        kwargs["decoder_input_ids"] = torch.tensor(dec)
    with torch.no_grad():
        return hf_model(**kwargs).logits.numpy()


def _our_logits(arch, cfg, params, ids, mask, dec):
    model = models.build_model(cfg)
    if arch.startswith("marian"):
        return np.asarray(
            jax.jit(lambda p, i, m, d: model.apply({"params": p}, i, d, encoder_segment_ids=m))(
                params, ids, mask, dec
            )
        )
    return np.asarray(
        jax.jit(lambda p, i, m: model.apply({"params": p}, i, segment_ids=m))(params, ids, mask)
    )


def _max_diff(arch, ours, ref, mask):
    if arch.startswith("marian"):  # decoder positions are all real
        return float(np.abs(ours - ref).max())
    return float(np.abs(ours - ref)[mask.astype(bool)].max())


def test_logits_match_and_export_loads_in_transformers(imported, tmp_path):
    arch, _, hf_model, cfg, params = imported
    ids, mask, dec = _batch()
    ref = _torch_logits(arch, hf_model, ids, mask, dec)
    ours = _our_logits(arch, cfg, params, ids, mask, dec)
    diff = _max_diff(arch, ours, ref, mask)
    print(f"\n{arch}: import max |logit diff| = {diff:.3g}")
    assert diff <= TOL

    out = save_hf(cfg, params, tmp_path / "export")
    cls = getattr(transformers, HF_CLASSES[arch])
    reloaded = cls.from_pretrained(tmp_path / "export").eval()
    back = _torch_logits(arch, reloaded, ids, mask, dec)
    export_diff = _max_diff(arch, back, ours, mask)
    print(f"{arch}: export max |logit diff| = {export_diff:.3g}")
    assert export_diff <= TOL

    # Import -> export -> import is exact.
    cfg2, params2, _ = load_hf(out)
    assert cfg2 == cfg
    a = flatten_dict(nn.meta.unbox(params))
    b = flatten_dict(nn.meta.unbox(params2))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=str(key))


def test_greedy_generation_matches_transformers(imported):
    arch, _, hf_model, cfg, params = imported
    if arch == "bert":
        # BERT does not generate: its greedy prediction is each position's MLM argmax.
        ids, mask, dec = _batch(2)
        ref = _torch_logits(arch, hf_model, ids, mask, dec).argmax(-1)
        ours = _our_logits(arch, cfg, params, ids, mask, dec).argmax(-1)
        np.testing.assert_array_equal(ours[mask == 1], ref[mask == 1])
        return
    # (A random tied Marian mostly repeats its start token; equality still holds token by token.)
    rng = np.random.default_rng(1)
    prompt = rng.integers(1, PAD, size=(2, 5))
    model = models.build_model(cfg)
    # No EOS stops either side: exactly NEW_TOKENS tokens each.
    hf_model.generation_config.eos_token_id = None
    hf_model.generation_config.forced_eos_token_id = None
    gen = dict(do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    with torch.no_grad():
        if arch.startswith("marian"):
            source = prompt.copy()
            source[:, -1] = 0  # Marian's EOS ends each source and must not count as padding
            ref = hf_model.generate(input_ids=torch.tensor(source), **gen).numpy()[:, 1:]
        else:
            ref = hf_model.generate(
                input_ids=torch.tensor(prompt),
                attention_mask=torch.ones_like(torch.tensor(prompt)),
                pad_token_id=0,
                **gen,
            ).numpy()[:, prompt.shape[1] :]

    @jax.jit
    def run(p, prompt_BxP):
        if arch.startswith("marian"):
            cache = init_cache(model, prompt_BxP, jnp.zeros((2, NEW_TOKENS), jnp.int32))
            step = encoder_decoder_tokens_to_logits(model, p, prompt_BxP)
            start = jnp.full((2, 1), cfg.pad_id, jnp.int32)
            return greedy(step, cache, start, max_decode_len=NEW_TOKENS, eos_id=-1)[:, 1:]
        cache = init_cache(model, jnp.zeros((2, 5 + NEW_TOKENS - 1), jnp.int32))
        step = decoder_tokens_to_logits(model, p)
        return greedy(step, cache, prompt_BxP, max_decode_len=NEW_TOKENS, eos_id=-1)[:, 5:]

    ours = np.asarray(run(params, jnp.asarray(source if arch.startswith("marian") else prompt)))
    print(f"\n{arch}: greedy ours {ours[0].tolist()}\n{arch}: greedy HF   {ref[0].tolist()}")
    assert ref.shape == (2, NEW_TOKENS)
    np.testing.assert_array_equal(ours, ref)
