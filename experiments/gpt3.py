"""GPT-3 decoders of Table 2.1 (125M ... 175B) on C4; ':tiny' trains a small one on CPU.

Paper (Brown et al. 2020, Table 2.1): n_params, n_layers, d_model, n_heads, batch
(tokens) and learning rate per size, context 2048, AdamW (0.9, 0.95, eps 1e-8), cosine
decay to 10% over 260B tokens after a 375M-token warmup, weight decay 0.1, gradient
clipping 1.0. Our parameter counts agree within 3% (`python -m llm.models.presets`).
Args: '125m' (default), '350m', '760m', '1.3b', '2.7b', '6.7b', '13b', '175b', 'tiny'.
"""

import ml_collections

from experiments._tiny import shrink_decoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.presets import get_preset, padded_vocab
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

# size: (preset, batch in rows of 2048 tokens, learning rate), Table 2.1; the table's
# 0.5M/1M/2M/3.2M-token batches are 256/512/1024/1536 rows.
SIZES = {
    "125m": ("gpt3_125m", 256, 6.0e-4),
    "350m": ("gpt3_350m", 256, 3.0e-4),
    "760m": ("gpt3_760m", 256, 2.5e-4),
    "1.3b": ("gpt3_1_3b", 512, 2.0e-4),
    "2.7b": ("gpt3_2_7b", 512, 1.6e-4),
    "6.7b": ("gpt3_6_7b", 1024, 1.2e-4),
    "13b": ("gpt3_13b", 1024, 1.0e-4),
    "175b": ("gpt3_175b", 1536, 0.6e-4),
}
# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = (*SIZES, "tiny")
CONTEXT = 2048
TOTAL_TOKENS = 300e9  # training tokens (section 2.2)
WARMUP_TOKENS = 375e6


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """GPT-3 of the size `arg`."""
    size = arg or "125m"
    if size not in ARGS:
        raise ConfigError(f"gpt3 takes one of {list(SIZES)} or 'tiny', not {size!r}.")
    preset, batch_size, lr = SIZES.get(size, SIZES["125m"])
    config = ml_collections.ConfigDict()
    # Model: Table 2.1 sizes; dense attention (the paper's alternating sparse layers
    # are not modelled), bf16 compute, scanned and rematerialised layers.
    config.model = get_preset(preset, scan_layers=True, remat="dots", dtype="bfloat16")
    # Pad the embedding to a multiple of 128 rows (50257 -> 50304) so that the vocabulary
    # splits over tensor-parallel meshes; the tokenizer's 50257 ids are unchanged.
    config.model.vocab_size = padded_vocab(config.model.vocab_size)
    # Data: C4 English, a 50257-token BPE-style sentencepiece vocabulary, rows of 2048.
    config.data = default_data_config()
    config.data.dataset = "c4/en"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 50257
    config.data.seq_len = CONTEXT
    config.data.num_workers = 8
    # Training: Table 2.1 batch and learning rate; 300B tokens.
    config.train = default_train_config()
    config.train.batch_size = batch_size
    config.train.steps = int(TOTAL_TOKENS // (batch_size * CONTEXT))
    config.train.warmup_steps = int(WARMUP_TOKENS // (batch_size * CONTEXT))
    config.train.learning_rate = lr
    config.train.b2 = 0.95
    config.train.weight_decay = 0.1
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.train.log_every = 100
    config.train.sample_prompt = "The"
    # Mesh: FSDP everywhere; tensor parallelism within a node for 6.7B and up.
    config.mesh = default_mesh_config("fsdp_tp")
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, -1, 1
    if size in ("6.7b", "13b", "175b"):
        config.mesh.tensor = 8
    if size == "tiny":
        shrink_decoder(config)
    return config
