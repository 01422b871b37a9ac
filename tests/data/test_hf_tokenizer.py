"""The Hugging Face tokenizer adapter: BERT's special ids, no added specials, offsets."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from llm.data import get_tokenizer
from llm.data.hf_tokenizer import HuggingFaceTokenizer
from llm.errors import ConfigError, InputFileNotFoundError
from tests.convert.hf_models import VOCAB, save_wordpiece_tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("wordpiece")
    save_wordpiece_tokenizer(path)
    return path


def test_special_ids_are_berts(folder):
    tok = HuggingFaceTokenizer(folder)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 2, 3, 4)
    assert tok.vocab_size == VOCAB
    assert tok.num_special == 5  # [PAD] [UNK] [CLS] [SEP] [MASK]


def test_encode_adds_no_specials_and_offsets_map_back(folder):
    tok = HuggingFaceTokenizer(folder)
    text = "Where does Mira keep the kite?"
    ids, offsets = tok.encode_with_offsets(text)
    np.testing.assert_array_equal(ids, tok.encode(text))
    assert tok.bos_id not in ids and tok.eos_id not in ids and 1 not in ids  # no [UNK]
    assert offsets.shape == (len(ids), 2)
    # Every token covers its piece of the text: the words re-join from the offsets.
    pieces = [text[s:e] for s, e in offsets]
    assert "".join(pieces).lower() == text.replace(" ", "").lower()
    assert tok.decode([tok.bos_id, *ids, tok.eos_id]) == text.lower()


def test_config_errors_name_the_fix(folder, tmp_path):
    cfg = ml_collections.ConfigDict({"tokenizer": "huggingface", "hf_tokenizer": ""})
    with pytest.raises(ConfigError, match="data.hf_tokenizer"):
        get_tokenizer(cfg)
    cfg.hf_tokenizer = str(tmp_path)
    with pytest.raises(InputFileNotFoundError, match="save_pretrained"):
        get_tokenizer(cfg)
    cfg.hf_tokenizer = str(folder)
    assert get_tokenizer(cfg).vocab_size == VOCAB
