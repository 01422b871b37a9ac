"""Sweeps: search spaces, planning from the config file, collecting tables and plots."""

import csv
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from llm import sweeps
from llm.config import load_config, split_config_overrides
from llm.sweeps import run as run_lib
from llm.sweeps.run import plan_sweep, point_command

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_grid_is_the_product_last_key_fastest():
    points = sweeps.grid({"a": [1, 2], "b": ["x", "y"]})
    assert points == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_zipped_pairs_values_and_rejects_unequal_lengths():
    assert sweeps.zipped({"a": [1, 2], "b": [3, 4]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ValueError, match="equal length"):
        sweeps.zipped({"a": [1, 2], "b": [3]})


def test_random_search_is_seeded_and_in_range():
    axes = {
        "lr": sweeps.log_uniform(1e-4, 1e-2),
        "wd": sweeps.uniform(0.0, 0.5),
        "act": sweeps.choice(["gelu", "relu"]),
    }
    first = sweeps.random_search(20, seed=3, axes=axes)
    assert first == sweeps.random_search(20, seed=3, axes=axes)
    assert first != sweeps.random_search(20, seed=4, axes=axes)
    assert all(1e-4 <= p["lr"] <= 1e-2 and 0 <= p["wd"] <= 0.5 for p in first)
    assert {p["act"] for p in first} == {"gelu", "relu"}
    with pytest.raises(ValueError, match="0 < low < high"):
        sweeps.log_uniform(0.0, 1.0)


def test_product_combines_and_rejects_shared_keys():
    points = sweeps.product(sweeps.grid({"a": [1, 2]}), sweeps.zipped({"b": [3], "c": [4]}))
    assert points == [{"a": 1, "b": 3, "c": 4}, {"a": 2, "b": 3, "c": 4}]
    with pytest.raises(ValueError, match="share keys"):
        sweeps.product(sweeps.grid({"a": [1]}), sweeps.grid({"a": [2]}))


def test_sweeps_beside_tiny_lm_and_plan(tmp_path):
    assert len(sweeps.load_sweep("experiments/tiny_lm.py", "lr")) == 4
    assert len(sweeps.load_sweep("experiments/tiny_lm.py:smoke", "random")) == 8
    with pytest.raises(ValueError, match="not 'nope'"):
        sweeps.load_sweep("experiments/tiny_lm.py", "nope")
    plan = plan_sweep("experiments/tiny_lm.py:smoke", "lr", tmp_path, extra_args=["--x=1"])
    assert json.loads((tmp_path / "sweep.json").read_text()) == plan
    first = plan["points"][0]
    assert pathlib.Path(first["workdir"]).name == "000_learning_rate=0.001-seed=0"
    cmd = point_command(plan, 0)
    # Every point is in the sweep's W&B group (its directory's name), before the user's flags.
    assert cmd[-4:] == [
        f"--config.train.wandb_group={tmp_path.name}",
        "--x=1",
        "--config.train.learning_rate=0.001",
        "--config.train.seed=0",
    ]
    # A group of the user's own replaces it (launch.train refuses a key given twice).
    mine = plan_sweep(
        "experiments/tiny_lm.py:smoke", "lr", tmp_path, extra_args=["--config.train.wandb_group=g"]
    )
    args = point_command(mine, 0)
    assert [a for a in args if "wandb_group" in a] == ["--config.train.wandb_group=g"]
    _, overrides = split_config_overrides(args)
    assert load_config(mine["config"], overrides).train.wandb_group == "g"
    _, overrides = split_config_overrides(cmd[cmd.index("--x=1") - 1 :])
    assert dict(overrides)["train.wandb_group"] == tmp_path.name


def _fake_run(workdir: pathlib.Path, loss: float | None, error: str = ""):
    workdir.mkdir(parents=True)
    if loss is not None:
        rows = [
            {"step": 1, "loss": loss + 1},
            {"step": 2, "loss": loss},
            {"step": 2, "eval/loss": loss},
        ]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    status = {"returncode": 1 if error else 0, "seconds": 1.0}
    if error:
        status["error"] = error
    (workdir / "status.json").write_text(json.dumps(status))


def test_collect_writes_csv_markdown_and_plot_with_failures(tmp_path):
    plan = plan_sweep("experiments/tiny_lm.py:smoke", "lr", tmp_path)
    points = plan["points"]
    _fake_run(pathlib.Path(points[0]["workdir"]), 2.0)
    _fake_run(pathlib.Path(points[1]["workdir"]), 1.5)
    _fake_run(pathlib.Path(points[2]["workdir"]), None, error="error: out of memory")
    rows = sweeps.collect(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "not run"]
    with (tmp_path / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert float(table[1]["eval/loss"]) == 1.5
    assert table[1]["train.learning_rate"] == "0.001" and table[1]["train.seed"] == "1"
    assert table[2]["error"] == "error: out of memory"
    markdown = (tmp_path / "results.md").read_text()
    assert "| index | workdir | train.learning_rate | train.seed | status |" in markdown
    assert markdown.count("\n") == 2 + 4
    pytest.importorskip("matplotlib")
    assert (tmp_path / "results_eval_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_collect_from_the_command_line_names_the_files_it_wrote(tmp_path):
    plan = plan_sweep("experiments/tiny_lm.py:smoke", "lr", tmp_path)
    for point in plan["points"]:
        _fake_run(pathlib.Path(point["workdir"]), 2.0)
    out = _launch("launch.sweep", f"--collect={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert "4/4 points ok. Wrote:" in out.stdout
    listed = [line.strip() for line in out.stdout.splitlines() if line.startswith("  ")]
    assert listed[:2] == [str(tmp_path / "results.csv"), str(tmp_path / "results.md")]
    assert listed[-1] == str(tmp_path / "tensorboard_hparams")
    pytest.importorskip("matplotlib")
    assert listed[2:-1] == [str(tmp_path / "results_eval_loss.png")]


_FAKE_TRAIN = """
import json, pathlib, sys
workdir, index = pathlib.Path(sys.argv[1]), int(sys.argv[2])
if index == 1:
    sys.exit("error: config.train.batch_size=7 does not split over 2 devices")
row = {"step": 2, "eval/loss": 1.25 + index}
(workdir / "metrics.jsonl").write_text(json.dumps(row) + "\\n")
"""


def test_local_points_print_a_line_when_they_start_and_end(tmp_path, monkeypatch, capsys):
    plan = plan_sweep("experiments/tiny_lm.py:smoke", "lr", tmp_path)
    monkeypatch.setattr(
        run_lib,
        "point_command",
        lambda plan, i: [sys.executable, "-c", _FAKE_TRAIN, plan["points"][i]["workdir"], str(i)],
    )
    assert sweeps.run_local(tmp_path, max_parallel=1) == [0, 1, 0, 0]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    first, second = (pathlib.Path(p["workdir"]) for p in plan["points"][:2])
    assert lines[0] == (
        f"point 1/4 started: train.learning_rate=0.001 train.seed=0 (log: {first / 'train.log'})"
    )
    assert lines[1].startswith("point 1/4 ok in ")
    assert lines[1].endswith("s: train.learning_rate=0.001 train.seed=0 -> eval/loss=1.25")
    assert lines[3].startswith("point 2/4 failed in ")
    assert lines[3].endswith(
        "s (exit 1): train.learning_rate=0.001 train.seed=1 -> error: config.train.batch_size=7 "
        f"does not split over 2 devices (log: {second / 'train.log'})"
    )
    assert lines[7].endswith("s: train.learning_rate=0.003 train.seed=1 -> eval/loss=4.25")


def _launch(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_slurm_backend_dry_run_prints_a_job_array(tmp_path):
    out = _launch(
        "launch.sweep",
        "--config=experiments/tiny_lm.py:smoke",
        "--sweep=lr",
        "--backend=slurm",
        f"--root={tmp_path}",
        "--max_parallel=2",
        "--partition=debug",
        "--dry_run",
    )
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --array=0-3%2" in out.stdout
    assert "#SBATCH --partition=debug" in out.stdout
    assert f'--root={tmp_path} --run_point "$SLURM_ARRAY_TASK_ID"' in out.stdout
    assert "--metric=eval/loss" in out.stdout
    assert (tmp_path / "sweep.json").is_file()


@pytest.mark.slow
def test_local_sweep_runs_points_in_a_pool_and_tables_a_failure(tmp_path):
    experiment = tmp_path / "exp.py"
    experiment.write_text(
        textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("tiny_lm", {str(ROOT / "experiments/tiny_lm.py")!r})
        tiny_lm = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tiny_lm)

        def get_config(arg=None):
            return tiny_lm.get_config("smoke")

        def get_sweep(name):
            # batch_size 7 does not split over the devices: fails before compiling.
            return [{{"train.batch_size": 8}}, {{"train.batch_size": 7}}]
    """)
    )
    root = tmp_path / "sweep"
    out = _launch(
        "launch.sweep",
        f"--config={experiment}",
        "--sweep=bs",
        f"--root={root}",
        "--max_parallel=2",
        "--",
        f"--config.data.data_dir={tmp_path / 'data'}",
        "--config.train.steps=2",
        "--config.train.sample_tokens=0",
    )
    assert out.returncode == 1, out.stderr[-3000:]
    with (root / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert float(table[0]["eval/loss"]) > 0
    assert "batch_size=7" in table[1]["error"]
    assert "1/2 points ok" in out.stdout
    ends = [line for line in out.stdout.splitlines() if " ok in " in line or " failed in " in line]
    assert len(ends) == 2, out.stdout
    ok = next(line for line in ends if line.startswith("point 1/2 ok in "))
    assert ok.split(" -> ")[1] == f"eval/loss={float(table[0]['eval/loss']):.4g}"
    assert any(line.startswith("point 2/2 failed in ") and "batch_size=7" in line for line in ends)
    # The trained point ran in the sweep's W&B group.
    saved = json.loads(next(root.glob("000_*/config.json")).read_text())
    assert saved["train"]["wandb_group"] == "sweep"
