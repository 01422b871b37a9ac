"""Gather a sweep's final metrics into results.csv, results.md, a PNG per metric and
TensorBoard hparams (ROOT/tensorboard_hparams: the HPARAMS tab of `tensorboard --logdir ROOT`)."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil
from typing import Any

from absl import logging

from llm.sweeps.run import STATUS_FILE, final_metrics, read_plan

# ROOT/HPARAMS_DIR/<point workdir name>/: one TensorBoard hparams session per point.
HPARAMS_DIR = "tensorboard_hparams"


def _status(workdir: pathlib.Path) -> tuple[str, str]:
    path = workdir / STATUS_FILE
    if not path.is_file():
        return "not run", ""
    status = json.loads(path.read_text())
    if status["returncode"] == 0:
        return "ok", ""
    return "failed", status.get("error", f"exit code {status['returncode']}")


def collect(root: str | pathlib.Path, metric: str = "eval/loss") -> list[dict[str, Any]]:
    """Writes ROOT/results.{csv,md} (one row per point, failures with their error) and a plot."""
    return write_results(root, metric)[0]


def write_results(
    root: str | pathlib.Path, metric: str = "eval/loss"
) -> tuple[list[dict[str, Any]], list[pathlib.Path]]:
    """collect(), also returning the paths it wrote (the plot's only with matplotlib)."""
    root = pathlib.Path(root)
    plan = read_plan(root)
    keys = list(dict.fromkeys(k for p in plan["points"] for k in p["overrides"]))
    rows = []
    for point in plan["points"]:
        workdir = pathlib.Path(point["workdir"])
        status, error = _status(workdir)
        row = {"index": point["index"], "workdir": workdir.name, **point["overrides"]}
        row.update(status=status, **final_metrics(workdir), error=error)
        rows.append(row)
    metric_keys = sorted(
        {k for r in rows for k in r} - {"index", "workdir", "status", "error"} - set(keys)
    )
    columns = ["index", "workdir", *keys, "status", *metric_keys, "error"]
    with (root / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (root / "results.md").write_text(_markdown(rows, columns))
    written = [root / "results.csv", root / "results.md"]
    if not any(metric in r for r in rows) and metric == "eval/loss":
        metric = "loss"  # runs without eval still have a train loss
    plot = root / f"results_{metric.replace('/', '_')}.png"
    if _plot(rows, keys, metric, plot):
        written.append(plot)
    written.append(write_hparams(root, rows, keys, metric_keys))
    return rows, written


def _hparam_value(value: Any) -> bool | int | float | str:
    """A value TensorBoard's hparams accept: bool, int, float or str (others as text)."""
    return value if isinstance(value, bool | int | float | str) else json.dumps(value)


def write_hparams(
    root: pathlib.Path, rows: list[dict[str, Any]], keys: list[str], metric_keys: list[str]
) -> pathlib.Path:
    """One TensorBoard hparams session per point with metrics: its overrides and final
    metrics (at the step of its last row), under ROOT/tensorboard_hparams/<workdir name>.

    Rewritten from scratch each time: a second collect must not add duplicate sessions.
    """
    from tensorboardX import SummaryWriter

    out = root / HPARAMS_DIR
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    writer = SummaryWriter(str(out))
    try:
        for row in rows:
            metrics = {
                k: float(row[k])
                for k in metric_keys
                if k != "step" and isinstance(row.get(k), int | float)
            }
            if not metrics:
                continue  # not run, or failed before its first metric
            hparams = {k: _hparam_value(row[k]) for k in keys if k in row}
            step = row.get("step")
            writer.add_hparams(
                hparams,
                metrics,
                name=row["workdir"],
                global_step=None if step is None else int(step),
            )
    finally:
        writer.close()
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], keys: list[str], metric: str, path: pathlib.Path) -> bool:
    """Writes `metric` against each swept key to `path`; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on clusters
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed (pip install -e '.[sweep]'); no plot.")
        return False
    done = [r for r in rows if r["status"] == "ok" and metric in r]
    fig, axes = plt.subplots(
        1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3.2), squeeze=False
    )
    for ax, key in zip(axes[0], keys, strict=False):
        xs = [r[key] for r in done]
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
        if numeric:
            ax.scatter(xs, [r[metric] for r in done])
            if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")  # learning rates and the like span decades
        else:
            labels = [str(x) for x in xs]
            ax.scatter(labels, [r[metric] for r in done])
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
