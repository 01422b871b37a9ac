"""The benchmark suites of `launch.bench`: what to measure and how to tabulate it."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from llm import flops, models
from llm.bench.peak import measure_matmul_peak
from llm.bench.training import benchmark_training, compile_seconds, measure_training
from llm.models.config import ModelConfig

# Small members of each family, sized for a CPU run of a few minutes.
_SMALL_BASE = ModelConfig(
    family="decoder",
    vocab_size=8192,
    d_model=256,
    num_heads=4,
    d_ff=1024,
    num_layers=4,
    max_len=256,
)
_SHAPE = dict(batch_size=8, seq_len=256)
SMALL = {
    "gpt (decoder)": (_SMALL_BASE, _SHAPE),
    "llama (decoder)": (
        _SMALL_BASE.replace(
            num_kv_heads=2,
            d_ff=704,
            position="rotary",
            norm="rmsnorm",
            activation="swiglu",
            use_bias=False,
            tie_embeddings=False,
        ),
        _SHAPE,
    ),
    "bert (encoder)": (
        _SMALL_BASE.replace(
            family="encoder", pre_norm=False, type_vocab_size=2, activation="gelu_exact"
        ),
        _SHAPE,
    ),
    "aiayn (encoder_decoder)": (
        _SMALL_BASE.replace(
            family="encoder_decoder",
            position="sinusoidal",
            pre_norm=False,
            activation="relu",
            scale_embeddings=True,
        ),
        dict(_SHAPE, target_len=256),
    ),
}

# Issue #8's CPU goal: this decoder's step should reach 75% of the matmul peak.
CPU_GOAL = ModelConfig(
    family="decoder",
    vocab_size=8192,
    d_model=384,
    num_heads=6,
    d_ff=1536,
    num_layers=6,
    max_len=256,
)


# --suite=moe: the dense decoder is SMALL's llama (4 layers, d_model 256, SwiGLU d_ff 704,
# vocab 8192); the MoE replaces each feed-forward block by 8 SwiGLU experts of 352, top-2,
# so a token passes through 2 x 352 = 704 hidden units, as in the dense model. Active
# parameters differ only by the routers: num_layers * d_model * num_experts (8192, +0.2%).
MOE_DENSE = SMALL["llama (decoder)"][0]
MOE = MOE_DENSE.replace(num_experts=8, experts_per_token=2, expert_d_ff=MOE_DENSE.d_ff // 2)
MOE_SHAPE = dict(batch_size=8, seq_len=256)


# Issue #8's GPU goals (bf16, one GPU): >= 45% MFU for GPT-2 124M, >= 60% for a ~1B decoder.
# Vocabularies are padded to a multiple of 128 (50257 -> 50304), as GPU runs do.
def gpu_models() -> dict[str, tuple[ModelConfig, dict[str, int]]]:
    """GPT-2 124M and GPT-3 XL (1.3B) in bf16 without dropout, with their batch shapes."""
    from llm.models.presets import get_preset

    def bf16(name: str) -> ModelConfig:
        cfg = ModelConfig.from_dict(get_preset(name))
        return cfg.replace(
            vocab_size=50304, dtype="bfloat16", dropout_rate=0.0, attention_dropout_rate=0.0
        )

    return {
        "gpt2 124M": (bf16("gpt2_124m"), dict(batch_size=32, seq_len=1024)),
        "gpt3-xl 1.3B": (bf16("gpt3_1_3b"), dict(batch_size=4, seq_len=2048)),
    }


def run_gpu(
    steps: int,
    models: dict[str, tuple[ModelConfig, dict[str, int]]] | None = None,
    impls: tuple[str, ...] = ("xla", "cudnn"),
    peak: float | None = None,
) -> list[dict[str, Any]]:
    """Tokens/s and MFU (against the datasheet peak) per model and attention implementation."""
    device = jax.devices()[0]
    if "cudnn" in impls and device.platform != "gpu":
        raise RuntimeError(
            f"--suite=gpu needs an NVIDIA GPU for attention_impl='cudnn'; this process has "
            f"{device.platform} devices ({device.device_kind}). Run it on a GPU machine."
        )
    peak = peak or flops.peak_flops_of(device.device_kind)
    if peak is None:
        raise RuntimeError(
            f"No datasheet peak for {device.device_kind!r}; known: {sorted(flops.PEAK_FLOPS)}."
        )
    rows = []
    for name, (cfg, shape) in (models or gpu_models()).items():
        for impl in impls:
            try:
                result = benchmark_training(
                    f"{name} {impl}",
                    cfg.replace(attention_impl=impl),
                    steps=steps,
                    peak_flops_per_device=peak,
                    **shape,
                )
            except Exception as e:  # noqa: BLE001 - one failed row (e.g. OOM) must not lose the rest
                rows.append({"name": f"{name} {impl}", "attention": impl, "error": str(e)[:300]})
                continue
            rows.append({**dataclasses.asdict(result), "attention": impl, "peak_flops": peak})
    return rows


def run_models(steps: int, peak: float) -> list[dict[str, Any]]:
    """Tokens/s and MFU per family, then compile time scanned vs unrolled."""
    rows = []
    for name, (cfg, shape) in SMALL.items():
        result = benchmark_training(name, cfg, steps=steps, peak_flops_per_device=peak, **shape)
        unrolled = compile_seconds(cfg, **shape)
        scanned = compile_seconds(cfg.replace(scan_layers=True), **shape)
        row = dataclasses.asdict(result)
        row.update(compile_unrolled_s=unrolled, compile_scanned_s=scanned)
        rows.append(row)
    return rows


def run_cpu_goal(steps: int, peak: float) -> list[dict[str, Any]]:
    """The 6 x 384 decoder at T=256, batch 8, fp32."""
    result = benchmark_training(
        "decoder 6x384 T256 b8",
        CPU_GOAL,
        batch_size=8,
        seq_len=256,
        steps=steps,
        peak_flops_per_device=peak,
    )
    return [dataclasses.asdict(result)]


def run_moe(
    steps: int,
    peak: float,
    dense: ModelConfig = MOE_DENSE,
    moe: ModelConfig = MOE,
    shape: dict[str, int] = MOE_SHAPE,
    capacity_factors: tuple[float, ...] = (1.25, 2.0),
) -> list[dict[str, Any]]:
    """Dense vs MoE (dropless, then capacity per factor): tokens/s and MFU of active FLOPs.

    `flops_per_token` counts what a token is routed through (llm/flops.py), not capacity
    padding nor the dispatch einsums, so a dispatch's overhead shows as lower MFU.
    `dropped_fraction` is the train step's 'moe/dropped_fraction' at the initial params
    (mean over MoE layers).
    """
    cases = [(f"dense d_ff {dense.d_ff}", dense, None)]
    cases.append(("moe dropless", moe.replace(moe_dispatch="dropless"), None))
    for factor in capacity_factors:
        capacity = moe.replace(moe_dispatch="capacity", capacity_factor=factor)
        cases.append((f"moe capacity {factor:g}", capacity, factor))
    rows: list[dict[str, Any]] = []
    for name, cfg, factor in cases:
        result, metrics = measure_training(
            name, cfg, steps=steps, peak_flops_per_device=peak, **shape
        )
        measured = dataclasses.asdict(result)
        row = {
            "name": name,
            "dispatch": cfg.moe_dispatch if cfg.is_moe else "dense",
            "capacity_factor": factor,
            "params": measured.pop("params"),
            "active_params": models.count_active_params(cfg),
            **{k: v for k, v in measured.items() if k != "name"},
            "dropped_fraction": metrics.get("moe/dropped_fraction"),
        }
        row["vs_dense"] = row["tokens_per_sec"] / rows[0]["tokens_per_sec"] if rows else 1.0
        rows.append(row)
    return rows


def run_data(consumed_tokens_per_sec: float | None) -> list[dict[str, Any]]:
    """Packed-LM pipeline tokens/s on tiny_grammar, next to the training step's consumption."""
    from llm.bench.pipeline import benchmark_pipeline
    from llm.data import ensure_dataset
    from llm.data.config import default_data_config

    cfg = default_data_config()
    cfg.update(dataset="tiny_grammar", seq_len=256)
    ensure_dataset(cfg)
    result = benchmark_pipeline(cfg, batch_size=8, seconds=5.0)
    row = {"pipeline": "tiny_grammar packed LM, T=256", **result}
    if consumed_tokens_per_sec:
        row["train_step_tokens_per_s"] = consumed_tokens_per_sec
        row["ratio"] = result["tokens_per_s"] / consumed_tokens_per_sec
    return [row]


