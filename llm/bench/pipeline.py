"""Data pipeline throughput, for `launch.bench --suite=data` and the data issue's speed goal."""

from __future__ import annotations

import time

import ml_collections

from llm.data import pipeline


def benchmark_pipeline(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str | None = None,
    batch_size: int = 64,
    seconds: float = 10.0,
    min_batches: int = 10,
    warmup_batches: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Measures a training iterator of `data_cfg` (the dataset must exist).

    Runs for `seconds` (and at least `min_batches`): prefetching makes short
    runs read ahead-of-time work and overstate the rate. Returns tokens/s
    (non-padding tokens: the LM/seq2seq targets, or MLM input tokens), rows/s,
    batches/s and fill (non-padding fraction of row slots).
    """
    it = pipeline.make_iterator(
        data_cfg, split=split or data_cfg.train_split, batch_size=batch_size, seed=seed
    )
    try:
        for _ in range(warmup_batches):
            next(it)
        tokens = slots = batches = 0
        start = time.perf_counter()
        while batches < min_batches or time.perf_counter() - start < seconds:
            batch = next(it)
            mask = batch["weights"] > 0 if data_cfg.task != "mlm" else batch["segment_ids"] > 0
            tokens += int(mask.sum())
            slots += mask.size
            batches += 1
        elapsed = time.perf_counter() - start
    finally:
        if hasattr(it, "close"):
            it.close()
    return {
        "tokens_per_s": tokens / elapsed,
        "rows_per_s": batches * batch_size / elapsed,
        "batches_per_s": batches / elapsed,
        "fill": tokens / max(slots, 1),
    }
