"""muP coordinate check: `python -m launch.mup_check [--config=experiments/tiny_lm.py] [--out=DIR]`.

Trains the experiment's decoder for --steps updates at each of --widths (d_model; d_ff
keeps its ratio, heads stay) under the standard parametrization and under muP (base
width: the narrowest, or --base_width), from the same batches, and measures the mean
|x| of the embedding, attention, MLP and layer outputs and the logits after each update.
Writes DIR/coord_check.png (mean |x| vs width per parametrization), coord_check.json and
prints the widest/narrowest ratio of every activation at every step: ~1 under muP, growing
with width under the standard parametrization (llm.train.coord_check). `--config.a.b=v`
overrides the experiment (a higher train.learning_rate shows the growth sooner).
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from launch.cli import run_main
from llm.config import load_config, split_config_overrides
from llm.errors import ConfigError

_CONFIG = flags.DEFINE_string("config", "experiments/tiny_lm.py", "Experiment config[:arg].")
_WIDTHS = flags.DEFINE_list("widths", ["64", "128", "256", "512", "1024"], "d_model values.")
_BASE_WIDTH = flags.DEFINE_integer("base_width", 0, "muP base width; 0 = the narrowest.")
_STEPS = flags.DEFINE_integer("steps", 3, "Updates to train at each width.")
_OUT = flags.DEFINE_string("out", "workdirs/mup_check", "Directory for the plot and JSON.")

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    return flags.FLAGS(rest)


def main(argv: list[str]) -> None:
    """Runs the check under both parametrizations, plots and prints it."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    try:
        widths = [int(w) for w in _WIDTHS.value]
    except ValueError as e:
        raise ConfigError(f"--widths={','.join(_WIDTHS.value)} must be integers.") from e
    if _STEPS.value < 1:
        raise ConfigError(f"--steps={_STEPS.value} must be >= 1.")
    from llm.train import coord_check
    from llm.train.console import quiet_library_logs

    quiet_library_logs()
    config = load_config(_CONFIG.value, _OVERRIDES)
    checks = [
        coord_check.coordinate_check(
            config,
            widths,
            parametrization=p,
            base_width=_BASE_WIDTH.value or None,
            steps=_STEPS.value,
        )
        for p in ("standard", "mup")
    ]
    out = pathlib.Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    coord_check.plot(checks, str(out / "coord_check.png"))
    (out / "coord_check.json").write_text(json.dumps(coord_check.as_json(checks), indent=2))
    print(f"mean |x| at d_model {widths[-1]} over d_model {widths[0]} (1 = flat in width):")
    print(coord_check.growth_table(checks))
    print(f"Wrote {out / 'coord_check.png'} and {out / 'coord_check.json'}")


if __name__ == "__main__":
    run_main(main, flags_parser=_parse)
