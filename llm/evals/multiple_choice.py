"""Log-likelihood multiple-choice evals of a causal LM (HellaSwag, ARC, LAMBADA-style tasks).

An example is a context, its choices and the gold choice's index, the layout
lm-eval-harness scores: each choice is a continuation of the context, and the model picks
the one of highest log-probability. `acc` ranks choices by their summed log-probability,
`acc_norm` by log-probability per UTF-8 byte of the continuation (lm-eval's acc_norm
divides by characters; bytes keep non-ASCII tasks comparable across tokenizers).

Tasks are JSONL files (one example per line: `context`, `choices`, `gold`; lm-eval exports
spelled `ctx`/`query`, `endings`, `label` are read too) or a task the project generates
(`SHIPPED_TASKS`). Every (example, choice) row is scored on the run's mesh by one jitted
forward pass; only the per-row sums come back to the host. Under several processes each
process builds its shard of every batch and the sums are gathered on all of them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from llm.data import grammar
from llm.data.tokenizers import Tokenizer
from llm.errors import ConfigError, InputFileError
from llm.parallel import host_batch_to_global
from llm.parallel.sharding import batch_sharding, data_parallel_size
from llm.train.trained import TrainedModel

# Key spellings of a JSONL example, the first found wins.
_CONTEXT_KEYS = ("context", "ctx", "query")
_CHOICES_KEYS = ("choices", "endings")
_GOLD_KEYS = ("gold", "label")
# Rows are padded to the next of these lengths (capped at the model's), so tasks and evals
# of many lengths share a few compiled programs.
_MIN_BUCKET = 16


@dataclasses.dataclass(frozen=True)
class Example:
    """One multiple-choice question: continuations of `context`, `gold` the right one's index."""

    context: str
    choices: tuple[str, ...]
    gold: int


@dataclasses.dataclass(frozen=True)
class Task:
    """A named list of examples."""

    name: str
    examples: tuple[Example, ...]

    @property
    def chance(self) -> float:
        """Expected accuracy of a uniform random pick."""
        return float(np.mean([1.0 / len(e.choices) for e in self.examples]))


# Generated tasks, by name: (examples, seed) -> rows. tiny_grammar_next_word: which word
# the tiny_grammar corpus allows after a sentence prefix (llm.data.grammar.next_word_task).
SHIPPED_TASKS: dict[str, Callable[[int], list[dict]]] = {
    "tiny_grammar_next_word": lambda num: grammar.next_word_task(num, seed=7),
}


def _first(row: Mapping[str, Any], keys: Sequence[str], where: str) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    raise InputFileError(f"{where} has none of the keys {list(keys)}; it has {sorted(row)}.")


def parse_example(row: Mapping[str, Any], where: str) -> Example:
    """An Example from one JSON object, or an error naming `where` and the bad value."""
    context = _first(row, _CONTEXT_KEYS, where)
    choices = _first(row, _CHOICES_KEYS, where)
    gold = _first(row, _GOLD_KEYS, where)
    if not isinstance(context, str):
        raise InputFileError(f"{where}: the context must be a string, not {context!r}.")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise InputFileError(
            f"{where}: choices must be a list of at least 2 non-empty strings, not {choices!r}."
        )
    if isinstance(gold, str) and gold.isdigit():
        gold = int(gold)  # HellaSwag exports keep the label as a string
    if not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise InputFileError(
            f"{where}: gold={gold!r} must be the index (0..{len(choices) - 1}) of a choice."
        )
    return Example(context, tuple(choices), gold)


def load_task(spec: str, max_examples: int = 0) -> Task:
    """A shipped task by name, or a JSONL file by path; its first `max_examples` (0: all)."""
    if spec in SHIPPED_TASKS:
        rows = SHIPPED_TASKS[spec](max_examples or 500)
        examples = [parse_example(r, f"{spec} example {i}") for i, r in enumerate(rows)]
        return Task(spec, tuple(examples))
    path = pathlib.Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"Downstream task {spec!r} is neither a shipped task ({sorted(SHIPPED_TASKS)}) nor "
            "a JSONL file; give one of those names or the path of a file with one "
            '{"context": ..., "choices": [...], "gold": i} object per line.'
        )
    examples = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(f"{where} is not JSON ({e.msg}).") from e
            examples.append(parse_example(row, where))
            if 0 < max_examples <= len(examples):
                break
    if not examples:
        raise InputFileError(f"{path} holds no examples.")
    return Task(path.stem, tuple(examples))


def parse_task_list(specs: str) -> list[str]:
    """'a,b.jsonl' -> ['a', 'b.jsonl'] (train.downstream_tasks' format)."""
    return [s.strip() for s in specs.split(",") if s.strip()]


