"""Hand-built step functions and tiny flax models with a 'cache' collection, for decoding tests."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm.decode import length_penalty


def trigram_step_fn(logp_VxVxV: np.ndarray):
    """Step function whose next-token log-probs depend on the last two tokens.

    The previous token lives in the cache (one per row), so beam search only
    gets the right scores if it reorders the cache with the beams. The scalar
    'cache_index' leaf checks that such leaves are left alone.
    """
    table = jnp.asarray(logp_VxVxV, jnp.float32)

    def tokens_to_logits(token_ids_Bx1, cache):
        current_B = token_ids_Bx1[:, 0]
        logits_BxV = table[cache["prev"], current_B]
        return logits_BxV, {"prev": current_B, "cache_index": cache["cache_index"] + 1}

    return tokens_to_logits


def trigram_cache(batch: int):
    return {"prev": jnp.zeros((batch,), jnp.int32), "cache_index": jnp.int32(0)}


def bigram_table(rows: dict[int, dict[int, float]], vocab: int) -> np.ndarray:
    """[V, V, V] log-prob table from {current: {next: prob}}; unlisted mass is spread evenly."""
    table = np.zeros((vocab, vocab))
    for current in range(vocab):
        probs = rows.get(current, {})
        rest = [t for t in range(vocab) if t not in probs]
        left = 1.0 - sum(probs.values())
        for t in range(vocab):
            table[current, t] = probs.get(t, left / len(rest) if rest else 0.0)
    with np.errstate(divide="ignore"):
        logp = np.log(table)
    return np.broadcast_to(logp[None], (vocab, vocab, vocab)).copy()


def random_trigram_table(vocab: int, seed: int) -> np.ndarray:
    logits = np.random.RandomState(seed).randn(vocab, vocab, vocab) * 2.0
    return np.asarray(jax.nn.log_softmax(logits, axis=-1))


def brute_force(logp_VxVxV, prompt, max_decode_len, eos_id, alpha):
    """All continuations of one prompt, as (score, generated tokens) sorted best first."""
    vocab = logp_VxVxV.shape[0]
    prev, current = (0, prompt[0]) if len(prompt) == 1 else (prompt[-2], prompt[-1])
    results = []
    for length in range(1, max_decode_len + 1):
        for tokens in itertools.product(range(vocab), repeat=length):
            if eos_id in tokens[:-1]:
                continue
            if length < max_decode_len and tokens[-1] != eos_id:
                continue
            logp, p, c = 0.0, prev, current
            for t in tokens:
                logp += logp_VxVxV[p, c, t]
                p, c = c, t
            results.append((logp / float(length_penalty(length, alpha)), tokens))
    return sorted(results, key=lambda r: -r[0])


def random_params(model, *init_args, seed: int = 0, scale: float = 0.5):
    """Random parameters of the init's shapes, drawn on the host.

    Compiling model.init (a threefry draw per parameter) costs far more on CPU
    than the decoding under test; only shapes come from the model here.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), *init_args)["params"]
    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, scale, s.shape), s.dtype), shapes)


def token_logp(apply_full, seq_BxT):
    """log p of every token seq[:, 1:] from one cache-free causal forward pass."""
    logp_BxLxV = jax.nn.log_softmax(
        jax.jit(apply_full)(jnp.asarray(seq_BxT[:, :-1])).astype(jnp.float32)
    )
    return np.take_along_axis(np.asarray(logp_BxLxV), np.asarray(seq_BxT[:, 1:])[..., None], -1)[
        ..., 0
    ]


def naive_greedy(apply_full, prompt_BxP, steps):
    """Recomputes the whole prefix every step: the reference for cached decoding.

    The buffer has a fixed length (one compilation); causality makes the
    padding to the right of the current position irrelevant.
    """
    batch, prompt_len = prompt_BxP.shape
    seq = np.concatenate([np.asarray(prompt_BxP), np.zeros((batch, steps), np.int32)], 1)
    full = jax.jit(apply_full)
    for pos in range(prompt_len, prompt_len + steps):
        seq[:, pos] = np.asarray(jnp.argmax(full(jnp.asarray(seq))[:, pos - 1], -1))
    return seq


