"""User errors are one `error:` line and exit status 2; every other exception keeps its traceback."""

import os
import pathlib
import subprocess
import sys

import pytest
from absl import app, flags

from launch import cli
from llm import errors
from llm.config import load_config, split_config_overrides
from llm.errors import ConfigError, UserError
from llm.sweeps.run import load_sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (errors.ConfigError, ValueError),
        (errors.ConfigKeyError, KeyError),
        (errors.InputFileError, ValueError),
        (errors.InputFileNotFoundError, FileNotFoundError),
        (errors.OutputExistsError, FileExistsError),
        (errors.DatasetNotPreparedError, FileNotFoundError),
        (errors.CheckpointNotFoundError, FileNotFoundError),
        (errors.CheckpointCorruptError, ValueError),
        (errors.WorkdirError, OSError),
        (errors.ConversionError, ValueError),
        (errors.TPUCompilerMissingError, ValueError),
    ],
)
def test_each_user_error_is_also_the_builtin_it_replaces(cls, builtin):
    assert issubclass(cls, UserError) and issubclass(cls, builtin)


def test_old_import_paths_name_the_same_classes():
    from llm.convert import ConversionError
    from llm.data import DatasetNotPreparedError
    from llm.parallel.topology import TPUCompilerMissingError
    from llm.train.restore import CheckpointNotFoundError

    assert ConversionError is errors.ConversionError
    assert DatasetNotPreparedError is errors.DatasetNotPreparedError
    assert TPUCompilerMissingError is errors.TPUCompilerMissingError
    assert CheckpointNotFoundError is errors.CheckpointNotFoundError


def test_config_key_error_reads_as_its_message():
    # KeyError's str() would quote the message.
    assert str(errors.ConfigKeyError("no field 'x'")) == "no field 'x'"


def test_library_user_errors_are_user_errors():
    with pytest.raises(ConfigError, match="overridden more than once"):
        split_config_overrides(["--config.a=1", "--config.a=2"])
    with pytest.raises(errors.ConfigKeyError, match="has no field 'stesp'"):
        load_config(str(ROOT / "experiments" / "tiny_lm.py"), [("train.stesp", "3")])
    with pytest.raises(errors.InputFileNotFoundError, match="not found"):
        load_config("no/such/experiment.py")


def _experiment(tmp_path: pathlib.Path, source: str) -> str:
    path = tmp_path / "exp.py"
    path.write_text(source)
    return str(path)


def test_config_file_errors_name_the_file_and_line(tmp_path):
    syntax = _experiment(tmp_path, "x = 1\n\ndef get_config(arg=None)\n    return x\n")
    with pytest.raises(ConfigError, match=r"exp\.py failed at line 3: SyntaxError"):
        load_config(syntax)
    raises = _experiment(tmp_path, "def get_config(arg=None):\n    x = 1\n    return x / 0\n")
    with pytest.raises(ConfigError, match=r"get_config\('a'\) of .*exp\.py failed at line 3: Zero"):
        load_config(raises + ":a")
    with pytest.raises(ConfigError, match="defines no get_config"):
        load_config(_experiment(tmp_path, "x = 1\n"))
    sweep = _experiment(tmp_path, "def get_sweep(name):\n    return [{}][1]\n")
    with pytest.raises(ConfigError, match=r"get_sweep\('lr'\) of .* line 2: IndexError"):
        load_sweep(sweep, "lr")


def test_llm_failing_under_a_config_file_is_a_bug_not_a_config_error(tmp_path):
    # Raised inside llm's code, not the file's: it keeps its type and traceback.
    path = _experiment(
        tmp_path,
        "from llm.data.numbers import to_words\n\ndef get_config(arg=None):\n"
        "    return to_words(-1)\n",
    )
    with pytest.raises(ValueError, match="out of range") as info:
        load_config(path)
    assert not isinstance(info.value, UserError)


@pytest.fixture
def fake_app_run(monkeypatch):
    """app.run without absl's global flag parsing: parse with the given parser, call main."""

    def run(main, flags_parser):
        main(flags_parser(["prog"]))

    monkeypatch.setattr(app, "run", run)


def _main_raising(error: BaseException):
    def main(argv):
        raise error

    return main


def test_run_main_prints_a_user_error_as_one_line_and_exits_2(fake_app_run, capsys):
    with pytest.raises(SystemExit) as info:
        cli.run_main(_main_raising(ConfigError("--x=3 must be even.")), lambda argv: argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == "error: --x=3 must be even.\n"


@pytest.mark.parametrize("bug", [ValueError("internal"), KeyError("k"), ZeroDivisionError()])
def test_run_main_lets_a_bug_propagate_with_its_traceback(fake_app_run, capsys, bug):
    with pytest.raises(type(bug)) as info:
        cli.run_main(_main_raising(bug), lambda argv: argv)
    assert info.value is bug
    assert "error:" not in capsys.readouterr().err


def test_run_main_treats_absl_flag_errors_as_user_errors(fake_app_run, capsys):
    def parser(argv):
        raise flags.UnrecognizedFlagError("nosuchflag")

    with pytest.raises(SystemExit) as info:
        cli.run_main(_main_raising(AssertionError("main must not run")), parser)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown command line flag 'nosuchflag'")
    assert err.count("\n") == 1


def _launch(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_one_error_line(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and text in error_lines[0], result.stderr[-3000:]
    assert result.stderr.rstrip().endswith(error_lines[0])


def test_launchers_report_user_errors_as_one_line(tmp_path):
    _assert_one_error_line(_launch("launch.train", "--nosuchflag"), "'nosuchflag'")
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config(arg=None)\n    return None\n")
    _assert_one_error_line(
        _launch("launch.train", f"--config={bad}", f"--workdir={tmp_path / 'w'}"),
        "bad.py failed at line 1: SyntaxError",
    )
    # launch.prepare used app.run before; its errors are one line too.
    _assert_one_error_line(
        _launch(
            "launch.prepare",
            "--kind=text",
            "--name=x",
            f"--train={tmp_path / 'nope.txt'}",
            f"--data_dir={tmp_path / 'data'}",
        ),
        "nope.txt",
    )