def run(suite: str, *, steps: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Runs the named suite ('all' runs every one) and returns rows per suite."""
    results: dict[str, list[dict[str, Any]]] = {}
    if suite == "gpu":
        kind = jax.devices()[0].device_kind
        measured = measure_matmul_peak(size=8192, dtype="bfloat16")
        results["peak"] = [{"device": str(kind), "bf16_matmul_flops": measured}]
        results["gpu"] = run_gpu(steps)
        return results
    if suite == "hf_decode":
        from llm.bench.hf_decode import hf_decode_benchmark

        results["hf_decode"] = hf_decode_benchmark()
        return results
    peak = measure_matmul_peak()
    results["peak"] = [{"device": str(jax.devices()[0].device_kind), "matmul_flops": peak}]
    if suite in ("models", "all"):
        results["models"] = run_models(steps, peak)
    if suite in ("cpu_goal", "all"):
        results["cpu_goal"] = run_cpu_goal(steps, peak)
    if suite in ("moe", "all"):
        results["moe"] = run_moe(steps, peak)
    if suite in ("data", "all"):
        consumed = results.get("models", [{}])[0].get("tokens_per_sec")
        results["data"] = run_data(consumed)
    if suite in ("decode", "all"):
        from llm.bench.decoding import decode_benchmark

        results["decode"] = decode_benchmark()
    return results


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e3 else f"{value:,.0f}"
    return str(value)


def to_markdown(results: dict[str, list[dict[str, Any]]]) -> str:
    """One markdown table per suite."""
    out = []
    for suite, rows in results.items():
        if not rows:
            continue
        keys = list(dict.fromkeys(k for row in rows for k in row))  # union, first-seen order
        out.append(f"### {suite}\n")
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for row in rows:
            out.append("| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |")
        out.append("")
    return "\n".join(out)
