"""Mixtral (MixtralForCausalLM) <-> our LLaMA-shaped decoder with a top-k SwiGLU MoE per layer.

Attention, norms, embeddings, head and RoPE (theta and scaling: linear, llama3, yarn) are
LLaMA's (llm/convert/llama.py). Each layer's
feed-forward block is a router `gate` [E, D] and E SwiGLU experts, routed as our
router_scores='softmax', router_renormalize=True, router_scale=1: softmax over the E
experts, top k, the k weights renormalised to sum to 1.

Expert tensors come in two layouts, both read:
- per expert, as released (mistralai/Mixtral-8x7B) and as transformers 5's
  save_pretrained still writes them: `block_sparse_moe.gate.weight`,
  `block_sparse_moe.experts.{j}.w1|w3|w2.weight` (gate, up, down; torch Linear layout);
- fused, transformers 5's in-memory layout (save_pretrained(save_original_format=False)):
  `mlp.gate.weight`, `mlp.experts.gate_up_proj` [E, 2F, D] (gate rows, then up rows) and
  `mlp.experts.down_proj` [E, D, F].
Export writes the per-expert layout, which every transformers version loads.

HF's sliding_window W lets a query see itself and the W - 1 keys before it, which is
our attention_window = W - 1. router_aux_loss_coef is carried over as
load_balance_loss_weight unchanged, although the two losses differ in scale: HF pools
the router statistics of all layers and counts the k choices of a token separately
(k at uniform routing), ours sums a per-layer loss that is 1 at uniform routing. HF has
no router z-loss (imported as 0) and no token dropping: export a moe_dispatch='capacity'
model and HF computes it dropless.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat, kernel_to_linear, linear_to_kernel
from llm.convert.llama import (
    IGNORED,
    decoder_config,
    decoder_config_to_hf,
    decoder_params_from_hf,
    decoder_params_to_hf,
    decoder_problems,
)
from llm.models import ModelConfig

ARCHITECTURES = ("MixtralForCausalLM",)
MODEL_TYPE = "mixtral"
# MixtralConfig's defaults, which transformers applies to a config.json that omits them.
DEFAULT_THETA = 1e6
DEFAULT_EXPERTS = 8
DEFAULT_TOP_K = 2
DEFAULT_AUX_LOSS_COEF = 0.001
# The released checkpoints' block name, then transformers 5's.
_BLOCKS = ("block_sparse_moe", "mlp")


def _attention_window(hf: dict[str, Any]) -> int:
    window = hf.get("sliding_window")
    if window is None:
        return 0
    require(
        isinstance(window, int) and not isinstance(window, bool) and window >= 2,
        f"config.json sliding_window={window!r} is not supported: use null (full attention) "
        "or an integer >= 2 (it becomes attention_window = sliding_window - 1).",
    )
    return window - 1


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a Mixtral config.json."""
    fields = decoder_config(hf, "Mixtral", DEFAULT_THETA)
    experts = get(hf, "num_local_experts", DEFAULT_EXPERTS)
    top_k = get(hf, "num_experts_per_tok", DEFAULT_TOP_K)
    require(
        isinstance(experts, int) and experts >= 1,
        f"config.json num_local_experts={experts!r} must be a positive integer.",
    )
    require(
        isinstance(top_k, int) and 1 <= top_k <= experts,
        f"config.json num_experts_per_tok={top_k!r} must be an integer in "
        f"[1, num_local_experts={experts}].",
    )
    jitter = get(hf, "router_jitter_noise", 0.0)
    require(
        jitter == 0,
        f"config.json router_jitter_noise={jitter!r} is not supported (our router has no "
        "input jitter); set it to 0.",
    )
    return ModelConfig(
        **fields,
        use_bias=False,
        attention_window=_attention_window(hf),
        num_experts=experts,
        experts_per_token=top_k,
        router_scores="softmax",
        router_renormalize=True,
        router_scale=1.0,
        load_balance_loss_weight=float(get(hf, "router_aux_loss_coef", DEFAULT_AUX_LOSS_COEF)),
        router_z_loss_weight=0.0,
    )


