"""Reading local text files for the local_* builders, counting bad input.

Lines that are not UTF-8, malformed TSV/JSON lines and blank documents are
skipped and counted (a corpus scraped from the web always has a few); a
missing or empty file is an error naming the file.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
from collections.abc import Iterator

from absl import logging

from llm.errors import ConfigError, InputFileError, InputFileNotFoundError


class Counts(collections.Counter):
    """Skipped input by reason, e.g. {'invalid_utf8': 3, 'empty': 10}."""


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise InputFileNotFoundError(f"Input file {path!r} does not exist.")
    if os.path.getsize(path) == 0:
        raise InputFileError(f"Input file {path!r} is empty.")


def read_lines(path: str, counts: Counts) -> Iterator[str | None]:
    """Yields each line of `path` without its newline; None where not UTF-8."""
    _check_file(path)
    with open(path, "rb") as f:
        for raw in f:
            try:
                yield raw.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError:
                counts["invalid_utf8"] += 1
                yield None


def _nonempty(items: Iterator[str], path: str, counts: Counts) -> Iterator[str]:
    n = 0
    for item in items:
        n += 1
        yield item
    if n == 0:
        raise InputFileError(f"Input file {path!r} has no usable text ({dict(counts)} skipped).")


def text_documents(path: str, doc_sep: str, counts: Counts) -> Iterator[str]:
    """Documents of a text file: one per line, or blank-line separated."""
    if doc_sep not in ("line", "blank"):
        raise ConfigError(f"doc_sep={doc_sep!r}; use 'line' or 'blank'.")

    def docs() -> Iterator[str]:
        para: list[str] = []
        for line in read_lines(path, counts):
            if line is None:
                continue
            if doc_sep == "line":
                if line.strip():
                    yield line
                else:
                    counts["empty"] += 1
            elif line.strip():
                para.append(line)
            elif para:
                yield "\n".join(para)
                para = []
        if para:
            yield "\n".join(para)

    return _nonempty(docs(), path, counts)


def parallel_pairs(paths: list[str], counts: Counts) -> Iterator[tuple[str, str]]:
    """(source, target) pairs: two aligned files, or one TSV file."""
    if len(paths) == 1:
        path = paths[0]

        def tsv() -> Iterator[tuple[str, str]]:
            for line in read_lines(path, counts):
                if line is None:
                    continue
                src, tab, tgt = line.partition("\t")
                if not tab or not src.strip() or not tgt.strip():
                    counts["malformed"] += 1
                    continue
                yield src, tgt

        return _nonempty(tsv(), path, counts)
    if len(paths) != 2:
        raise InputFileError(f"Parallel text needs two aligned files or one TSV; got {paths}.")

    def aligned() -> Iterator[tuple[str, str]]:
        missing = object()
        src_lines, tgt_lines = read_lines(paths[0], counts), read_lines(paths[1], counts)
        for src, tgt in itertools.zip_longest(src_lines, tgt_lines, fillvalue=missing):
            if src is missing or tgt is missing:
                raise InputFileError(
                    f"{paths[0]!r} and {paths[1]!r} have different numbers of lines."
                )
            if src is None or tgt is None:
                continue
            if not src.strip() or not tgt.strip():
                counts["empty"] += 1
                continue
            yield src, tgt

    return _nonempty(aligned(), paths[0], counts)


def jsonl_pairs(
    path: str, inputs_field: str, targets_field: str, counts: Counts
) -> Iterator[tuple[str, str]]:
    """(document, summary) pairs from JSON lines with the two fields."""

    def pairs() -> Iterator[tuple[str, str]]:
        for line in read_lines(path, counts):
            if line is None or not line.strip():
                continue
            try:
                obj = json.loads(line)
                doc, summary = obj[inputs_field], obj[targets_field]
            except (json.JSONDecodeError, KeyError, TypeError):
                counts["malformed"] += 1
                continue
            if not isinstance(doc, str) or not isinstance(summary, str) or not doc or not summary:
                counts["malformed"] += 1
                continue
            yield doc, summary

    return _nonempty(pairs(), path, counts)


def log_counts(name: str, counts: Counts) -> None:
    """Logs what was skipped, if anything."""
    if counts:
        logging.warning("%s: skipped input %s", name, dict(counts))
