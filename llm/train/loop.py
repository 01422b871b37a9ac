"""`train_and_evaluate(config, workdir)`: the one training loop every experiment runs."""

from __future__ import annotations

import collections
import importlib.util
import json
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from llm import data as data_lib
from llm.data.config import sequence_lengths
from llm.data.mixture import SourceCounter, parse_mixture
from llm.errors import ConfigError
from llm.flops import mfu, train_flops_per_token
from llm.parallel import host_batch_to_global
from llm.parallel.distributed import PreemptionWatcher
from llm.train import checkpoint as ckpt_lib
from llm.train import storage
from llm.train.config import WANDB_MODES, wandb_enabled, wandb_missing_error
from llm.train.evaluate import Evaluator
from llm.train.metrics import MetricWriter, read_metrics
from llm.train.optim import make_schedule
from llm.train.pretrained import adopt_pretrained, load_pretrained
from llm.train.profiling import StepProfiler, resolve_peak_flops
from llm.train.program import build_train_program
from llm.train.restore import check_resumable
from llm.train.state import TrainState
from llm.train.summary import bound_line, startup_summary

# Train steps dispatched ahead of the one the host waits for.
_IN_FLIGHT = 2


def moe_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The step's 'moe/...' metrics as scalars; expert load as moe/layer{i}/expert{e}."""
    out = {}
    for key, value in metrics.items():
        if not key.startswith("moe/"):
            continue
        value = np.asarray(jax.device_get(value))
        if key == "moe/expert_load":
            for layer, row in enumerate(value):
                out.update({f"moe/layer{layer}/expert{e}": float(x) for e, x in enumerate(row)})
        else:
            out[key] = float(value)
    return out


def validate_train_config(cfg: ml_collections.ConfigDict) -> None:
    """Fails early on train settings that cannot work."""
    positive = ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints")
    for name in positive:
        if int(cfg[name]) <= 0:
            raise ConfigError(f"config.train.{name}={cfg[name]} must be positive.")
    if cfg.learning_rate <= 0:
        raise ConfigError(f"config.train.learning_rate={cfg.learning_rate} must be positive.")
    if cfg.get("wandb_mode", "offline") not in WANDB_MODES:
        raise ConfigError(
            f"config.train.wandb_mode={cfg.wandb_mode!r} is not one of {list(WANDB_MODES)}."
        )
    if wandb_enabled(cfg) and importlib.util.find_spec("wandb") is None:
        raise wandb_missing_error(cfg)


def _check_nonfinite(in_row: int, step: int, cfg: ml_collections.ConfigDict) -> None:
    """Stops training once too many consecutive steps had NaN/inf loss, gradients or updates."""
    if in_row >= cfg.max_nonfinite_steps:
        raise FloatingPointError(
            f"{in_row} consecutive steps up to step {step} had a non-finite loss, gradient or "
            "update and were skipped; the checkpoints keep the last good parameters. Lower "
            "config.train.learning_rate, enable grad_clip_norm or z_loss, or raise "
            f"config.train.max_nonfinite_steps={cfg.max_nonfinite_steps}."
        )


