"""Which converter handles a Hugging Face config.json, or one of our ModelConfigs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from llm.convert import bert, gpt2, llama, marian, mixtral
from llm.convert.hf_files import ConversionError
from llm.models import ModelConfig

CONVERTERS: dict[str, ModuleType] = {m.MODEL_TYPE: m for m in (gpt2, llama, mixtral, bert, marian)}


def supported() -> str:
    """One line listing the supported architectures."""
    return ", ".join(a for m in CONVERTERS.values() for a in m.ARCHITECTURES)


def for_hf_config(hf: dict[str, Any]) -> ModuleType:
    """The converter of a config.json, by `architectures`, else by `model_type`."""
    for arch in hf.get("architectures") or ():
        for module in CONVERTERS.values():
            if arch in module.ARCHITECTURES:
                return module
    model_type = hf.get("model_type")
    if model_type in CONVERTERS and not hf.get("architectures"):
        return CONVERTERS[model_type]
    raise ConversionError(
        f"unsupported architecture {hf.get('architectures')} (model_type={model_type!r}); "
        f"supported: {supported()}."
    )


def for_model_config(cfg: ModelConfig, model_type: str | None = None) -> ModuleType:
    """The converter that can write `cfg` (the preferred `model_type` first)."""
    order = list(CONVERTERS.values())
    if model_type in CONVERTERS:
        order.remove(CONVERTERS[model_type])
        order.insert(0, CONVERTERS[model_type])
    reasons = []
    for module in order:
        problems = module.exportable(cfg)
        if not problems:
            return module
        reasons.append(f"{module.MODEL_TYPE}: {'; '.join(problems)}")
    raise ConversionError(
        "no Hugging Face architecture represents this model exactly:\n  " + "\n  ".join(reasons)
    )
