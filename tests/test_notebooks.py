"""Every notebook in notebooks/ runs top to bottom (its cells assert their own results).

The code cells are executed in order in one namespace, in a subprocess started from the
repository root, instead of through a Jupyter kernel: the notebooks use no magics, and
this keeps jupyter/ipykernel out of the test dependencies.
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

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
