"""Tiny GPT-style decoder on the generated `tiny_grammar` corpus: the default, CPU in minutes.

A pre-LN decoder (4 layers, d_model 128, rotary positions, tied embeddings; 0.8M
parameters) reads the byte-tokenized sentences of a small probabilistic grammar that
the project generates (llm/data/grammar.py). Target: eval loss below 0.40 nats per byte
token after 300 steps, against the grammar's exact entropy bound of 0.375 (perplexity
1.455); the untrained model starts at ln(320) = 5.77. Measured on 2026-11-30 (2 CPU
cores): eval loss 0.385 (perplexity 1.470) at step 200. The run ends by printing a
greedy sample, a grammatical sentence. Args: '' (the default run) or 'smoke' (a few
steps for tests).
"""

import ml_collections

from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Returns the tiny_lm config; `arg='smoke'` shrinks it to seconds."""
    config = ml_collections.ConfigDict()
    # Model: a small pre-LN decoder; vocab 320 covers the 260 byte-tokenizer ids and
    # divides by the tensor axis of any mesh up to 64 devices.
    config.model = ModelConfig(
        family="decoder",
        vocab_size=320,
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_layers=4,
        max_len=128,
        position="rotary",
        norm="layernorm",
        pre_norm=True,
        activation="gelu",
        tie_embeddings=True,
    ).to_dict()

    # Data: generated grammar sentences, bytes, packed into rows of 128.
    config.data = default_data_config()
    config.data.dataset = "tiny_grammar"
    config.data.tokenizer = "byte"
    config.data.seq_len = 128

    # Training: AdamW, warmup + cosine, 300 steps of 32 x 128 tokens.
    config.train = default_train_config()
    config.train.steps = 300
    config.train.batch_size = 32
    config.train.learning_rate = 3e-3
    config.train.warmup_steps = 30
    config.train.weight_decay = 0.01
    config.train.log_every = 50
    config.train.eval_every = 100
    config.train.eval_steps = 8
    config.train.checkpoint_every = 100
    # At each eval, which next word the grammar allows (4 choices, chance 0.25): a trained
    # model scores ~1.0, an untrained one 0.25 (acc_norm).
    config.train.downstream_every = 100
    config.train.downstream_tasks = "tiny_grammar_next_word"
    config.train.sample_prompt = "the"
    config.train.sample_tokens = 60

    # Mesh: every device on the data axis; FSDP rules shard `embed` when fsdp > 1.
    config.mesh = default_mesh_config("fsdp")

    if arg == "smoke":
        config.train.steps = 4
        config.train.batch_size = 8
        config.train.warmup_steps = 1
        config.train.log_every = 1
        config.train.eval_every = 2
        config.train.eval_steps = 1
        config.train.checkpoint_every = 2
        config.train.sample_tokens = 8
        config.train.downstream_every = 0
    elif arg:
        raise ConfigError(f"tiny_lm takes '' or 'smoke', not {arg!r}.")
    return config


def get_sweep(name: str) -> list[dict]:
    """Sweeps of this config for `python -m launch.sweep --sweep=NAME`."""
    from llm import sweeps  # sweeps need no import when only the config is loaded

    if name == "lr":
        # Learning rate around the default 3e-3, with two seeds for the noise floor.
        return sweeps.grid({"train.learning_rate": [1e-3, 3e-3], "train.seed": [0, 1]})
    if name == "lr_warmup":
        # Paired settings: a larger peak needs a longer warmup.
        return sweeps.zipped(
            {"train.learning_rate": [1e-3, 3e-3, 1e-2], "train.warmup_steps": [30, 60, 120]}
        )
    if name == "mup_transfer":
        # muP learning-rate transfer (docs/research.md): widths 128-512 x 5 rates, standard
        # vs muP (base width 128), 2 layers, 150 steps of 16 x 64 tokens; ~15 minutes on
        # 2 CPU cores. The best rate stays put under muP and moves under standard.
        widths = sweeps.zipped({"model.d_model": [128, 256, 512], "model.d_ff": [512, 1024, 2048]})
        rates = sweeps.grid(
            {
                "model.parametrization": ["standard", "mup"],
                "train.learning_rate": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
            }
        )
        fixed = sweeps.grid(
            {
                "model.mup_base_width": [128],
                "model.num_layers": [2],
                "model.max_len": [64],
                "data.seq_len": [64],
                "train.batch_size": [16],
                "train.steps": [150],
                "train.warmup_steps": [15],
                "train.eval_every": [150],
                "train.eval_steps": [8],
                "train.checkpoint_every": [150],
                "train.log_every": [50],
                "train.sample_tokens": [0],
                "train.downstream_every": [0],
            }
        )
        return sweeps.product(widths, rates, fixed)
    if name == "scaling":
        # Scaling-law demonstration (docs/research.md): 8 sizes (25k-4.9M non-embedding
        # parameters) at FLOP budgets 3e11, 1e12 and 3e12 (C = 6ND, 25-5000 steps of
        # 16 x 128 tokens; 19 runs, 37 minutes on 2 CPU cores); fit with launch.scaling. Run
        # it on real text (docs/research.md: Python's own source); tiny_grammar saturates.
        from llm.sweeps import scaling

        sizes = [
            {
                "model.d_model": d,
                "model.num_layers": layers,
                "model.num_heads": heads,
                "model.d_ff": 4 * d,
            }
            for d, layers, heads in [
                (32, 2, 2),
                (48, 2, 3),
                (64, 3, 4),
                (96, 3, 4),
                (128, 4, 4),
                (192, 4, 6),
                (256, 4, 8),
                (320, 4, 8),
            ]
        ]
        fixed = {
            "train.batch_size": 16,
            "train.eval_every": 100_000,  # once, at the last step
            "train.eval_steps": 16,
            "train.checkpoint_every": 100_000,
            "train.log_every": 100,
            "train.sample_tokens": 0,
            "train.downstream_every": 0,
        }
        model = get_config().model.to_dict()
        points = scaling.isoflop_points(model, sizes, [3e11, 1e12, 3e12], 16 * 128, min_steps=25)
        return [point | fixed for point in points]
    if name == "random":
        return sweeps.random_search(
            8,
            seed=0,
            axes={
                "train.learning_rate": sweeps.log_uniform(3e-4, 1e-2),
                "train.weight_decay": sweeps.uniform(0.0, 0.1),
                "model.activation": sweeps.choice(["gelu", "swiglu"]),
            },
        )
    raise ConfigError(
        f"tiny_lm has sweeps 'lr', 'lr_warmup', 'random', 'mup_transfer', 'scaling', not {name!r}."
    )
