"""Import a Hugging Face checkpoint folder as (ModelConfig, params) and export one back."""

from __future__ import annotations

import pathlib
from typing import Any

from llm.convert import layout, registry
from llm.convert.hf_files import TensorReader, read_config, write_folder
from llm.models import ModelConfig


def load_hf(
    folder: str | pathlib.Path, *, fill_seed: int = 0, **config_overrides: Any
) -> tuple[ModelConfig, Any, dict[str, Any]]:
    """(our config, our param tree as numpy, the folder's config.json) of a HF checkpoint.

    config_overrides change fields that do not alter the weights (scan_layers,
    remat, dtype, dropout_rate, ...). Params a HF checkpoint lacks (BERT's NSP
    head of a BertForMaskedLM) come from the model's init with fill_seed.
    """
    hf = read_config(folder)
    converter = registry.for_hf_config(hf)
    cfg = converter.config_from_hf(hf).replace(**config_overrides)
    reader = TensorReader(folder)
    flat = converter.params_from_hf(layout.unrolled(cfg), reader)
    return cfg, layout.to_tree(cfg, flat, fill_seed), hf


def save_hf(
    cfg: ModelConfig,
    params: Any,
    folder: str | pathlib.Path,
    base_config: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Writes config.json + model.safetensors that transformers' from_pretrained loads.

    base_config (e.g. the config.json the model was imported from) supplies the
    fields our config does not hold (token ids, tokenizer class); sizes always
    come from cfg.
    """
    base = dict(base_config or {})
    converter = registry.for_model_config(cfg, base.get("model_type"))
    if base.get("model_type") not in (None, converter.MODEL_TYPE):
        base = {}  # another architecture's extras do not apply
    flat = layout.to_flat(cfg, params)
    tensors = converter.params_to_hf(layout.unrolled(cfg), flat)
    hf = converter.config_to_hf(cfg, base)
    hf["dtype"] = "float32"
    return write_folder(folder, hf, tensors)
