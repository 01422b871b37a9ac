"""Search spaces: lists of points, each a dict of config overrides like {'train.seed': 1}."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llm.errors import ConfigError

Point = dict[str, Any]


def grid(axes: Mapping[str, Sequence[Any]]) -> list[Point]:
    """Every combination of the values (the last key varies fastest)."""
    keys = list(axes)
    for key in keys:
        if not len(axes[key]):
            raise ConfigError(f"Sweep axis {key!r} has no values.")
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


def zipped(axes: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The i-th value of every key together; all lists must have the same length."""
    lengths = {k: len(v) for k, v in axes.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"zipped() needs lists of equal length, got {lengths}.")
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in zip(*axes.values(), strict=True)]


@dataclasses.dataclass(frozen=True)
class Distribution:
    """One random axis: 'uniform' or 'log_uniform' over [low, high], or 'choice' of options."""

    kind: str
    low: float = 0.0
    high: float = 1.0
    options: tuple[Any, ...] = ()

    def sample(self, rng: np.random.Generator) -> Any:
        """Draws one value."""
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "log_uniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return self.options[int(rng.integers(len(self.options)))]


def uniform(low: float, high: float) -> Distribution:
    """Uniform over [low, high]."""
    if not low < high:
        raise ConfigError(f"uniform({low}, {high}) needs low < high.")
    return Distribution("uniform", low, high)


def log_uniform(low: float, high: float) -> Distribution:
    """Uniform in log space over [low, high] (learning rates, weight decays)."""
    if not 0 < low < high:
        raise ConfigError(f"log_uniform({low}, {high}) needs 0 < low < high.")
    return Distribution("log_uniform", low, high)


def choice(options: Sequence[Any]) -> Distribution:
    """One of `options`, each equally likely."""
    if not options:
        raise ConfigError("choice() needs at least one option.")
    return Distribution("choice", options=tuple(options))


def random_search(num_points: int, seed: int, axes: Mapping[str, Distribution]) -> list[Point]:
    """`num_points` independent draws; the same seed gives the same points."""
    rng = np.random.default_rng(seed)
    return [{k: d.sample(rng) for k, d in axes.items()} for _ in range(num_points)]


def product(*sweeps: Sequence[Point]) -> list[Point]:
    """Every combination of one point from each sweep (keys must not repeat)."""
    out = []
    for parts in itertools.product(*sweeps):
        point: Point = {}
        for part in parts:
            clash = set(point) & set(part)
            if clash:
                raise ConfigError(f"Sweeps in product() share keys {sorted(clash)}.")
            point.update(part)
        out.append(point)
    return out
