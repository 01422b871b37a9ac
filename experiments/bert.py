"""BERT base/large masked-LM pretraining on Wikipedia; ':tiny' trains on CPU.

Paper (Devlin et al. 2019): base L=12, H=768, A=12 (110M); large L=24, H=1024, A=16
(340M); vocab 30522 (WordPiece; a sentencepiece model of that size here), 512
positions, 2 token types, post-LN, GELU; MLM with 15% of tokens chosen, replaced
80/10/10 by [MASK]/random/same, plus next-sentence prediction; Adam lr 1e-4
(0.9, 0.999), weight decay 0.01, 10k warmup steps then linear decay, batch 256 x 512
for 1M steps (the paper trains 90% of steps at length 128; one length here).
Args: 'base' (default), 'large', 'tiny' (generated documents, bytes, CPU; pre-LN, rotary).
"""

import ml_collections

from experiments._tiny import shrink_encoder
from llm.data.config import default_data_config
from llm.errors import ConfigError
from llm.models.presets import get_preset, padded_vocab
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config

# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = ("base", "large", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """BERT of the size `arg`."""
    size = arg or "base"
    if size not in ARGS:
        raise ConfigError(f"bert takes 'base', 'large' or 'tiny', not {size!r}.")
    config = ml_collections.ConfigDict()
    # Model: the paper's encoder with MLM and NSP heads.
    config.model = get_preset("bert_large" if size == "large" else "bert_base")
    # Pad the embedding to a multiple of 128 rows (30522 -> 30592) so that the vocabulary
    # splits over tensor-parallel meshes; the tokenizer's 30522 ids are unchanged.
    config.model.vocab_size = padded_vocab(config.model.vocab_size)
    # Data: English Wikipedia, MLM with next-sentence pairs, rows of 512.
    config.data = default_data_config()
    config.data.dataset = "wikipedia/20230601.en"
    config.data.task = "mlm"
    config.data.nsp = True
    config.data.pack = False
    config.data.tokenizer = "sentencepiece"
    config.data.vocab_size = 30522
    config.data.seq_len = 512
    config.data.eval_split = "train[99%:]"
    config.data.train_split = "train[:99%]"
    # Training: the paper's optimizer and schedule.
    config.train = default_train_config()
    config.train.batch_size = 256
    config.train.steps = 1_000_000
    config.train.learning_rate = 1e-4
    config.train.b2 = 0.999
    config.train.eps = 1e-6
    config.train.weight_decay = 0.01
    config.train.schedule = "linear"
    config.train.end_lr_factor = 0.0
    config.train.warmup_steps = 10_000
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 5000
    config.train.log_every = 100
    config.train.sample_tokens = 0
    config.mesh = default_mesh_config("fsdp")
    if size == "tiny":
        shrink_encoder(config)
    return config
