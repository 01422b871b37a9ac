"""Process specs from flags, SLURM and TPU-pod environments (no processes started)."""

import pytest

from llm.parallel import distributed as dist


@pytest.mark.parametrize(
    "nodelist, first",
    [("vm", "vm"), ("node[003-005,9]", "node003"), ("gpu[7,9],cpu1", "gpu7"), ("a1,b2", "a1")],
)
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert dist.expand_first_host(nodelist) == first


def test_slurm_multi_task_step_gives_rank_count_and_coordinator():
    env = {
        "SLURM_JOB_ID": "1234",
        "SLURM_PROCID": "3",
        "SLURM_STEP_NUM_TASKS": "4",
        "SLURM_NTASKS": "4",
        "SLURM_STEP_NODELIST": "node[01-02]",
    }
    spec = dist.resolve_process_spec(None, None, None, env)
    assert spec == dist.ProcessSpec("node01:21234", 4, 3, source="slurm")


def test_single_task_slurm_job_and_plain_shell_are_single_process():
    assert dist.resolve_process_spec(None, None, None, {}) is None
    env = {"SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_NODELIST": "n"}
    assert dist.resolve_process_spec(None, None, None, env) is None


def test_explicit_flags_win_and_must_come_together():
    env = {"SLURM_JOB_ID": "1", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    spec = dist.resolve_process_spec("h:1", 2, 0, env)
    assert spec == dist.ProcessSpec("h:1", 2, 0, source="flags")
    with pytest.raises(ValueError, match="or none"):
        dist.resolve_process_spec("h:1", 2, None, {})
    with pytest.raises(ValueError, match="--process_id=2 must be in"):
        dist.resolve_process_spec("h:1", 2, 2, {})


def test_tpu_pod_is_left_to_jax_detection():
    spec = dist.resolve_process_spec(
        None, None, None, {"TPU_WORKER_HOSTNAMES": "10.0.0.1,10.0.0.2"}
    )
    assert spec.source == "tpu"
    assert dist.resolve_process_spec(None, None, None, {"TPU_WORKER_HOSTNAMES": "10.0.0.1"}) is None


def test_single_process_preemption_watcher_turns_sigterm_into_a_stop(monkeypatch):
    import os
    import signal

    watcher = dist.PreemptionWatcher()
    try:
        assert not watcher.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert watcher.should_stop(2)
    finally:
        watcher.close()
    assert signal.getsignal(signal.SIGTERM) is not watcher._on_sigterm
