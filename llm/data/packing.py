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


Columns = dict[str, tuple[np.ndarray, np.ndarray]]


def columns_of(
    examples: Sequence[Mapping[str, Any]], lengths: Mapping[str, int]
) -> tuple[Columns, dict[str, np.ndarray]]:
    """Per-example dicts -> (feature -> (concatenated values, sizes), meta).

    Features not in `lengths` (one scalar per example) go to meta.
    """
    cols: Columns = {}
    for k in lengths:
        parts = [np.asarray(ex[k]) for ex in examples]
        sizes = np.fromiter((len(p) for p in parts), np.int64, len(parts))
        cols[k] = (np.concatenate(parts) if parts else np.zeros(0, np.int32), sizes)
    meta_keys = [k for k in (examples[0] if examples else {}) if k not in lengths]
    return cols, {k: np.stack([np.asarray(ex[k]) for ex in examples]) for k in meta_keys}


def make_rows(
    columns: Columns,
    lengths: Mapping[str, int],
    *,
    pack: bool,
    open_rows: int = 16,
    meta: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Stacks examples, given as columns, into rows.

    columns: feature -> (all examples' values concatenated, size of each);
    examples must fit `lengths` already (tasks truncate and count). meta:
    one value per example (e.g. NSP labels), only without packing. Each
    feature is written with one scatter of all its examples' tokens.
    """
    keys = list(lengths)
    meta = dict(meta or {})
    if meta and pack:
        raise ValueError(f"Features {sorted(meta)} have no length and cannot be packed.")
    caps = [lengths[k] for k in keys]
    sizes_FxN = np.stack([columns[k][1] for k in keys]).astype(np.int64)
    num_examples = sizes_FxN.shape[1]
    too_long = (sizes_FxN > np.asarray(caps)[:, None]).any(axis=0)
    if too_long.any():
        i = int(np.flatnonzero(too_long)[0])
        raise ValueError(
            f"An example of lengths {sizes_FxN[:, i].tolist()} does not fit rows of {caps}."
        )
    if pack:
        # Features that always have equal sizes and caps (LM inputs and
        # targets) constrain packing once: pack on the distinct ones only.
        distinct: dict[tuple[int, bytes], int] = {}
        for f in range(len(keys)):
            distinct.setdefault((caps[f], sizes_FxN[f].tobytes()), f)
        fs = sorted(distinct.values())
        sizes = sizes_FxN[fs].T.tolist()
        row_of, num_rows = first_fit(sizes, [caps[f] for f in fs], open_rows)
    else:
        row_of, num_rows = list(range(num_examples)), num_examples
    row_N = np.asarray(row_of, np.int64)
    # Start of each example within its row (per feature) and its segment
    # number: ranks among the examples of the same row, in order.
    order = np.argsort(row_N, kind="stable")
    sorted_rows = row_N[order]
    first_of_row = np.searchsorted(sorted_rows, sorted_rows, side="left")
    seg_N = np.empty(num_examples, np.int32)
    seg_N[order] = (np.arange(num_examples) - first_of_row + 1).astype(np.int32)
    out: dict[str, np.ndarray] = {}
    for f, k in enumerate(keys):
        length, n_N = lengths[k], sizes_FxN[f]
        stream = columns[k][0]
        # Exclusive cumulative size within the row, in example order.
        n_sorted = n_N[order]
        csum = np.cumsum(n_sorted) - n_sorted
        starts_N = np.empty(num_examples, np.int64)
        starts_N[order] = csum - csum[first_of_row]
        offsets_N = np.cumsum(n_N) - n_N  # Start of each example in the stream.
        within = np.arange(len(stream)) - np.repeat(offsets_N, n_N)
        dest = np.repeat(row_N * length + starts_N, n_N) + within
        values = np.zeros(num_rows * length, stream.dtype)
        values[dest] = stream
        seg = np.zeros(num_rows * length, np.int32)
        seg[dest] = np.repeat(seg_N, n_N)
        pos = np.zeros(num_rows * length, np.int32)
        pos[dest] = within
        out[k] = values.reshape(num_rows, length)
        out[f"{k}_segment_ids"] = seg.reshape(num_rows, length)
        out[f"{k}_positions"] = pos.reshape(num_rows, length)
    out.update(meta)
    return out
