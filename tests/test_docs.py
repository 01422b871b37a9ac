"""Every command in README.md and docs/*.md runs as written.

Each `python -m launch.X ...` line of a bash block is checked here (default suite): the
launcher exists, every flag it passes is one the launcher defines, and every
`--config=FILE[:ARG]` with its `--config.*` overrides loads. Blocks marked with an
`<!-- runnable -->` line just before them are also executed, in order, by bash (slow
suite): the README's first-hour commands on tiny settings.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from llm.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = "<!-- runnable -->"
# absl's own flags, which every launcher accepts.
ABSL_FLAGS = {"help", "helpfull", "helpshort", "verbosity", "v", "logtostderr", "alsologtostderr"}
# Flags that launch/prepare.py defines in a loop, one per split.
SPLIT_FLAGS = {"train", "validation", "test"}


def bash_blocks(path: pathlib.Path) -> list[tuple[int, str, bool]]:
    """(first line number, text, marked runnable) of each ```bash block of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            runnable = i > 0 and lines[i - 1].strip() == RUNNABLE
            blocks.append((start + 1, "\n".join(lines[start:end]), runnable))
            i = end
        i += 1
    return blocks


def launcher_commands(block: str) -> list[list[str]]:
    """The argument lists of the `python -m launch.X` commands of a block (without comments)."""
    joined = re.sub(r"\\\n", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            for k in range(len(words) - 2):
                if words[k].endswith("python") and words[k + 1] == "-m":
                    if words[k + 2].startswith("launch."):
                        commands.append(words[k + 2 :])
    return commands


def defined_flags(module: str) -> set[str]:
    """Flag names the launcher module defines (read from its source, nothing imported)."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    names = set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source))
    if "DEFINE_list(split" in source:
        names |= SPLIT_FLAGS
    return names


def _all_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in DOCS:
        for line, block, _ in bash_blocks(path):
            for command in launcher_commands(block):
                out.append((f"{path.relative_to(ROOT)}:{line}", command))
    return out


COMMANDS = _all_commands()


def test_the_docs_have_commands_to_check():
    modules = {command[0] for _, command in COMMANDS}
    assert {"launch.train", "launch.compile", "launch.plan", "launch.prepare"} <= modules
    assert any(runnable for path in DOCS for _, _, runnable in bash_blocks(path))


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_launcher_command_flags_exist_and_configs_load(where, command):
    module, args = command[0], command[1:]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{where}: no {module}"
    if "--" in args:  # launch.local/slurm/tpu pass what follows to launch.train
        args = args[: args.index("--")]
    known = defined_flags(module) | ABSL_FLAGS
    config, overrides = None, []
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        if name.startswith("config."):
            overrides.append((name.removeprefix("config."), value))
            continue
        name = name.removeprefix("no") if name.removeprefix("no") in known else name
        assert name in known, f"{where}: {module} has no flag --{name}"
        if name == "config":
            config = value
    path = config.partition(":")[0] if config else ""
    # experiments/workdir.py:W takes an existing workdir: the docs give a placeholder.
    if path and (ROOT / path).is_file() and path != "experiments/workdir.py":
        load_config(config, overrides)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [p for p in DOCS if any(r for _, _, r in bash_blocks(p))], ids=lambda p: p.name
)
def test_runnable_blocks_run_as_written(path, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # as on a fresh machine: one CPU device unless a block says
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["LLM_DATA_DIR"] = str(tmp_path / "data")  # nothing outside the test is touched
    env["HOME"] = str(tmp_path)
    for line, block, runnable in bash_blocks(path):
        if not runnable:
            continue
        # /tmp paths of the docs land in this test's directory.
        script = block.replace("/tmp/", f"{tmp_path}/")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"{path.name}:{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
