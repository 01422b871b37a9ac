"""Text in, text out: continuation (decoder) or translation (encoder-decoder), batched on a mesh."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm.decode import filtering, prompts, repetition
from llm.decode.adapters import (
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    init_cache,
)
from llm.decode.beam_search import beam_search
from llm.decode.compile import bucket, jit_decode, prefill_bucket
from llm.decode.sampling import sample
from llm.errors import ConfigError, InputFileError
from llm.parallel.sharding import batch_sharding, data_parallel_size
from llm.train.trained import TrainedModel

# What an empty input line gives: an error, an empty output, or a decode like any other
# line (a decoder then continues BOS alone).
_EMPTY_MODES = ("error", "blank", "keep")


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How decode_texts searches: beam_size > 1 is beam search, else sampling (temperature 0 = greedy)."""

    # New tokens per row; 0 = as many as fit up to max_len after the longest
    # prompt (decoder), or max_len_a * source tokens + max_len_b (encoder-decoder).
    max_decode_len: int = 0
    # Encoder-decoder with max_decode_len=0: each row may write up to
    # max_len_a * (its source tokens) + max_len_b tokens, at most the model's
    # max_len. AIAYN 6.1: "input length + 50" (a=1, b=50).
    max_len_a: float = 1.0
    max_len_b: int = 50
    beam_size: int = 1
    alpha: float = 0.6
    temperature: float = 0.0
    top_k: int = 0
    top_p: float | None = None
    seed: int = 0
    # Never repeat an n-gram of this size within an output (0 = off, as AIAYN; 3 is
    # common for summaries). EOS is exempt, so every row can still end.
    no_repeat_ngram_size: int = 0
    # CTRL's repetition penalty on tokens already in the output (1 = off; CTRL: 1.2).
    repetition_penalty: float = 1.0
    # Rows decoded together (rounded up to the mesh's data-parallel size).
    batch_size: int = 32

    def check(self) -> None:
        """Fails on values no decoding loop accepts, naming the flag."""
        if self.max_decode_len < 0:
            raise ConfigError(
                f"max_decode_len={self.max_decode_len} must be >= 0 (0 = fill max_len)."
            )
        if self.beam_size < 1:
            raise ConfigError(f"beam_size={self.beam_size} must be >= 1 (1 = no beam search).")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1.")
        if self.max_len_a < 0 or self.max_len_b < 0 or not (self.max_len_a or self.max_len_b):
            raise ConfigError(
                f"max_len_a={self.max_len_a}, max_len_b={self.max_len_b}: both must be >= 0 "
                "and one > 0 (AIAYN: a=1, b=50), or set max_decode_len > 0."
            )
        repetition.check_repetition_args(self.no_repeat_ngram_size, self.repetition_penalty)
        if self.beam_size > 1 and (self.temperature or self.top_k or self.top_p is not None):
            raise ConfigError(
                "beam search (beam_size > 1) is deterministic: drop temperature/top_k/top_p "
                "or use beam_size=1 to sample."
            )
        filtering.check_sampling_args(self.temperature, self.top_k, self.top_p)


def _encode_lines(
    texts: Sequence[str], tokenizer: Any, empty: str
) -> tuple[list[np.ndarray], list[int]]:
    if empty not in _EMPTY_MODES:
        raise ConfigError(f"empty={empty!r}; use one of {_EMPTY_MODES}.")
    ids, blank = [], []
    for i, text in enumerate(texts):
        if not text.strip() and empty != "keep":
            if empty == "error":
                raise InputFileError(
                    f"input line {i + 1} is empty; remove it, or ask for an empty output line "
                    "for it (launch.decode --empty=blank)."
                )
            blank.append(i)
            ids.append(np.zeros((0,), np.int32))
            continue
        ids.append(np.asarray(tokenizer.encode(text), np.int32))
    return ids, blank


def _truncate(ids: np.ndarray, limit: int, index: int, keep: str, what: str) -> np.ndarray:
    if len(ids) <= limit:
        return ids
    warnings.warn(
        f"input line {index + 1}: {len(ids)} {what} tokens truncated to {limit} "
        f"(keeping the {'last' if keep == 'end' else 'first'} ones)",
        stacklevel=3,
    )
    return ids[-limit:] if keep == "end" else ids[:limit]


def _pad_rows(rows: Sequence[np.ndarray], width: int, count: int, pad_id: int) -> np.ndarray:
    out_BxW = np.full((count, width), pad_id, np.int32)
    for i, row in enumerate(rows):
        out_BxW[i, : len(row)] = row
    return out_BxW


