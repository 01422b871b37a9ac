"""Evaluate a checkpoint: `python -m launch.eval --workdir=W [--step=S] [--split=validation]`.

Prints and appends to W/metrics.jsonl and W/tensorboard (under the checkpoint's
step) the loss, perplexity and accuracy of the split (MLM accuracy for BERT),
and for seq2seq runs BLEU (sacrebleu, signature printed) or ROUGE of
beam-search outputs; --baseline=lead3 adds the ROUGE of the sources' first three
sentences on the same examples (eval/lead3_rougeL ...). BERT fine-tuning runs add
their task's metrics (GLUE: eval/accuracy, eval/f1, eval/matthews; SQuAD:
eval/exact_match, eval/f1). --average_last=N scores the average of the last N
checkpoints (the row then also has eval/averaged_checkpoints=N). Scores of the
config's eval split are keyed eval/... as training logs them; any other split's
eval_<split>/... (--split=test: eval_test/loss, eval_test/bleu).
BLEU/ROUGE decode the whole split (--max_examples=N: the first N; the count is
printed) with the experiment's beam and alpha (train.eval_beam_size/eval_alpha;
AIAYN's beam 4, alpha 0.6 by default; --beam_size, --alpha), up to input length + 50
tokens (--max_len_a, --max_len_b), no n-gram blocking (--no_repeat_ngram_size,
--repetition_penalty). BLEU's tokenizer follows the target language (zh,
ja-mecab, ko-mecab, else 13a); --bleu_tokenize overrides it. Decoders also score
the run's log-likelihood multiple-choice tasks (train.downstream_tasks) or --downstream's,
keyed downstream/<task>/acc and acc_norm as training logs them.
"""

from __future__ import annotations

import dataclasses

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
_GENERATE = flags.DEFINE_bool(
    "generate",
    True,
    "Also BLEU/ROUGE of decoded outputs (seq2seq), or the fine-tuning task's metrics "
    "(classification: accuracy/F1/Matthews; span QA: exact match/F1).",
)
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", 0, "Examples decoded for BLEU/ROUGE; 0 = the whole split (the default)."
)
_BEAM_SIZE = flags.DEFINE_integer(
    "beam_size",
    None,
    "Beam width for BLEU/ROUGE (1 = greedy); default: the config's train.eval_beam_size (4).",
)
_ALPHA = flags.DEFINE_float(
    "alpha", None, "GNMT length penalty exponent; default: the config's train.eval_alpha (0.6)."
)
_MAX_DECODE_LEN = flags.DEFINE_integer(
    "max_decode_len", 0, "New tokens per example; 0 = --max_len_a * source tokens + --max_len_b."
)
_MAX_LEN_A = flags.DEFINE_float(
    "max_len_a", 1.0, "Output limit per source token (AIAYN: input length + 50)."
)
_MAX_LEN_B = flags.DEFINE_integer("max_len_b", 50, "Output limit added to a * source length.")
_NO_REPEAT_NGRAM = flags.DEFINE_integer(
    "no_repeat_ngram_size", 0, "Never repeat an n-gram of this size in an output; 0 = off."
)
_REPETITION_PENALTY = flags.DEFINE_float(
    "repetition_penalty", 1.0, "CTRL penalty on tokens already output; 1 = off (CTRL: 1.2)."
)
_BLEU_TOKENIZE = flags.DEFINE_string(
    "bleu_tokenize",
    "",
    "sacrebleu tokenizer ('' = by target language: zh, ja-mecab, ko-mecab, else 13a).",
)
_DOWNSTREAM = flags.DEFINE_string(
    "downstream",
    None,
    "Decoders: log-likelihood multiple-choice tasks to score, comma-separated shipped names "
    "('tiny_grammar_next_word') or JSONL files of {context, choices, gold} rows, keyed "
    "downstream/<task>/acc and acc_norm; default: the run's train.downstream_tasks when "
    "train.downstream_every > 0; '' = none.",
)
_WRITE = flags.DEFINE_bool("write", True, "Append the scores to metrics.jsonl and TensorBoard.")
_BASELINE = flags.DEFINE_string(
    "baseline",
    "",
    "Summarization runs: also ROUGE of 'lead3' (the first 3 sentences of each source; "
    "leadN for N) on the same examples, keyed <prefix>/lead3_rouge1 ...; '' = none.",
)


