"""The CPU-scale `:tiny` variants of the paper experiments, one shrink per family.

Each keeps its family's architecture switches (positions, norms, activation, GQA)
and replaces sizes, data, schedule and mesh with a small setting that trains on CPU
in minutes on data the project generates. Not an experiment itself: launch.list
skips files whose name starts with '_'.
"""

from __future__ import annotations

from typing import Any

import ml_collections

# The model and schedule the decoders and BERT share at this scale: 4 layers of
# d_model 128; vocab 320 covers the 260 byte-tokenizer ids.
MODEL = dict(vocab_size=320, d_model=128, num_heads=4, d_ff=512, num_layers=4, max_len=128)
TRAIN = dict(
    steps=300,
    batch_size=32,
    warmup_steps=30,
    eval_every=100,
    eval_steps=4,
    checkpoint_every=100,
    log_every=25,
)


def shrink_decoder(config: ml_collections.ConfigDict, **model_overrides: Any) -> None:
    """Shrinks a decoder experiment (gpt2, gpt3, llama) in place; model_overrides win."""
    config.model.update(
        MODEL | dict(scan_layers=False, remat="none", dtype="float32") | model_overrides
    )
    config.data.update(dataset="tiny_grammar", tokenizer="byte", seq_len=128, num_workers=0)
    config.train.update(TRAIN | dict(learning_rate=3e-3, sample_prompt="the"))
    config.mesh.update(data=-1, fsdp=1, expert=1, tensor=1)


def shrink_encoder(config: ml_collections.ConfigDict) -> None:
    """Shrinks the BERT experiment in place: generated documents, bytes, pre-LN and rotary."""
    # Pre-LN and rotary positions at this scale (measured 2026-11-30, 300 steps): with
    # learned absolute positions the bidirectional encoder has to learn "attend to my
    # neighbours" from scratch and reached MLM accuracy 0.30-0.32 (unigram baseline 0.21)
    # after 200-400 steps; rotary makes relative offsets free: 0.51 at 150, 0.97 at 300.
    # Post-LN stayed on the unigram plateau (0.22) with either position scheme.
    config.model.update(
        dict(pre_norm=True, position="rotary")
        | MODEL
        | dict(dropout_rate=0.0, attention_dropout_rate=0.0)
    )
    config.data.update(
        dataset="tiny_grammar_docs",
        tokenizer="byte",
        seq_len=128,
        train_split="train",
        eval_split="validation",
    )
    config.train.update(TRAIN | dict(learning_rate=2e-3))


def shrink_encoder_decoder(config: ml_collections.ConfigDict) -> None:
    """Shrinks the AIAYN experiment in place: number words -> digits (tiny_numbers), bytes."""
    config.model.update(
        vocab_size=320,
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_layers=3,
        num_encoder_layers=3,
        num_decoder_layers=3,
        max_len=64,
        dropout_rate=0.0,
    )
    config.data.update(
        dataset="tiny_numbers",
        inputs_key="",
        targets_key="",
        tokenizer="byte",
        inputs_len=64,
        targets_len=16,
    )
    config.train.update(
        steps=400,
        batch_size=32,
        warmup_steps=100,
        eval_every=200,
        eval_steps=4,
        checkpoint_every=200,
        keep_checkpoints=2,
        log_every=50,
        learning_rate=2e-3,
    )
