"""GPT-2 decoders (124M, 355M, 774M, 1558M) on C4; ':tiny' trains a small one on CPU.

Paper (Radford et al. 2019, Table 2): 12/24/36/48 layers, d_model 768/1024/1280/1600,
vocab 50257, context 1024, pre-LN, learned positions, tied embeddings; 124M, 355M,
774M and 1558M parameters (`python -m llm.models.presets` checks our counts within 3%).
GPT-2's WebText is not public: C4 (en) stands in; the batch (512 x 1024 tokens) and
AdamW settings follow the GPT-3 paper's recipe for models of this size.
Args: '124m' (default), '355m', '774m', '1558m', 'tiny'.
"""

import ml_collections

from experiments._tiny import shrink_decoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.presets import get_preset, padded_vocab
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

SIZES = {
    # size: (preset, peak learning rate from GPT-3 Table 2.1 for the nearest size)
    "124m": ("gpt2_124m", 6e-4),
    "355m": ("gpt2_355m", 3e-4),
    "774m": ("gpt2_774m", 2.5e-4),
    "1558m": ("gpt2_1558m", 2e-4),
}
# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = (*SIZES, "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """GPT-2 of the size `arg`."""
    size = arg or "124m"
    if size not in ARGS:
        raise ConfigError(f"gpt2 takes one of {sorted(SIZES)} or 'tiny', not {size!r}.")
    config = ml_collections.ConfigDict()
    # Model: the paper's architecture (llm/models/presets.py).
    preset, lr = SIZES.get(size, ("gpt2_124m", 6e-4))
    config.model = get_preset(preset, scan_layers=True, remat="dots", dtype="bfloat16")
    # Pad the embedding to a multiple of 128 rows (50257 -> 50304) so that the vocabulary
    # splits over tensor-parallel meshes; the tokenizer's 50257 ids are unchanged.
    config.model.vocab_size = padded_vocab(config.model.vocab_size)
    # Data: C4 English with a 50257-token BPE-like sentencepiece vocabulary, rows of 1024.
    config.data = default_data_config()
    config.data.dataset = "c4/en"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 50257
    config.data.seq_len = 1024
    config.data.num_workers = 8
    # Training: 0.5M tokens per step, AdamW (0.9, 0.95), cosine to 10% over 600k steps.
    config.train = default_train_config()
    config.train.steps = 600_000
    config.train.batch_size = 512
    config.train.learning_rate = lr
    config.train.warmup_steps = 2000
    config.train.b2 = 0.95
    config.train.weight_decay = 0.1
    config.train.eval_every = 2000
    config.train.checkpoint_every = 2000
    config.train.log_every = 100
    config.train.sample_prompt = "The"
    # Mesh: FSDP over all devices; add tensor parallelism for the larger sizes.
    config.mesh = default_mesh_config("fsdp")
    config.mesh.data, config.mesh.fsdp = 1, -1
    if size == "tiny":
        shrink_decoder(config)
    return config
