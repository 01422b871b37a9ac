"""Fields that must agree across config groups, checked once when a config loads.

Each group validates its own values where it is used (llm.models.config, llm.data.config,
llm.train.loop); what only a pair of fields can get wrong, often from two groups, is
checked here, naming both fields and the fix, before anything is built.
"""

from __future__ import annotations

import importlib.util

import ml_collections

from llm.data.config import sequence_lengths
from llm.data.tokenizers import ByteTokenizer
from llm.errors import ConfigError
from llm.models.config import ModelConfig
from llm.train.config import WANDB_MODES, wandb_enabled, wandb_missing_error

# The batch format (data.task) each model family trains on.
TASK_OF_FAMILY = {"decoder": "lm", "encoder": "mlm", "encoder_decoder": "seq2seq"}


# The batch format each encoder head trains on (BERT pretraining and its fine-tunings).
TASK_OF_ENCODER_HEAD = {"mlm": "mlm", "classification": "classification", "span": "span_qa"}


def task_of_model(model: ModelConfig) -> str:
    """The data.task a model trains on: by family, and for encoders by head."""
    if model.family == "encoder":
        return TASK_OF_ENCODER_HEAD[model.encoder_head]
    return TASK_OF_FAMILY[model.family]


def _task(model: ModelConfig, data: ml_collections.ConfigDict) -> list[str]:
    expected = task_of_model(model)
    if data.task == expected:
        return []
    if model.family == "encoder" and data.task in TASK_OF_ENCODER_HEAD.values():
        head = next(h for h, t in TASK_OF_ENCODER_HEAD.items() if t == data.task)
        return [
            f"data.task={data.task!r} needs model.encoder_head={head!r}, not "
            f"{model.encoder_head!r}; set one to match the other."
        ]
    return [
        f"data.task={data.task!r} does not fit model.family={model.family!r}, which trains "
        f"on data.task={expected!r}; set data.task={expected!r} or pick a model of the "
        f"{[f for f, t in TASK_OF_FAMILY.items() if t == data.task]} family."
    ]


def _lengths(model: ModelConfig, data: ml_collections.ConfigDict) -> list[str]:
    names = ("inputs_len", "targets_len") if data.task == "seq2seq" else ("seq_len",)
    return [
        f"data.{name}={length} exceeds model.max_len={model.max_len}, the longest sequence "
        f"the model's positions ({model.position}) and decoding cache cover; lower "
        f"data.{name} or raise model.max_len."
        for name, length in zip(names, sequence_lengths(data), strict=True)
        if length > model.max_len
    ]


def _vocab(model: ModelConfig, data: ml_collections.ConfigDict) -> list[str]:
    if data.tokenizer == "byte" and model.vocab_size < ByteTokenizer.vocab_size:
        return [
            f"model.vocab_size={model.vocab_size} is smaller than the {ByteTokenizer.vocab_size} "
            "ids of data.tokenizer='byte'; raise model.vocab_size."
        ]
    if data.tokenizer == "sentencepiece" and not data.spm_model:
        if data.vocab_size > model.vocab_size:
            return [
                f"data.vocab_size={data.vocab_size} (the sentencepiece vocabulary to train) "
                f"exceeds model.vocab_size={model.vocab_size}; lower one or raise the other."
            ]
    return []


def _schedule(train: ml_collections.ConfigDict) -> list[str]:
    # Any schedule: a warmup the run never finishes never reaches train.learning_rate.
    if train.warmup_steps > train.steps:
        return [
            f"train.warmup_steps={train.warmup_steps} is longer than train.steps="
            f"{train.steps}, so the learning rate would never reach train.learning_rate; "
            f"lower train.warmup_steps to at most {train.steps} or raise train.steps."
        ]
    return []


def _generation(train: ml_collections.ConfigDict, data: ml_collections.ConfigDict) -> list[str]:
    if train.eval_generation_examples > 0 and data.task != "seq2seq":
        return [
            f"train.eval_generation_examples={train.eval_generation_examples} scores decoded "
            f"translations or summaries, which data.task={data.task!r} has none of; set it to 0."
        ]
    return []


def _downstream(model: ModelConfig, train: ml_collections.ConfigDict) -> list[str]:
    every = train.get("downstream_every", 0)  # configs saved before it have none
    if not every:
        return []
    if every < 0:
        return [f"train.downstream_every={every} must be a step interval, or 0 to disable."]
    if model.family != "decoder":
        return [
            f"train.downstream_every={every} runs log-likelihood multiple-choice evals of "
            f"causal LMs, which model.family={model.family!r} is not; set it to 0."
        ]
    if not train.get("downstream_tasks", "").strip():
        return [
            f"train.downstream_every={every} has no tasks: set train.downstream_tasks to "
            "'tiny_grammar_next_word' or a JSONL file, or set downstream_every to 0."
        ]
    if train.get("downstream_examples", 0) < 0 or train.get("downstream_batch", 1) <= 0:
        return [
            f"train.downstream_examples={train.downstream_examples} must be >= 0 (0 = all) "
            f"and train.downstream_batch={train.downstream_batch} positive."
        ]
    return []


def _tracking(train: ml_collections.ConfigDict) -> list[str]:
    mode = train.get("wandb_mode", "offline")
    if mode not in WANDB_MODES:
        return [f"train.wandb_mode={mode!r} is not one of {list(WANDB_MODES)}."]
    # Before anything is built: a run asking for W&B without the package fails at load.
    if wandb_enabled(train) and importlib.util.find_spec("wandb") is None:
        return [str(wandb_missing_error(train))]
    return []


def _mup(model: ModelConfig, train: ml_collections.ConfigDict) -> list[str]:
    # muP's learning-rate multipliers (llm/models/mup.py) are Adam's (Tensor Programs V,
    # Table 3); SGD and Adafactor scale their updates differently.
    if model.parametrization == "mup" and train.optimizer != "adamw":
        return [
            f"model.parametrization='mup' sets Adam's per-parameter learning rates; "
            f"train.optimizer={train.optimizer!r} needs others. Use train.optimizer='adamw'."
        ]
    return []


def check_combinations(config: ml_collections.ConfigDict) -> None:
    """Raises a ConfigError naming both fields of every combination that cannot work."""
    model = ModelConfig.from_dict(config.model.to_dict())
    data, train = config.data, config.train
    problems = [
        *_task(model, data),
        *_lengths(model, data),
        *_vocab(model, data),
        *_schedule(train),
        *_generation(train, data),
        *_downstream(model, train),
        *_mup(model, train),
        *_tracking(train),
    ]
    if problems:
        raise ConfigError(" ".join(problems))
