"""docs/reproductions.md stays current: its experiments exist and its counts match the code.

Every `experiments/X.py:ARG` the report names must be a registered experiment and arg
(`llm.config.describe_experiments`, what `launch.list` prints). Every parameter count
("params" columns: ours at the paper's vocabulary, the configured count, the paper's
and the difference), every FLOPs-per-token pair (6N and `llm/flops.py`'s count) and
every GPT-3 PF-days figure is recomputed here from the config and an abstract init
(`llm.memory.param_layout`: jax.eval_shape, nothing allocated) and must agree within
the rounding the report prints.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import re

import numpy as np
import pytest

from llm import flops
from llm.config import describe_experiments, load_config
from llm.memory import param_layout
from llm.models import as_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "reproductions.md"
PF_DAY = 8.64e19
EXPERIMENT = re.compile(r"`experiments/(\w+)\.py:([\w.]*)`")
UNIT = {"M": 1e6, "B": 1e9}
NUMBER = r"(\d[\d,]*(?:\.\d+)?)([MB])"
PARAMS = re.compile(
    rf"^{NUMBER} \(configured: {NUMBER}\)(?: / {NUMBER}: ([+-]\d+\.\d)%)?(?:$|[ ;,])"
)
FLOPS = re.compile(r"^(\d\.\d+e\d+) / (\d\.\d+e\d+)$")


def tables(text: str) -> list[list[dict[str, str]]]:
    """Each Markdown table of `text` as rows of {header: cell}."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=True)))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out


TEXT = REPORT.read_text()
TABLES = tables(TEXT)


def experiment_rows() -> list[tuple[str, str, dict[str, str]]]:
    """(experiment file stem, arg, row) of every table row whose first cell names one."""
    out = []
    for rows in TABLES:
        for row in rows:
            found = EXPERIMENT.fullmatch(next(iter(row.values())))
            if found:
                out.append((found.group(1), found.group(2), row))
    return out


ROWS = experiment_rows()


def column(row: dict[str, str], word: str) -> str | None:
    return next((v for k, v in row.items() if k.startswith(word)), None)


@functools.cache
def computed(name: str, arg: str) -> dict[str, float]:
    """Parameter counts, FLOPs per token and training tokens of experiments/name.py:arg."""
    config = load_config(f"experiments/{name}.py:{arg}")
    cfg = as_config(config.model)
    # Scanned layers hold the same parameters, stacked, and trace once instead of per layer.
    layout = param_layout(dataclasses.replace(cfg, scan_layers=True))
    configured = sum(int(np.prod(leaf.shape)) for leaf in layout)
    # The paper's vocabulary: the tokenizer's size, before padding to a multiple of 128.
    vocab = config.data.vocab_size if config.data.tokenizer == "sentencepiece" else None
    vocab = vocab or cfg.vocab_size
    ours = sum(
        int(
            np.prod(
                [vocab if n == "vocab" else s for s, n in zip(leaf.shape, leaf.names, strict=True)]
            )
        )
        for leaf in layout
    )
    if cfg.family == "encoder_decoder":
        seq_len, target_len = config.data.inputs_len, config.data.targets_len
        per_token = flops.train_flops_per_token(cfg, seq_len, target_len)
    else:
        seq_len = target_len = config.data.seq_len
        per_token = flops.train_flops_per_token(cfg, seq_len)
    tokens = config.train.steps * config.train.batch_size * target_len
    return dict(ours=ours, configured=configured, flops=per_token, tokens=tokens)


def parse_count(number: str, unit: str) -> tuple[float, float]:
    """(value, half of the last printed digit) of '124.44' 'M'."""
    number = number.replace(",", "")
    decimals = len(number.partition(".")[2])
    return float(number) * UNIT[unit], 0.5 * 10.0**-decimals * UNIT[unit]


@functools.cache
def registered() -> dict[str, tuple[str, ...] | str]:
    """Experiment file stem -> the args it takes, as launch.list reports them."""
    return {pathlib.Path(e.path).stem: e.args for e in describe_experiments(ROOT / "experiments")}


def test_the_report_has_a_row_per_paper_config():
    named = {(name, arg) for name, arg, _ in ROWS}
    for name in ("aiayn", "bert", "gpt2", "gpt3", "llama"):
        for arg in registered()[name]:
            assert (name, arg) in named, f"docs/reproductions.md has no row for {name}.py:{arg}"
    for name in ("summarization", "bert_glue", "bert_squad"):
        assert f"experiments/{name}.py" in TEXT, f"docs/reproductions.md has no {name} row"


def test_every_named_experiment_is_registered():
    for name, arg in set(EXPERIMENT.findall(TEXT)):
        assert name in registered(), f"experiments/{name}.py is not a registered experiment"
        args = registered()[name]
        if not isinstance(args, str):
            assert arg in args, f"experiments/{name}.py takes {args}, not {arg!r}"


@pytest.mark.parametrize(
    "name, arg, row",
    [r for r in ROWS if column(r[2], "params")],
    ids=[f"{n}:{a}" for n, a, row in ROWS if column(row, "params")],
)
def test_parameter_counts_and_flops_match_the_code(name, arg, row):
    want = computed(name, arg)
    cell = column(row, "params")
    if re.fullmatch(r"[\d.,]+[MB]", cell):  # the proxies' table: one count
        value, tol = parse_count(cell[:-1], cell[-1])
        assert abs(value - want["configured"]) <= tol, (cell, want["configured"])
        return
    found = PARAMS.match(cell)
    assert found, f"{name}:{arg}: params cell {cell!r} is not 'X (configured: Y) / P: +D%'"
    ours, tol = parse_count(*found.group(1, 2))
    assert abs(ours - want["ours"]) <= tol, f"{name}:{arg}: {cell!r} vs {want['ours']:,}"
    configured, tol = parse_count(*found.group(3, 4))
    assert abs(configured - want["configured"]) <= tol, (cell, want["configured"])
    if found.group(5):
        paper, _ = parse_count(*found.group(5, 6))
        diff = 100 * (want["ours"] / paper - 1)
        assert abs(diff - float(found.group(7))) <= 0.051, f"{name}:{arg}: {cell!r} vs {diff:+.2f}%"
    flops_cell = column(row, "FLOPs/token")
    parsed = FLOPS.match(flops_cell or "")
    assert parsed, f"{name}:{arg}: FLOPs cell {flops_cell!r} is not '6N / full'"
    six_n, full = (float(x) for x in parsed.groups())
    assert math.isclose(six_n, 6 * want["configured"], rel_tol=6e-3), (
        flops_cell,
        6 * want["configured"],
    )
    assert math.isclose(full, want["flops"], rel_tol=6e-3), (flops_cell, want["flops"])


def test_gpt3_training_compute_matches_the_code():
    rows = [(n, a, r) for n, a, r in ROWS if column(r, "ours, 6N")]
    assert len(rows) == 8
    for name, arg, row in rows:
        want = computed(name, arg)
        six_n = 6 * want["configured"] * want["tokens"] / PF_DAY
        full = want["flops"] * want["tokens"] / PF_DAY
        for key, value in (("ours, 6N", six_n), ("ours, with attention", full)):
            stated = float(row[key].replace(",", ""))
            assert math.isclose(stated, value, rel_tol=6e-3), (name, arg, key, stated, value)
        # The paper's Table D.1 is 6ND: our 6N count reproduces it within 0.5%.
        paper = float(column(row, "paper PF-days").replace(",", ""))
        assert math.isclose(six_n, paper, rel_tol=5e-3), (arg, six_n, paper)
