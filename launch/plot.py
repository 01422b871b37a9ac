"""Draw training curves of one or more runs: `python -m launch.plot WORKDIR [WORKDIR ...]`.

Train loss, learning rate and every eval scalar, one panel each, runs overlaid; writes a
PNG (default: curves.png in the first workdir, or --output) and prints its path.
"""

from __future__ import annotations

from absl import flags

from launch.cli import run_main
from llm.errors import ConfigError

_OUTPUT = flags.DEFINE_string("output", "", "PNG to write (default: FIRST_WORKDIR/curves.png).")


def main(argv: list[str]) -> None:
    workdirs = argv[1:]
    if not workdirs:
        raise ConfigError("Give one or more workdirs: python -m launch.plot WORKDIR [WORKDIR ...].")
    from llm.train.curves import plot_runs

    output = _OUTPUT.value or f"{workdirs[0].rstrip('/')}/curves.png"
    print(f"Wrote {plot_runs(workdirs, output)}")


if __name__ == "__main__":
    run_main(main)
