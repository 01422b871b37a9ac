"""Every notebook in notebooks/ runs top to bottom (its cells assert their own results).

The code cells are executed in order in one namespace, in a subprocess started from the
repository root, instead of through a Jupyter kernel: the notebooks use no magics, and
this keeps jupyter/ipykernel out of the test dependencies. The outputs stored in the
.ipynb come from a run in Jupyter (nbclient); the test reads but never rewrites them.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
ATTENTION = ROOT / "notebooks" / "attention.ipynb"
TRANSLATION = ROOT / "notebooks" / "translation.ipynb"

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
    # One CPU device, as in the Jupyter kernel whose outputs the .ipynb stores (not the 8 of
    # tests/conftest.py): the same numbers, and 10-15% faster on 2 cores (2026-12-02).
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(notebook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    if notebook == QUICKSTART:
        # Training shows launch.train's progress lines, not only the final metrics.
        assert "step 20/120 loss" in result.stderr and "step 120/120 loss" in result.stderr
    if notebook == TRANSLATION:
        # BLEU is scored inside the training loop at every eval, not only afterwards.
        assert "step 80 eval" in result.stderr and "eval/bleu=" in result.stderr


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


def _stored_run(path: pathlib.Path) -> tuple[list[dict], str]:
    """The code cells of a notebook whose outputs are one top-to-bottom run, and their text."""
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert not any(line.lstrip().startswith(("%", "!")) for c in code for line in c["source"])
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c["outputs"]]
    assert not any(o["output_type"] == "error" for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
    return code, "".join(_output_text(c) for c in code)


def test_attention_notebook_contrasts_full_and_windowed_attention():
    code, log = _stored_run(ATTENTION)
    source = "".join(_text(c) for c in code)
    assert '"model.attention_window": window' in source and 'mutable=["intermediates"]' in source
    assert "full   attention_window=0: key accuracy 1.000" in log
    assert "window attention_window=4: key accuracy 0.0" in log  # chance is 0.1
    assert "of the `=` queries' attention on the key" in log


def test_translation_notebook_translates_the_cat_sentence():
    code, log = _stored_run(TRANSLATION)
    source = "".join(_text(c) for c in code)
    assert '"launch.prepare", "--kind=parallel"' in source
    assert "average_last=average_last" in source and "eval_generation_examples" in source
    assert "The cat sat on the mat." in log
    assert "  greedy: Die Katze saß auf der Matte.\n  beam 4: Die Katze saß auf der Matte." in log
    assert "average of 3 steps [200, 220, 240]: BLEU" in log
    assert "BLEU by step: {80:" in log
