"""Every notebook in notebooks/ runs top to bottom (its cells assert their own results).

The code cells are executed in order in one namespace, in a subprocess started from the
repository root, instead of through a Jupyter kernel: the notebooks use no magics, and
this keeps jupyter/ipykernel out of the test dependencies. The outputs stored in the
.ipynb come from a run in Jupyter (nbclient); the test reads but never rewrites them.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"

_RUNNER = """
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
namespace = {"__name__": "__main__"}
for i, cell in enumerate(cells):
    if cell["cell_type"] == "code":
        print(f"--- cell {i}", flush=True)
        exec(compile("".join(cell["source"]), f"{sys.argv[1]}:cell{i}", "exec"), namespace)
"""


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .ipynb"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook):
    json.loads(notebook.read_text())  # valid notebook JSON
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(notebook)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    if notebook == QUICKSTART:
        # Training shows launch.train's progress lines, not only the final metrics.
        assert "step 20/120 loss" in result.stderr and "step 120/120 loss" in result.stderr


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _output_text(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def test_quickstart_installs_itself_and_stores_a_run():
    cells = json.loads(QUICKSTART.read_text())["cells"]
    assert "jupyter lab notebooks/quickstart.ipynb" in _text(cells[0])
    code = [c for c in cells if c["cell_type"] == "code"]
    # The install cell does nothing where the package imports (as in this test's venv).
    assert 'if importlib.util.find_spec("llm") is None:' in _text(code[0])
    assert '"pip", "install", "-q", "-e", str(ROOT)' in _text(code[0])
    # No magics or shell lines: the test runs the cells as plain Python.
    assert not any(line.lstrip().startswith(("%", "!")) for c in code for line in c["source"])
    # Outputs of one top-to-bottom run: the training progress and the plot, inline.
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    train = next(c for c in code if "train_and_evaluate(config" in _text(c))
    log = _output_text(train)
    assert "Building tiny_grammar (generated, 54,000 examples)" in log
    assert [f"step {s}/120 loss" in log for s in range(20, 121, 20)] == [True] * 6
    assert "Downloading and preparing" not in log
    outputs = [o for c in code for o in c["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs)
