"""Base class of this project's TFDS builders."""

from __future__ import annotations

import inspect

import tensorflow_datasets as tfds
from etils import epath


class Builder(tfds.core.GeneratorBasedBuilder):
    """GeneratorBasedBuilder that works without `importlib_resources`.

    TFDS's `code_path` imports the optional `importlib_resources` package for
    builders defined inside a package; we do not depend on it, and the plain
    source file is all TFDS needs (it looks for checksums next to it).
    It prints no banner: TFDS's "Downloading and preparing dataset Unknown
    size..." says nothing about data built locally; llm.data.prepare logs one
    line per build instead.
    Abstract, so TFDS does not register it as a dataset.
    """

    # Examples a build writes, when known beforehand (for the one log line).
    EXAMPLES: int | None = None

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path | None:
        """Returns the file that defines the builder class."""
        return epath.Path(inspect.getfile(cls))

    def _log_download_bytes(self) -> None:
        """Prints nothing (TFDS prints its download banner here)."""

    def _log_download_done(self) -> None:
        """Prints nothing (TFDS prints 'Dataset ... downloaded and prepared' here)."""
