"""Token-level perplexity and MLM accuracy as sums that accumulate across batches.

Each batch gives a small pytree of sums (jit-friendly); add them up over the
eval set, then read the metric. Averaging per-batch perplexities instead
would weight short batches wrongly.
"""

import math

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class NllSums:
    """Summed token negative log-likelihood and token count (padding excluded)."""

    nll: jax.Array
    tokens: jax.Array

    @classmethod
    def zero(cls) -> "NllSums":
        """Empty sums to start an accumulation."""
        return cls(jnp.float32(0.0), jnp.float32(0.0))

    def merge(self, other: "NllSums") -> "NllSums":
        """Sums of two batches."""
        return NllSums(self.nll + other.nll, self.tokens + other.tokens)

    def mean_nll(self) -> float:
        """Nats per token."""
        if float(self.tokens) <= 0:
            raise ValueError("no non-padding tokens were scored (all weights are 0)")
        return float(self.nll) / float(self.tokens)

    def perplexity(self) -> float:
        """exp(mean NLL per non-padding token)."""
        return math.exp(self.mean_nll())


def nll_sums(logits_BxLxV: jax.Array, targets_BxL: jax.Array, weights_BxL: jax.Array) -> NllSums:
    """Weighted NLL sum of the targets and the weight sum; weight 0 marks padding."""
    logp_BxLxV = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32), axis=-1)
    target_logp_BxL = jnp.take_along_axis(
        logp_BxLxV, targets_BxL[..., None].astype(jnp.int32), axis=-1
    )[..., 0]
    weights_BxL = weights_BxL.astype(jnp.float32)
    return NllSums(nll=-(target_logp_BxL * weights_BxL).sum(), tokens=weights_BxL.sum())


@flax.struct.dataclass
class AccuracySums:
    """Weighted count of correct argmax predictions and the weight sum."""

    correct: jax.Array
    total: jax.Array

    @classmethod
    def zero(cls) -> "AccuracySums":
        """Empty sums to start an accumulation."""
        return cls(jnp.float32(0.0), jnp.float32(0.0))

    def merge(self, other: "AccuracySums") -> "AccuracySums":
        """Sums of two batches."""
        return AccuracySums(self.correct + other.correct, self.total + other.total)

    def accuracy(self) -> float:
        """Fraction of weighted positions predicted correctly."""
        if float(self.total) <= 0:
            raise ValueError("no weighted positions were scored (all weights are 0)")
        return float(self.correct) / float(self.total)


def mlm_accuracy_sums(
    logits_BxLxV: jax.Array, targets_BxL: jax.Array, weights_BxL: jax.Array
) -> AccuracySums:
    """Argmax accuracy on the positions with nonzero weight (the masked ones for BERT)."""
    correct_BxL = (jnp.argmax(logits_BxLxV, axis=-1) == targets_BxL).astype(jnp.float32)
    weights_BxL = weights_BxL.astype(jnp.float32)
    return AccuracySums(correct=(correct_BxL * weights_BxL).sum(), total=weights_BxL.sum())
