"""BERT fine-tuned for SQuAD v1.1 span question answering; ':tiny' trains on CPU.

Recipe of Devlin et al. 2019, section 4.2: [CLS] question [SEP] passage [SEP], a start
and an end vector over the passage tokens (the span head), 3 epochs, lr 5e-5, batch 32,
max length 384 with windows of the passage 128 tokens apart (doc stride) and questions
cut at 64 tokens (the released run_squad.py), linear decay after 10% warmup. The answer
is the best valid span (start <= end, at most 30 tokens) over all windows.

Start from a pretrained workdir with --config.train.init_from=W (ours, or bert-base-uncased
imported by launch.convert); its model sizes and tokenizer are adopted.

Paper SQuAD v1.1 dev, single model (Table 2): BERT-base EM 80.8, F1 88.5; BERT-large
EM 84.1, F1 90.9.

Args: 'base' (default), 'large' (only the from-scratch sizes differ) or 'tiny' (the
generated tiny_qa set, bytes, CPU, from scratch).
"""

import ml_collections

from experiments import bert
from llm.errors import ConfigError

ARGS = ("base", "large", "tiny")

# SQuAD v1.1 train: 87,599 questions, ~88,600 windows of 384 at stride 128 (BERT's).
TRAIN_WINDOWS = 88_600
EPOCHS = 3
BATCH_SIZE = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """BERT span-QA fine-tuning on SQuAD v1.1 (or the tiny CPU variant)."""
    size = arg or "base"
    if size not in ARGS:
        raise ConfigError(f"bert_squad takes one of {', '.join(ARGS)}, not {size!r}.")
    config = bert.get_config(size)
    # Model: BERT's encoder with the span head (start/end logits per token).
    config.model.encoder_head = "span"
    # Data: windows [CLS] question [SEP] passage-window [SEP], one per row.
    config.data.task = "span_qa"
    config.data.pack = False
    config.data.nsp = False
    config.data.seq_len = 384
    # Question tokens kept, and the distance between window starts (run_squad.py).
    config.data.max_query_len = 64
    config.data.doc_stride = 128
    # Training: section 4.2's recipe (optimizer and linear decay as bert.py).
    config.train.init_from = ""
    config.train.batch_size = BATCH_SIZE
    config.train.learning_rate = 5e-5
    if size == "tiny":
        config.data.update(dataset="tiny_qa", train_split="train", eval_split="validation")
        config.data.update(seq_len=128, max_query_len=32, doc_stride=64)
        config.train.update(
            steps=400, warmup_steps=40, learning_rate=1e-3, eval_every=200, eval_steps=0
        )
        config.train.update(checkpoint_every=200, log_every=25)
        return config
    config.data.update(dataset="squad/v1.1", train_split="train", eval_split="validation")
    config.model.dropout_rate = 0.1
    config.model.attention_dropout_rate = 0.1
    steps = -(-EPOCHS * TRAIN_WINDOWS // BATCH_SIZE)
    config.train.update(
        steps=steps,
        warmup_steps=steps // 10,
        eval_every=steps,  # SQuAD scores the dev set once, at the end
        eval_steps=0,
        checkpoint_every=max(1, steps // EPOCHS),
        log_every=50,
    )
    return config
