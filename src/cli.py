"""The edge where a user's mistake becomes one line on stderr and exit status 2, not a traceback; and a Ctrl-C one
line and exit status 130, as a shell reports an interrupted command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from src.errors import StudyError


class UsageError(StudyError):
    """A bad command-line argument."""


# outputs land by atomic rename and training stages checkpoint, so stopping loses at most the work since a checkpoint
INTERRUPTED = "interrupted: nothing half-written is left; run it again (training resumes from its last checkpoint)"


def report_user_errors(main: Callable[[], None]) -> None:
    """Run `main`; a StudyError (a bad params file, input or argument) is printed as one line, exit status 2; a
    Ctrl-C (SIGINT) as the one line INTERRUPTED, exit status 130."""
    try:
        main()
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None


class OneLineParser(argparse.ArgumentParser):
    """argparse whose mistakes are one UsageError line (exit 2 via report_user_errors), not usage + error."""

    def error(self, message: str):
        raise UsageError(message)
