"""Combinations of fields from different groups are checked when a config loads, naming both."""

import importlib
import pathlib

import pytest

from llm.config import load_config
from llm.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(spec: str, **overrides: object):
    pairs = [(k.replace("__", "."), str(v)) for k, v in overrides.items()]
    path, _, arg = spec.partition(":")
    return load_config(str(ROOT / "experiments" / path) + (f":{arg}" if arg else ""), pairs)


def _variants() -> list[str]:
    specs = ["tiny_lm.py", "tiny_lm.py:smoke", "shakespeare.py", "shakespeare.py:smoke"]
    for name in ("gpt2", "gpt3", "llama"):
        sizes = importlib.import_module(f"experiments.{name}").SIZES
        specs += [f"{name}.py:{size}" for size in [*sizes, "tiny"]]
    specs += [f"aiayn.py:{a}" for a in ("base", "big", "tiny")]
    specs += [f"bert.py:{a}" for a in ("base", "large", "tiny")]
    return specs


@pytest.mark.parametrize("spec", _variants())
def test_every_experiment_variant_loads(spec):
    _load(spec)


@pytest.mark.parametrize(
    "spec, task",
    [("tiny_lm.py", "seq2seq"), ("tiny_lm.py", "mlm"), ("bert.py:tiny", "lm")],
)
def test_task_must_fit_the_model_family(spec, task):
    with pytest.raises(ConfigError, match=rf"data.task='{task}'.*model.family="):
        _load(spec, data__task=task)


@pytest.mark.parametrize("spec, position", [("tiny_lm.py", "rotary"), ("gpt2.py:tiny", "learned")])
def test_rows_longer_than_the_model_are_rejected(spec, position):
    config = _load(spec)
    assert config.model.position == position
    with pytest.raises(ConfigError, match=r"data.seq_len=256.*model.max_len=128"):
        _load(spec, data__seq_len=256)


def test_seq2seq_lengths_are_checked_against_max_len():
    with pytest.raises(ConfigError, match=r"data.inputs_len=128.*model.max_len=64"):
        _load("aiayn.py:tiny", data__inputs_len=128)
    with pytest.raises(ConfigError, match=r"data.targets_len=65.*model.max_len=64"):
        _load("aiayn.py:tiny", data__targets_len=65)


@pytest.mark.parametrize("spec", ["tiny_lm.py", "aiayn.py:tiny"])
def test_a_warmup_longer_than_the_run_is_rejected_for_every_schedule(spec):
    # tiny_lm decays with cosine, aiayn with rsqrt: both are refused alike when they load.
    with pytest.raises(ConfigError, match=r"train.warmup_steps=\d+ .*train.steps=10"):
        _load(spec, train__steps=10)
    assert _load(spec, train__steps=10, train__warmup_steps=10).train.steps == 10
