"""Evaluate a checkpoint: `python -m launch.eval --workdir=W [--step=S] [--split=validation]`.

Prints and appends to W/metrics.jsonl and W/tensorboard (under the checkpoint's
step) the loss, perplexity and accuracy of the split (MLM accuracy for BERT),
and for seq2seq runs BLEU (sacrebleu, signature printed) or ROUGE of
beam-search outputs. --average_last=N scores the average of the last N
checkpoints (the row then also has eval/averaged_checkpoints=N). Scores of the
config's eval split are keyed eval/... as training logs them; any other split's
eval_<split>/... (--split=test: eval_test/loss, eval_test/bleu).
"""

from __future__ import annotations

from absl import flags

from launch.cli import run_main
from llm.errors import ConfigError

_WORKDIR = flags.DEFINE_string("workdir", "", "Training workdir to evaluate.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_AVERAGE_LAST = flags.DEFINE_integer(
    "average_last", 1, "Average the params of the last N checkpoints up to --step."
)
_SPLIT = flags.DEFINE_string("split", "", "Split to evaluate (default: config.data.eval_split).")
_EVAL_STEPS = flags.DEFINE_integer(
    "eval_steps", None, "Batches for loss/perplexity; 0 = whole split (default: the config's)."
)
_GENERATE = flags.DEFINE_bool("generate", True, "Also BLEU/ROUGE of decoded outputs (seq2seq).")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", 1000, "Examples decoded for BLEU/ROUGE; 0 = the whole split."
)
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 4, "Beam width for BLEU/ROUGE (1 = greedy).")
_ALPHA = flags.DEFINE_float("alpha", 0.6, "GNMT length penalty exponent.")
_MAX_DECODE_LEN = flags.DEFINE_integer(
    "max_decode_len", 0, "New tokens per example; 0 = config.data.targets_len."
)
_WRITE = flags.DEFINE_bool("write", True, "Append the scores to metrics.jsonl and TensorBoard.")


def main(argv: list[str]) -> None:
    """Restores params, evaluates, prints and records the scores."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    if not _WORKDIR.value:
        raise ConfigError("--workdir is required: the training run to evaluate.")
    from llm import data as data_lib
    from llm.evals.generation import generation_eval
    from llm.evals.writer import append_metrics
    from llm.train.console import quiet_library_logs
    from llm.train.evaluate import Evaluator, eval_prefix, with_prefix
    from llm.train.program import build_train_program
    from llm.train.restore import restore_params

    quiet_library_logs()
    run = restore_params(_WORKDIR.value, step=_STEP.value, average_last=_AVERAGE_LAST.value)
    config = run.config
    split = _SPLIT.value or config.data.eval_split
    # Keyed before the config takes the split: the data pipeline reads it from there.
    prefix = eval_prefix(config, split)
    config.data.eval_split = split
    if _EVAL_STEPS.value is not None:
        config.train.eval_steps = _EVAL_STEPS.value
    data_lib.ensure_dataset(config.data)
    tokenizer = data_lib.get_tokenizer(config.data)
    scores = with_prefix(
        Evaluator(config, build_train_program(config)).evaluate(run.params), prefix
    )
    signature = ""
    if _GENERATE.value and config.data.task == "seq2seq":
        result = generation_eval(
            run,
            tokenizer,
            split=split,
            max_examples=_MAX_EXAMPLES.value,
            beam_size=_BEAM_SIZE.value,
            alpha=_ALPHA.value,
            max_decode_len=_MAX_DECODE_LEN.value,
        )
        scores.update(with_prefix(result.scores, prefix))
        signature = result.bleu_signature
        examples = zip(result.sources, result.hypotheses, result.references, strict=True)
        for src, hyp, ref in list(examples)[:3]:
            print(f"  {src!r} -> {hyp!r} (reference {ref!r})")
    if len(run.steps) > 1:
        scores[f"{prefix}/averaged_checkpoints"] = float(len(run.steps))
    steps = ",".join(str(s) for s in run.steps)
    print(f"{run.workdir} step {steps} split {split!r}:")
    for key, value in sorted(scores.items()):
        print(f"  {key} = {value:.4f}")
    if signature:
        print(f"  sacrebleu signature: {signature}")
    if _WRITE.value:
        append_metrics(run.workdir, run.step, scores)
        print(f"  appended to {run.workdir / 'metrics.jsonl'} at step {run.step}")


def run() -> None:
    """Entry point: a missing checkpoint or bad flag is one 'error:' line and exit status 2."""
    run_main(main)


if __name__ == "__main__":
    run()
