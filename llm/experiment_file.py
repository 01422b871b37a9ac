"""Run an experiment file's code: what fails in the file itself is the user's to fix.

A syntax error in `experiments/X.py`, or an exception its own code raises while it loads
or in `get_config`/`get_sweep`, becomes a ConfigError naming the file and line, which
launchers print as one line. An exception that llm's code raises when the file calls it
is a bug in llm and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterator
from types import ModuleType

from llm.errors import ConfigError, UserError

_LLM_DIR = os.path.dirname(os.path.realpath(__file__))


def exec_file(path: str | os.PathLike, module_name: str) -> ModuleType:
    """Executes the experiment file `path` as module `module_name` (registered in sys.modules)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with blame_file(path, "Loading"):
            spec.loader.exec_module(module)
    except BaseException:
        # A half-executed module must not be found by a later import of the same name.
        sys.modules.pop(module_name, None)
        raise
    return module


@contextlib.contextmanager
def blame_file(path: str | os.PathLike, action: str) -> Iterator[None]:
    """Re-raises an error of experiment file `path`'s own code as a ConfigError naming its line."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        blamed, line = _blame(e, os.path.realpath(path))
        if not blamed:
            raise
        where = f" at line {line}" if line else ""
        detail = e.msg if isinstance(e, SyntaxError) else str(e)
        raise ConfigError(
            f"{action} {os.fspath(path)} failed{where}: {type(e).__name__}: {detail}"
        ) from e


def _in_llm(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_LLM_DIR + os.sep)


def _blame(error: Exception, target: str) -> tuple[bool, int | None]:
    """(whether the experiment file is to blame, the line of it that raised, if known)."""
    if isinstance(error, SyntaxError) and error.filename:
        if os.path.realpath(error.filename) == target:
            return True, error.lineno
        if _in_llm(error.filename):
            return False, None
    frames = [(f.f_code.co_filename, n) for f, n in traceback.walk_tb(error.__traceback__)]
    in_file = [i for i, (name, _) in enumerate(frames) if os.path.realpath(name) == target]
    if not in_file:
        # Nothing of the file ran: the call itself failed (say, get_config's signature).
        return True, None
    # Frames before the file's first are the loader calling it; after it, llm's code raising
    # last means the file called into llm and llm failed.
    last_llm = max(
        (i for i, (name, _) in enumerate(frames) if i > in_file[0] and _in_llm(name)), default=-1
    )
    if last_llm > in_file[-1]:
        return False, None
    return True, frames[in_file[-1]][1]
