"""User-facing errors: anything a user can fix by changing input.

The CLI prints these as one line and exits with code 2; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message names the problem and the fix.

    The message is one line whatever the input held: line breaks and other control characters that a
    file name, a key or a value brings along are shown escaped (``\\n``).
    """

    def __str__(self) -> str:
        text = super().__str__()
        return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class SpecError(UserError):
    """A search spec file is missing, malformed, or holds an invalid value."""


class DataError(UserError):
    """A dataset could not be found or read."""


class RunDirError(UserError):
    """A run folder is missing, incomplete, or belongs to a different spec."""
