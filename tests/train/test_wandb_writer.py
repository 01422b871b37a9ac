"""W&B beside TensorBoard: the same scalars as metrics.jsonl, the config and git commit, one
run id across resumes, and a clear error where wandb is not installed.

Runs in W&B's offline mode (no network): the scalars are read back from the offline run's
.wandb file, a LevelDB-style log of wandb Record protos.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import pathlib
import struct
import subprocess
import time

import pytest

from llm.config import load_config
from llm.errors import ConfigError
from llm.evals.writer import append_metrics
from llm.train import metrics as metrics_lib
from llm.train.loop import validate_train_config
from llm.train.metrics import MetricWriter, read_metrics

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))


def _config(**train):
    spec = str(ROOT / "experiments" / "tiny_lm.py") + ":smoke"
    return load_config(spec, [(f"train.{k}", str(v)) for k, v in train.items()])


def _records(path: pathlib.Path) -> list:
    """The Record protos of a .wandb file: a 7-byte header (':W&B', magic, version), then
    32 KiB blocks of chunks (crc32 4, length 2, type 1: full, first, middle, last)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    block = 32 * 1024
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _offline_runs(workdir: pathlib.Path) -> list[pathlib.Path]:
    return sorted((workdir / "wandb").glob("offline-run-*"))


def _read_run(run_dir: pathlib.Path) -> tuple[str, dict, list[dict]]:
    """(run id, config, history rows {'step': s, scalar: value}) of an offline run."""
    (path,) = run_dir.glob("run-*.wandb")
    run_id, config, history = "", {}, []
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
            config.update({_key(u): json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            config.update({_key(u): json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            history.append(
                {"step": row["_step"], **{k: v for k, v in row.items() if not k.startswith("_")}}
            )
    return run_id, config, history


def _next_second() -> None:
    """Waits into the next wall-clock second: W&B names an offline run's folder by its start
    second and id, so a resume within the same second would reuse the earlier folder."""
    time.sleep(1.01 - time.time() % 1)


def _merged(rows: list[dict]) -> list[dict]:
    """metrics.jsonl rows merged per step, as W&B's history keeps them."""
    out: dict[int, dict] = {}
    for row in rows:
        out.setdefault(row["step"], {}).update(row)
    return [out[s] for s in sorted(out)]


def test_wandb_gets_the_scalars_config_and_commit_and_resumes_the_run(tmp_path):
    workdir = tmp_path / "run"
    config = _config(wandb_project="llm-tests", steps=5)
    writer = MetricWriter(workdir, config=config)
    writer.write(1, {"loss": 3.5, "learning_rate": 1e-3})
    writer.write(2, {"loss": 3.0, "learning_rate": 2e-3})
    writer.write(2, {"eval/loss": 3.25, "eval/accuracy": 0.5})
    writer.close()

    (first,) = _offline_runs(workdir)
    run_id, run_config, history = _read_run(first)
    assert history == _merged(read_metrics(workdir))
    assert history[1] == {
        "step": 2,
        "loss": 3.0,
        "learning_rate": 2e-3,
        "eval/loss": 3.25,
        "eval/accuracy": 0.5,
    }
    assert run_id == (workdir / "wandb_id").read_text().strip()
    assert run_config["train"]["steps"] == 5
    assert run_config["train"]["wandb_project"] == "llm-tests"
    assert run_config["model"] == json.loads(config.model.to_json_best_effort())
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:
        assert run_config["git_commit"] == head.stdout.strip()
        assert isinstance(run_config["git_dirty"], bool)

    # A resumed run (from step 1's checkpoint) continues the same W&B run id.
    _next_second()
    resumed = MetricWriter(workdir, resume_step=1, config=config)
    resumed.write(2, {"loss": 2.75})
    resumed.close()
    second = [r for r in _offline_runs(workdir) if r != first]
    assert len(second) == 1
    again_id, _, again = _read_run(second[0])
    assert again_id == run_id
    assert again == [{"step": 2, "loss": 2.75}]
    assert read_metrics(workdir)[-1] == {"step": 2, "loss": 2.75}


def test_run_name_defaults_to_the_workdir_and_entity_is_optional(tmp_path, monkeypatch):
    seen = {}

    class FakeRun:
        def log(self, *args, **kwargs):
            pass

        def finish(self):
            seen["finished"] = True

    def fake_init(**kwargs):
        seen.update(kwargs)
        return FakeRun()

    monkeypatch.setattr(wandb, "init", fake_init)
    MetricWriter(tmp_path / "my_run", config=_config(wandb_project="p")).close()
    assert seen["name"] == "my_run" and seen["entity"] is None and seen["mode"] == "offline"
    assert seen["group"] is None
    assert seen["resume"] == "allow" and seen["dir"] == str(tmp_path / "my_run")
    assert seen["finished"]
    config = _config(
        wandb_project="p",
        wandb_run_name="lr-3e-3",
        wandb_entity="team",
        wandb_mode="online",
        wandb_group="lr_sweep",
    )
    MetricWriter(tmp_path / "other", config=config).close()
    assert (seen["name"], seen["entity"], seen["mode"]) == ("lr-3e-3", "team", "online")
    assert seen["group"] == "lr_sweep"


def test_no_project_or_disabled_mode_starts_no_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setattr(wandb, "init", lambda **_: pytest.fail("wandb.init called"))
    for config in (_config(), _config(wandb_project="p", wandb_mode="disabled")):
        writer = MetricWriter(tmp_path, config=config)
        writer.write(1, {"loss": 1.0})
        writer.close()
    assert not (tmp_path / "wandb").exists() and not (tmp_path / "wandb_id").exists()


def test_append_metrics_logs_standalone_evals_to_the_same_run(tmp_path):
    config = _config(wandb_project="llm-tests")
    (tmp_path / "config.json").write_text(config.to_json_best_effort())
    writer = MetricWriter(tmp_path, config=config)
    writer.write(4, {"loss": 1.0})
    writer.close()
    _next_second()
    append_metrics(tmp_path, 4, {"eval_test/loss": 1.5})
    runs = _offline_runs(tmp_path)
    assert len(runs) == 2
    ids = {_read_run(r)[0] for r in runs}
    # One offline file was once read before its run record reached disk (id ''), in CI.
    assert ids - {""} == {(tmp_path / "wandb_id").read_text().strip()}
    histories = [_read_run(r)[2] for r in runs]
    assert [{"step": 4, "eval_test/loss": 1.5}] in histories


def test_git_revision_outside_a_checkout_is_empty(tmp_path):
    assert metrics_lib.git_revision(tmp_path) == {}


def test_missing_wandb_is_a_config_error_naming_the_field_and_the_fix(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    config = _config(wandb_project="p")
    with pytest.raises(ConfigError, match=r"train.wandb_project='p'.*pip install -e '.\[wandb\]'"):
        MetricWriter(tmp_path, config=config)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()

    # At config load and in the trainer's checks, before anything is built.
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec",
        lambda name, *a: None if name == "wandb" else find_spec(name, *a),
    )
    with pytest.raises(ConfigError, match=r"wandb package is not installed.*\[wandb\]"):
        _config(wandb_project="p")
    with pytest.raises(ConfigError, match=r"config.train.wandb_project='p'"):
        validate_train_config(config.train)
    _config(wandb_project="p", wandb_mode="disabled")  # off: wandb not needed


def test_wandb_mode_must_be_known():
    with pytest.raises(ConfigError, match=r"train.wandb_mode='offlne' is not one of"):
        _config(wandb_mode="offlne")
