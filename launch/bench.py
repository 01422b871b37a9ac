"""Benchmarks: `python -m launch.bench [--suite=models|cpu_goal|moe|data|decode|all] [--out=FILE]`.

models:   per family at a small size, training tokens/s, MFU against the matmul peak
          measured in the same run, and compile time with scanned vs unrolled layers.
cpu_goal: issue #8's CPU target, a 6-layer d_model 384 decoder (T=256, batch 8,
          vocab 8192, fp32) against the measured peak.
moe:      a mixture-of-experts decoder (4 layers, d_model 256, vocab 8192, 8 SwiGLU experts
          of 352, top-2; T=256, batch 8, fp32) against the dense decoder of the same active
          size (SwiGLU d_ff 704, models' llama row), dispatch dropless and capacity (factors
          1.25, 2.0): params, active params, tokens/s and MFU of the active FLOPs against
          the measured peak, and the fraction of assignments capacity drops at init.
data:     the grain pipeline's packed-LM tokens/s next to what the training step consumes.
decode:   new tokens/s with and without the KV cache, beam 4 vs greedy.
hf_decode: (needs the [hf] extra; not part of 'all') Hugging Face `generate` and this
          project's decoding side by side on the same weights: issue #19's GPT-2-style and
          LLaMA-style 6 x 384 decoders, prompt 32, 128 new tokens, greedy and beam 4, batch
          1 and 8, fp32; new tokens/s, the speed-up, first-call times, equal tokens.
gpu:      (NVIDIA GPU only, not part of 'all') GPT-2 124M (T=1024, batch 32) and GPT-3 XL
          1.3B (T=2048, batch 4) in bf16: tokens/s and MFU against the datasheet peak, with
          attention_impl 'xla' and 'cudnn' (jax.nn.dot_product_attention).
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags

from launch.cli import run_main

_SUITE = flags.DEFINE_enum(
    "suite",
    "all",
    ["models", "cpu_goal", "moe", "data", "decode", "hf_decode", "gpu", "all"],
    "What to measure.",
)
_OUT = flags.DEFINE_string("out", "", "Also write the results as JSON to this file.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed training steps per configuration.")


def main(argv: list[str]) -> None:
    del argv
    import jax

    from llm.bench import suites

    # The suites time compiles and first calls: programs loaded from the launchers'
    # persistent cache (launch/cli.py) would time a disk read instead.
    jax.config.update("jax_enable_compilation_cache", False)

    results = suites.run(_SUITE.value, steps=_STEPS.value)
    print(suites.to_markdown(results))
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(
                {
                    k: [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in v]
                    for k, v in results.items()
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    run_main(main)
