"""DeepSeek-V2-Lite-style decoder: fine-grained and shared experts, a dense first layer.

Paper (DeepSeek-AI 2024, "DeepSeek-V2", appendix B): 27 layers of d_model 2048; every
layer but the first has 64 routed experts of 1408 (top 6 of a softmax, not
renormalised) plus 2 shared experts, the first keeps a dense SwiGLU of 10944; vocab
102400; 15.7B parameters, 2.4B active (`python -m llm.models.presets` counts 15.62B
and 2.36B). Trained on 5.7T tokens at 4096 context with AdamW (0.9, 0.95, weight decay
0.1), lr 4.2e-4 after 2000 warmup steps, batch 4608 sequences, expert-level balance loss
0.001.

What differs: multi-head latent attention (MLA) is replaced by grouped-query attention
(16 heads of 128, 4 KV heads; see the preset's docstring for the parameter and
KV-cache sizes), and the paper's step-decay schedule by cosine to 10%.

Args: 'v2_lite' (default) or 'tiny': 4 layers of d_model 128 on tiny_grammar with a
dense first layer, 16 routed experts of 64 (top 4) and 2 shared experts of 64, the
active size of the dense llama.py:tiny (d_ff 384).
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
ARGS = ("v2_lite", "tiny")
CONTEXT = 4096


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """DeepSeek-V2-Lite-style MoE decoder, or its CPU-sized shrink with `arg='tiny'`."""
    size = arg or "v2_lite"
    if size not in ARGS:
        raise ConfigError(f"deepseek_moe takes one of {', '.join(ARGS)}, not {size!r}.")
    config = ml_collections.ConfigDict()
    # Model: llm/models/presets.py deepseek_v2_lite, bf16 compute, scanned remat'd layers.
    # Every ModelConfig field is present, so --config.model.moe_dispatch=capacity works.
    config.model = ModelConfig.from_dict(
        get_preset("deepseek_v2_lite", scan_layers=True, remat="dots", dtype="bfloat16")
    ).to_dict()
    # Data: C4 English, a 102400-token sentencepiece BPE vocabulary (DeepSeek's size).
    config.data = default_data_config()
    config.data.dataset = "c4/en"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 102400
    config.data.seq_len = CONTEXT
    config.data.num_workers = 8
    # Training: the paper's batch of 4608 sequences of 4096 tokens and learning rate.
    config.train = default_train_config()
    config.train.batch_size = 4608
    config.train.steps = 300_000
    config.train.warmup_steps = 2000
    config.train.learning_rate = 4.2e-4
    config.train.b2 = 0.95
    config.train.weight_decay = 0.1
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.train.log_every = 100
    config.train.sample_prompt = "The"
    # Mesh: 8 expert shards of 8 routed experts each; FSDP over the rest.
    config.mesh = default_mesh_config("fsdp")
    config.mesh.data, config.mesh.fsdp, config.mesh.expert, config.mesh.tensor = 1, -1, 8, 1
    if size == "tiny":
        shrink_decoder(
            config,
            vocab_size=320,
            head_dim=None,
            num_kv_heads=2,
            num_experts=16,
            experts_per_token=4,
            expert_d_ff=64,
            num_shared_experts=2,
            d_ff=384,
            load_balance_loss_weight=0.01,
            router_z_loss_weight=0.001,
        )
    return config
