"""LLaMA-style decoders (1B, 7B): RMSNorm, SwiGLU, rotary, untied head; ':tiny' on CPU.

Paper (Touvron et al. 2023, Table 2): 7B has d_model 4096, 32 layers, 32 heads,
learning rate 3e-4, batch 4M tokens, context 2048, AdamW (0.9, 0.95), weight decay 0.1,
clipping 1.0, 2000 warmup steps, cosine to 10%; 6.7B parameters. The 1B is a
LLaMA-architecture model at TinyLlama's shape (22 layers, d_model 2048, GQA with 4 KV
heads). Args: '1b' (default), '7b', 'tiny' (with grouped-query attention).
"""

import ml_collections

from experiments._tiny import shrink_decoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.presets import get_preset
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

SIZES = {"1b": ("llama_1b", 4e-4), "7b": ("llama_7b", 3e-4)}
# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = (*SIZES, "tiny")
CONTEXT = 2048


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """LLaMA-style decoder of the size `arg`."""
    size = arg or "1b"
    if size not in ARGS:
        raise ConfigError(f"llama takes one of {sorted(SIZES)} or 'tiny', not {size!r}.")
    preset, lr = SIZES.get(size, SIZES["1b"])
    config = ml_collections.ConfigDict()
    # Model: LLaMA architecture (llm/models/presets.py), bf16 compute, scanned layers.
    config.model = get_preset(preset, scan_layers=True, remat="dots", dtype="bfloat16")
    # Data: C4 English with a 32000-token sentencepiece BPE vocabulary (LLaMA's size).
    config.data = default_data_config()
    config.data.dataset = "c4/en"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 32000
    config.data.seq_len = CONTEXT
    config.data.num_workers = 8
    # Training: 4M tokens per step (2048 rows of 2048), 1T tokens, cosine to 10%.
    config.train = default_train_config()
    config.train.batch_size = 2048
    config.train.steps = 250_000
    config.train.warmup_steps = 2000
    config.train.learning_rate = lr
    config.train.b2 = 0.95
    config.train.weight_decay = 0.1
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.train.log_every = 100
    config.train.sample_prompt = "The"
    # Mesh: FSDP over all devices, tensor parallelism within a node for 7B.
    config.mesh = default_mesh_config("fsdp_tp")
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, -1, 8 if size == "7b" else 1
    if size == "tiny":
        shrink_decoder(config, num_kv_heads=2, d_ff=384)
    return config
