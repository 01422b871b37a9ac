"""Plan a sweep into per-point workdirs and run its points (locally or one per array task)."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from llm.errors import ConfigError, InputFileNotFoundError, UserError
from llm.experiment_file import blame_file, exec_file
from llm.sweeps.space import Point

SWEEP_FILE = "sweep.json"
STATUS_FILE = "status.json"
# The config key that puts a sweep's points in one W&B group.
_GROUP_KEY = "train.wandb_group"

# Points of a local sweep finish on pool threads: one line at a time.
_PRINT_LOCK = threading.Lock()


def _say(line: str) -> None:
    with _PRINT_LOCK:
        print(line, flush=True)


def load_sweep(config_spec: str, name: str) -> list[Point]:
    """Calls `get_sweep(name)` of the experiment file the config spec names."""
    path = pathlib.Path(config_spec.partition(":")[0])
    if not path.is_file():
        raise InputFileNotFoundError(f"Experiment config {str(path)!r} not found.")
    module = exec_file(path, f"_llm_sweep_{path.stem}")
    if not hasattr(module, "get_sweep"):
        raise ConfigError(f"{path} defines no get_sweep(name); add one beside get_config.")
    with blame_file(path, f"get_sweep({name!r}) of"):
        points = list(module.get_sweep(name))
    if not points:
        raise ConfigError(f"Sweep {name!r} of {path} has no points.")
    return points


def _slug(point: Point) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={_format(v)}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", "-".join(parts))[:80]


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _wandb_group(config_spec: str, extra_args: Sequence[str], root: pathlib.Path) -> str:
    """ROOT's name as the points' W&B group; '' when extra_args set one or the config has none."""
    from llm.config import load_config, split_config_overrides

    try:
        _, common = split_config_overrides(extra_args)
        if any(k == _GROUP_KEY for k, _ in common):
            return ""  # the user's own group (launch.train refuses a key given twice)
        train = load_config(config_spec, common).get("train")
    except UserError:
        return ""  # the points fail in their own runs, with the error in the table
    # A config built without default_train_config() has no such key to override.
    return root.name if train is not None and "wandb_group" in train else ""


def plan_sweep(
    config_spec: str,
    sweep_name: str,
    root: str | pathlib.Path,
    *,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Writes ROOT/sweep.json listing every point's workdir and overrides; returns it.

    The points share a W&B group, ROOT's name (train.wandb_group), so that a sweep's
    runs chart together, unless extra_args or the points set train.wandb_group.
    """
    root = pathlib.Path(root).absolute()
    points = load_sweep(config_spec, sweep_name)
    plan = {
        "config": config_spec,
        "sweep": sweep_name,
        "wandb_group": _wandb_group(config_spec, extra_args, root),
        "extra_args": list(extra_args),
        "points": [
            {"index": i, "workdir": str(root / f"{i:03d}_{_slug(p)}"), "overrides": p}
            for i, p in enumerate(points)
        ],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / SWEEP_FILE).write_text(json.dumps(plan, indent=2))
    return plan


def read_plan(root: str | pathlib.Path) -> dict[str, Any]:
    """The sweep.json of a planned sweep."""
    path = pathlib.Path(root) / SWEEP_FILE
    if not path.is_file():
        raise InputFileNotFoundError(
            f"{path} not found; plan the sweep first (launch.sweep --config)."
        )
    return json.loads(path.read_text())


def point_command(plan: dict[str, Any], index: int) -> list[str]:
    """The launch.train command line of point `index`."""
    point = plan["points"][index]
    overrides = [f"--config.{k}={v}" for k, v in point["overrides"].items()]
    group = []
    if plan.get("wandb_group") and _GROUP_KEY not in point["overrides"]:
        group = [f"--config.train.wandb_group={plan['wandb_group']}"]
    return [
        sys.executable,
        "-m",
        "launch.train",
        f"--config={plan['config']}",
        f"--workdir={point['workdir']}",
        *group,
        *plan["extra_args"],
        *overrides,
    ]


def _overrides_text(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={_format(v)}" for k, v in overrides.items()) or "(no overrides)"


def final_metrics(workdir: pathlib.Path) -> dict[str, float]:
    """The last value of every metric in WORKDIR/metrics.jsonl, with the step it came from."""
    path = workdir / "metrics.jsonl"
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            out.update(json.loads(line))
    return out


def _final_metric(workdir: pathlib.Path, metric: str) -> str:
    """'eval/loss=2.313' from the point's metrics.jsonl ('loss' when it has no eval)."""
    metrics = final_metrics(workdir)
    if metric not in metrics and metric == "eval/loss":
        metric = "loss"
    if metric not in metrics:
        return f"no {metric} in {workdir / 'metrics.jsonl'}"
    return f"{metric}={_format(float(metrics[metric]))}"


def run_point(root: str | pathlib.Path, index: int, *, metric: str = "eval/loss") -> int:
    """Trains point `index` into its workdir, recording overrides, log and exit status.

    Prints one line when the point starts and one when it ends (status, time and
    its final `metric`).
    """
    plan = read_plan(root)
    count = len(plan["points"])
    if not 0 <= index < count:
        raise ConfigError(f"Point {index} not in this sweep of {count} points.")
    point = plan["points"][index]
    workdir = pathlib.Path(point["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "overrides.json").write_text(json.dumps(point["overrides"]))
    name = f"point {index + 1}/{count}"
    overrides = _overrides_text(point["overrides"])
    _say(f"{name} started: {overrides} (log: {workdir / 'train.log'})")
    start = time.monotonic()
    with (workdir / "train.log").open("w") as log:
        code = subprocess.call(point_command(plan, index), stdout=log, stderr=subprocess.STDOUT)
    status: dict[str, Any] = {"returncode": code, "seconds": round(time.monotonic() - start, 1)}
    if code != 0:
        lines = [x for x in (workdir / "train.log").read_text().splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("error:") or "Error" in x]
        status["error"] = (errors or lines or [f"exit code {code}"])[-1][:500]
    (workdir / STATUS_FILE).write_text(json.dumps(status))
    if code == 0:
        outcome = f"ok in {status['seconds']}s: {overrides} -> {_final_metric(workdir, metric)}"
    else:
        outcome = (
            f"failed in {status['seconds']}s (exit {code}): {overrides} -> {status['error']} "
            f"(log: {workdir / 'train.log'})"
        )
    _say(f"{name} {outcome}")
    return code


def prepare_data(plan: dict[str, Any]) -> None:
    """Builds each distinct dataset of the sweep once, before points would race to build it."""
    from llm import data as data_lib
    from llm.config import load_config, split_config_overrides

    _, common = split_config_overrides(plan["extra_args"])
    seen = set()
    for point in plan["points"]:
        overrides = [*common, *((k, str(v)) for k, v in point["overrides"].items())]
        try:
            data_cfg = load_config(plan["config"], overrides).data
        except UserError:
            continue  # a bad point fails in its own run, with its error in the table
        key = data_cfg.to_json_best_effort(sort_keys=True)
        if key not in seen:
            seen.add(key)
            data_lib.ensure_dataset(data_cfg)


def run_local(
    root: str | pathlib.Path, *, max_parallel: int = 1, metric: str = "eval/loss"
) -> list[int]:
    """Runs every point, at most `max_parallel` at a time; a failure does not stop the others.

    Each point prints a line when it starts and when it ends (run_point).
    """
    plan = read_plan(root)
    if max_parallel > 1:
        prepare_data(plan)
    count = len(plan["points"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        return list(pool.map(lambda i: run_point(root, i, metric=metric), range(count)))
