"""Run training on every host of a Cloud TPU slice, or of several slices (multislice).

    python -m launch.tpu --tpu=NAME --zone=Z [--dry_run] -- <train args>
    python -m launch.tpu --queued_resource=NAME --zone=Z [--dry_run] -- <train args>

`--tpu` names a TPU VM (one slice; `gcloud compute tpus tpu-vm ssh --worker=all`).
`--queued_resource` names a queued resource of several slices (created with
`gcloud compute tpus queued-resources create ... --node-count=N --node-prefix=P`), run on
all of them (`gcloud compute tpus queued-resources ssh --node=all --worker=all`); set
config.mesh.dcn_data / dcn_fsdp to say which mesh axes cross slices (default: data).
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from absl import flags

from launch.cli import run_main
from llm.parallel import tpu

_TPU = flags.DEFINE_string("tpu", None, "TPU VM name (one slice).")
_QUEUED_RESOURCE = flags.DEFINE_string(
    "queued_resource", None, "Queued resource name (several slices: multislice)."
)
_ZONE = flags.DEFINE_string("zone", None, "TPU zone, e.g. us-central2-b.", required=True)
_PROJECT = flags.DEFINE_string("project", "", "GCP project (default: gcloud's).")
_REMOTE_DIR = flags.DEFINE_string("remote_dir", "~/llm", "Checkout of this repo on the VMs.")
_SETUP = flags.DEFINE_string("setup", "", "Shell run on each VM first, e.g. venv activation.")
_PYTHON = flags.DEFINE_string("python", "python3", "Python on the VMs.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the gcloud command instead of running.")

flags.register_multi_flags_validator(
    ["tpu", "queued_resource"],
    lambda values: (values["tpu"] is None) != (values["queued_resource"] is None),
    message="give exactly one of --tpu=NAME (a TPU VM, one slice) or --queued_resource=NAME "
    "(a queued resource of several slices)",
)


def main(argv: list[str]) -> None:
    train_args = argv[1:]
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    build, name = (
        (tpu.tpu_ssh_command, _TPU.value)
        if _TPU.value is not None
        else (tpu.queued_resource_ssh_command, _QUEUED_RESOURCE.value)
    )
    command = build(
        name,
        _ZONE.value,
        train_args,
        project=_PROJECT.value,
        workdir_on_vm=_REMOTE_DIR.value,
        setup=_SETUP.value,
        python=_PYTHON.value,
    )
    if _DRY_RUN.value:
        print(shlex.join(command))
        return
    sys.exit(subprocess.call(command))


if __name__ == "__main__":
    run_main(main)
