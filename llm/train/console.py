"""Console logging: keep this project's INFO lines, drop the libraries' chatter."""

from __future__ import annotations

import logging as std_logging
import pathlib

from absl import logging

_PROJECT_ROOT = str(pathlib.Path(__file__).resolve().parents[2])


class _ProjectInfoOnly(std_logging.Filter):
    """Passes warnings from anywhere, INFO only from files of this project."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno >= std_logging.WARNING:
            return True
        return record.pathname.startswith(_PROJECT_ROOT) and "site-packages" not in record.pathname


def quiet_library_logs() -> None:
    """Hides orbax/tfds/grain INFO logs (progress of every save) from the console."""
    logging.get_absl_handler().addFilter(_ProjectInfoOnly())
