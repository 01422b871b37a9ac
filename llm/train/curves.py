"""Training curves of one or more runs, overlaid in one PNG (matplotlib, no display needed).

Reads each WORKDIR/metrics.jsonl: the train loss, the learning rate and every `eval/...`
(and `eval_<split>/...`) scalar, one panel each, with a line per run labelled by its workdir's name.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from absl import logging

from llm.errors import InputFileNotFoundError
from llm.train.metrics import read_metrics

# Panels drawn first, in this order, when a run logged them; other eval scalars follow.
_FIRST = ("loss", "learning_rate", "eval/loss", "eval/perplexity", "eval/accuracy")
# Per-step bookkeeping that makes no useful curve.
_SKIP = {"step", "nonfinite_total", "tokens_per_sec", "grad_norm", "mfu"}


def _series(rows: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if key in r]
    return [s for s, _ in points], [v for _, v in points]


def panel_keys(runs: dict[str, list[dict]]) -> list[str]:
    """The scalars to draw: the usual ones first, then every other eval scalar, sorted."""
    present = {k for rows in runs.values() for r in rows for k in r}
    first = [k for k in _FIRST if k in present]
    # eval/ is the config's eval split; eval_<split>/ others that launch.eval scored.
    rest = sorted(k for k in present if k.startswith(("eval/", "eval_")) and k not in first)
    return first + [k for k in rest if k not in _SKIP]


def plot_runs(workdirs: Sequence[str | pathlib.Path], output: str | pathlib.Path) -> pathlib.Path:
    """Draws every run's curves into `output` (a PNG); returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: clusters and CI have no display
    import matplotlib.pyplot as plt

    runs: dict[str, list[dict]] = {}
    for workdir in workdirs:
        path = pathlib.Path(workdir)
        if not (path / "metrics.jsonl").is_file():
            raise InputFileNotFoundError(
                f"{path} has no metrics.jsonl; pass training workdirs (launch.train --workdir)."
            )
        label = path.resolve().name
        while label in runs:  # two workdirs with one name: keep both, told apart
            label += "'"
        runs[label] = read_metrics(path)
    keys = panel_keys(runs)
    cols = min(3, len(keys)) or 1
    rows = -(-len(keys) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, metrics in runs.items():
            steps, values = _series(metrics, key)
            if steps:
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=label)
        ax.set_title(key)
        ax.set_xlabel("step")
        if key in ("loss", "eval/loss", "eval/perplexity") and _positive(runs, key):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def _positive(runs: dict[str, list[dict]], key: str) -> bool:
    return all(v > 0 for rows in runs.values() for v in _series(rows, key)[1])


def write_curves(workdir: str | pathlib.Path) -> pathlib.Path | None:
    """WORKDIR/curves.png of one run, or None with a warning: a plot never fails a run."""
    output = pathlib.Path(workdir) / "curves.png"
    try:
        return plot_runs([workdir], output)
    except Exception as e:  # matplotlib missing or broken, no metrics, a full disk
        logging.warning("Could not draw %s: %s: %s", output, type(e).__name__, e)
        return None
