"""launch.decode and llm.train.restore on a tiny decoder trained here (a few steps, 8 CPU devices)."""

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from llm.data import get_tokenizer
from llm.decode import average_params
from llm.decode.text import DecodeOptions, decode_texts
from llm.train.loop import train_and_evaluate
from llm.train.restore import CheckpointNotFoundError, restore_params
from tests.train.tiny import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    """A tiny decoder (max_len 32) trained 4 steps, checkpoints at 2 and 4."""
    base = tmp_path_factory.mktemp("decode_cli")
    config = tiny_config(str(base / "data"), steps=4, checkpoint_every=2, keep_checkpoints=3)
    train_and_evaluate(config, base / "run")
    return base / "run"


def run_cli(module: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """python -m <module> args, from the repo root, with this process's device flags."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=300,
    )


def decode(run, lines, **options):
    """decode_texts with the restored run's model on its mesh."""
    return decode_texts(
        run, get_tokenizer(run.config.data), lines, options=DecodeOptions(**options)
    )


def test_restore_latest_and_given_step(workdir):
    assert restore_params(workdir).steps == [4]
    assert restore_params(workdir / "checkpoints" / "2").steps == [2]
    with pytest.raises(CheckpointNotFoundError, match="step 3 .* has steps \\[2, 4\\]"):
        restore_params(workdir, step=3)


def test_average_last_is_the_mean_of_the_checkpoints(workdir):
    averaged = restore_params(workdir, average_last=2)
    assert averaged.steps == [2, 4]
    expected = average_params([restore_params(workdir, step=s).params for s in (2, 4)])
    for got, want in zip(jax.tree.leaves(averaged.params), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
    with pytest.raises(CheckpointNotFoundError, match="needs 3"):
        restore_params(workdir, average_last=3)


def test_decode_texts_one_output_per_line_and_truncates_with_warning(workdir):
    run = restore_params(workdir)
    lines = ["the dog", "a", "x" * 100]
    with pytest.warns(UserWarning, match="input line 3: 101 prompt tokens truncated to 24"):
        out = decode(run, lines, max_decode_len=8, batch_size=2)
    assert len(out) == 3 and all(isinstance(o, str) for o in out)
    # Greedy is deterministic and independent of batching.
    assert decode(run, lines[:1], max_decode_len=8) == out[:1]
    beams = decode(run, lines[:2], max_decode_len=8, beam_size=2)
    assert len(beams) == 2


def test_empty_line_is_an_error_unless_blank(workdir):
    run = restore_params(workdir)
    with pytest.raises(ValueError, match="input line 2 is empty"):
        decode(run, ["the", "  "], max_decode_len=4)
    out = decode_texts(
        run,
        get_tokenizer(run.config.data),
        ["the", ""],
        options=DecodeOptions(max_decode_len=4),
        empty="blank",
    )
    assert len(out) == 2 and out[1] == ""


def test_bad_options_fail_early():
    with pytest.raises(ValueError, match="beam search"):
        DecodeOptions(beam_size=2, temperature=0.7).check()
    with pytest.raises(ValueError, match="beam_size"):
        DecodeOptions(beam_size=0).check()


# Subprocesses start JAX and compile again: over the default suite's budget.
@pytest.mark.slow
def test_cli_writes_one_line_per_input_and_fails_clearly(workdir, tmp_path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("the dog\na cat\nthe\n")
    out = tmp_path / "out.txt"
    done = run_cli(
        "launch.decode",
        f"--workdir={workdir}",
        f"--input={inputs}",
        f"--output={out}",
        "--max_decode_len=6",
        "--beam_size=2",
    )
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 3
    assert "decoded 3 lines with step(s) 4" in done.stderr

    missing = run_cli("launch.decode", f"--workdir={tmp_path / 'nope'}", stdin="x\n")
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "does not exist" in missing.stderr


def test_inputs_of_many_lengths_share_one_compiled_loop(workdir):
    run = restore_params(workdir)
    compiles = []

    def on_compile(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(on_compile)
    try:
        first = decode(run, ["ab"], max_decode_len=6)
        after_first = len(compiles)
        # Prompts of 4-7 tokens with BOS pad to one width bucket (8): no new program.
        others = [decode(run, [text], max_decode_len=6) for text in ("abc", "abcd", "abcdef")]
        assert len(compiles) == after_first >= 1
        # A longer prompt falls into the next bucket (16): one more program.
        decode(run, ["abcdefghijk"], max_decode_len=6)
        assert len(compiles) == after_first + 1
    finally:
        jax.monitoring.unregister_event_duration_listener(on_compile)
    assert len(first) == 1 and all(len(o) == 1 for o in others)
