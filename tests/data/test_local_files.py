"""Local-file builders and bad input, on small files written here."""

import json
import logging
import subprocess
import sys

import pytest

from llm.data import config as config_lib
from llm.data import pipeline, prepare, sources, tokenizers

TOK = tokenizers.ByteTokenizer()


def _cfg(data_dir, dataset, task="lm"):
    cfg = config_lib.default_data_config()
    cfg.update(dataset=dataset, task=task, data_dir=str(data_dir), seq_len=32)
    cfg.update(inputs_len=32, targets_len=32, prefetch_buffer=0, read_threads=0, chunk_size=8)
    return cfg


def _texts(cfg, split="train", key="text"):
    src = sources.get_source(cfg, split)
    return sorted(src[i][key].decode() for i in range(len(src)))


def test_text_skips_invalid_utf8_and_blank_lines(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"first doc\n\nbad \xff\xfe line\nsecond doc\n")
    (tmp_path / "v.txt").write_text("held out\n")
    name, skipped = prepare.prepare_local(
        "text",
        "corpus",
        {"train": [str(tmp_path / "a.txt")], "validation": [str(tmp_path / "v.txt")]},
        str(tmp_path / "tfds"),
    )
    assert name == "local_text/corpus"
    assert skipped == {"invalid_utf8": 1, "empty": 1}
    cfg = _cfg(tmp_path / "tfds", name)
    assert _texts(cfg) == ["first doc", "second doc"]
    b = next(pipeline.make_iterator(cfg, split="validation", batch_size=2, num_epochs=1))
    assert TOK.decode(b["inputs"][0]) == "held out"


def test_building_local_files_logs_one_line_of_ours_and_nothing_of_tfds(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    prepare.prepare_local(
        "text", "quiet", {"train": [str(tmp_path / "a.txt")]}, str(tmp_path / "d")
    )
    out, err = capfd.readouterr()
    assert "Downloading and preparing" not in out + err and "Generating" not in out + err
    assert [r.getMessage() for r in caplog.records if "tensorflow_datasets" in r.pathname] == []
    assert f"Building local_text/quiet from 1 input files in {tmp_path / 'd'}" in [
        r.getMessage() for r in caplog.records
    ]


def test_text_paragraph_documents(tmp_path):
    (tmp_path / "a.txt").write_text("line one\nline two\n\n\npara two\n")
    name, _ = prepare.prepare_local(
        "text",
        "paras",
        {"train": [str(tmp_path / "a.txt")]},
        str(tmp_path / "tfds"),
        doc_sep="blank",
    )
    assert _texts(_cfg(tmp_path / "tfds", name)) == ["line one\nline two", "para two"]


def test_parallel_two_files_and_tsv(tmp_path):
    (tmp_path / "s.de").write_text("hallo\nwelt\n\n")
    (tmp_path / "t.en").write_text("hello\nworld\n\n")
    (tmp_path / "d.tsv").write_text("eins\tone\nno tab here\nzwei\ttwo\n")
    name, skipped = prepare.prepare_local(
        "parallel",
        "deen",
        {
            "train": [str(tmp_path / "s.de"), str(tmp_path / "t.en")],
            "validation": [str(tmp_path / "d.tsv")],
        },
        str(tmp_path / "tfds"),
    )
    assert skipped == {"empty": 1, "malformed": 1}
    cfg = _cfg(tmp_path / "tfds", name, task="seq2seq")
    assert _texts(cfg, key="source") == ["hallo", "welt"]
    assert _texts(cfg, "validation", key="target") == ["one", "two"]
    b = next(pipeline.make_iterator(cfg, split="train", batch_size=2, num_epochs=1, shuffle=False))
    assert b["encoder_inputs"].shape == (2, 32) and b["weights"].sum() > 0


def test_parallel_sides_follow_the_named_languages(tmp_path):
    # Given DE first, as launch.prepare's old example did: EN is still the source.
    (tmp_path / "train.de").write_text("hallo welt\n")
    (tmp_path / "train.en").write_text("hello world\n")
    files = {"train": [str(tmp_path / "train.de"), str(tmp_path / "train.en")]}
    name, _ = prepare.prepare_local(
        "parallel", "ende", files, str(tmp_path / "d"), source_lang="en", target_lang="de"
    )
    cfg = _cfg(tmp_path / "d", name, task="seq2seq")
    assert _texts(cfg, key="source") == ["hello world"]
    assert _texts(cfg, key="target") == ["hallo welt"]
    assert prepare.dataset_languages(cfg) == ("en", "de")
    info = json.loads((tmp_path / "d" / name / "1.0.0" / "dataset_info.json").read_text())
    assert info["configDescription"] == (
        f"train: source {tmp_path / 'train.en'}, target {tmp_path / 'train.de'}"
    )


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["a.de", "a.en"], ["a.en", "a.de"]),
        (["a.en", "a.de"], ["a.en", "a.de"]),
        (["a.de", "b.txt"], ["b.txt", "a.de"]),
        (["b.txt", "a.en"], ["a.en", "b.txt"]),
        (["x", "y"], ["x", "y"]),  # no language suffix: first = source
        (["d.tsv"], ["d.tsv"]),
    ],
)
def test_order_parallel_files(paths, expected):
    assert prepare.order_parallel_files(paths, "en", "de") == expected


