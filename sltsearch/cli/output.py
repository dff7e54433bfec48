"""Where the commands print, and how a command ends on bad input: one line on stderr naming the problem and
the fix, exit code 2, no traceback (`user_errors`); Ctrl-C or SIGTERM: one line and exit 130 / 143.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from sltsearch.errors import UserError
from sltsearch.system.diskfull import DiskFull, describe

if TYPE_CHECKING:
    import pandas as pd

console = Console()
err_console = Console(stderr=True)


def plain(value: object) -> str:
    """``value`` as text that prints as itself: control characters (ESC sequences that clear the screen or set
    the terminal's title, bells, carriage returns) shown as escapes such as ``\\x1b``, and rich markup escaped.
    Every value read from a file (ticket ids, parameter values, names) goes through here before printing."""
    return escape(visible(value))


def visible(value: object) -> str:
    """``value`` as text with its non-printable characters shown as escapes (for `rich.text.Text`, which
    takes no markup)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The command ``fn`` with user errors, a full disk and interrupts told in one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            # a name holding rich markup is shown, not obeyed (UserError already escapes line breaks)
            message = escape(str(err))
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except DiskFull as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as err:  # a write sltsearch does not make itself (Optuna's journal) on a full disk
            text = describe(err)
            if text is None:
                raise
            err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as err:
            from sltsearch.search.interrupts import EXIT_CODE, Terminated

            how = "terminated" if isinstance(err, Terminated) else "interrupted"
            err_console.print(
                f"{how}: finished trials and stages are kept; rerun the same command to resume",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_CODE if isinstance(err, Terminated) else 130) from None

    return wrapper


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a table to CSV, creating its folder; a path that cannot be written is one line, not a traceback."""
    from sltsearch.system.files import atomic_write

    try:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    except OSError as err:
        raise UserError(f"--csv {path}: cannot write there ({err.strerror or err}); choose another path") from None


def write_json(frame: pd.DataFrame, path: Path) -> None:
    """Write a table to JSON (a list of rows, missing values as null), like `write_csv`."""
    from sltsearch.system.files import atomic_write

    try:
        atomic_write(path, lambda tmp: frame.to_json(tmp, orient="records", indent=1, date_format="iso"))
    except OSError as err:
        raise UserError(f"--json {path}: cannot write there ({err.strerror or err}); choose another path") from None
