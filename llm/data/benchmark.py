"""Pipeline throughput, for launch.bench and the data issue's speed goal."""

from __future__ import annotations

import time

import ml_collections

from llm.data import pipeline


def benchmark_pipeline(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str | None = None,
    batch_size: int = 64,
    num_batches: int = 200,
    warmup_batches: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Measures a training iterator of `data_cfg` (the dataset must exist).

    Returns tokens/s (non-padding target tokens, what the model trains on),
    rows/s, batches/s and the fill rate (non-padding fraction of the rows).
    """
    it = pipeline.make_iterator(
        data_cfg, split=split or data_cfg.train_split, batch_size=batch_size, seed=seed
    )
    for _ in range(warmup_batches):
        next(it)
    tokens = slots = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(it)
        w = batch["weights"]
        tokens += (
            float(w.sum()) if data_cfg.task != "mlm" else float((batch["segment_ids"] > 0).sum())
        )
        slots += w.size
    seconds = time.perf_counter() - start
    if hasattr(it, "close"):
        it.close()
    return {
        "tokens_per_s": tokens / seconds,
        "rows_per_s": num_batches * batch_size / seconds,
        "batches_per_s": num_batches / seconds,
        "fill": tokens / max(slots, 1),
    }
