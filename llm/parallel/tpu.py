"""Cloud TPU jobs: one `gcloud ... ssh --worker=all` running the trainer on every host.

One slice is a TPU VM (`gcloud compute tpus tpu-vm ssh NAME`); several slices joined
over the data-centre network (multislice) are a queued resource whose nodes are the
slices (`gcloud compute tpus queued-resources ssh NAME --node=all`). Either way every
host runs the same command and JAX finds its peers from the TPU runtime's environment.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def _remote_command(train_args: Sequence[str], workdir_on_vm: str, setup: str, python: str) -> str:
    """The shell line each host runs: cd, optional setup, then the trainer."""
    remote = f"cd {workdir_on_vm} && "
    if setup:
        remote += f"{setup} && "
    return remote + shlex.join([python, "-m", "launch.train", *train_args])


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
    """The gcloud invocation for one slice (a TPU VM): every worker runs the trainer."""
    command = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}"]
    if project:
        command.append(f"--project={project}")
    remote = _remote_command(train_args, workdir_on_vm, setup, python)
    return command + ["--worker=all", f"--command={remote}"]


def queued_resource_ssh_command(
    queued_resource: str,
    zone: str,
    train_args: Sequence[str],
    *,
    project: str = "",
    workdir_on_vm: str = "~/llm",
    setup: str = "",
    python: str = "python3",
) -> list[str]:
    """The gcloud invocation for a multislice queued resource: every worker of every node
    (slice) runs the trainer; the TPU runtime sets the MEGASCALE_* variables that tell JAX
    the slices and their coordinator."""
    command = ["gcloud", "compute", "tpus", "queued-resources", "ssh", queued_resource]
    command.append(f"--zone={zone}")
    if project:
        command.append(f"--project={project}")
    remote = _remote_command(train_args, workdir_on_vm, setup, python)
    return command + ["--node=all", "--worker=all", f"--command={remote}"]
