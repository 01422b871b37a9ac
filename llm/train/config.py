"""The `train` config group shared by every experiment, with every field documented."""

from __future__ import annotations

import ml_collections

from llm.errors import ConfigError

# train.wandb_mode values: 'offline' writes WORKDIR/wandb/offline-run-* (upload later with
# `wandb sync`), 'online' streams to the W&B server, 'disabled' turns W&B off.
WANDB_MODES = ("offline", "online", "disabled")


def default_train_config() -> ml_collections.ConfigDict:
    """Returns the `train` group; experiments override what they need."""
    c = ml_collections.ConfigDict()
    # Fine-tuning: a pretrained workdir (ours, or a Hugging Face checkpoint imported by
    # launch.convert) whose params start this run. Its model sizes and tokenizer are
    # adopted; the new head is initialised (llm.train.pretrained). '' = train from scratch.
    # Ignored once this run has a checkpoint of its own (resume).
    c.init_from = ""
    # Optimizer updates to run in total (the schedule decays over these).
    c.steps = 1000
    # Global batch size in sequences, split over the data-parallel mesh axes and processes.
    c.batch_size = 32
    # Gradient accumulation: split each batch into this many microbatches (same result as
    # the whole batch, less activation memory).
    c.microbatches = 1
    # Stop after this many consecutive steps with NaN/inf loss or gradients (each skipped).
    c.max_nonfinite_steps = 10
    # Seed of parameter init, data shuffling and dropout (dropout key = fold_in(seed, step)).
    c.seed = 0
    # Optimizer: 'adamw', 'adafactor' or 'sgd' (momentum b1).
    c.optimizer = "adamw"
    # Peak learning rate, reached after `warmup_steps` of linear warmup.
    c.learning_rate = 1e-3
    c.warmup_steps = 100
    # Schedule after warmup: 'cosine' (to end_lr_factor * peak at `steps`), 'linear'
    # (BERT), 'rsqrt' (AIAYN 5.3 inverse square root), 'wsd' (warmup-stable-decay) or
    # 'constant'.
    c.schedule = "cosine"
    # Final learning rate as a fraction of the peak (cosine and wsd).
    c.end_lr_factor = 0.1
    # wsd: fraction of `steps` spent in the final linear decay.
    c.decay_fraction = 0.2
    # Adam moments and epsilon (AIAYN: 0.9, 0.98, 1e-9).
    c.b1 = 0.9
    c.b2 = 0.95
    c.eps = 1e-8
    # Decoupled weight decay, applied to matrices only (not norms, biases).
    c.weight_decay = 0.1
    # Apply weight decay to embedding tables too (norms and biases never decay).
    c.decay_embeddings = True
    # Clip gradients to this global norm (0 disables).
    c.grad_clip_norm = 1.0
    # Label smoothing of the cross-entropy (AIAYN: 0.1) and z-loss coefficient (PaLM: 1e-4).
    c.label_smoothing = 0.0
    c.z_loss = 0.0
    # Log train metrics every this many steps (each log blocks on the step's result).
    c.log_every = 10
    # Evaluate every this many steps and at the end (0 disables); batches per eval
    # (<= 0 reads the whole eval split).
    c.eval_every = 100
    c.eval_steps = 10
    # Seq2seq runs: at each eval also beam-decode this many eval-split sources and score
    # BLEU (translation) or ROUGE (summarization); 0 disables. Beam and GNMT alpha as AIAYN.
    c.eval_generation_examples = 0
    c.eval_beam_size = 4
    c.eval_alpha = 0.6
    # Log-likelihood multiple-choice evals of decoders (llm.evals.multiple_choice), run on
    # the training mesh every this many steps and at the end (0 disables), logged as
    # downstream/<task>/acc and acc_norm: comma-separated shipped task names
    # ('tiny_grammar_next_word') or JSONL files of {"context", "choices", "gold"} rows
    # (lm-eval-harness exports of HellaSwag, ARC, ...); at most downstream_examples per task
    # (0 = every row; shipped tasks generate 500), scored downstream_batch rows per call.
    c.downstream_every = 0
    c.downstream_tasks = ""
    c.downstream_examples = 500
    c.downstream_batch = 64
    # Save a checkpoint every this many steps and at the end; keep the newest this many.
    c.checkpoint_every = 200
    c.keep_checkpoints = 3
    # On resume, a newest checkpoint that cannot be read, fails its checksums or holds
    # NaN/inf is moved aside (to checkpoints/<step>.corrupt) with a warning and the previous
    # one is restored; False stops with an error naming the step and the file instead.
    c.restore_fallback = True
    # Write checkpoints in a background thread while training continues.
    c.async_checkpointing = True
    # Per-device peak FLOP/s for the MFU in the log: '' (no MFU), an accelerator name from
    # llm/flops.py PEAK_FLOPS ('h100', 'tpu_v5p', ...), 'measure' (matmul peak measured at
    # start) or a number.
    c.peak_flops = ""
    # Trace steps (first, last) with jax.profiler into WORKDIR/profile; () disables.
    # View with `tensorboard --logdir WORKDIR/profile` or ui.perfetto.dev.
    c.profile_steps = ()
    # After training, print a continuation of this prompt (sample_tokens=0 skips it):
    # greedy at sample_temperature 0, else sampled at that temperature (seed train.seed).
    c.sample_prompt = "the"
    c.sample_tokens = 64
    c.sample_temperature = 0.0
    # Weights & Biases, beside TensorBoard (the `[wandb]` extra): every scalar of
    # metrics.jsonl is also logged to this W&B project; '' = off. Process 0 only.
    c.wandb_project = ""
    # W&B entity (user or team) owning the project; '' = your default entity.
    c.wandb_entity = ""
    # 'offline' (default: WORKDIR/wandb/offline-run-*, no network; `wandb sync` uploads),
    # 'online' or 'disabled' (off, as wandb_project='').
    c.wandb_mode = "offline"
    # W&B run name; '' = the workdir's name. A resumed run continues the same W&B run
    # (its id is kept in WORKDIR/wandb_id).
    c.wandb_run_name = ""
    # W&B group of the run (e.g. a sweep's name, so its points chart together); '' = none.
    c.wandb_group = ""
    return c


def wandb_enabled(train: ml_collections.ConfigDict) -> bool:
    """Whether a run with this `train` group logs to W&B (configs saved before: no)."""
    return bool(train.get("wandb_project", "")) and train.get("wandb_mode", "offline") != "disabled"


def wandb_missing_error(train: ml_collections.ConfigDict) -> ConfigError:
    """The error of a run asking for W&B where the wandb package is not installed."""
    return ConfigError(
        f"config.train.wandb_project={train.wandb_project!r} logs to Weights & Biases, but the "
        "wandb package is not installed; install the extra (pip install -e '.[wandb]') or set "
        "config.train.wandb_project=''."
    )