def test_bad_languages_fail_naming_them():
    with pytest.raises(ValueError, match="both end in .de|Both"):
        prepare.order_parallel_files(["a.de", "b.de"], "en", "de")
    with pytest.raises(ValueError, match="source_lang='en/de'"):
        prepare.order_parallel_files(["a", "b"], "en/de", "de")
    with pytest.raises(ValueError, match="both 'en'"):
        prepare.order_parallel_files(["a", "b"], "en", "en")


def test_parallel_misaligned_files_fail(tmp_path):
    (tmp_path / "s").write_text("a\nb\n")
    (tmp_path / "t").write_text("a\n")
    with pytest.raises(ValueError, match="different numbers of lines"):
        prepare.prepare_local(
            "parallel",
            "bad",
            {"train": [str(tmp_path / "s"), str(tmp_path / "t")]},
            str(tmp_path / "d"),
        )


def test_summarization_jsonl(tmp_path):
    lines = [
        json.dumps({"document": "a long story about dogs", "summary": "dogs"}),
        "{not json",
        json.dumps({"document": "no summary"}),
        json.dumps({"document": "cats everywhere", "summary": "cats"}),
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    name, skipped = prepare.prepare_local(
        "summarization", "news", {"train": [str(tmp_path / "s.jsonl")]}, str(tmp_path / "tfds")
    )
    assert skipped == {"malformed": 2}
    cfg = _cfg(tmp_path / "tfds", name, task="seq2seq")
    assert sources.pair_keys(cfg) == ("document", "summary")
    assert _texts(cfg, key="summary") == ["cats", "dogs"]


def test_empty_and_missing_files_fail(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        prepare.prepare_local(
            "text", "e", {"train": [str(tmp_path / "empty.txt")]}, str(tmp_path / "d")
        )
    with pytest.raises(ValueError, match="no usable text"):
        prepare.prepare_local(
            "text", "b", {"train": [str(tmp_path / "blank.txt")]}, str(tmp_path / "d")
        )
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        prepare.prepare_local(
            "text", "m", {"train": [str(tmp_path / "nope.txt")]}, str(tmp_path / "d")
        )


def test_existing_dataset_needs_overwrite(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    files = {"train": [str(tmp_path / "a.txt")]}
    prepare.prepare_local("text", "x", files, str(tmp_path / "d"))
    with pytest.raises(FileExistsError, match="pass --overwrite .* --dataset=local_text/x"):
        prepare.prepare_local("text", "x", files, str(tmp_path / "d"))
    (tmp_path / "a.txt").write_text("y\nz\n")
    prepare.prepare_local("text", "x", files, str(tmp_path / "d"), overwrite=True)
    assert _texts(_cfg(tmp_path / "d", "local_text/x")) == ["y", "z"]


def test_missing_data_dir_fails_clearly(tmp_path):
    cfg = _cfg(tmp_path / "does_not_exist", "local_text/x")
    with pytest.raises(sources.DatasetNotPreparedError, match="launch.prepare"):
        prepare.ensure_dataset(cfg)


@pytest.mark.parametrize(
    "dataset, flags",
    [
        ("local_text/x", "--kind=text --name=x --train="),
        (
            "local_parallel/deen",
            "--kind=parallel --name=deen --source_lang=SRC --target_lang=TGT --train=",
        ),
        ("local_summarization/news", "--kind=summarization --name=news --train="),
    ],
)
def test_missing_local_dataset_hint_gives_the_prepare_flags(tmp_path, dataset, flags):
    with pytest.raises(sources.DatasetNotPreparedError) as error:
        prepare.ensure_dataset(_cfg(tmp_path / "d", dataset))
    assert f"python -m launch.prepare {flags}" in str(error.value)
    assert "--dataset=" not in str(error.value)


@pytest.mark.parametrize("existing", [False, True])
def test_failed_prepare_leaves_no_dataset_directory(tmp_path, existing):
    (tmp_path / "blank.txt").write_text("\n\n")
    (tmp_path / "good.txt").write_text("a\n")
    data_dir = tmp_path / "d"
    if existing:  # another dataset of the kind is there already and stays
        prepare.prepare_local("text", "other", {"train": [str(tmp_path / "good.txt")]}, data_dir)
    with pytest.raises(ValueError, match="no usable text"):
        prepare.prepare_local("text", "b", {"train": [str(tmp_path / "blank.txt")]}, data_dir)
    assert not (data_dir / "local_text" / "b").exists()
    assert (data_dir / "local_text").exists() == existing
    if existing:
        assert _texts(_cfg(data_dir, "local_text/other")) == ["a"]


@pytest.mark.parametrize("mode", ["truncate", "split"])
def test_over_long_documents_are_cut_and_counted(tmp_path, mode):
    (tmp_path / "a.txt").write_text("short\n" + "x" * 100 + "\n")
    name, _ = prepare.prepare_local(
        "text", "long", {"train": [str(tmp_path / "a.txt")]}, str(tmp_path / "d")
    )
    cfg = _cfg(tmp_path / "d", name)
    cfg.lm_long_docs = mode
    stats = pipeline.split_stats(cfg, "train")
    assert stats["examples"] == 2 and stats["truncated_inputs"] == 1
    # 'short' is 6 tokens with BOS; the long one 101, or its first 32.
    assert stats["input_tokens"] == (6 + 32 if mode == "truncate" else 6 + 101)
    batches = list(
        pipeline.make_iterator(cfg, split="train", batch_size=2, num_epochs=1, shuffle=False)
    )
    seg_lengths = sorted(
        int((b["segment_ids"][r] == s).sum())
        for b in batches
        for r in range(2)
        for s in range(1, int(b["segment_ids"][r].max()) + 1)
    )
    assert seg_lengths == ([6, 32] if mode == "truncate" else [5, 6, 32, 32, 32])
    if mode == "split":
        text = "".join(
            TOK.decode(b["inputs"][r][b["segment_ids"][r] > 0]) for b in batches for r in range(2)
        )
        assert sorted(text.replace("short", "")) == ["x"] * 100


@pytest.mark.slow
def test_prepare_launcher(tmp_path):
    (tmp_path / "a.txt").write_text("one two\nthree four\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.prepare",
            "--kind=text",
            "--name=cli",
            f"--train={tmp_path / 'a.txt'}",
            f"--data_dir={tmp_path / 'd'}",
            "--token_cache",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "data.dataset='local_text/cli'" in out and "token cache:" in out


def _prepare_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "launch.prepare", *args], capture_output=True, text=True
    )


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    return line


@pytest.mark.slow
def test_prepare_launcher_names_the_sides_and_takes_the_experiments_tokenizer(tmp_path):
    de, en = tmp_path / "train.de", tmp_path / "train.en"
    de.write_text("hallo welt\nguten tag\n")
    en.write_text("hello world\ngood day\n")
    data = f"--data_dir={tmp_path / 'd'}"
    build = ["--kind=parallel", "--name=ende", f"--train={de},{en}", data]
    assert "--source_lang and --target_lang" in _error_line(_prepare_cli(*build))
    langs = ["--source_lang=en", "--target_lang=de"]
    done = _prepare_cli(*build, *langs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"train: source (en) {en}, target (de) {de}" in done.stdout
    # Again, say for another tokenizer: one line naming both ways on.
    line = _error_line(_prepare_cli(*build, *langs, "--tokenizer=byte"))
    assert "local_parallel/ende already exists" in line and "--overwrite" in line
    assert "--dataset=local_parallel/ende" in line
    # The prepared dataset, with the tokenizer the experiment trains with (AIAYN: BPE).
    reuse = _prepare_cli(
        "--dataset=local_parallel/ende",
        "--config=experiments/aiayn.py",
        "--config.data.vocab_size=300",
        data,
    )
    assert reuse.returncode == 0, reuse.stderr[-2000:]
    assert "tokenizer: sentencepiece bpe 300" in reuse.stdout
    assert (
        "uses it with --config=experiments/aiayn.py --config.data.vocab_size=300 "
        "--config.data.dataset=local_parallel/ende --config.data.inputs_key=source "
        "--config.data.targets_key=target"
    ) in reuse.stdout