def main(argv: list[str]) -> None:
    """Restores params, evaluates, prints and records the scores."""
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    if not _WORKDIR.value:
        raise ConfigError("--workdir is required: the training run to evaluate.")
    from llm import data as data_lib
    from llm.decode.text import DecodeOptions
    from llm.evals.generation import generation_eval
    from llm.evals.lead import lead_eval, parse_baseline
    from llm.evals.writer import append_metrics
    from llm.train.console import quiet_library_logs
    from llm.train.evaluate import Evaluator, eval_prefix, with_prefix
    from llm.train.program import build_train_program
    from llm.train.restore import restore_params

    quiet_library_logs()
    lead_n = parse_baseline(_BASELINE.value)  # a bad value fails before the restore
    options = DecodeOptions(
        max_decode_len=_MAX_DECODE_LEN.value,
        max_len_a=_MAX_LEN_A.value,
        max_len_b=_MAX_LEN_B.value,
        beam_size=_BEAM_SIZE.value or 4,
        alpha=0.6 if _ALPHA.value is None else _ALPHA.value,
        no_repeat_ngram_size=_NO_REPEAT_NGRAM.value,
        repetition_penalty=_REPETITION_PENALTY.value,
        batch_size=64,
    )
    options.check()  # before restoring, which takes a while
    if _BLEU_TOKENIZE.value:
        from llm.evals.bleu import check_tokenize

        check_tokenize(_BLEU_TOKENIZE.value)
    run = restore_params(_WORKDIR.value, step=_STEP.value, average_last=_AVERAGE_LAST.value)
    config = run.config
    # The experiment's decoding (summarization: beam 5, alpha 0.95) unless a flag says.
    options = dataclasses.replace(
        options,
        beam_size=_BEAM_SIZE.value or config.train.get("eval_beam_size", 4),
        alpha=config.train.get("eval_alpha", 0.6) if _ALPHA.value is None else _ALPHA.value,
    )
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
    if _GENERATE.value and config.data.task in ("classification", "span_qa"):
        from llm.evals.finetune import finetune_eval

        # Accuracy/F1/Matthews (GLUE) or exact match/F1 (SQuAD) over the whole split.
        result = finetune_eval(run, tokenizer, split=split, max_examples=_MAX_EXAMPLES.value)
        scores.update(with_prefix(result, prefix))
    if _GENERATE.value and config.data.task == "seq2seq":
        result = generation_eval(
            run,
            tokenizer,
            split=split,
            max_examples=_MAX_EXAMPLES.value,
            decode_options=options,
            bleu_tokenize_override=_BLEU_TOKENIZE.value,
        )
        scores.update(with_prefix(result.scores, prefix))
        signature = result.bleu_signature
        scored, total = len(result.sources), result.split_examples
        hint = " (--max_examples=0 scores all)" if scored < total else ""
        print(f"  scored {scored} of {total} examples of {split!r}{hint}")
        examples = zip(result.sources, result.hypotheses, result.references, strict=True)
        for src, hyp, ref in list(examples)[:3]:
            print(f"  {src!r} -> {hyp!r} (reference {ref!r})")
    downstream = _DOWNSTREAM.value
    if downstream is None and config.train.get("downstream_every", 0):
        downstream = config.train.downstream_tasks
    if downstream:
        from llm.evals.multiple_choice import DownstreamEvals

        tasks = DownstreamEvals(
            downstream,
            tokenizer,
            max_examples=_MAX_EXAMPLES.value or config.train.get("downstream_examples", 500),
            batch_rows=config.train.get("downstream_batch", 64),
        )
        scores.update(tasks.evaluate(run))
    if lead_n:
        lead = lead_eval(config.data, split, lead_n, max_examples=_MAX_EXAMPLES.value)
        scores.update(with_prefix(lead, prefix))
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
