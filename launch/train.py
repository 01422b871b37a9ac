"""Train an experiment: `python -m launch.train --config=experiments/X.py[:arg] --config.a.b=v`."""

from __future__ import annotations

from absl import flags, logging

from launch.cli import run_main
from llm.config import load_config, split_config_overrides
from llm.errors import ConfigError

DEFAULT_CONFIG = "experiments/tiny_lm.py"

_CONFIG = flags.DEFINE_string(
    "config", DEFAULT_CONFIG, "Experiment config file, optionally with ':arg'."
)
_WORKDIR = flags.DEFINE_string(
    "workdir", "", "Output directory (default: workdirs/<experiment>); reruns resume."
)

_VERBOSE = flags.DEFINE_bool("verbose", False, "Also show the libraries' INFO logs.")

# Multi-process runs: explicit flags, or detected from SLURM (srun) and TPU-pod environments.
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0's coordinator (multi-process runs)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the job.")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", 100, "Seconds without a peer's heartbeat before the job fails."
)

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    return flags.FLAGS(rest)


def default_workdir(config_spec: str) -> str:
    """workdirs/<experiment>[_<arg>] for a config spec like experiments/tiny_lm.py:smoke."""
    path, _, arg = config_spec.partition(":")
    name = path.rsplit("/", 1)[-1].removesuffix(".py")
    return f"workdirs/{name}" + (f"_{arg}" if arg else "")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        # A stray word (say, a flag missing its `--`) would otherwise train the default config.
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    from llm.parallel import distributed
    from llm.train.console import quiet_library_logs
    from llm.train.curves import write_curves
    from llm.train.loop import train_and_evaluate  # after flags: keeps --help fast

    if not _VERBOSE.value:
        quiet_library_logs()
    config = load_config(_CONFIG.value, _OVERRIDES)
    spec = distributed.resolve_process_spec(
        _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
    )
    distributed.initialize(spec, heartbeat_timeout_s=_HEARTBEAT.value)
    import jax

    if jax.process_index() != 0:
        # One console for the job: the other processes report only problems.
        logging.set_verbosity(logging.WARNING)
    workdir = _WORKDIR.value or default_workdir(_CONFIG.value)
    # The run logs a start-up summary; the whole config is in WORKDIR/config.json.
    metrics = train_and_evaluate(config, workdir, experiment=_CONFIG.value)
    if jax.process_index() != 0:
        return
    if "preempted_at" in metrics:
        print(f"Preempted: saved step {metrics['preempted_at']} in {workdir}; rerun to resume.")
        return
    summary = {k: v for k, v in metrics.items() if k != "sample"}
    print(
        f"Finished in {workdir}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items()))
    )
    if "sample" in metrics:
        print(f"Sample: {metrics['sample']}")
    curves = write_curves(workdir)
    if curves is not None:
        print(f"Curves: {curves}")


def run() -> None:
    """Entry point that turns config errors into one clear line instead of a traceback."""
    run_main(main, flags_parser=_parse)


if __name__ == "__main__":
    run()
