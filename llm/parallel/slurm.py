"""sbatch scripts: multi-node training jobs (one srun task per process) and sweep job arrays."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class SlurmJob:
    """Resources and environment of one sbatch submission."""

    job_name: str = "llm"
    nodes: int = 1
    # Processes per node: one per GPU on GPU nodes, one per host on CPU nodes.
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 0
    partition: str = ""
    time: str = ""
    output: str = "slurm-%j.out"
    # Directory the job runs in (the repo checkout, so `python -m launch...` resolves).
    chdir: str = ""
    # Commands run (once, by the batch script) before srun, e.g. `source venv/bin/activate`.
    setup: tuple[str, ...] = ()
    extra_sbatch: tuple[str, ...] = ()


def _header(job: SlurmJob, array: str = "") -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job.job_name}", f"#SBATCH --nodes={job.nodes}"]
    lines.append(f"#SBATCH --ntasks-per-node={job.tasks_per_node}")
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={job.gpus_per_node}")
    if job.cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={job.cpus_per_task}")
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    if job.time:
        lines.append(f"#SBATCH --time={job.time}")
    if array:
        lines.append(f"#SBATCH --array={array}")
    lines.append(f"#SBATCH --output={job.output}")
    if job.chdir:
        lines.append(f"#SBATCH --chdir={job.chdir}")
    lines += [f"#SBATCH {x}" for x in job.extra_sbatch]
    lines += ["set -euo pipefail", *job.setup]
    return lines


def train_script(job: SlurmJob, train_args: Sequence[str], python: str = "python") -> str:
    """A batch script that starts one `launch.train` process per task with srun.

    The batch script itself runs once, on the first node; srun starts the tasks. Each task
    finds the coordinator (first node of the step), its rank and the process count in
    SLURM's environment (llm.parallel.distributed.detect_slurm), so no flags are needed.
    """
    command = shlex.join([python, "-m", "launch.train", *train_args])
    lines = _header(job)
    lines += [
        "# Processes find each other from SLURM_STEP_NODELIST, SLURM_PROCID and SLURM_NTASKS.",
        f"srun --kill-on-bad-exit=1 {command}",
    ]
    return "\n".join(lines) + "\n"


def array_script(
    job: SlurmJob, num_points: int, point_command: Sequence[str], max_parallel: int = 0
) -> str:
    """A job array whose task i runs `point_command` followed by i (one sweep point each)."""
    array = f"0-{num_points - 1}" + (f"%{max_parallel}" if max_parallel else "")
    if "%a" not in job.output:  # one log per array task
        job = dataclasses.replace(job, output="slurm-%A_%a.out")
    lines = _header(job, array=array)
    lines.append(f'srun {shlex.join(list(point_command))} "$SLURM_ARRAY_TASK_ID"')
    return "\n".join(lines) + "\n"


def submit(script_path: str, sbatch: str = "sbatch") -> str:
    """Submits with sbatch; returns the job id."""
    out = subprocess.run(
        [sbatch, "--parsable", script_path], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"sbatch {script_path} failed: {out.stderr.strip() or out.stdout}")
    match = re.match(r"(\d+)", out.stdout.strip())
    if match is None:
        raise RuntimeError(f"sbatch printed no job id: {out.stdout!r}")
    return match.group(1)
