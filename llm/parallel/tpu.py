"""Cloud TPU pods: one `gcloud ... tpu-vm ssh --worker=all` running the trainer on every host."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def tpu_ssh_command(
    tpu: str,
    zone: str,
    train_args: Sequence[str],
    *,
    project: str = "",
    workdir_on_vm: str = "~/llm",
    setup: str = "",
    python: str = "python3",
) -> list[str]:
    """The gcloud invocation; every worker runs the same command and JAX finds its peers."""
    remote = f"cd {workdir_on_vm} && "
    if setup:
        remote += f"{setup} && "
    remote += shlex.join([python, "-m", "launch.train", *train_args])
    command = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}"]
    if project:
        command.append(f"--project={project}")
    return command + ["--worker=all", f"--command={remote}"]
