"""Run every point of a sweep defined beside its config, then collect one table.

  python -m launch.sweep --config=experiments/tiny_lm.py:smoke --sweep=lr --backend=local
  python -m launch.sweep --config=... --sweep=lr --backend=slurm [--dry_run]
  python -m launch.sweep --collect=DIR [--metric=eval/loss]
Arguments after `--` go to every point's launch.train.
"""

from __future__ import annotations

import os
import pathlib
import sys

from absl import flags

from launch.cli import run_main
from llm import sweeps
from llm.errors import ConfigError
from llm.parallel import slurm

_CONFIG = flags.DEFINE_string("config", None, "Experiment config file[:arg].")
_SWEEP = flags.DEFINE_string("sweep", None, "Name passed to the config file's get_sweep().")
_BACKEND = flags.DEFINE_enum("backend", "local", ["local", "slurm"], "Where points run.")
_ROOT = flags.DEFINE_string("root", "", "Sweep directory (default workdirs/sweeps/<exp>_<sweep>).")
_MAX_PARALLEL = flags.DEFINE_integer("max_parallel", 2, "Points running at once.")
_COLLECT = flags.DEFINE_string("collect", None, "Only collect the sweep in this directory.")
_METRIC = flags.DEFINE_string("metric", "eval/loss", "Metric to plot against each parameter.")
_RUN_POINT = flags.DEFINE_integer("run_point", None, "Run one point of --root (array tasks).")
_PARTITION = flags.DEFINE_string("partition", "", "slurm: partition.")
_TIME = flags.DEFINE_string("time", "", "slurm: time limit per point.")
_CPUS = flags.DEFINE_integer("cpus_per_task", 0, "slurm: CPUs per point.")
_GPUS = flags.DEFINE_integer("gpus_per_node", 0, "slurm: GPUs per point.")
_SETUP = flags.DEFINE_multi_string("setup", [], "slurm: shell lines run before each point.")
_PYTHON = flags.DEFINE_string("python", sys.executable, "slurm: Python on the compute nodes.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "slurm: print the array script, submit nothing.")


def _default_root(config: str, sweep: str) -> pathlib.Path:
    path, _, arg = config.partition(":")
    name = pathlib.Path(path).stem + (f"_{arg}" if arg else "")
    return pathlib.Path("workdirs/sweeps") / f"{name}_{sweep}"


def _report(root: pathlib.Path) -> int:
    rows, written = sweeps.write_results(root, _METRIC.value)
    print((root / "results.md").read_text(), end="")
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows) - len(failed)}/{len(rows)} points ok. Wrote:")
    for path in written:
        print(f"  {path}")
    if not any(p.suffix == ".png" for p in written):
        print("  (no plot: matplotlib is not installed)")
    return 1 if failed else 0


def main(argv: list[str]) -> None:
    extra = argv[1:]
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if _COLLECT.value:
        sys.exit(_report(pathlib.Path(_COLLECT.value)))
    if _RUN_POINT.value is not None:
        if not _ROOT.value:
            raise ConfigError("--run_point needs --root.")
        sys.exit(sweeps.run_point(_ROOT.value, _RUN_POINT.value, metric=_METRIC.value))
    if not (_CONFIG.value and _SWEEP.value):
        raise ConfigError("Give --config and --sweep (or --collect=DIR).")
    root = pathlib.Path(_ROOT.value or _default_root(_CONFIG.value, _SWEEP.value)).absolute()
    plan = sweeps.plan_sweep(_CONFIG.value, _SWEEP.value, root, extra_args=extra)
    print(f"Sweep {_SWEEP.value}: {len(plan['points'])} points in {root}", flush=True)
    if _BACKEND.value == "local":
        sweeps.run_local(root, max_parallel=_MAX_PARALLEL.value, metric=_METRIC.value)
        sys.exit(_report(root))
    job = slurm.SlurmJob(
        job_name=f"sweep_{_SWEEP.value}",
        partition=_PARTITION.value,
        time=_TIME.value,
        cpus_per_task=_CPUS.value,
        gpus_per_node=_GPUS.value,
        output=str(root / "slurm-%A_%a.out"),
        setup=tuple(_SETUP.value),
        chdir=os.getcwd(),
    )
    point_command = [
        _PYTHON.value,
        "-m",
        "launch.sweep",
        f"--metric={_METRIC.value}",
        f"--root={root}",
        "--run_point",
    ]
    script = slurm.array_script(job, len(plan["points"]), point_command, _MAX_PARALLEL.value)
    if _DRY_RUN.value:
        print(script, end="")
        return
    # Array tasks start together; building a missing dataset here keeps them from racing.
    sweeps.prepare_data(plan)
    path = root / "sweep.sbatch"
    path.write_text(script)
    job_id = slurm.submit(str(path))
    print(f"Submitted array job {job_id}; when done: python -m launch.sweep --collect={root}")


if __name__ == "__main__":
    run_main(main)
