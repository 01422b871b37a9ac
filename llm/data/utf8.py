"""UTF-8 byte offsets -> character offsets, for the tokenizers' encode_with_offsets."""

from __future__ import annotations

import numpy as np


def utf8_char_index(data: bytes) -> np.ndarray:
    """Index of the character holding each byte of UTF-8 `data`, then the character count.

    Length len(data) + 1, so a byte offset `b` (end offsets included) maps to a
    character offset by indexing.
    """
    bytes_N = np.frombuffer(data, np.uint8)
    # Continuation bytes are 10xxxxxx; every other byte starts a character.
    starts_N = (bytes_N & 0xC0) != 0x80
    index = np.cumsum(starts_N, dtype=np.int64) - 1
    return np.append(index, int(starts_N.sum())).astype(np.int32)
