"""collect() writes one TensorBoard hparams session per point: its overrides, final metrics."""

from __future__ import annotations

import json
import pathlib
import struct

from tensorboardX.proto import event_pb2, plugin_hparams_pb2

from llm import sweeps
from llm.sweeps.run import plan_sweep


def _events(path: pathlib.Path) -> list[event_pb2.Event]:
    """The Event protos of a TFRecord event file (length 8, crc 4, data, crc 4)."""
    data, pos, events = path.read_bytes(), 0, []
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[pos + 12 : pos + 12 + length])
        events.append(event)
        pos += 12 + length + 4
    return events


def _session(directory: pathlib.Path) -> tuple[dict, list[str], dict]:
    """(hparams, metric tags of the experiment, {tag: (step, value)}) of one session."""
    hparams, metric_tags, scalars = {}, [], {}
    for path in directory.glob("events.out.tfevents.*"):
        for event in _events(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    scalars[value.tag] = (event.step, value.simple_value)
                    continue
                data = plugin_hparams_pb2.HParamsPluginData()
                data.ParseFromString(value.metadata.plugin_data.content)
                if data.HasField("experiment"):
                    metric_tags = [m.name.tag for m in data.experiment.metric_infos]
                if data.HasField("session_start_info"):
                    for key, v in data.session_start_info.hparams.items():
                        hparams[key] = getattr(v, v.WhichOneof("kind"))
    return hparams, metric_tags, scalars


def _fake_run(workdir: pathlib.Path, loss: float | None, returncode: int = 0):
    workdir.mkdir(parents=True)
    if loss is not None:
        rows = [
            {"step": 1, "loss": loss + 1},
            {"step": 4, "loss": loss + 0.5},
            {"step": 4, "eval/loss": loss, "eval/accuracy": 0.75},
        ]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (workdir / "status.json").write_text(json.dumps({"returncode": returncode, "seconds": 1}))


def test_collect_writes_an_hparams_session_per_point_with_metrics(tmp_path):
    plan = plan_sweep("experiments/tiny_lm.py:smoke", "lr", tmp_path)
    points = plan["points"]
    _fake_run(pathlib.Path(points[0]["workdir"]), 2.0)
    _fake_run(pathlib.Path(points[1]["workdir"]), 1.5)
    _fake_run(pathlib.Path(points[2]["workdir"]), None, returncode=1)  # failed: no metrics
    _, written = sweeps.write_results(tmp_path)
    out = tmp_path / "tensorboard_hparams"
    assert out in written
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == [pathlib.Path(p["workdir"]).name for p in points[:2]]

    hparams, metric_tags, scalars = _session(out / names[1])
    assert hparams == points[1]["overrides"] == {"train.learning_rate": 0.001, "train.seed": 1}
    assert sorted(metric_tags) == ["eval/accuracy", "eval/loss", "loss"]
    assert scalars == {"eval/loss": (4, 1.5), "eval/accuracy": (4, 0.75), "loss": (4, 2.0)}
    assert _session(out / names[0])[2]["eval/loss"] == (4, 2.0)

    # Collecting again rewrites the sessions instead of adding duplicates.
    sweeps.write_results(tmp_path)
    assert len(list((out / names[1]).glob("events.out.tfevents.*"))) == 1


def test_hparam_values_are_kept_to_what_tensorboard_accepts(tmp_path):
    from llm.sweeps.collect import write_hparams

    rows = [
        {"workdir": "000_a", "a": True, "b": "gelu", "c": 3, "d": [1, 2], "e": None, "loss": 1.0},
    ]
    write_hparams(tmp_path, rows, ["a", "b", "c", "d", "e"], ["loss"])
    hparams, _, scalars = _session(tmp_path / "tensorboard_hparams" / "000_a")
    assert hparams == {"a": True, "b": "gelu", "c": 3.0, "d": "[1, 2]", "e": "null"}
    assert scalars == {"loss": (0, 1.0)}