def first_eos_padded(seq, start, eos_id=2, pad_id=0):
    seq = seq.copy()
    for row in seq:
        hits = np.flatnonzero(row[start:] == eos_id)
        if hits.size:
            row[start + hits[0] + 1 :] = pad_id
    return seq


def check_beams_rescored(apply_full, tokens_BxKxT, scores_BxK, prompt_len, alpha, eos_id=2):
    """Scores recomputed without the cache only match if the cache followed the beams."""
    batch, beams, total = tokens_BxKxT.shape
    logp_BxKxT = token_logp(apply_full, tokens_BxKxT.reshape(batch * beams, total)).reshape(
        batch, beams, -1
    )
    for b in range(batch):
        for k in range(beams):
            gen = tokens_BxKxT[b, k, prompt_len:]
            length = int(np.flatnonzero(gen == eos_id)[0]) + 1 if eos_id in gen else len(gen)
            logp = logp_BxKxT[b, k, prompt_len - 1 : prompt_len - 1 + length].sum()
            np.testing.assert_allclose(
                scores_BxK[b, k], logp / length_penalty(length, alpha), rtol=1e-4
            )


class ToyDecoder(nn.Module):
    """Causal mean of token+position embeddings; a flax 'cache' like attention's KV cache."""

    vocab: int = 7
    dim: int = 8
    max_len: int = 16

    @nn.compact
    def __call__(self, tokens_BxL, decode=False, extra_BxD=None):
        batch, length = tokens_BxL.shape
        embed = nn.Embed(self.vocab, self.dim, name="embed")
        pos = nn.Embed(self.max_len, self.dim, name="pos")
        # As flax attention does: init with decode=True creates the cache at the
        # input's length and runs the full pass; later calls append to it.
        initialized = self.has_variable("cache", "cached_x")
        if decode:
            cached = self.variable("cache", "cached_x", jnp.zeros, (batch, length, self.dim))
            index = self.variable("cache", "cache_index", lambda: jnp.int32(0))
        if decode and initialized:
            x_BxLxD = embed(tokens_BxL) + pos(index.value + jnp.arange(length))[None]
            cached.value = jax.lax.dynamic_update_slice(cached.value, x_BxLxD, (0, index.value, 0))
            index.value = index.value + length
            seen_T = (jnp.arange(cached.value.shape[1]) < index.value).astype(jnp.float32)
            ctx_BxLxD = ((cached.value * seen_T[None, :, None]).sum(1) / index.value)[:, None, :]
        else:
            x_BxLxD = embed(tokens_BxL) + pos(jnp.arange(length))[None]
            ctx_BxLxD = jnp.cumsum(x_BxLxD, axis=1) / jnp.arange(1, length + 1)[None, :, None]
        if extra_BxD is not None:
            ctx_BxLxD = ctx_BxLxD + extra_BxD[:, None, :]
        return nn.Dense(self.vocab, name="out")(jnp.tanh(ctx_BxLxD) * 3.0)


class ToyEncoderDecoder(nn.Module):
    """ToyDecoder conditioned on a mean-pooled encoding of the (non-pad) inputs."""

    vocab: int = 7
    dim: int = 8
    max_len: int = 16

    def setup(self):
        self.enc_embed = nn.Embed(self.vocab, self.dim)
        self.decoder = ToyDecoder(self.vocab, self.dim, self.max_len)

    def encode(self, encoder_inputs_BxS):
        mask_BxS = (encoder_inputs_BxS != 0).astype(jnp.float32)
        x_BxSxD = self.enc_embed(encoder_inputs_BxS) * mask_BxS[..., None]
        return x_BxSxD.sum(1) / jnp.maximum(mask_BxS.sum(1), 1.0)[:, None]

    def decode(self, encoded_BxD, encoder_inputs_BxS, decoder_tokens_BxL, decode=False):
        return self.decoder(decoder_tokens_BxL, decode, encoded_BxD)

    def __call__(self, encoder_inputs_BxS, decoder_tokens_BxL, decode=False):
        encoded_BxD = self.encode(encoder_inputs_BxS)
        return self.decode(encoded_BxD, encoder_inputs_BxS, decoder_tokens_BxL, decode)
