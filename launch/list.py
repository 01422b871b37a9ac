"""Print every registered experiment: its one-line description and the args it accepts."""

from __future__ import annotations

from absl import flags

from launch.cli import run_main
from llm.config import Experiment, describe_experiments

_DIR = flags.DEFINE_string("dir", "experiments", "Folder of experiment configs.")


def args_line(experiment: Experiment) -> str:
    """'args: 124m (default), 355m, tiny' as launch.list prints it under the experiment."""
    if isinstance(experiment.args, str):
        return f"args: {experiment.args} (free-form, required)"
    if not experiment.args:
        return "args: not listed (see the file's get_config)"
    names = ["''" if a == "" else a for a in experiment.args]
    return "args: " + ", ".join([f"{names[0]} (default)", *names[1:]])


def main(argv: list[str]) -> None:
    del argv
    experiments = describe_experiments(_DIR.value)
    width = max((len(e.path) for e in experiments), default=0)
    for e in experiments:
        print(f"{e.path:<{width}}  {e.description}")
        print(f"{'':<{width}}  {args_line(e)}")
    print("Pick one with --config=PATH:ARG, e.g. --config=experiments/gpt2.py:tiny.")


if __name__ == "__main__":
    run_main(main)
