"""User-facing errors: anything a user can fix by changing input.

The CLI prints these as one line and exits with code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message names the problem and the fix."""


class SpecError(UserError):
    """A search spec file is missing, malformed, or holds an invalid value."""


class DataError(UserError):
    """A dataset could not be found or read."""


class RunDirError(UserError):
    """A run folder is missing, incomplete, or belongs to a different spec."""
