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
    Abstract, so TFDS does not register it as a dataset.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path | None:
        """Returns the file that defines the builder class."""
        return epath.Path(inspect.getfile(cls))
