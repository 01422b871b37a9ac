"""What every launcher's entry point shares: user errors become one line and exit status 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app

# Errors a user can fix from the message (bad flag, config, input or missing checkpoint).
USER_ERRORS = (ValueError, KeyError, FileNotFoundError)


def run_main(
    main: Callable[[list[str]], None],
    flags_parser: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """app.run(main); a user error prints 'error: <message>' (no traceback) and exits 2."""
    try:
        if flags_parser is None:
            app.run(main)
        else:
            app.run(main, flags_parser=flags_parser)
    except USER_ERRORS as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def simulate_cpu_devices(count: int) -> None:
    """Asks XLA:CPU for `count` devices; call before JAX is imported (it reads the flag once)."""
    if count < 1:
        raise ValueError(f"--devices={count} must be >= 1 (the simulated CPU device count).")
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
        raise ValueError(
            f"--devices={devices} but JAX has {len(available)}; XLA_FLAGS was set after JAX "
            "started. Run the launcher as its own process."
        )
    return available[:devices]
