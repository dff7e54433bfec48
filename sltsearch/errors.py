"""User-facing errors: anything a user can fix by changing input; and the one-line way problems are told.

The CLI prints these as one line and exits with code 2; everything else is a bug and keeps its traceback.
`one_line` turns any exception (a user's code failing, a dataset that cannot be read) into one line for such a
message; `warn` tells the user about something sltsearch repaired on its own.
"""

import sys


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


def one_line(
    err: BaseException,
    *,
    limit: int | None = None,
    bare: tuple[type[BaseException], ...] = (),
    first_line: bool = False,
) -> str:
    """``Type: message`` on one line (whitespace runs collapsed, at most ``limit`` characters of message, or
    only its first line); just the message for the exception types in ``bare`` (whose messages already say
    what went wrong)."""
    message = str(err).strip()
    if first_line:
        message = message.splitlines()[0] if message else ""
    text = " ".join(message.split())[:limit]
    if not text:
        return type(err).__name__
    return text if isinstance(err, bare) else f"{type(err).__name__}: {text}"


def warn(message: str) -> None:
    """Tell the user about something sltsearch repaired on its own (one line on stderr)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
