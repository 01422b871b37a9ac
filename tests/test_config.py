"""Experiment loading, overrides and the registry listing."""

import pathlib

import pytest

from llm.config import list_experiments, load_config, split_config_overrides

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = str(ROOT / "experiments" / "tiny_lm.py")


def test_overrides_are_typed_and_applied():
    config = load_config(
        TINY,
        [
            ("train.steps", "7"),
            ("train.warmup_steps", "7"),
            ("train.learning_rate", "0.5"),
            ("model.num_kv_heads", "2"),
            ("train.async_checkpointing", "false"),
            ("mesh.rules", "dp"),
        ],
    )
    assert config.train.steps == 7 and isinstance(config.train.steps, int)
    assert config.train.learning_rate == 0.5
    assert config.model.num_kv_heads == 2
    assert config.train.async_checkpointing is False
    assert config.mesh.rules == "dp"


def test_config_arg_selects_variant():
    assert load_config(TINY + ":smoke").train.steps == 4
    with pytest.raises(ValueError, match="tiny_lm takes '' or 'smoke', not 'big'"):
        load_config(TINY + ":big")


def test_unknown_key_names_close_match():
    with pytest.raises(KeyError, match=r"config.train has no field 'step'.*Did you mean 'steps'"):
        load_config(TINY, [("train.step", "3")])
    with pytest.raises(KeyError, match=r"config has no field 'trian'.*'train'"):
        load_config(TINY, [("trian.steps", "3")])


def test_any_model_field_overrides_a_preset_that_does_not_list_it():
    gpt3 = str(ROOT / "experiments" / "gpt3.py") + ":6.7b"
    assert "attention_impl" not in load_config(gpt3).model
    config = load_config(gpt3, [("model.attention_impl", "xla"), ("model.attention_window", "7")])
    assert config.model.attention_impl == "xla" and config.model.attention_window == 7
    with pytest.raises(KeyError, match=r"no field 'attention_imp'.*Did you mean 'attention_impl'"):
        load_config(gpt3, [("model.attention_imp", "xla")])
    with pytest.raises(ValueError, match="expected an int"):
        load_config(gpt3, [("model.attention_window", "wide")])


def test_wrong_type_is_rejected():
    with pytest.raises(ValueError, match=r"--config.train.steps='abc': expected an int"):
        load_config(TINY, [("train.steps", "abc")])
    with pytest.raises(ValueError, match="expected a bool"):
        load_config(TINY, [("train.async_checkpointing", "maybe")])


def test_split_overrides_and_duplicates():
    rest, overrides = split_config_overrides(
        [
            "prog",
            "--config=x.py",
            "--config.train.steps=3",
            "--config.mesh.data",
            "2",
            "--workdir=w",
        ]
    )
    assert rest == ["prog", "--config=x.py", "--workdir=w"]
    assert overrides == [("train.steps", "3"), ("mesh.data", "2")]
    with pytest.raises(ValueError, match=r"overridden more than once: \['train.steps'\]"):
        split_config_overrides(["--config.train.steps=3", "--config.train.steps=4"])


def test_config_is_locked():
    config = load_config(TINY)
    with pytest.raises(AttributeError):
        config.train.new_field = 1


def test_registry_lists_every_experiment_with_description():
    rows = dict(list_experiments(ROOT / "experiments"))
    assert str(ROOT / "experiments" / "tiny_lm.py") in rows
    assert all(description for description in rows.values())
