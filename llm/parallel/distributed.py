"""Multi-process runtime: jax.distributed init (flags, SLURM, TPU pods) and preemption."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping

import jax
from absl import logging

from llm.errors import ConfigError

# JAX's default heartbeat timeout is 100 s; a survivor then waits that long to notice a dead
# peer. Launchers pass a shorter one where failing fast matters more than riding out stalls.
DEFAULT_HEARTBEAT_TIMEOUT_S = 100


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """Where this process sits in a multi-process job."""

    coordinator_address: str
    num_processes: int
    process_id: int
    # Where the values came from: 'flags', 'slurm' or 'tpu' (tpu leaves them to JAX).
    source: str = "flags"


def expand_first_host(nodelist: str) -> str:
    """First host of a SLURM node list such as 'node[003-005,9],gpu1' -> 'node003'."""
    nodelist = nodelist.strip()
    if not nodelist:
        raise ValueError("Empty SLURM node list.")
    match = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist)
    if match is None:
        raise ValueError(f"Cannot parse SLURM node list {nodelist!r}.")
    prefix, ranges = match.group(1), match.group(3)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def slurm_port(job_id: str) -> int:
    """A coordinator port every task of a job derives alike, distinct across recent jobs."""
    return 20000 + int(job_id) % 20000


def detect_slurm(env: Mapping[str, str]) -> ProcessSpec | None:
    """Reads the spec of an srun task of a multi-task SLURM step; None outside one."""
    if "SLURM_JOB_ID" not in env or "SLURM_PROCID" not in env:
        return None
    num = int(env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", "1")))
    if num <= 1:
        return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
    host = expand_first_host(nodelist)
    port = int(env.get("LLM_COORDINATOR_PORT", slurm_port(env["SLURM_JOB_ID"])))
    return ProcessSpec(f"{host}:{port}", num, int(env["SLURM_PROCID"]), source="slurm")


def detect_tpu_pod(env: Mapping[str, str]) -> bool:
    """True on a worker of a multi-host Cloud TPU slice (JAX then finds its peers itself)."""
    hosts = env.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h]) > 1


def resolve_process_spec(
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
    env: Mapping[str, str] | None = None,
) -> ProcessSpec | None:
    """Explicit flags win; else SLURM or TPU-pod environments; None means one process."""
    env = os.environ if env is None else env
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given):
        if not all(given):
            raise ConfigError(
                "Give all of --coordinator_address, --num_processes and --process_id, or none "
                f"(got coordinator_address={coordinator_address!r}, "
                f"num_processes={num_processes}, process_id={process_id})."
            )
        if not 0 <= process_id < num_processes:
            raise ConfigError(
                f"--process_id={process_id} must be in [0, --num_processes={num_processes})."
            )
        return ProcessSpec(coordinator_address, num_processes, process_id)
    spec = detect_slurm(env)
    if spec is not None:
        return spec
    if detect_tpu_pod(env):
        return ProcessSpec("", 0, 0, source="tpu")
    return None


def initialize(
    spec: ProcessSpec | None,
    *,
    heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S,
    initialization_timeout_s: int = 300,
) -> bool:
    """Starts jax.distributed for `spec` (no-op for None); True when several processes run."""
    if spec is None:
        return False
    # Cross-process collectives on CPU need an implementation; gloo needs no extra install.
    # (Asking for the backend here would start it, and initialize() must come first.)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(
        heartbeat_timeout_seconds=heartbeat_timeout_s,
        initialization_timeout=initialization_timeout_s,
    )
    if spec.source == "tpu":
        jax.distributed.initialize(**kwargs)
    else:
        jax.distributed.initialize(
            coordinator_address=spec.coordinator_address,
            num_processes=spec.num_processes,
            process_id=spec.process_id,
            # SLURM's GPU binding already limits what a task sees; no second filter.
            local_device_ids=None,
            cluster_detection_method="deactivate",
            **kwargs,
        )
    logging.info(
        "Process %d of %d (%s), coordinator %s: %d local / %d global devices.",
        jax.process_index(),
        jax.process_count(),
        spec.source,
        spec.coordinator_address,
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def free_port() -> int:
    """An unused TCP port on this host for a local coordinator."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_state_restorable(checkpoint_dir: str | os.PathLike, step: int) -> bool:
    """Whether checkpoint `step` holds a data position for this process and process count."""
    name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    step_dir = pathlib.Path(str(checkpoint_dir)) / str(step)
    if not (step_dir / "data").is_dir():
        return True  # no data item or another layout: let orbax decide and report
    return (step_dir / "data" / name).exists()


