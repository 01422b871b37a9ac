"""Decode text with a trained model: `python -m launch.decode --workdir=W < in.txt > out.txt`.

One output line per input line: the translation (encoder-decoder) or the
continuation after the prompt (decoder). Beam search with --beam_size > 1
(AIAYN: 4 and --alpha=0.6), else sampling (--temperature 0 = greedy, the
default; --top_k, --top_p). Repeated phrases: --no_repeat_ngram_size=N,
--repetition_penalty=P. An encoder-decoder writes up to --max_len_a * source
tokens + --max_len_b (AIAYN: input length + 50) unless --max_decode_len is set. Empty lines fail unless --empty=blank (empty
output line). Over-long inputs are truncated with a warning on stderr.
"""

from __future__ import annotations

import os
import sys
import warnings

from absl import flags

from launch.cli import run_main
from llm.errors import ConfigError, InputFileError, InputFileNotFoundError

_WORKDIR = flags.DEFINE_string(
    "workdir", "", "Training workdir (or its checkpoints/ or checkpoints/<step>/ dir)."
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_AVERAGE_LAST = flags.DEFINE_integer(
    "average_last", 1, "Average the params of the last N checkpoints up to --step (AIAYN: 5/20)."
)
_INPUT = flags.DEFINE_string("input", "-", "Input text file, one example per line; '-' = stdin.")
_OUTPUT = flags.DEFINE_string("output", "-", "Output file, one line per input line; '-' = stdout.")
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 1, "Beam width; 1 = greedy or sampling.")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "GNMT length penalty exponent for beam search.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.0, "Sampling temperature; 0 = greedy.")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample from the k most likely tokens; 0 = off.")
_TOP_P = flags.DEFINE_float("top_p", None, "Nucleus sampling mass in (0, 1]; unset = off.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_MAX_DECODE_LEN = flags.DEFINE_integer(
    "max_decode_len",
    0,
    "New tokens per line; 0 = --max_len_a * source tokens + --max_len_b (encoder-decoder) "
    "or up to the model's max_len (decoder).",
)
_MAX_LEN_A = flags.DEFINE_float(
    "max_len_a", 1.0, "Encoder-decoder output limit per source token (AIAYN: input length + 50)."
)
_MAX_LEN_B = flags.DEFINE_integer("max_len_b", 50, "Output limit added to a * source length.")
_NO_REPEAT_NGRAM = flags.DEFINE_integer(
    "no_repeat_ngram_size", 0, "Never repeat an n-gram of this size in an output; 0 = off."
)
_REPETITION_PENALTY = flags.DEFINE_float(
    "repetition_penalty", 1.0, "CTRL penalty on tokens already output; 1 = off (CTRL: 1.2)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Lines decoded together.")
_EMPTY = flags.DEFINE_enum(
    "empty", "error", ["error", "blank"], "Empty input line: fail, or write an empty line."
)
_MESH_DATA = flags.DEFINE_integer(
    "mesh_data", None, "Override config.mesh.data (e.g. -1 with fsdp=tensor=1 on one device)."
)


def main(argv: list[str]) -> None:
    """Restores the run, decodes every input line, writes one output line each."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}; input text goes in --input or stdin.")
    if not _WORKDIR.value:
        raise ConfigError("--workdir is required: the training run to decode with.")
    # Checked before restoring the checkpoint, which takes a while.
    if _INPUT.value != "-" and not os.path.isfile(_INPUT.value):
        raise InputFileNotFoundError(f"--input={_INPUT.value!r} does not exist.")
    from llm.data import get_tokenizer
    from llm.decode.text import DecodeOptions, decode_texts
    from llm.train.console import quiet_library_logs
    from llm.train.restore import restore_params

    quiet_library_logs()
    overrides = {"data": _MESH_DATA.value} if _MESH_DATA.value is not None else None
    run = restore_params(
        _WORKDIR.value,
        step=_STEP.value,
        average_last=_AVERAGE_LAST.value,
        mesh_overrides=overrides,
    )
    options = DecodeOptions(
        max_decode_len=_MAX_DECODE_LEN.value,
        max_len_a=_MAX_LEN_A.value,
        max_len_b=_MAX_LEN_B.value,
        no_repeat_ngram_size=_NO_REPEAT_NGRAM.value,
        repetition_penalty=_REPETITION_PENALTY.value,
        beam_size=_BEAM_SIZE.value,
        alpha=_ALPHA.value,
        temperature=_TEMPERATURE.value,
        top_k=_TOP_K.value,
        top_p=_TOP_P.value,
        seed=_SEED.value,
        batch_size=_BATCH_SIZE.value,
    )
    if _INPUT.value == "-":
        text = sys.stdin.read()
    else:
        with open(_INPUT.value, encoding="utf-8") as f:
            text = f.read()
    lines = text.splitlines()
    if not lines:
        raise InputFileError(f"No input lines in {_INPUT.value!r}.")
    outputs = decode_texts(
        run, get_tokenizer(run.config.data), lines, options=options, empty=_EMPTY.value
    )
    # A newline inside a generated text would break the one-line-per-input contract.
    body = "".join(o.replace("\r", " ").replace("\n", " ") + "\n" for o in outputs)
    if _OUTPUT.value == "-":
        sys.stdout.write(body)
    else:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(body)
    steps = ",".join(str(s) for s in run.steps)
    print(f"decoded {len(lines)} lines with step(s) {steps} of {run.workdir}", file=sys.stderr)


def _warn_to_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run() -> None:
    """Entry point: bad input or a missing checkpoint is one 'error:' line and exit status 2."""
    warnings.showwarning = _warn_to_stderr
    run_main(main)


if __name__ == "__main__":
    run()
