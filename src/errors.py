"""The library's error for what a user can fix: a bad params file, a damaged or missing input, an unusable device."""


class StudyError(Exception):
    """A problem with the study's inputs that the user can fix; the command line shows it as one line (exit 2)."""
