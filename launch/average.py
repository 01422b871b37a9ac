"""Average the last N checkpoints into a new workdir (AIAYN: 5 for base, 20 for big).

`python -m launch.average --workdir=W --last=5 [--step=S] [--output_workdir=OUT] [--output_step=T]`

OUT (default W_avg<N>) gets W's config.json and one checkpoint OUT/checkpoints/T
(default: the newest averaged step) holding the step and the averaged params
(no optimizer state). Point launch.eval / launch.decode at OUT. The averaged
checkpoint is for evaluation and decoding, not for resuming training. Without writing anything,
`--average_last=N` of launch.eval and launch.decode averages on the fly.
"""

from __future__ import annotations

import pathlib
import shutil

from absl import flags

from launch.cli import run_main
from llm.errors import ConfigError

_WORKDIR = flags.DEFINE_string("workdir", "", "Training workdir whose checkpoints to average.")
_LAST = flags.DEFINE_integer("last", 5, "Number of newest checkpoints to average.")
_STEP = flags.DEFINE_integer("step", None, "Newest step to include (default: the latest).")
_OUTPUT_WORKDIR = flags.DEFINE_string("output_workdir", "", "Where to write (default W_avg<N>).")
_OUTPUT_STEP = flags.DEFINE_integer(
    "output_step", None, "Step number of the averaged checkpoint (default: newest averaged)."
)


def main(argv: list[str]) -> None:
    """Averages and saves the checkpoint."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    if not _WORKDIR.value:
        raise ConfigError("--workdir is required: the training run whose checkpoints to average.")
    from llm.train.console import quiet_library_logs
    from llm.train.restore import save_averaged

    quiet_library_logs()
    workdir = pathlib.Path(_WORKDIR.value).absolute()
    out = pathlib.Path(_OUTPUT_WORKDIR.value or f"{workdir}_avg{_LAST.value}").absolute()
    if out == workdir:
        raise ConfigError(
            "--output_workdir must differ from --workdir: an averaged checkpoint among the "
            "training ones would be resumed from."
        )
    steps, path = save_averaged(
        workdir, out, last=_LAST.value, step=_STEP.value, output_step=_OUTPUT_STEP.value
    )
    shutil.copyfile(workdir / "config.json", out / "config.json")
    print(f"averaged steps {steps} of {workdir} into {path}")


def run() -> None:
    """Entry point: a missing checkpoint or bad flag is one 'error:' line and exit status 2."""
    run_main(main)


if __name__ == "__main__":
    run()
