"""What every launcher's entry point shares: user errors become one line and exit status 2."""

from __future__ import annotations

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
