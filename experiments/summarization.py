"""TransformerAbs, the non-pretrained encoder-decoder summarizer of Liu & Lapata 2019, on CNN/DM.

Paper: Liu & Lapata, "Text Summarization with Pretrained Encoders" (EMNLP 2019), Table 2:
TransformerAbs on CNN/DailyMail test reaches ROUGE-1/2/L 40.21 / 17.76 / 37.09 (the same
table's lead-3: 40.42 / 17.62 / 36.67; only ROUGE-2/L beat it). Settings from the paper and its
code's README command (nlpyang/PreSumm): 6+6 layers, d_model 512, d_ff 2048, 8 heads,
dropout 0.1, label smoothing 0.1; Adam (0.9, 0.999), lr 0.05 * min(step^-0.5,
step * 8000^-1.5) for 200k steps, no gradient clipping; articles truncated to 512 tokens,
targets to 140 (PreSumm -max_tgt_len); decoding with beam 5, length penalty alpha 0.95
(tuned in 0.6-1 on validation), max 200 tokens. Data: TFDS `cnn_dailymail/3.0.0`
(article -> highlights, the non-anonymized version the paper uses).
Not reproduced or unknown: the paper's vocabulary is BERT's uncased WordPiece (30,522;
set data.tokenizer='huggingface' and data.hf_tokenizer to a bert-base-uncased folder),
here a sentencepiece of that size is trained instead; its encoder is BERT-shaped (learned
positions, GELU), here AIAYN's (sinusoidal, ReLU); llm.decode has no minimum length
(paper: 50) and blocks repeated trigrams as the paper does only when asked
(launch.eval --no_repeat_ngram_size=3), not in the in-loop eval; the batch is token-counted
(batch_size 300 x accum 5 x 4 GPUs) and its article count is not stated, 64 here is our
estimate; ROUGE there is ROUGE-1.5.5 (pyrouge) on tokenized text, here rouge-score with
stemming, which can differ slightly. Compare with `launch.eval --baseline=lead3`.
Args: 'cnndm' (default), 'tiny' (generated tiny_summaries, trains on CPU in about a minute).
"""

import ml_collections

from experiments import aiayn
from experiments._tiny import shrink_encoder_decoder
from llm.errors import ConfigError

# What --config=PATH:ARG accepts (launch.list shows it), the default first.
ARGS = ("cnndm", "tiny")

WARMUP = 8000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """TransformerAbs on CNN/DM (`arg` 'cnndm') or its CPU-scale 'tiny' variant."""
    variant = arg or "cnndm"
    if variant not in ARGS:
        raise ConfigError(f"summarization takes 'cnndm' or 'tiny', not {variant!r}.")
    # AIAYN base is TransformerAbs's size (6+6 layers, 512/2048, 8 heads, dropout 0.1).
    config = aiayn.get_config("base")
    # Data: CNN/DailyMail 3.0.0, non-anonymized; articles -> their highlights.
    config.data.dataset = "cnn_dailymail/3.0.0"
    config.data.inputs_key = "article"
    config.data.targets_key = "highlights"
    # One sentencepiece vocabulary for both sides, BERT uncased WordPiece's size.
    config.data.spm_type = "unigram"
    config.data.vocab_size = 30522
    config.data.spm_train_examples = 200_000
    # Articles cut to 512 tokens (PreSumm -max_pos), targets to 140 (-max_tgt_len).
    config.data.inputs_len = 512
    config.data.targets_len = 140
    # Long articles fill a row each: packing would only pad.
    config.data.pack = False
    config.model.vocab_size = 30720  # 30522 padded to a multiple of 128 for tensor parallelism
    config.model.max_len = 512
    # Training: Adam (0.9, 0.999), PreSumm's Noam schedule with lr 0.05 and 8000 warmup
    # steps (peak 0.05 * 8000^-0.5 = 5.6e-4), 200k steps, label smoothing 0.1, no clipping.
    config.train.b2 = 0.999
    config.train.eps = 1e-9
    config.train.steps = 200_000
    config.train.warmup_steps = WARMUP
    config.train.learning_rate = 0.05 * WARMUP**-0.5
    config.train.batch_size = 64
    config.train.keep_checkpoints = 3
    # In-loop ROUGE on this many validation articles; beam and length penalty as the paper's
    # decoding (launch.eval reads them too).
    config.train.eval_generation_examples = 500
    config.train.eval_beam_size = 5
    config.train.eval_alpha = 0.95
    if variant == "tiny":
        _shrink(config)
    return config


def _shrink(config: ml_collections.ConfigDict) -> None:
    """The CPU-scale variant: AIAYN's tiny model on tiny_summaries with a word-sized vocabulary."""
    shrink_encoder_decoder(config)
    # A 2+2-layer d_model 128 model (d_ff 256: as good as 512 here, and faster).
    config.model.update(
        vocab_size=896,
        d_ff=256,
        num_layers=2,
        num_encoder_layers=2,
        num_decoder_layers=2,
        max_len=96,
    )
    # Generated stories (llm.data.builders.tiny_summaries, built on first use). An 800-piece
    # BPE makes every word of them one token: articles <= 90, highlights <= 15 (bytes would
    # be 5x longer rows; a unigram model of this size splits words into letters).
    config.data.update(
        dataset="tiny_summaries",
        inputs_key="article",
        targets_key="highlights",
        tokenizer="sentencepiece",
        spm_type="bpe",
        vocab_size=800,
        spm_train_examples=5000,
        inputs_len=96,
        targets_len=20,
    )
    # 200 steps of 16 stories: about a minute on a 2-core CPU, to validation ROUGE-L 78.6
    # vs lead-3's 23.0 (2026-12-02, tests/canaries/test_summarization_canary.py).
    config.train.update(
        steps=200,
        batch_size=16,
        warmup_steps=50,
        eval_every=200,
        eval_steps=4,
        checkpoint_every=200,
        keep_checkpoints=1,
        log_every=50,
        learning_rate=3e-3,
        # No in-loop decoding (the canary asks for 200); greedy when asked, cheap on CPU
        # (launch.eval --beam_size=5 --alpha=0.95 decodes as the paper does).
        eval_generation_examples=0,
        eval_beam_size=1,
    )
