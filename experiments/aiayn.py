"""Transformer base/big of "Attention Is All You Need" on WMT14 EN-DE; ':tiny' on CPU.

Paper (Vaswani et al. 2017): Table 3 base N=6, d_model 512, d_ff 2048, h 8, P_drop 0.1;
big d_model 1024, d_ff 4096, h 16, P_drop 0.3; label smoothing 0.1; a shared ~37000
BPE source-target vocabulary with tied embeddings (3.4); Adam (0.9, 0.98, 1e-9) with
lr = d_model^-0.5 * min(step^-0.5, step * 4000^-1.5) (5.3); batches of ~25000 source +
25000 target tokens; base 100k steps, big 300k. Reported EN-DE newstest2014 BLEU:
27.3 (base), 28.4 (big), with beam 4, alpha 0.6 and averaging the last 5 / 20
checkpoints. Parameters: 65M / 213M (ours within 3%, `python -m llm.models.presets`).
Args: 'base' (default), 'big', 'tiny' (number words -> digits, trains on CPU).
"""

import ml_collections

from experiments._tiny import shrink_encoder_decoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.presets import get_preset, padded_vocab
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = ("base", "big", "tiny")

WARMUP = 4000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """AIAYN of the size `arg`."""
    size = arg or "base"
    if size not in ARGS:
        raise ConfigError(f"aiayn takes 'base', 'big' or 'tiny', not {size!r}.")
    config = ml_collections.ConfigDict()
    # Model: post-LN encoder-decoder, sinusoidal positions, shared scaled embeddings.
    config.model = get_preset("aiayn_big" if size == "big" else "aiayn_base")
    # Pad the embedding to a multiple of 128 rows (37000 -> 37120) so that the vocabulary
    # splits over tensor-parallel meshes; the tokenizer's 37000 ids are unchanged.
    config.model.vocab_size = padded_vocab(config.model.vocab_size)
    # Data: WMT14 English -> German, one shared 37000-piece BPE vocabulary.
    config.data = default_data_config()
    config.data.dataset = "wmt14_translate/de-en"
    config.data.task = "seq2seq"
    config.data.inputs_key = "en"
    config.data.targets_key = "de"
    config.data.tokenizer = "sentencepiece"
    config.data.spm_type = "bpe"
    config.data.vocab_size = 37000
    config.data.inputs_len = 256
    config.data.targets_len = 256
    config.data.eval_split = "validation"
    # Training: ~25k target tokens per step as 128 packed rows of 256 (~75% full).
    config.train = default_train_config()
    config.train.batch_size = 128
    config.train.steps = 300_000 if size == "big" else 100_000
    config.train.optimizer = "adamw"
    config.train.b1, config.train.b2, config.train.eps = 0.9, 0.98, 1e-9
    config.train.weight_decay = 0.0
    config.train.grad_clip_norm = 0.0
    config.train.schedule = "rsqrt"
    config.train.warmup_steps = WARMUP
    config.train.learning_rate = config.model.d_model**-0.5 * WARMUP**-0.5
    config.train.label_smoothing = 0.1
    config.train.eval_every = 5000
    config.train.checkpoint_every = 1000
    config.train.keep_checkpoints = 20 if size == "big" else 5
    config.train.log_every = 100
    config.train.sample_tokens = 0
    config.mesh = default_mesh_config("fsdp")
    if size == "tiny":
        shrink_encoder_decoder(config)
    return config
