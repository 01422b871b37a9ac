"""What every launcher's entry point shares: user errors become one line and exit status 2,
and compiled programs are kept on disk (a rerun of the same shapes skips XLA's compile)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app, flags

from llm.errors import ConfigError, UserError

# Exit status of a run stopped by a user error (absl's usage errors exit 1).
USER_ERROR_STATUS = 2

# Where launchers keep compiled programs unless JAX_COMPILATION_CACHE_DIR says otherwise.
DEFAULT_COMPILATION_CACHE = "~/.cache/llm/jax"


def enable_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache in DEFAULT_COMPILATION_CACHE.

    JAX_COMPILATION_CACHE_DIR, JAX's own variable, wins when set: another directory, or
    '' to keep the cache off. Measured: the smoke training run took 21 s instead of
    38 s with a warm cache (docs/benchmarks.md, "The first call").
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # JAX reads it itself
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(DEFAULT_COMPILATION_CACHE))


def run_main(
    main: Callable[[list[str]], None],
    flags_parser: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """app.run(main); a UserError prints 'error: <message>' (no traceback) and exits 2.

    A bad flag (absl's flags.Error: unknown flag, bad or missing value) is a user error
    too. Any other exception is a bug and propagates with its traceback. Before main,
    the persistent compilation cache is turned on (enable_compilation_cache).
    """

    def main_with_cache(argv: list[str]) -> None:
        enable_compilation_cache()
        main(argv)

    try:
        app.run(
            main_with_cache,
            flags_parser=_flag_errors_as_user_errors(flags_parser or _parse_flags),
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)


def _parse_flags(argv: list[str]) -> list[str]:
    return flags.FLAGS(argv)


def _flag_errors_as_user_errors(
    parser: Callable[[list[str]], list[str]],
) -> Callable[[list[str]], list[str]]:
    # absl's own parser prints flag errors over several lines and exits 1; here they are
    # one 'error:' line and exit 2 like every other user error.
    def parse(argv: list[str]) -> list[str]:
        try:
            return parser(argv)
        except flags.Error as e:
            lines = [line.strip().rstrip(".") for line in str(e).splitlines()]
            message = "; ".join(line for line in lines if line)
            raise ConfigError(f"{message} (--helpfull lists the flags).") from e

    return parse


def simulate_cpu_devices(count: int) -> None:
    """Asks XLA:CPU for `count` devices; call before JAX is imported (it reads the flag once)."""
    if count < 1:
        raise ConfigError(f"--devices={count} must be >= 1 (the simulated CPU device count).")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    )
    # On a machine with libtpu, a TPU topology compiles from the CPU platform.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def target_devices(topology: str, slices: int, devices: int) -> list:
    """A TPU topology's compile-only devices, or the first `devices` simulated CPU devices."""
    import jax

    from llm.parallel.topology import tpu_devices

    if topology:
        return tpu_devices(topology, slices)
    available = jax.devices()
    if len(available) < devices:
        raise ConfigError(
            f"--devices={devices} but JAX has {len(available)}; XLA_FLAGS was set after JAX "
            "started. Run the launcher as its own process."
        )
    return available[:devices]
