"""A workdir that cannot hold checkpoints is one clear error, before or instead of a traceback."""

import collections
import contextlib
import os
import shutil
import subprocess

import pytest

from llm.errors import UserError
from llm.train import checkpoint as ckpt_lib
from llm.train.loop import Trainer, train_and_evaluate
from tests.train.tiny import tiny_config


def test_workdir_that_is_a_file(data_dir, tmp_path):
    workdir = tmp_path / "w"
    workdir.write_text("not a directory")
    with pytest.raises(UserError, match=rf"{workdir} is a file"):
        Trainer(tiny_config(data_dir), workdir)


@contextlib.contextmanager
def _read_only_dir(path):
    """`path` as a directory nobody may write: a read-only mount as root, else mode 0555."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mounted.stderr.decode()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_checkpoint_dir(data_dir, tmp_path):
    workdir = tmp_path / "w"
    with _read_only_dir(workdir / "checkpoints"):
        with pytest.raises(UserError, match=r"checkpoints is not writable"):
            Trainer(tiny_config(data_dir), workdir)


def test_full_disk_at_save_is_one_error_and_older_checkpoints_stay(data_dir, tmp_path, monkeypatch):
    config = tiny_config(data_dir, steps=6, checkpoint_every=3)
    train_and_evaluate(config, tmp_path, stop_at_step=3)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 4096, 4096))
    with pytest.raises(UserError, match=rf"checkpoint 6 in {tmp_path}.*4.0 KiB free"):
        train_and_evaluate(config, tmp_path)
    monkeypatch.undo()
    assert ckpt_lib.make_manager(tmp_path).all_steps() == [3]
    assert not list((tmp_path / "checkpoints").glob("*tmp*"))
