"""Test setup: 8 simulated CPU devices and one compilation cache, set before JAX is imported.

Compilation dominates the suites, and many tests compile the same tiny programs: JAX's
persistent compilation cache in one temporary directory per pytest run lets every test,
every pytest-xdist worker (`-n 2`) and every launcher the tests start as a subprocess
reuse what another compiled. The controller creates the directory; workers and
subprocesses inherit it through the environment.
"""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="llm-tests-jax-cache-")
# Cache every program that takes noticeable time; tiny ones are cheaper to recompile.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_unconfigure(config):
    """The run's controller removes the cache it created (workers leave it)."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