def _encode_pair(tok: Tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, split where the whole text's encoding splits."""
    whole = [int(t) for t in tok.encode(context + continuation)]
    ctx = [int(t) for t in tok.encode(context)] if context else []
    if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
        return ctx, whole[len(ctx) :]
    # Subword tokenizers can merge across the boundary: encode the parts apart.
    return ctx, [int(t) for t in tok.encode(continuation)]


def _bucket(length: int, limit: int) -> int:
    size = _MIN_BUCKET
    while size < length:
        size *= 2
    return min(size, limit)


def encode_rows(
    tok: Tokenizer, examples: Sequence[Example], max_len: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(inputs/targets/weights rows, one per example and choice; the example of each row).

    A row is [BOS] + context + continuation, shifted: weights mark the continuation's
    targets. Contexts too long for `max_len` lose their first tokens, as lm-eval does.
    """
    rows, owners = [], []
    for index, example in enumerate(examples):
        for choice in example.choices:
            ctx, cont = _encode_pair(tok, example.context, choice)
            if len(cont) > max_len:
                raise InputFileError(
                    f"A choice of {len(cont)} tokens ({choice[:40]!r}...) does not fit the "
                    f"model's {max_len} positions; drop the example or use a longer model."
                )
            tokens = ([tok.bos_id, *ctx, *cont])[-(max_len + 1) :]
            rows.append((tokens, len(cont)))
            owners.append(index)
    width = _bucket(max(len(t) - 1 for t, _ in rows), max_len)
    out = {k: np.zeros((len(rows), width), np.int32) for k in ("inputs", "targets")}
    out["weights"] = np.zeros((len(rows), width), np.float32)
    for i, (tokens, n_cont) in enumerate(rows):
        n = len(tokens) - 1
        out["inputs"][i, :n] = tokens[:-1]
        out["targets"][i, :n] = tokens[1:]
        out["weights"][i, n - n_cont : n] = 1.0
    return out, np.asarray(owners)


@functools.lru_cache(maxsize=8)
def _jitted_scores(model: nn.Module, mesh: Any, rules: Any) -> Callable[..., Any]:
    """Rows -> summed continuation log-probabilities, jitted once per (model, mesh, rules)."""

    def scores(params, batch):
        logits_BxLxV = model.apply({"params": params}, batch["inputs"])
        logp_BxLxV = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32))
        target_BxL = jnp.take_along_axis(logp_BxLxV, batch["targets"][..., None], axis=-1)[..., 0]
        return jnp.sum(target_BxL * batch["weights"], axis=-1)

    sharding = batch_sharding(mesh, rules)
    return jax.jit(scores, in_shardings=(None, sharding), out_shardings=sharding)


def row_logprobs(run: TrainedModel, rows: Mapping[str, np.ndarray], batch_rows: int) -> np.ndarray:
    """Summed log-probability of each row's weighted targets, scored `batch_rows` at a time."""
    if run.model_cfg.family != "decoder":
        raise ConfigError(
            f"Multiple-choice evals score causal LMs; model.family={run.model_cfg.family!r} "
            "is not one. Set train.downstream_every=0 for this run."
        )
    jitted = _jitted_scores(run.model, run.mesh, run.rules)
    sharding = batch_sharding(run.mesh, run.rules)
    processes, me = jax.process_count(), jax.process_index()
    # Every batch splits evenly over the data-parallel shards and the processes.
    step = int(np.lcm(data_parallel_size(run.mesh, run.rules), processes))
    batch_rows = -(-max(batch_rows, 1) // step) * step
    total = len(rows["inputs"])
    out = []
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(run.rules):
        for start in range(0, total, batch_rows):
            batch = {k: v[start : start + batch_rows] for k, v in rows.items()}
            pad = batch_rows - len(batch["inputs"])
            if pad:  # zero rows: weight 0, score 0, dropped below
                batch = {k: np.pad(v, ((0, pad), (0, 0))) for k, v in batch.items()}
            local = batch_rows // processes
            mine = {k: v[me * local : (me + 1) * local] for k, v in batch.items()}
            sums = jitted(run.params, host_batch_to_global(mine, sharding))
            out.append(np.asarray(multihost_utils.process_allgather(sums, tiled=True)))
    return np.concatenate(out)[:total]


def score_task(
    run: TrainedModel, tok: Tokenizer, task: Task, *, batch_rows: int = 64
) -> dict[str, float]:
    """{'downstream/<task>/acc', '.../acc_norm', '.../chance', '.../examples'} of `run`."""
    max_len = run.model_cfg.max_len
    rows, owners = encode_rows(tok, task.examples, max_len)
    logprobs = row_logprobs(run, rows, batch_rows)
    n_bytes = np.asarray(
        [max(len(c.encode()), 1) for e in task.examples for c in e.choices], np.float64
    )
    correct = np.zeros((2, len(task.examples)))
    for index, example in enumerate(task.examples):
        mine = owners == index
        for k, score in enumerate((logprobs[mine], logprobs[mine] / n_bytes[mine])):
            correct[k, index] = float(np.argmax(score) == example.gold)
    prefix = f"downstream/{task.name}"
    return {
        f"{prefix}/acc": float(correct[0].mean()),
        f"{prefix}/acc_norm": float(correct[1].mean()),
        f"{prefix}/chance": task.chance,
        f"{prefix}/examples": float(len(task.examples)),
    }


class DownstreamEvals:
    """The run's train.downstream_tasks, loaded once, scored on the training mesh."""

    def __init__(self, specs: str, tok: Tokenizer, *, max_examples: int, batch_rows: int):
        self.tasks = [load_task(s, max_examples) for s in parse_task_list(specs)]
        names = [t.name for t in self.tasks]
        if len(set(names)) < len(names):
            raise ConfigError(
                f"train.downstream_tasks={specs!r} names a task twice ({names}); rename a file."
            )
        self.tok = tok
        self.batch_rows = batch_rows

    def evaluate(self, run: TrainedModel) -> dict[str, float]:
        """Every task's scores, keyed downstream/<task>/..."""
        out: dict[str, float] = {}
        for task in self.tasks:
            out.update(score_task(run, self.tok, task, batch_rows=self.batch_rows))
        return out
