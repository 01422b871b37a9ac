import numpy as np

from llm.data import config as config_lib
from llm.data import tokenizers


def test_byte_round_trip_is_exact():
    tok = tokenizers.ByteTokenizer()
    for text in ["", "the dog .", "Grüße, 世界 🙂\n\t\x00"]:
        ids = tok.encode(text)
        assert ids.dtype == np.int32
        assert ids.min(initial=tok.num_special) >= tok.num_special
        assert ids.max(initial=0) < tok.vocab_size
        assert tok.decode(ids) == text


def test_byte_decode_drops_specials_and_padding():
    tok = tokenizers.ByteTokenizer()
    ids = [tok.bos_id, *tok.encode("ab"), tok.eos_id, tok.pad_id, tok.pad_id]
    assert tok.decode(np.array(ids)) == "ab"
    assert {tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id} == {0, 1, 2, 3}


def test_get_tokenizer_byte():
    cfg = config_lib.default_data_config()
    assert tokenizers.get_tokenizer(cfg).vocab_size == 260


def test_byte_decode_drops_cut_off_characters():
    tok = tokenizers.ByteTokenizer()
    ids = list(tok.encode("a世界"))  # 1 + 3 + 3 bytes
    assert tok.decode(ids[:3]) == "a"  # the first two bytes of 世 only
    assert tok.decode(ids[:2] + ids[4:]) == "a界"
    assert tok.decode(ids) == "a世界"
    assert tok.decode_bytes(ids[:3]) == "a世".encode()[:3]  # the raw bytes stay available
