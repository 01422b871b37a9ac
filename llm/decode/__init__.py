"""Decoding: greedy, sampling and beam search over a cached step function; checkpoint averaging."""

from llm.decode.adapters import (
    decoder_recompute_tokens_to_logits,
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    init_cache,
)
from llm.decode.averaging import average_params
from llm.decode.beam_search import beam_search, length_penalty
from llm.decode.beams import gather_beams, repeat_for_beams
from llm.decode.filtering import sample_logits, top_k_mask, top_p_mask
from llm.decode.prompts import batch_prompts, generated_ids
from llm.decode.sampling import greedy, sample
from llm.decode.step import TokensToLogits

__all__ = [
    "TokensToLogits",
    "average_params",
    "batch_prompts",
    "beam_search",
    "decoder_recompute_tokens_to_logits",
    "decoder_tokens_to_logits",
    "encoder_decoder_tokens_to_logits",
    "gather_beams",
    "generated_ids",
    "greedy",
    "init_cache",
    "length_penalty",
    "repeat_for_beams",
    "sample",
    "sample_logits",
    "top_k_mask",
    "top_p_mask",
]
