"""Helpers of the convergence canaries: experiment configs with overrides, timing."""

import pathlib
import time

import ml_collections

from llm.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def experiment(spec: str, data_dir: str, **overrides: object) -> ml_collections.ConfigDict:
    """experiments/<spec> with data_dir and `group__field=value` overrides (as launch.train parses them)."""
    pairs = [("data.data_dir", data_dir)]
    pairs += [(k.replace("__", "."), str(v)) for k, v in overrides.items()]
    path, _, arg = spec.partition(":")
    return load_config(str(ROOT / "experiments" / path) + (f":{arg}" if arg else ""), pairs)


class Timer:
    """Seconds since construction, for the canaries' printed reports."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        """Elapsed seconds."""
        return time.perf_counter() - self.start
