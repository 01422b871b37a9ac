"""Experiment configs: load `experiments/X.py[:arg]`, apply `--config.a.b=v` overrides, list."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import ml_collections

from llm.config_checks import check_combinations
from llm.errors import ConfigError, ConfigKeyError, InputFileNotFoundError
from llm.experiment_file import blame_file, exec_file

REQUIRED_GROUPS = ("model", "data", "train", "mesh")
OVERRIDE_PREFIX = "--config."


def split_config_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates `--config.a.b=v` arguments from the rest of argv."""
    rest, overrides = [], []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(OVERRIDE_PREFIX):
            key_value = arg[len(OVERRIDE_PREFIX) :]
            if "=" in key_value:
                key, value = key_value.split("=", 1)
            elif i + 1 < len(args):
                key, value = key_value, args[i + 1]
                i += 1
            else:
                raise ConfigError(f"Override {arg!r} has no value; write {arg}=VALUE.")
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    keys = [k for k, _ in overrides]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"Config keys overridden more than once: {duplicates}; keep one of each.")
    return rest, overrides


def _load_module(path: pathlib.Path):
    if not path.is_file():
        raise InputFileNotFoundError(
            f"Experiment config {str(path)!r} not found; `python -m launch.list` shows the "
            "registered experiments."
        )
    module = exec_file(path, f"_llm_experiment_{path.stem}")
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} defines no get_config(arg=None).")
    return module


def load_config(spec: str, overrides: Sequence[tuple[str, str]] = ()) -> ml_collections.ConfigDict:
    """Loads `path.py[:arg]`, applies overrides, validates schema and combinations, locks it."""
    path, _, arg = spec.partition(":")
    module = _load_module(pathlib.Path(path))
    with blame_file(path, f"get_config({arg or None!r}) of"):
        config = module.get_config(arg or None)
    for key, value in overrides:
        set_override(config, key, value)
    validate_schema(config)
    check_combinations(config)
    config.lock()
    return config


def _close(name: str, options: Sequence[str]) -> str:
    matches = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


def _parse_value(key: str, text: str, current: Any) -> Any:
    """Parses `text` into the type of the field it replaces."""
    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ConfigError(f"--config.{key}={text!r}: expected a bool (true/false).")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"--config.{key}={text!r}: expected an int.") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"--config.{key}={text!r}: expected a float.") from None
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ConfigError(
            f"--config.{key}={text!r}: expected a Python literal like the current value "
            f"{current!r}."
        ) from None
    if isinstance(current, (tuple, list)) and not isinstance(value, (tuple, list)):
        raise ConfigError(f"--config.{key}={text!r}: expected a list like {current!r}.")
    return type(current)(value) if isinstance(current, (tuple, list)) else value


_NO_FIELD = object()


def _model_field_default(name: str) -> Any:
    """ModelConfig's default for field `name`, or _NO_FIELD."""
    from llm.models.config import ModelConfig  # lazy: llm.models imports JAX

    for field in dataclasses.fields(ModelConfig):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
    return _NO_FIELD


def set_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets `config.<key>` from text, failing on unknown keys with close matches."""
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        if (
            isinstance(node, ml_collections.ConfigDict)
            and part not in node
            and parts[:depth] == ["model"]
            and depth == len(parts) - 1
        ):
            default = _model_field_default(part)
            if default is not _NO_FIELD:
                # A preset's model group lists only the fields it sets; any ModelConfig
                # field may still be overridden, starting from its default.
                with node.ignore_type():
                    node[part] = default
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            options = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            if parts[:depth] == ["model"]:
                from llm.models.config import ModelConfig

                options += [f.name for f in dataclasses.fields(ModelConfig)]
            where = f"config.{prefix}" if prefix else "config"
            raise ConfigKeyError(
                f"Unknown config key {key!r}: {where} has no field {part!r}.{_close(part, options)}"
            )
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise ConfigError(f"--config.{key} is a group; override one of its fields instead.")
    value = _parse_value(key, text, current)
    with node.ignore_type():
        node[parts[-1]] = value


def validate_schema(config: ml_collections.ConfigDict) -> None:
    """Checks that the config has the project's top-level groups."""
    missing = [g for g in REQUIRED_GROUPS if g not in config]
    if missing:
        raise ConfigError(
            f"Config lacks the groups {missing}; every experiment has {list(REQUIRED_GROUPS)}."
        )


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment file as launch.list shows it.

    args: what `--config=PATH:ARG` accepts, the default (no arg) first; a str
    instead names a free-form arg (experiments/workdir.py's 'WORKDIR'); () when
    the file lists none.
    """

    path: str
    description: str
    args: tuple[str, ...] | str


def experiment_args(module: Any) -> tuple[str, ...] | str:
    """An experiment module's args: its ARGS, else the quoted words of its docstring's Args:."""
    if hasattr(module, "ARGS"):
        return module.ARGS if isinstance(module.ARGS, str) else tuple(module.ARGS)
    # 'Args: ...' runs to the end of its paragraph, e.g. "Args: '' (the default) or 'smoke'."
    found = re.search(r"\bArgs:(.*?)(?:\n\s*\n|\Z)", module.__doc__ or "", re.DOTALL)
    return tuple(re.findall(r"'([^']*)'", found.group(1))) if found else ()


def describe_experiments(directory: str | pathlib.Path = "experiments") -> list[Experiment]:
    """Every experiment config in `directory` (files named `_*.py` are helpers)."""
    out = []
    for path in sorted(pathlib.Path(directory).glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load_module(path)
        doc = (module.__doc__ or "").strip().splitlines()
        out.append(Experiment(str(path), doc[0] if doc else "", experiment_args(module)))
    return out


def list_experiments(directory: str | pathlib.Path = "experiments") -> list[tuple[str, str]]:
    """Returns (path, one-line description) for every experiment config in `directory`."""
    return [(e.path, e.description) for e in describe_experiments(directory)]
