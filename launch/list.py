"""Print every registered experiment with its one-line description."""

from __future__ import annotations

from absl import flags

from launch.cli import run_main
from llm.config import list_experiments

_DIR = flags.DEFINE_string("dir", "experiments", "Folder of experiment configs.")


def main(argv: list[str]) -> None:
    del argv
    rows = list_experiments(_DIR.value)
    width = max((len(p) for p, _ in rows), default=0)
    for path, description in rows:
        print(f"{path:<{width}}  {description}")


if __name__ == "__main__":
    run_main(main)
