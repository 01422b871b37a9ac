"""launch/cli.py: every launcher keeps its compiled programs in a persistent cache."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# A launcher-shaped program: run_main around a main that compiles one function.
_LAUNCHER = """
import jax, jax.numpy as jnp
from launch.cli import run_main

def main(argv):
    print("cache dir:", jax.config.jax_compilation_cache_dir)
    jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))))

run_main(main)
"""


def _run(home: pathlib.Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    # Every compile is written (JAX's default skips programs compiled in under 1 s).
    env.update(HOME=str(home), JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", _LAUNCHER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_launchers_cache_compiled_programs_under_home_by_default(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cache = tmp_path / ".cache" / "llm" / "jax"
    assert f"cache dir: {cache}" in result.stdout
    assert any(p.name.startswith("jit_") for p in cache.iterdir())


def test_jax_compilation_cache_dir_chooses_another_directory_or_turns_it_off(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    result = _run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(elsewhere))
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(p.name.startswith("jit_") for p in elsewhere.iterdir())
    off = _run(tmp_path / "home", JAX_COMPILATION_CACHE_DIR="")
    assert off.returncode == 0, off.stderr[-3000:]
    assert not (tmp_path / "home" / ".cache").exists()


def test_benchmarks_compile_instead_of_reading_the_cache(monkeypatch):
    import jax
    from absl import flags

    from launch import bench
    from llm.bench import suites

    seen = {}

    def fake_run(suite, steps):
        seen["cache"] = jax.config.jax_enable_compilation_cache
        return {}

    monkeypatch.setattr(suites, "run", fake_run)
    monkeypatch.setattr(suites, "to_markdown", lambda results: "")
    before = jax.config.jax_enable_compilation_cache
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    try:
        bench.main(["bench"])
    finally:
        jax.config.update("jax_enable_compilation_cache", before)
    assert seen == {"cache": False}
