"""The one interface every decoding loop uses: a step function over a cache.

`tokens_to_logits(token_ids_BxL, cache) -> (logits_BxV float32, new_cache)`
feeds L tokens per row (L = 1 in the loops, L > 1 for a prefill) and returns
the logits of the token after the last one. The cache is any pytree; leaves
with a batch axis have B rows (B*K in beam search, example-major), scalar
leaves such as a cache index are shared by all rows.
"""

from collections.abc import Callable
from typing import Any

import jax

PyTree = Any
TokensToLogits = Callable[[jax.Array, PyTree], tuple[jax.Array, PyTree]]