class Trainer:
    """Holds the mesh, model, jitted steps and data of one run; `run()` trains it."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: str | pathlib.Path,
        *,
        devices: Sequence[jax.Device] | None = None,
        experiment: str = "",
    ):
        # Fine-tuning adopts the pretrained run's model sizes and tokenizer first.
        config = adopt_pretrained(config)
        self.config = config
        self.workdir = pathlib.Path(workdir)
        # The config spec (experiments/X.py:arg) the start-up summary names.
        self.experiment = experiment
        tcfg = config.train
        validate_train_config(tcfg)
        # Before anything slow: a workdir that cannot take checkpoints fails in a second.
        ckpt_lib.check_workdir(self.workdir)
        self.program = build_train_program(config, devices=devices)
        # Before config.json is overwritten: a changed model is one error, not orbax's.
        check_resumable(self.workdir, config, self.program.abstract_state)
        self.local_batch_size = tcfg.batch_size // jax.process_count()

        data_lib.ensure_dataset(config.data)
        self.tokenizer = data_lib.get_tokenizer(config.data)
        if self.tokenizer.vocab_size > self.program.model_cfg.vocab_size:
            raise ConfigError(
                f"config.model.vocab_size={self.program.model_cfg.vocab_size} is smaller than the "
                f"tokenizer's {self.tokenizer.vocab_size} ids; raise it to at least that."
            )
        self.train_iter = data_lib.make_iterator(
            config.data,
            split=config.data.train_split,
            batch_size=self.local_batch_size,
            seed=tcfg.seed,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
            shuffle=True,
            num_epochs=None,
        )
        self.evaluator = Evaluator(config, self.program)
        self.downstream = None
        if tcfg.get("downstream_every", 0):  # configs saved before it have none
            # Loaded here: a missing or malformed task file fails before training starts.
            from llm.evals.multiple_choice import DownstreamEvals

            self.downstream = DownstreamEvals(
                tcfg.downstream_tasks,
                self.tokenizer,
                max_examples=tcfg.downstream_examples,
                batch_rows=tcfg.downstream_batch,
            )
        self.manager = ckpt_lib.make_manager(
            self.workdir,
            keep=tcfg.keep_checkpoints,
            async_save=tcfg.async_checkpointing,
            cleanup_tmp=True,
        )

    def initial_state(self) -> TrainState:
        """Restores the newest good checkpoint (state and data position) or initialises afresh.

        A checkpoint that fails its checks is an error, or with config.train.restore_fallback
        is moved aside for the previous one (llm.train.checkpoint.restore_newest).
        """
        restored = ckpt_lib.restore_newest(
            self.manager,
            self.program.abstract_state,
            self.train_iter,
            fallback=self.config.train.restore_fallback,
        )
        if restored is not None:
            state, step = restored
            logging.info("Resumed from %s at step %d.", self.manager.directory, step)
            return state
        state = self.program.init_state()
        if self.config.train.get("init_from"):
            params = load_pretrained(self.config, state.params, self.program.state_shardings.params)
            state = state.replace(params=params)
        return state

    def to_global(self, host_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Host-local numpy batch -> global arrays sharded over the batch axes."""
        return host_batch_to_global(host_batch, self.program.batch_sharding)

    def evaluate(self, params: Any) -> dict[str, float]:
        """Eval loss, perplexity and accuracy of `params` (see llm.train.evaluate)."""
        return self.evaluator.evaluate(params)

    def evaluate_generation(self, params: Any) -> dict[str, float]:
        """BLEU/ROUGE of beam-search outputs, for seq2seq runs that ask for it."""
        return self.evaluator.evaluate_generation(params, self.tokenizer)

    def _source_counter(self, start: int) -> SourceCounter | None:
        """Tokens seen per source of data.mixture, continued from metrics.jsonl on resume."""
        weights = parse_mixture(self.config.data.get("mixture", ""))
        if not weights:
            return None
        counter = SourceCounter([name for name, _ in weights])
        if start and not counter.restore(read_metrics(self.workdir), start):
            logging.warning(
                "metrics.jsonl has no data/<source>/tokens at step %d: tokens seen per source "
                "count from this restart.",
                start,
            )
        return counter

    def run(self, *, stop_at_step: int | None = None) -> tuple[TrainState, dict[str, float]]:
        """Trains to config.train.steps (or `stop_at_step`), evaluating and checkpointing."""
        cfg = self.config.train
        self.workdir.mkdir(parents=True, exist_ok=True)
        if jax.process_index() == 0:
            storage.write_text(
                self.workdir / "config.json", self.config.to_json_best_effort(indent=2)
            )
        summary = startup_summary(
            self.program,
            self.workdir,
            experiment=self.experiment,
            resume_step=self.manager.latest_step(),
        )
        logging.info("%s", summary)
        state = self.initial_state()
        start = int(jax.device_get(state.step))
        writer = MetricWriter(self.workdir, resume_step=start, config=self.config)
        sources = self._source_counter(start)
        end = min(cfg.steps, stop_at_step) if stop_at_step else cfg.steps
        tokens_per_step = cfg.batch_size * sum(sequence_lengths(self.config.data))
        schedule = make_schedule(cfg)
        last: dict[str, float] = {}
        t0, t_step0 = time.perf_counter(), start
        profiler = StepProfiler(self.workdir, tuple(cfg.profile_steps))
        peak = resolve_peak_flops(cfg.peak_flops)
        flops_per_token = train_flops_per_token(
            self.program.model_cfg, *sequence_lengths(self.config.data)
        )
        preemption = PreemptionWatcher()
        self.preempted_at = None
        in_flight: collections.deque = collections.deque()
        with jax.set_mesh(self.program.mesh):
            for step in range(start + 1, end + 1):
                host_batch = next(self.train_iter)
                if sources:
                    sources.add(host_batch)  # takes out the mixture's `source` column
                batch = self.to_global(host_batch)
                profiler.before_step(step)
                state, metrics = self.program.train_step(state, batch)
                # At most _IN_FLIGHT steps queued: enough to hide dispatch, and XLA:CPU's
                # in-process collectives can stall past their rendezvous timeout (an abort)
                # when a long queue of steps competes for few cores.
                in_flight.append(metrics["loss"])
                if len(in_flight) > _IN_FLIGHT:
                    jax.block_until_ready(in_flight.popleft())
                profiler.after_step(step, metrics)
                if preemption.should_stop(step):
                    self.preempted_at = step
                if step == start + 1:
                    # The first step includes compilation: keep it out of tokens/s and ETA.
                    jax.block_until_ready(metrics)
                    logging.info(
                        "step %d compiled and ran in %.1fs", step, time.perf_counter() - t0
                    )
                    t0, t_step0 = time.perf_counter(), step
                if step % cfg.log_every == 0 or step == end or self.preempted_at:
                    # Fetching metrics blocks on the step; multi-process CPU runs need that.
                    scalars = {
                        "loss": float(metrics["loss"]),
                        "grad_norm": float(metrics["grad_norm"]),
                        "nonfinite_total": float(metrics["nonfinite_total"]),
                        # The rate of this step's update (optax counts updates from 0).
                        "learning_rate": float(schedule(step - 1)),
                        **moe_scalars(metrics),
                        **(sources.scalars() if sources else {}),
                    }
                    _check_nonfinite(int(metrics["nonfinite_in_row"]), step, cfg)
                    elapsed = time.perf_counter() - t0
                    if step > t_step0:
                        rate = (step - t_step0) * tokens_per_step / max(elapsed, 1e-9)
                        scalars["tokens_per_sec"] = rate
                        if peak:
                            scalars["mfu"] = mfu(
                                rate, flops_per_token, peak * self.program.mesh.size
                            )
                    eta = (end - step) * elapsed / max(step - t_step0, 1)
                    writer.write(step, scalars)
                    last.update(scalars)
                    logging.info(
                        "step %d/%d loss %.4f tokens/s %.0f%s ETA %.0fs",
                        step,
                        cfg.steps,
                        scalars["loss"],
                        scalars.get("tokens_per_sec", 0),
                        f" MFU {scalars['mfu']:.1%}" if "mfu" in scalars else "",
                        eta,
                    )
                    t0, t_step0 = time.perf_counter(), step
                if self.preempted_at:
                    ckpt_lib.save(self.manager, step, state, self.train_iter)
                    logging.warning("Preempted: saved step %d; rerun to resume.", step)
                    break
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                    eval_metrics = self.evaluate(state.params)
                    eval_metrics.update(self.evaluate_generation(state.params))
                    writer.write(step, eval_metrics)
                    last.update(eval_metrics)
                    logging.info(
                        "step %d eval %s",
                        step,
                        " ".join(f"{k}={v:.4f}" for k, v in sorted(eval_metrics.items())),
                    )
                if self.downstream and (step % cfg.downstream_every == 0 or step == cfg.steps):
                    scores = self.downstream.evaluate(self.program.trained(state.params))
                    writer.write(step, scores)
                    last.update(scores)
                    logging.info(
                        "step %d downstream %s",
                        step,
                        " ".join(f"{k}={v:.4f}" for k, v in sorted(scores.items())),
                    )
                if step % cfg.checkpoint_every == 0 or step == end:
                    if sources and step % cfg.log_every and step != end:
                        # A resumed run continues the counts from its checkpoint's row.
                        writer.write(step, sources.tokens())
                    ckpt_lib.save(self.manager, step, state, self.train_iter)
        ckpt_lib.wait(self.manager)
        preemption.close()
        writer.close()
        return state, last

    def close(self) -> None:
        """Waits for pending checkpoint writes and stops the data workers."""
        try:
            ckpt_lib.wait(self.manager)
            self.manager.close()
        finally:
            if hasattr(self.train_iter, "close"):
                self.train_iter.close()


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | pathlib.Path,
    *,
    stop_at_step: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    experiment: str = "",
) -> dict[str, float]:
    """Trains the experiment `config` into `workdir`; returns the last logged metrics.

    `experiment` is the config spec the start-up summary names (experiments/X.py:arg).
    """
    trainer = Trainer(config, workdir, devices=devices, experiment=experiment)
    try:
        state, metrics = trainer.run(stop_at_step=stop_at_step)
        if trainer.preempted_at:
            metrics["preempted_at"] = trainer.preempted_at
        else:
            if line := bound_line(config, metrics):
                logging.info("%s", line)
            if config.train.sample_tokens > 0 and jax.process_count() == 1:
                # Decoding runs on process 0 alone, so it needs every parameter shard locally.
                metrics["sample"] = sample_text(trainer, state.params)
                logging.info("Sample: %s", json.dumps(metrics["sample"]))
    finally:
        trainer.close()
    return metrics


def sample_text(trainer: Trainer, params: Any) -> str:
    """Continuation of config.train.sample_prompt (greedy, or at train.sample_temperature)."""
    from llm.decode.text import generate_text  # only the end of a run needs decoding

    tcfg = trainer.config.train
    return generate_text(
        trainer.program.trained(params),
        trainer.tokenizer,
        tcfg.sample_prompt,
        max_new_tokens=tcfg.sample_tokens,
        temperature=tcfg.get("sample_temperature", 0.0),  # configs saved before it: greedy
        seed=tcfg.seed,
    )
