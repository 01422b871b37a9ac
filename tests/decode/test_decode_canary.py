"""Convergence canary: a tiny encoder-decoder learns a synthetic translation to BLEU >= 90 with beam search.

Task: reverse a sequence of source words and map every word to its
translation (source id t -> target id t + 10). Everything is generated here.
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from llm.decode import beam_search, encoder_decoder_tokens_to_logits, generated_ids, init_cache
from llm.evals import corpus_bleu

models = pytest.importorskip("llm.models")

PAD, BOS, EOS = 0, 1, 2
WORDS = range(3, 13)  # source vocabulary; targets are 13..22
MAX_SRC, MAX_TGT = 8, 9  # target = reversed source + EOS


def make_pairs(rng: np.random.RandomState, n: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.zeros((n, MAX_SRC), np.int32)
    tgt = np.zeros((n, MAX_TGT), np.int32)
    for i in range(n):
        words = rng.choice(list(WORDS), rng.randint(3, MAX_SRC + 1))
        src[i, : len(words)] = words
        translated = [w + 10 for w in words[::-1]] + [EOS]
        tgt[i, : len(translated)] = translated
    return src, tgt


def to_text(ids) -> str:
    return " ".join(f"w{t}" for t in ids)


@pytest.mark.slow
def test_tiny_encoder_decoder_reaches_bleu_90_with_beam_search():
    start = time.time()
    cfg = models.ModelConfig(
        family="encoder_decoder",
        vocab_size=24,
        d_model=32,
        num_heads=4,
        d_ff=64,
        num_layers=2,
        max_len=16,
        position="sinusoidal",
        # AIAYN 3.4; unscaled 0.02-stddev embeddings drown under the unit-scale
        # sinusoids and this task then stalls near loss 2.
        scale_embeddings=True,
    )
    model = models.build_model(cfg)
    rng = np.random.RandomState(0)
    src0, tgt0 = make_pairs(rng, 2)
    dec_in0 = np.concatenate([np.full((2, 1), BOS), tgt0[:, :-1]], 1)
    params = jax.jit(model.init)(jax.random.key(0), src0, dec_in0)["params"]
    optimizer = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 2e-3, 50, 500, 1e-4))
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, src, tgt):
        dec_in = jnp.concatenate([jnp.full((src.shape[0], 1), BOS), tgt[:, :-1]], 1)
        weights = (tgt != PAD).astype(jnp.float32)

        def loss_fn(params):
            logits = model.apply({"params": params}, src, dec_in)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
            return (nll * weights).sum() / weights.sum()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for _ in range(500):
        params, opt_state, loss = train_step(params, opt_state, *make_pairs(rng, 64))
    assert float(loss) < 0.1, float(loss)

    src, tgt = make_pairs(np.random.RandomState(1), 64)  # held out (other seed)
    cache = init_cache(model, src, jnp.zeros((64, MAX_TGT), jnp.int32))

    @functools.partial(jax.jit, static_argnames="beam_size")
    def translate(params, cache, src, beam_size):
        step = encoder_decoder_tokens_to_logits(model, params, src)
        bos = jnp.full((src.shape[0], 1), BOS, jnp.int32)
        tokens, _ = beam_search(
            step, cache, bos, beam_size=beam_size, max_decode_len=MAX_TGT, eos_id=EOS, alpha=0.6
        )
        return tokens[:, 0]

    hyps = [to_text(ids) for ids in generated_ids(translate(params, cache, src, 4), 1, EOS)]
    refs = [to_text(ids) for ids in generated_ids(np.asarray(tgt), 0, EOS)]
    bleu = corpus_bleu(hyps, refs)
    print(f"canary BLEU {bleu.score:.1f} ({bleu.signature}) in {time.time() - start:.0f}s")
    assert bleu.score >= 90, bleu.summary
