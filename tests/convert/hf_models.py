"""Tiny random-weight transformers models (CPU, float32) for the conversion tests."""

from __future__ import annotations

import pathlib

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 300
PAD = VOCAB - 1  # Marian pads with its last id; its id 0 is EOS


def build(arch: str):
    """A seeded tiny model of `arch` in eval mode, every weight perturbed off its init."""
    t = transformers
    if arch == "mixtral":
        return mixtral()
    torch.manual_seed({"gpt2": 0, "llama": 1, "bert": 2, "marian": 3, "marian_tied": 4}[arch])
    if arch == "gpt2":
        cfg = t.GPT2Config(
            vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=4, n_inner=96
        )
        model = t.GPT2LMHeadModel(cfg)
    elif arch == "llama":
        cfg = t.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # grouped-query attention
            max_position_embeddings=64,
            rope_theta=500.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        )
        model = t.LlamaForCausalLM(cfg)
    elif arch == "bert":
        cfg = t.BertConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=96,
            max_position_embeddings=64,
        )
        model = t.BertForMaskedLM(cfg)
    elif arch in ("marian", "marian_tied"):
        # Tied (one shared matrix, the Helsinki-NLP layout) or separate encoder, decoder
        # and output embeddings; a random tied model greedily repeats its start token.
        tied = arch == "marian_tied"
        cfg = t.MarianConfig(
            vocab_size=VOCAB,
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=96,
            decoder_ffn_dim=96,
            max_position_embeddings=64,
            activation_function="swish",  # the Helsinki-NLP models' choice
            scale_embedding=True,
            pad_token_id=PAD,
            decoder_start_token_id=PAD,
            eos_token_id=0,
            forced_eos_token_id=None,
            share_encoder_decoder_embeddings=tied,
            tie_word_embeddings=tied,
        )
        model = t.MarianMTModel(cfg)
    else:
        raise ValueError(arch)
    _perturb(model)
    if arch.startswith("marian"):
        with torch.no_grad():
            model.final_logits_bias.add_(0.05 * torch.randn_like(model.final_logits_bias))
    return model.eval()


def _perturb(model) -> None:
    with torch.no_grad():
        # Init leaves biases 0 and norms 1, which would hide a swapped bias or norm.
        for p in model.parameters():
            if p.requires_grad:  # Marian's frozen sinusoid table is recomputed, not saved
                p.add_(0.05 * torch.randn_like(p))


def mixtral(seed: int = 5, **overrides):
    """A seeded tiny MixtralForCausalLM (4 experts, top 2, GQA 4/2) in eval mode, perturbed."""
    torch.manual_seed(seed)
    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=500.0,
        rms_norm_eps=1e-5,
        num_local_experts=4,
        num_experts_per_tok=2,
        router_aux_loss_coef=0.02,
        tie_word_embeddings=False,
        sliding_window=None,
    )
    model = transformers.MixtralForCausalLM(transformers.MixtralConfig(**(kwargs | overrides)))
    _perturb(model)
    return model.eval()


def save(arch: str, folder: pathlib.Path):
    """Builds and save_pretrained's `arch` into folder; returns the torch model."""
    model = build(arch)
    model.save_pretrained(folder)
    return model


def save_wordpiece_tokenizer(folder: pathlib.Path) -> list[str]:
    """Writes an uncased BERT WordPiece tokenizer of VOCAB tokens into folder; returns its vocab.

    Ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then characters, '##' pieces and
    short words, so every lower-case ASCII text tokenizes without [UNK].
    """
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-")
    words = ["the", "a", "an", "is", "in", "of", "and", "to", "what", "where", "does", "keep"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *[f"##{c}" for c in chars]]
    vocab += [w for w in words if w not in vocab]
    vocab += [f"[unused{i}]" for i in range(VOCAB - len(vocab))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 builds a fast WordPiece tokenizer from the vocab dict.
    tok = transformers.BertTokenizerFast(
        vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True
    )
    tok.save_pretrained(folder)
    return vocab
