"""The edge where a user's mistake becomes one line on stderr and exit status 2, not a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from src.config import ConfigError


class UsageError(ValueError):
    """Bad input from the user (a flag, a file, a URL): reported in one line, never as a traceback."""


def report_user_errors(main: Callable[[], None]) -> None:
    """Run `main`; a ConfigError or UsageError is printed as one line and exits with status 2."""
    try:
        main()
    except (ConfigError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


class OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are one UsageError line (exit 2 via report_user_errors), not usage + error."""

    def error(self, message: str):
        raise UsageError(message)
