"""The file system under a workdir: a writable directory, with room for the next checkpoint.

Problems here are the user's to fix (another --workdir, permissions, free space), so they
are WorkdirErrors: one `error:` line naming the directory, instead of a traceback from
deep inside orbax or tensorstore.
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil

import jax

from llm.errors import WorkdirError, exception_chain


def format_bytes(n: float) -> str:
    """'4.0 KiB', '1.3 MiB', '2.1 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def free_space(path: str | pathlib.Path) -> str:
    """'X free of Y' on the file system of `path`."""
    usage = shutil.disk_usage(path)
    return f"{format_bytes(usage.free)} free of {format_bytes(usage.total)}"


def check_writable(workdir: str | pathlib.Path, directory: pathlib.Path) -> None:
    """Creates `directory` under `workdir` and writes a file there, or fails naming why."""
    workdir = pathlib.Path(workdir).absolute()
    for path in (workdir, *workdir.parents):
        if path.exists() and not path.is_dir():
            raise WorkdirError(
                f"--workdir={workdir}: {path} is a file, not a directory; pass a directory "
                "(a new one starts a run, an existing one resumes it)."
            )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Per process: every process of a multi-process run writes its own shards.
        probe = directory / f".write-probe-{jax.process_index()}-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise WorkdirError(
                f"{directory} has no space left ({free_space(directory)}); free some or pass "
                "another --workdir."
            ) from e
        raise WorkdirError(
            f"{directory} is not writable ({e.strerror or e}); fix its permissions or mount, or "
            "pass another --workdir."
        ) from e


def directory_bytes(path: pathlib.Path) -> int:
    """Total size of the files under `path`."""
    return sum(
        (pathlib.Path(root) / name).stat().st_size
        for root, _, names in os.walk(path)
        for name in names
    )


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` or one it was raised from says the disk is full (OSError or tensorstore)."""
    for cause in exception_chain(error):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(cause)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
    return False


def disk_full_error(directory: pathlib.Path, what: str, resume_hint: str) -> WorkdirError:
    """The error for a write into `directory` that found the disk full."""
    return WorkdirError(
        f"{what} failed: the disk is full ({free_space(directory)} on the file system of "
        f"{directory}). Free space or move the workdir, then rerun: {resume_hint}"
    )


def write_text(path: pathlib.Path, text: str) -> None:
    """path.write_text(text); a full disk is a WorkdirError naming the file."""
    try:
        path.write_text(text)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path.parent, f"Writing {path}", "the run resumes.") from e
        raise
