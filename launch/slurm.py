"""Submit a training job to SLURM: one srun task per process, peers found from SLURM's env.

`python -m launch.slurm --nodes=2 --gpus_per_node=8 [--partition=p] [--dry_run] -- <train args>`
"""

from __future__ import annotations

import os
import pathlib
import sys

from absl import flags

from launch.cli import run_main
from llm.parallel import slurm

_NODES = flags.DEFINE_integer("nodes", 1, "Nodes to allocate.")
_GPUS = flags.DEFINE_integer("gpus_per_node", 0, "GPUs per node (0: CPU nodes).")
_TASKS = flags.DEFINE_integer(
    "tasks_per_node", 0, "Processes per node (0: one per GPU, or one on CPU nodes)."
)
_CPUS = flags.DEFINE_integer("cpus_per_task", 0, "CPUs per process (0: SLURM's default).")
_PARTITION = flags.DEFINE_string("partition", "", "SLURM partition.")
_TIME = flags.DEFINE_string("time", "", "Time limit, e.g. 04:00:00.")
_JOB_NAME = flags.DEFINE_string("job_name", "llm", "Job name.")
_OUTPUT = flags.DEFINE_string("output", "slurm-%j.out", "Log file pattern.")
_SETUP = flags.DEFINE_multi_string("setup", [], "Shell lines run before srun (env, venv).")
_SBATCH = flags.DEFINE_multi_string("sbatch", [], "Extra sbatch options, e.g. --exclusive.")
_PYTHON = flags.DEFINE_string("python", sys.executable, "Python on the compute nodes.")
_SCRIPT = flags.DEFINE_string("script", "", "Where to write the script (default: a temp name).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the sbatch script instead of submitting.")


def main(argv: list[str]) -> None:
    train_args = argv[1:]
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    job = slurm.SlurmJob(
        job_name=_JOB_NAME.value,
        nodes=_NODES.value,
        tasks_per_node=_TASKS.value or max(1, _GPUS.value),
        gpus_per_node=_GPUS.value,
        cpus_per_task=_CPUS.value,
        partition=_PARTITION.value,
        time=_TIME.value,
        output=_OUTPUT.value,
        setup=tuple(_SETUP.value),
        chdir=os.getcwd(),
        extra_sbatch=tuple(_SBATCH.value),
    )
    script = slurm.train_script(job, train_args, python=_PYTHON.value)
    if _DRY_RUN.value:
        print(script, end="")
        return
    path = pathlib.Path(_SCRIPT.value or f"slurm_{_JOB_NAME.value}.sbatch")
    path.write_text(script)
    print(f"Submitted batch job {slurm.submit(str(path))} ({path})")


if __name__ == "__main__":
    run_main(main)
