import os

import pytest

from llm.data import spm, tokenizers

TEXTS = ["the small dog sees a red ball .", "  Grüße,  世界 🙂\n\tx  ", "", " a", "every old cat ."]


@pytest.fixture(scope="module")
def spm_cfg(tmp_path_factory, grammar_dir):
    from llm.data import config as config_lib

    cfg = config_lib.default_data_config()
    # A copy of the data dir keeps the cached model out of other tests.
    cfg.data_dir = grammar_dir
    cfg.tokenizer = "sentencepiece"
    cfg.vocab_size = 400
    cfg.spm_train_examples = 2000
    return cfg


@pytest.mark.parametrize("spm_type", ["unigram", "bpe"])
def test_train_cache_and_exact_round_trip(spm_cfg, spm_type):
    spm_cfg.spm_type = spm_type
    tok = tokenizers.get_tokenizer(spm_cfg)
    path = spm.cache_path(spm_cfg)
    assert tok.model_path == path and os.path.exists(path)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 4)
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text
    if spm_type == "bpe":
        # Words of the corpus become single pieces. (sentencepiece 0.2.3's
        # unigram seeds only sub-word pieces on a 28-word corpus.)
        assert len(tok.encode("the small dog")) == 3
    mtime = os.path.getmtime(path)
    again = tokenizers.get_tokenizer(spm_cfg)  # Reused, not retrained.
    assert os.path.getmtime(path) == mtime and again.vocab_size == tok.vocab_size


def test_load_existing_model(spm_cfg):
    spm_cfg.spm_type = "unigram"
    trained = tokenizers.get_tokenizer(spm_cfg)
    spm_cfg.spm_model = trained.model_path
    spm_cfg.dataset = "no_such_dataset"  # Loading needs no data.
    loaded = tokenizers.get_tokenizer(spm_cfg)
    assert loaded.vocab_size == trained.vocab_size
    for text in TEXTS:
        assert list(loaded.encode(text)) == list(trained.encode(text))
    path = trained.model_path
    spm_cfg.spm_model = path + ".missing"
    with pytest.raises(FileNotFoundError, match="spm_model"):
        tokenizers.get_tokenizer(spm_cfg)


def test_seq2seq_shares_one_vocabulary(spm_cfg, seq2seq_cfg):
    seq2seq_cfg.tokenizer = "sentencepiece"
    seq2seq_cfg.vocab_size = 300
    seq2seq_cfg.spm_train_examples = 2000
    tok = tokenizers.get_tokenizer(seq2seq_cfg)
    assert "source+target" in tok.model_path
    for text in ["four hundred two", "402"]:
        assert tok.decode(tok.encode(text)) == text


def test_vocab_too_small_names_the_field(spm_cfg, tmp_path):
    spm_cfg.vocab_size = 100
    with pytest.raises(ValueError, match="data.vocab_size"):
        spm.train(spm_cfg, iter(["abc def"] * 10), str(tmp_path / "x.model"))


def test_decode_drops_byte_pieces_of_cut_off_characters(spm_cfg, grammar_dir):
    # Other tests change the module's config; this one starts from the fixture's values.
    spm_cfg.update(dataset="tiny_grammar", data_dir=grammar_dir, spm_type="bpe", spm_model="")
    spm_cfg.update(vocab_size=400, spm_train_examples=2000)
    tok = tokenizers.get_tokenizer(spm_cfg)
    # The grammar corpus is ASCII: each CJK character is three byte-fallback pieces.
    ids = list(tok.encode("a 世界 b"))
    byte_ids = [i for i, t in enumerate(ids) if tok._sp.is_byte(int(t))]
    assert len(byte_ids) == 6
    # A model that writes only the first two bytes of 世 (then 界) or stops mid-character.
    without_third = ids[: byte_ids[2]] + ids[byte_ids[3] :]
    assert tok.decode(without_third) == "a 界 b"
    assert tok.decode(ids[: byte_ids[4]]) == "a 世"
    assert "\ufffd" not in tok.decode(ids[: byte_ids[1]])
