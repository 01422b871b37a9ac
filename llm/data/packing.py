"""Rows of fixed length from a chunk of examples: first-fit packing or padding.

For each sequence feature `k` a chunk gives `k`, `k_segment_ids` and
`k_positions`, stacked `[rows, length]`. Packing works on a whole chunk of
examples at once, inside a random-access grain map: it holds no state
between chunks, so checkpoints need no packer state and the rows do not
depend on the number of worker processes. (grain's FirstFitPackIterDataset
packs one element at a time in an iterator and was ~20x too slow here; it
also makes the output depend on num_workers.) The cost is that documents of
different chunks never share a row: about half a row of padding per chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def first_fit(
    sizes: Sequence[Sequence[int]], caps: Sequence[int], open_rows: int
) -> tuple[list[int], int]:
    """Assigns each example to the first open row where all its features fit.

    Only the `open_rows` most recent rows stay open (bounded cost per
    example); a row closes early once a feature is full. Plain Python on
    small ints: per example this is cheaper than any numpy call.
    Returns the row of each example and the number of rows.
    """
    if len(caps) == 1:
        return _first_fit_1d([n for (n,) in sizes], caps[0], open_rows)
    row_of: list[int] = []
    open_ids: list[int] = []
    open_rem: list[list[int]] = []
    num_rows = 0
    for need in sizes:
        for j, rem in enumerate(open_rem):  # noqa: B007 (j is used after the loop)
            if all(r >= n for r, n in zip(rem, need, strict=True)):
                break
        else:
            if len(open_ids) == open_rows:
                del open_ids[0], open_rem[0]
            open_ids.append(num_rows)
            open_rem.append(list(caps))
            num_rows += 1
            j = len(open_ids) - 1
        row_of.append(open_ids[j])
        rem = open_rem[j]
        for f, n in enumerate(need):
            rem[f] -= n
        if 0 in rem:
            del open_ids[j], open_rem[j]
    return row_of, num_rows


def _first_fit_1d(sizes: Sequence[int], cap: int, open_rows: int) -> tuple[list[int], int]:
    """first_fit for one feature (the LM case), without per-feature loops."""
    row_of: list[int] = []
    open_ids: list[int] = []
    open_rem: list[int] = []
    num_rows = 0
    for n in sizes:
        for j, rem in enumerate(open_rem):  # noqa: B007 (j is used after the loop)
            if rem >= n:
                break
        else:
            if len(open_ids) == open_rows:
                del open_ids[0], open_rem[0]
            open_ids.append(num_rows)
            open_rem.append(cap)
            num_rows += 1
            j = len(open_ids) - 1
        row_of.append(open_ids[j])
        open_rem[j] -= n
        if open_rem[j] == 0:
            del open_ids[j], open_rem[j]
    return row_of, num_rows


def make_rows(
    examples: Sequence[Mapping[str, Any]],
    lengths: Mapping[str, int],
    *,
    pack: bool,
    open_rows: int = 16,
) -> dict[str, np.ndarray]:
    """Stacks examples into rows; features not in `lengths` need pack=False.

    Examples must fit `lengths` already (tasks truncate and count). Each
    feature is copied with one scatter of all its examples' tokens.
    """
    keys = list(lengths)
    caps = [lengths[k] for k in keys]
    sizes = [[len(ex[k]) for k in keys] for ex in examples]
    for need in sizes:
        if any(n > c for n, c in zip(need, caps, strict=True)):
            raise ValueError(f"An example of lengths {need} does not fit rows of {caps}.")
    if pack:
        # Features that always have equal sizes and caps (LM inputs and
        # targets) constrain packing once: pack on the distinct ones only.
        distinct = {}
        for f, column in enumerate(zip(*sizes, strict=True)):
            distinct.setdefault((caps[f], column), f)
        fs = sorted(distinct.values()) or [0]
        row_of, num_rows = first_fit(
            [[need[f] for f in fs] for need in sizes], [caps[f] for f in fs], open_rows
        )
    else:
        row_of, num_rows = list(range(len(examples))), len(examples)
    # Start of each example in its row, per feature, and its segment number.
    cursor = [[0] * len(keys) for _ in range(num_rows)]
    segments = [0] * num_rows
    starts, seg_of = [], []
    for r, need in zip(row_of, sizes, strict=True):
        starts.append(list(cursor[r]))
        segments[r] += 1
        seg_of.append(segments[r])
        for f, n in enumerate(need):
            cursor[r][f] += n
    row_N = np.asarray(row_of, np.int64)
    seg_N = np.asarray(seg_of, np.int32)
    sizes_NxF = np.asarray(sizes, np.int64).reshape(len(examples), len(keys))
    starts_NxF = np.asarray(starts, np.int64).reshape(len(examples), len(keys))
    out: dict[str, np.ndarray] = {}
    for f, k in enumerate(keys):
        length, n_N = lengths[k], sizes_NxF[:, f]
        total = int(n_N.sum())
        stream = np.concatenate([ex[k] for ex in examples]) if examples else np.zeros(0, np.int32)
        offsets_N = np.cumsum(n_N) - n_N  # Start of each example in the stream.
        within = np.arange(total) - np.repeat(offsets_N, n_N)
        dest = np.repeat(row_N * length + starts_NxF[:, f], n_N) + within
        values = np.zeros(num_rows * length, stream.dtype)
        values[dest] = stream
        seg = np.zeros(num_rows * length, np.int32)
        seg[dest] = np.repeat(seg_N, n_N)
        pos = np.zeros(num_rows * length, np.int32)
        pos[dest] = within
        out[k] = values.reshape(num_rows, length)
        out[f"{k}_segment_ids"] = seg.reshape(num_rows, length)
        out[f"{k}_positions"] = pos.reshape(num_rows, length)
    meta = [k for k in (examples[0] if examples else {}) if k not in lengths]
    if meta and pack:
        raise ValueError(f"Features {meta} have no length and cannot be packed.")
    for k in meta:
        out[k] = np.stack([np.asarray(ex[k]) for ex in examples])
    return out
