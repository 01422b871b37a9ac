"""launch.list: every experiment with its description and the args it accepts."""

import pathlib
import subprocess
import sys

import pytest

from launch.list import args_line
from llm.config import describe_experiments, load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = describe_experiments(ROOT / "experiments")


def _name(e) -> str:
    return pathlib.Path(e.path).stem


def test_paper_configs_list_their_sizes_and_tiny():
    args = {_name(e): e.args for e in EXPERIMENTS}
    assert args["gpt2"] == ("124m", "355m", "774m", "1558m", "tiny")
    assert args["gpt3"][0] == "125m" and {"175b", "tiny"} <= set(args["gpt3"])
    assert args["llama"] == ("1b", "7b", "tiny")
    assert args["aiayn"] == ("base", "big", "tiny")
    assert args["summarization"] == ("cnndm", "tiny")
    assert args["bert"] == ("base", "large", "tiny")
    assert args["tiny_lm"] == ("", "smoke")  # from its docstring's "Args:" line
    assert args["workdir"] == "WORKDIR"


@pytest.mark.parametrize(
    "experiment", [e for e in EXPERIMENTS if isinstance(e.args, tuple)], ids=_name
)
def test_every_listed_arg_loads_and_the_first_is_the_default(experiment):
    default = load_config(experiment.path).to_dict()
    for i, arg in enumerate(experiment.args):
        config = load_config(f"{experiment.path}:{arg}").to_dict()
        assert (config == default) == (i == 0), arg


def test_list_prints_each_experiment_with_its_args():
    result = subprocess.run(
        [sys.executable, "-m", "launch.list"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    gpt2 = next(i for i, line in enumerate(lines) if line.startswith("experiments/gpt2.py "))
    assert "GPT-2 decoders" in lines[gpt2]
    assert lines[gpt2 + 1].strip() == "args: 124m (default), 355m, 774m, 1558m, tiny"
    assert "args: '' (default), smoke" in result.stdout
    assert "args: WORKDIR (free-form, required)" in result.stdout
    assert len(lines) == 2 * len(EXPERIMENTS) + 1
    assert lines[-1] == "Pick one with --config=PATH:ARG, e.g. --config=experiments/gpt2.py:tiny."
    assert [args_line(e) for e in EXPERIMENTS] == [
        lines[2 * i + 1].strip() for i in range(len(EXPERIMENTS))
    ]