def decode_texts(
    run: TrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    options: DecodeOptions,
    empty: str = "error",
) -> list[str]:
    """One output text per input text, decoded by `run`'s model in padded batches on its mesh.

    A 'decoder' run continues each text after BOS (the output is the
    continuation only); an 'encoder_decoder' run translates it (encoder input
    is text + EOS, as the seq2seq task trains). Inputs longer than the model
    takes are truncated with a warning: a source to data.inputs_len keeping
    its first tokens, as training did; a prompt to model max_len -
    max_decode_len keeping its last tokens. Empty lines are an error, give an
    empty output with empty='blank', or are decoded as they are with empty='keep'.
    An encoder-decoder without options.max_decode_len writes up to
    max_len_a * source tokens + max_len_b tokens per row (at most model max_len).
    """
    options.check()
    family, max_len = run.model_cfg.family, run.model_cfg.max_len
    if family not in ("decoder", "encoder_decoder"):
        raise ConfigError(
            f"model family {family!r} does not generate text; decoding needs a 'decoder' or "
            "'encoder_decoder' model."
        )
    ids, blank = _encode_lines(texts, tokenizer, empty)
    max_new = options.max_decode_len
    if family == "decoder":
        with_bos = [np.concatenate([[tokenizer.bos_id], r]).astype(np.int32) for r in ids]
        if max_new == 0:
            # Room for at least one new token, then whatever the longest prompt leaves.
            rows = [_truncate(r, max_len - 1, i, "end", "prompt") for i, r in enumerate(with_bos)]
            max_new = max_len - max(len(r) for r in rows)
        else:
            if max_new >= max_len:
                warnings.warn(
                    f"max_decode_len={max_new} leaves no room for a prompt in max_len={max_len}; "
                    f"using {max_len - 1}",
                    stacklevel=2,
                )
                max_new = max_len - 1
            limit = max_len - max_new
            rows = [_truncate(r, limit, i, "end", "prompt") for i, r in enumerate(with_bos)]
    else:
        limit = int(run.config.data.inputs_len)
        rows = [
            _truncate(
                np.concatenate([r, [tokenizer.eos_id]]).astype(np.int32),
                limit,
                i,
                "start",
                "source",
            )
            for i, r in enumerate(ids)
        ]
    # Per-row limits (encoder-decoder without a fixed max_decode_len), else None.
    row_limits = None
    if family == "encoder_decoder" and not max_new:
        row_limits = source_relative_limits(
            [len(r) - 1 for r in rows], options.max_len_a, options.max_len_b, max_len
        )
        max_new = int(row_limits.max())
    dp = data_parallel_size(run.mesh, run.rules)
    batch = -(-min(options.batch_size, len(rows)) // dp) * dp
    # One width for every batch, so the loop compiles once; widths and lengths are rounded
    # up to buckets so that later calls with other lengths reuse the compiled loop.
    longest = max(len(r) for r in rows)
    if family == "decoder":
        # The cache holds width + max_new - 1 positions, at most max_len.
        width = bucket(longest, limit=max_len - max_new + 1)
        max_new_compiled = bucket(max_new, limit=max_len - width + 1)
        prefill_len = prefill_bucket(min(len(r) for r in rows))
    else:
        width, max_new_compiled, prefill_len = bucket(longest, limit=limit), max_new, 0
    decode = _runner(run, tokenizer, batch, width, max_new_compiled, options, prefill_len)

    outputs: list[str] = []
    rng = jax.random.key(options.seed)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        inputs_BxW = _pad_rows(chunk, width, batch, tokenizer.pad_id)
        # Padding rows are as long as the prefill, which feeds every row.
        lengths_B = np.full((batch,), max(prefill_len, 1), np.int32)
        lengths_B[: len(chunk)] = [len(r) for r in chunk]
        limits_B = np.ones((batch,), np.int32)
        limits_B[: len(chunk)] = (
            row_limits[start : start + len(chunk)] if row_limits is not None else max_new
        )
        if family == "decoder":
            # Padding rows get BOS so that every row has a first token.
            inputs_BxW[len(chunk) :, 0] = tokenizer.bos_id
        tokens_BxT = np.asarray(
            jax.device_get(
                decode(run.params, inputs_BxW, lengths_B, limits_B, jax.random.fold_in(rng, start))
            )
        )
        prompt_lengths = lengths_B if family == "decoder" else 1
        gen = prompts.generated_ids(tokens_BxT, prompt_lengths, tokenizer.eos_id)
        outputs.extend(tokenizer.decode(g) for g in gen[: len(chunk)])
    for i in blank:
        outputs[i] = ""
    return outputs


def source_relative_limits(
    source_lengths: Sequence[int], a: float, b: int, max_len: int
) -> np.ndarray:
    """New-token limit of each row: ceil(a * source length + b), in [1, max_len]."""
    lengths = np.asarray(source_lengths, np.float64)
    return np.clip(np.ceil(a * lengths + b), 1, max_len).astype(np.int32)


def generate_text(
    run: TrainedModel,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """`prompt` plus its continuation of up to `max_new_tokens` tokens; temperature 0 is greedy."""
    family, max_len = run.model_cfg.family, run.model_cfg.max_len
    if family != "decoder":
        raise ConfigError(
            f"generate_text continues a prompt with a 'decoder' model, not family {family!r}; "
            "set config.train.sample_tokens=0 to train without the closing sample."
        )
    prompt_len = 1 + len(tokenizer.encode(prompt))
    if prompt_len >= max_len:
        raise ConfigError(
            f"Prompt of {prompt_len} tokens leaves no room in the model's max_len={max_len}; "
            "shorten the prompt."
        )
    # Fewer new tokens rather than a truncated prompt when both do not fit.
    options = DecodeOptions(
        max_decode_len=min(max_new_tokens, max_len - prompt_len),
        temperature=temperature,
        seed=seed,
        batch_size=1,
    )
    return prompt + decode_texts(run, tokenizer, [prompt], options=options, empty="keep")[0]


def _runner(
    run: TrainedModel,
    tokenizer: Any,
    batch: int,
    width: int,
    max_new: int,
    options: DecodeOptions,
    prefill_len: int,
):
    """The compiled decode loop for these shapes, shared by every call with the same program."""
    key = (
        run.model_cfg,
        run.mesh,
        tuple(run.rules),
        (tokenizer.eos_id, tokenizer.pad_id, tokenizer.bos_id),
        batch,
        width,
        max_new,
        options,
        prefill_len,
    )
    if key not in _RUNNERS:
        if len(_RUNNERS) >= _MAX_RUNNERS:
            _RUNNERS.pop(next(iter(_RUNNERS)))
        _RUNNERS[key] = _make_runner(run, tokenizer, batch, width, max_new, options, prefill_len)
    return _RUNNERS[key]


# Compiled decode loops by program (oldest dropped first): in-training evals and repeated
# decode_texts calls reuse them instead of tracing and compiling again.
_RUNNERS: dict[tuple, Any] = {}
_MAX_RUNNERS = 16


def _make_runner(
    run: TrainedModel,
    tokenizer: Any,
    batch: int,
    width: int,
    max_new: int,
    options: DecodeOptions,
    prefill_len: int,
):
    """Jitted (params, inputs_BxW, lengths_B, limits_B, rng) -> tokens_BxT, sharded by rows.

    limits_B: each row's new-token limit (<= max_new). A decoder feeds the first
    prefill_len - 1 prompt tokens of every row in one call (prefill_len <= every
    row's length), then the loop goes on token by token.
    """
    model, family, mesh, rules = run.model, run.model_cfg.family, run.mesh, run.rules
    eos, pad, bos = tokenizer.eos_id, tokenizer.pad_id, tokenizer.bos_id

    def search(step, cache, prompt_BxP, lengths_B, limits_B, rng, prefill_len=0):
        remedies = dict(
            max_decode_lens_B=limits_B,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            repetition_penalty=options.repetition_penalty,
        )
        if options.beam_size > 1:
            tokens_BxKxT, _ = beam_search(
                step,
                cache,
                prompt_BxP,
                beam_size=options.beam_size,
                max_decode_len=max_new,
                eos_id=eos,
                alpha=options.alpha,
                pad_id=pad,
                prompt_lengths_B=lengths_B,
                prefill_len=prefill_len,
                **remedies,
            )
            return tokens_BxKxT[:, 0]
        return sample(
            step,
            cache,
            prompt_BxP,
            rng,
            max_decode_len=max_new,
            eos_id=eos,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
            pad_id=pad,
            prompt_lengths_B=lengths_B,
            prefill_len=prefill_len,
            **remedies,
        )

    def run(params, inputs_BxW, lengths_B, limits_B, rng):
        if family == "decoder":
            cache = init_cache(model, jnp.zeros((batch, width + max_new - 1), jnp.int32))
            step = decoder_tokens_to_logits(model, params)
            return search(step, cache, inputs_BxW, lengths_B, limits_B, rng, prefill_len)
        cache = init_cache(model, inputs_BxW, jnp.zeros((batch, max_new), jnp.int32))
        step = encoder_decoder_tokens_to_logits(model, params, inputs_BxW)
        bos_Bx1 = jnp.full((batch, 1), bos, jnp.int32)
        return search(step, cache, bos_Bx1, None, limits_B, rng)

    rows = batch_sharding(mesh, rules)
    jitted = jit_decode(run, in_shardings=(None, rows, rows, rows, None))

    def call(params, inputs_BxW, lengths_B, limits_B, rng):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(params, inputs_BxW, lengths_B, limits_B, rng)

    return call