def _moe_from_hf(m: Mapper, cfg: ModelConfig, hf: str, ours: str) -> None:
    e, d, f = cfg.num_experts, cfg.d_model, cfg.expert_hidden
    reader = m.reader
    released, current = (f"{hf}.{b}" for b in _BLOCKS)
    gate_ExD = reader.take(f"{released}.gate.weight", (e, d), [f"{current}.gate.weight"])
    m.flat[f"{ours}/moe/router/kernel"] = linear_to_kernel(gate_ExD)
    fused = next((b for b in (current, released) if reader.has(f"{b}.experts.gate_up_proj")), None)
    if fused is not None:
        gate_up_Ex2FxD = reader.take(f"{fused}.experts.gate_up_proj", (e, 2 * f, d))
        down_ExDxF = reader.take(f"{fused}.experts.down_proj", (e, d, f))
        wg_ExDxF = gate_up_Ex2FxD[:, :f].transpose(0, 2, 1)
        wi_ExDxF = gate_up_Ex2FxD[:, f:].transpose(0, 2, 1)
        wo_ExFxD = down_ExDxF.transpose(0, 2, 1)
    else:

        def per_expert(name: str, shape: tuple[int, int]) -> np.ndarray:
            # torch Linear [out, in] per expert -> [E, in, out].
            return np.stack(
                [
                    reader.take(
                        f"{released}.experts.{j}.{name}.weight",
                        shape,
                        [f"{current}.experts.{j}.{name}.weight"],
                    ).T
                    for j in range(e)
                ]
            )

        wg_ExDxF = per_expert("w1", (f, d))
        wi_ExDxF = per_expert("w3", (f, d))
        wo_ExFxD = per_expert("w2", (d, f))
    m.flat[f"{ours}/moe/wg"] = np.ascontiguousarray(wg_ExDxF)
    m.flat[f"{ours}/moe/wi"] = np.ascontiguousarray(wi_ExDxF)
    m.flat[f"{ours}/moe/wo"] = np.ascontiguousarray(wo_ExFxD)


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a Mixtral checkpoint (per-expert or fused experts)."""
    return decoder_params_from_hf(cfg, reader, _moe_from_hf, IGNORED)


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as Mixtral (empty: it can)."""
    problems = decoder_problems(cfg, "Mixtral")
    if not cfg.is_moe:
        problems.append("num_experts=0 (a dense model: Mixtral needs num_experts >= 1)")
        return problems
    if cfg.num_shared_experts:
        problems.append(
            f"num_shared_experts={cfg.num_shared_experts} (Mixtral has no shared experts)"
        )
    if cfg.first_dense_layers:
        problems.append(
            f"first_dense_layers={cfg.first_dense_layers} (every Mixtral layer is an MoE)"
        )
    if cfg.router_scores != "softmax":
        problems.append(f"router_scores={cfg.router_scores!r} (Mixtral's router is a softmax)")
    if not cfg.router_renormalize:
        problems.append("router_renormalize=False (Mixtral renormalises its top-k weights)")
    if cfg.router_scale != 1.0:
        problems.append(f"router_scale={cfg.router_scale} (Mixtral does not scale the experts)")
    if cfg.use_bias:
        problems.append("use_bias=True (Mixtral has no biases)")
    return problems


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """Mixtral config.json for cfg (token ids and other extras kept from `base`)."""
    return {
        **decoder_config_to_hf(cfg, base, MODEL_TYPE, ARCHITECTURES),
        "intermediate_size": cfg.expert_hidden,
        "num_local_experts": cfg.num_experts,
        "num_experts_per_tok": cfg.experts_per_token,
        "router_aux_loss_coef": cfg.load_balance_loss_weight,
        "router_jitter_noise": 0.0,
        "sliding_window": cfg.attention_window + 1 if cfg.attention_window else None,
    }


def _moe_to_hf(w: Writer, cfg: ModelConfig, hf: str, ours: str) -> None:
    block = f"{hf}.{_BLOCKS[0]}"
    w.tensors[f"{block}.gate.weight"] = kernel_to_linear(w.flat[f"{ours}/moe/router/kernel"])
    for ours_name, hf_name in (("wg", "w1"), ("wi", "w3"), ("wo", "w2")):
        weights = np.asarray(w.flat[f"{ours}/moe/{ours_name}"])
        for j in range(cfg.num_experts):
            w.tensors[f"{block}.experts.{j}.{hf_name}.weight"] = kernel_to_linear(weights[j])


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """MixtralForCausalLM tensors (per-expert layout) from flat unrolled params."""
    return decoder_params_to_hf(cfg, flat, _moe_to_hf)
