"""A workdir trained with one model and resumed with another: one clear ConfigError, early.

Settings that leave the train state's shapes alone (steps, learning rate, mesh, dropout)
resume as before; curves.png of a finished run is drawn, and a failed plot only warns.
"""

import json
import shutil

import pytest

from llm.errors import ConfigError
from llm.train import checkpoint as ckpt_lib
from llm.train import curves
from llm.train.loop import Trainer, train_and_evaluate
from llm.train.metrics import read_metrics
from llm.train.program import build_train_program
from llm.train.restore import check_resumable, restore_params_at
from tests.train.tiny import tiny_config


@pytest.fixture(scope="module")
def workdir(data_dir, tmp_path_factory):
    """The tiny decoder (d_model 64, AdamW) trained 2 steps, checkpoint 2."""
    path = tmp_path_factory.mktemp("resume_check") / "run"
    train_and_evaluate(tiny_config(data_dir, steps=2, checkpoint_every=2), path)
    return path


def _program(data_dir, **overrides):
    config = tiny_config(data_dir, steps=2, checkpoint_every=2)
    for key, value in overrides.items():
        group, field = key.split("__")
        config[group][field] = value
    return config, build_train_program(config)


def test_changed_model_names_the_fields(data_dir, workdir):
    # dropout_rate changes no shape, so the message leaves it out.
    config, program = _program(data_dir, model__d_model=32, model__dropout_rate=0.1)
    with pytest.raises(ConfigError) as raised:
        check_resumable(workdir, config, program.abstract_state)
    message = str(raised.value)
    assert "model.d_model: 64 (workdir) vs 32 (now)" in message
    assert "dropout" not in message and "new --workdir" in message and "\n" not in message
    # The trainer refuses before it writes config.json: the workdir still describes its run.
    with pytest.raises(ConfigError, match="model.d_model: 64"):
        Trainer(config, workdir)
    assert json.loads((workdir / "config.json").read_text())["model"]["d_model"] == 64


def test_changed_optimizer_names_the_fields(data_dir, workdir):
    config, program = _program(data_dir, train__optimizer="sgd")
    with pytest.raises(ConfigError, match=r"train.optimizer: 'adamw' \(workdir\) vs 'sgd' \(now\)"):
        check_resumable(workdir, config, program.abstract_state)


def test_settings_that_keep_the_state_resume(data_dir, workdir, tmp_path):
    config, program = _program(
        data_dir,
        train__steps=3,
        train__learning_rate=1e-3,
        train__eval_every=3,
        model__dropout_rate=0.1,
        model__remat="full",
        mesh__data=2,
        mesh__fsdp=4,
    )
    check_resumable(workdir, config, program.abstract_state)  # no error
    resumed = tmp_path / "run"
    shutil.copytree(workdir, resumed)
    train_and_evaluate(config, resumed)
    rows = read_metrics(resumed)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert any("eval/loss" in r for r in rows if r["step"] == 3)


def test_restore_with_other_shapes_is_a_config_error(data_dir, workdir, monkeypatch):
    _, program = _program(data_dir, model__d_model=32)
    manager = ckpt_lib.make_manager(workdir)
    try:
        with pytest.raises(
            ConfigError, match=r"params\.final_norm\.bias: \(64,\) saved vs \(32,\) now"
        ):
            ckpt_lib.restore_newest(manager, program.abstract_state, None, fallback=True)
        # Not a damaged checkpoint: nothing is moved aside.
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2"]
        with pytest.raises(ConfigError, match="another shape"):
            restore_params_at(workdir, 2, program.abstract_state.params)
        # Should the metadata check miss a difference, orbax's own refusal becomes one too.
        monkeypatch.setattr(ckpt_lib, "shape_mismatches", lambda *a, **k: [])
        with pytest.raises(
            ConfigError, match=r"other shapes .*\(stored \([\d, ]+\), now \([\d, ]+\)\)"
        ):
            ckpt_lib.restore(manager, program.abstract_state, None)
    finally:
        manager.close()


def test_curves_of_a_finished_run_and_a_failed_plot_only_warns(workdir, tmp_path, monkeypatch):
    png = curves.write_curves(workdir)
    assert png == workdir / "curves.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    warnings = []
    monkeypatch.setattr(
        curves.logging, "warning", lambda *args: warnings.append(args[0] % args[1:])
    )
    assert curves.write_curves(tmp_path) is None  # no metrics.jsonl there
    assert len(warnings) == 1 and "Could not draw" in warnings[0] and "metrics.jsonl" in warnings[0]
