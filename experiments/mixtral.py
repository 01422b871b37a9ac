"""Mixtral-style mixture-of-experts decoder (8x7B) with expert parallelism; ':tiny' on CPU.

Paper (Jiang et al. 2024, "Mixtral of Experts"): Mistral 7B's architecture (32 layers,
d_model 4096, 32 heads, 8 KV heads, 32k context) with every feed-forward block replaced
by 8 SwiGLU experts of 14336, top-2 routing; 46.7B parameters, 12.9B active per token
(`python -m llm.models.presets` counts 46.70B and 12.75B, -1.2%: the input embedding
table is a lookup). The paper publishes no training recipe: the optimizer and schedule
here are LLaMA 2's (AdamW 0.9/0.95, weight decay 0.1, lr 3e-4, 2000 warmup steps,
cosine to 10%, 4M tokens per step at 4096 context).

Args: '8x7b' (default) or 'tiny': 4 layers of d_model 128 with 8 experts of 192
(top-2) on tiny_grammar, the active size of the dense llama.py:tiny (d_ff 384); it
trains on 8 simulated devices with mesh.expert=4 or on one CPU.
"""

import ml_collections

from experiments._tiny import shrink_decoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.models.presets import get_preset
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = ("8x7b", "tiny")
CONTEXT = 4096


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """Mixtral 8x7B, or its CPU-sized shrink with `arg='tiny'`."""
    size = arg or "8x7b"
    if size not in ARGS:
        raise ConfigError(f"mixtral takes one of {', '.join(ARGS)}, not {size!r}.")
    config = ml_collections.ConfigDict()
    # Model: Mixtral 8x7B (llm/models/presets.py), bf16 compute, scanned remat'd layers,
    # dropless routing (jax.lax.ragged_dot under shard_map over the expert axis).
    # Every ModelConfig field is present, so --config.model.moe_dispatch=capacity works.
    config.model = ModelConfig.from_dict(
        get_preset(
            "mixtral_8x7b", scan_layers=True, remat="dots", dtype="bfloat16", max_len=CONTEXT
        )
    ).to_dict()
    # Data: C4 English with a 32000-token sentencepiece BPE vocabulary (Mixtral's size).
    config.data = default_data_config()
    config.data.dataset = "c4/en"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 32000
    config.data.seq_len = CONTEXT
    config.data.num_workers = 8
    # Training: LLaMA 2's recipe (no Mixtral recipe is published), 4M tokens per step.
    config.train = default_train_config()
    config.train.batch_size = 1024
    config.train.steps = 250_000
    config.train.warmup_steps = 2000
    config.train.learning_rate = 3e-4
    config.train.b2 = 0.95
    config.train.weight_decay = 0.1
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.train.log_every = 100
    config.train.sample_prompt = "The"
    # Mesh: each of 8 expert shards holds one expert per layer; FSDP over the rest.
    config.mesh = default_mesh_config("fsdp")
    config.mesh.data, config.mesh.fsdp, config.mesh.expert, config.mesh.tensor = 1, -1, 8, 1
    if size == "tiny":
        shrink_decoder(
            config,
            num_kv_heads=2,
            num_experts=8,
            experts_per_token=2,
            expert_d_ff=192,
            d_ff=384,
            load_balance_loss_weight=0.01,
            router_z_loss_weight=0.001,
        )
    return config