class PreemptionWatcher:
    """Says at which step to save and stop after SIGTERM, the same step on every process.

    With several processes JAX's preemption sync manager owns SIGTERM: a notice on any
    process reaches all, and they agree on the first step every one of them can still
    reach. A single process has no peers to agree with, so a Python handler sets a flag.
    """

    def __init__(self) -> None:
        self._multi = jax.process_count() > 1
        self._notified = False
        self._previous = None
        if not self._multi:
            try:
                self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            except ValueError:  # not the main thread (e.g. a notebook worker): no notice
                self._previous = None

    def _on_sigterm(self, signum: int, frame: object) -> None:
        del signum, frame
        logging.warning("SIGTERM: will save a checkpoint after this step and exit.")
        self._notified = True

    def should_stop(self, step: int) -> bool:
        """Call once per step on every process; True at the step to save and exit."""
        if self._multi:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        return self._notified

    def close(self) -> None:
        """Restores the previous SIGTERM handler."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def local_process_commands(
    num_processes: int, train_args: list[str], *, port: int, module: str = "launch.train"
) -> list[list[str]]:
    """One `python -m launch.train` command per process, all pointing at 127.0.0.1:port."""
    return [
        [
            sys.executable,
            "-m",
            module,
            *train_args,
            f"--coordinator_address=127.0.0.1:{port}",
            f"--num_processes={num_processes}",
            f"--process_id={i}",
        ]
        for i in range(num_processes)
    ]


def local_process_env(devices_per_process: int, platform: str = "cpu") -> dict[str, str]:
    """Environment of a local worker: `devices_per_process` simulated CPU devices."""
    env = dict(os.environ)
    if platform == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
        flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
        env["XLA_FLAGS"] = " ".join(flags)
        env["JAX_PLATFORMS"] = "cpu"
    return env


def run_process_group(
    commands: list[list[str]],
    env: Mapping[str, str],
    *,
    grace_s: float = 60.0,
    cwd: str | None = None,
) -> int:
    """Runs the commands as one job: the first failure or a signal stops them all.

    SIGINT/SIGTERM to this process are passed on as SIGTERM (a preemption notice: the workers
    save and exit 0); workers still alive `grace_s` later are killed. Returns the job's exit
    code: 0 when all succeed, else the first failing worker's.
    """
    procs = [
        # A session of their own: a terminal's Ctrl-C reaches the launcher only, which then
        # stops the workers in order instead of each one dying mid-collective.
        subprocess.Popen(cmd, env=dict(env), cwd=cwd, start_new_session=True)
        for cmd in commands
    ]
    stop_requested: list[float] = []

    def _forward(signum: int, frame: object) -> None:
        del frame
        if stop_requested:
            for p in procs:
                _kill(p)
            return
        print(f"[launch] signal {signum}: asking all processes to save and stop.", flush=True)
        stop_requested.append(time.monotonic())
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        while any(p.poll() is None for p in procs):
            for i, p in enumerate(procs):
                code = p.poll()
                if code not in (None, 0) and exit_code == 0:
                    exit_code = code if code > 0 else 128 - code
                    print(
                        f"[launch] process {i} (pid {p.pid}) exited with code {code}; "
                        "stopping the others.",
                        file=sys.stderr,
                        flush=True,
                    )
                    for other in procs:
                        _kill(other)
            if stop_requested and time.monotonic() - stop_requested[0] > grace_s:
                print(
                    "[launch] processes still running after the grace period; killing.",
                    file=sys.stderr,
                    flush=True,
                )
                for p in procs:
                    _kill(p)
            time.sleep(0.2)
    finally:
        for p in procs:
            _kill(p)
            p.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if exit_code == 0:
        codes = [p.returncode for p in procs]
        bad = [c for c in codes if c != 0]
        exit_code = (bad[0] if bad[0] > 0 else 128 - bad[0]) if bad else 0
    return exit_code


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
