"""Run training on every host of a Cloud TPU pod slice through `gcloud ... ssh --worker=all`.

`python -m launch.tpu --tpu=NAME --zone=Z [--dry_run] -- <train args>`
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from absl import flags

from launch.cli import run_main
from llm.parallel import tpu

_TPU = flags.DEFINE_string("tpu", None, "TPU VM name.", required=True)
_ZONE = flags.DEFINE_string("zone", None, "TPU zone, e.g. us-central2-b.", required=True)
_PROJECT = flags.DEFINE_string("project", "", "GCP project (default: gcloud's).")
_REMOTE_DIR = flags.DEFINE_string("remote_dir", "~/llm", "Checkout of this repo on the VMs.")
_SETUP = flags.DEFINE_string("setup", "", "Shell run on each VM first, e.g. venv activation.")
_PYTHON = flags.DEFINE_string("python", "python3", "Python on the VMs.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the gcloud command instead of running.")


def main(argv: list[str]) -> None:
    train_args = argv[1:]
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    command = tpu.tpu_ssh_command(
        _TPU.value,
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
