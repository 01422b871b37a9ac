"""Test setup: 8 simulated CPU devices and one compilation cache, set before JAX is imported.

Compilation dominates the suites, and many tests compile the same tiny programs: JAX's
persistent compilation cache in one temporary directory per pytest run lets every test,
every pytest-xdist worker (`-n 2`) and every launcher the tests start as a subprocess
reuse what another compiled. The controller creates the directory; workers and
subprocesses inherit it through the environment. .ci/run sets JAX_COMPILATION_CACHE_DIR
itself, so that its three pytest runs share one cache (it removes the directory).

The default selection (`-m "not slow"`, the README's command) compiles with LLVM at -O0:
its tests compile far more than they run, and -O0 cuts XLA:CPU compile time by about a
quarter (the HLO, and so every program's meaning, is the same; only the machine code is
less optimised). The slow suite trains for hundreds of steps, where -O0 would double the
step time, so it keeps XLA's default level.
"""

import os
import shutil
import tempfile

_DEVICES_FLAG = "--xla_force_host_platform_device_count=8"
if _DEVICES_FLAG not in os.environ.get("XLA_FLAGS", "").split():  # xdist workers inherit it
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _DEVICES_FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-tests-jax-cache-")
# Cache every program that takes noticeable time; tiny ones are cheaper to recompile.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Measured 2026-12-02 (2-core CPU): 18 compile-heavy default tests 211 s -> 158 s at -O0;
# tiny_lm training 9,800 -> 4,700 tokens/s.
FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    """The default selection compiles at -O0; set before any test initialises JAX's backend."""
    selection = (config.getoption("markexpr", "") or "").replace(" ", "")
    flags = os.environ["XLA_FLAGS"]
    if selection == "notslow" and FAST_COMPILE_FLAG not in flags.split():
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}"


def pytest_unconfigure(config):
    """The run's controller removes the cache it created (workers leave it)."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
