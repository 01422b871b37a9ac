"""launch.local's process group: commands, environment, failure and signal handling (fast)."""

import signal
import sys
import threading
import time

from llm.parallel import distributed


def test_commands_give_each_process_its_id_and_the_coordinator():
    cmds = distributed.local_process_commands(2, ["--config=x.py"], port=1234)
    assert cmds[1][-3:] == [
        "--coordinator_address=127.0.0.1:1234",
        "--num_processes=2",
        "--process_id=1",
    ]
    assert cmds[0][1:4] == ["-m", "launch.train", "--config=x.py"]


def test_env_sets_device_count_once(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --other")
    env = distributed.local_process_env(4)
    assert env["XLA_FLAGS"] == "--other --xla_force_host_platform_device_count=4"
    assert env["JAX_PLATFORMS"] == "cpu"


def _py(code):
    return [sys.executable, "-c", code]


def test_one_failing_process_stops_the_others_and_sets_exit_code():
    start = time.monotonic()
    code = distributed.run_process_group(
        [_py("import time; time.sleep(60)"), _py("import sys; sys.exit(3)")], {}
    )
    assert code == 3
    assert time.monotonic() - start < 20


def test_all_succeeding_gives_0():
    assert distributed.run_process_group([_py("pass"), _py("pass")], {}) == 0


def test_sigterm_is_forwarded_and_clean_exits_give_0(tmp_path):
    # Workers that exit 0 on SIGTERM, like preempted trainers after their checkpoint.
    code = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"pathlib.Path(r'{tmp_path}', sys.argv[1]).touch()\n"
        "time.sleep(60)\n"
    )
    cmds = [[*_py(code), str(i)] for i in range(2)]

    def _notify():
        while len(list(tmp_path.iterdir())) < 2:
            time.sleep(0.05)
        signal.raise_signal(signal.SIGTERM)

    threading.Thread(target=_notify, daemon=True).start()
    start = time.monotonic()
    assert distributed.run_process_group(cmds, {}) == 0
    assert time.monotonic() - start < 20
