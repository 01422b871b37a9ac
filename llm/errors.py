"""Errors in what the user gave: launchers print them as one `error:` line and exit 2.

Everything else a run raises is a bug (or an outcome such as a diverged loss) and keeps
its traceback. Each class also derives from the builtin its call sites raised before
(ValueError, KeyError, FileNotFoundError, FileExistsError), so `except ValueError` and
`pytest.raises(ValueError)` keep working.
"""

from __future__ import annotations

from collections.abc import Iterator


class UserError(Exception):
    """An error in what the user gave, reported as one line without a traceback."""


class ConfigError(UserError, ValueError):
    """A bad config value, key, combination or flag, or a mesh or batch unfit for the devices."""


class ConfigKeyError(ConfigError, KeyError):
    """A config key, or a name a config value points at, that does not exist."""

    # KeyError's str() is the repr of its argument; the message reads better unquoted.
    __str__ = Exception.__str__


class InputFileError(UserError, ValueError):
    """A bad input file: prompts, prepare inputs, experiment and sweep files."""


class InputFileNotFoundError(InputFileError, FileNotFoundError):
    """An input file or directory the user named does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output the run would overwrite exists already (a dataset, a checkpoint step)."""


class DatasetNotPreparedError(UserError, FileNotFoundError):
    """A dataset or split is missing from data_dir."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """No usable config.json or checkpoint at the path a user gave."""


class ConversionError(UserError, ValueError):
    """A checkpoint folder or config that cannot be converted; the message names the cause."""


class TPUCompilerMissingError(UserError, ValueError):
    """A TPU topology was asked for but libtpu is not installed (fixable by installing it)."""


class CheckpointCorruptError(UserError, ValueError):
    """A checkpoint that cannot be read back as saved: unreadable, checksum mismatch, NaN/inf."""


class WorkdirError(UserError, OSError):
    """A workdir that cannot hold the run: a file, not writable, or out of space."""


def exception_chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it was raised from or during, once each (cycles end the walk)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
