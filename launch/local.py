"""Run a training job as several local processes (one host, gloo CPU collectives).

`python -m launch.local --num_processes=2 --devices_per_process=4 -- <launch.train args>`
"""

from __future__ import annotations

import sys

from absl import flags

from launch.cli import run_main
from llm.parallel import distributed

_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 2, "Processes to start.")
_DEVICES = flags.DEFINE_integer(
    "devices_per_process", 1, "Simulated CPU devices per process (XLA host device count)."
)
_PORT = flags.DEFINE_integer("port", 0, "Coordinator port on 127.0.0.1 (0: pick a free one).")
_PLATFORM = flags.DEFINE_string(
    "platform", "cpu", "'cpu' simulates devices; anything else leaves the environment alone."
)
_MODULE = flags.DEFINE_string("module", "launch.train", "Module each process runs.")


def main(argv: list[str]) -> None:
    train_args = argv[1:]
    if train_args[:1] == ["--"]:
        train_args = train_args[1:]
    port = _PORT.value or distributed.free_port()
    commands = distributed.local_process_commands(
        _NUM_PROCESSES.value, train_args, port=port, module=_MODULE.value
    )
    env = distributed.local_process_env(_DEVICES.value, _PLATFORM.value)
    sys.exit(distributed.run_process_group(commands, env))


if __name__ == "__main__":
    run_main(main)
