"""launch.plot: several runs' curves overlaid in one PNG."""

import json
import subprocess
import sys

import pytest

from llm.errors import InputFileNotFoundError
from llm.train.curves import panel_keys, plot_runs
from tests.train.test_aot import ROOT


def _run(path, scale):
    path.mkdir()
    rows = [
        {"step": s, "loss": scale / s, "learning_rate": 1e-3 * min(1, s / 3)} for s in (1, 2, 3, 4)
    ]
    rows += [{"step": 4, "eval/loss": scale / 5, "eval/accuracy": 0.5, "eval/bleu": 12.0}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_panels_and_png_of_two_runs(tmp_path):
    a, b = _run(tmp_path / "a", 4.0), _run(tmp_path / "b", 2.0)
    from llm.train.metrics import read_metrics

    keys = panel_keys({"a": read_metrics(a), "b": read_metrics(b)})
    assert keys == ["loss", "learning_rate", "eval/loss", "eval/accuracy", "eval/bleu"]
    out = plot_runs([a, b], tmp_path / "curves.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(InputFileNotFoundError, match="has no metrics.jsonl"):
        plot_runs([tmp_path / "nothing"], tmp_path / "x.png")


def test_cli_prints_the_png_it_wrote(tmp_path):
    a, b = _run(tmp_path / "a", 4.0), _run(tmp_path / "b", 2.0)
    result = subprocess.run(
        [sys.executable, "-m", "launch.plot", str(a), str(b)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == f"Wrote {a}/curves.png" and (a / "curves.png").is_file()
    empty = subprocess.run(
        [sys.executable, "-m", "launch.plot"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert empty.returncode == 2 and "Give one or more workdirs" in empty.stderr
