"""MkDocs hook: the command-line reference, rendered from the typer app's click command tree at build time.

A page holding the line ``<!-- cli-reference -->`` gets, in its place, one section per command in the order
``sltsearch --help`` lists them: its help text, its usage line and a table of its arguments and options with
the help and defaults the app declares. So the reference cannot drift from the code: it is the code's help.
"""

from __future__ import annotations

from typing import Any

import typer.main

MARKER = "<!-- cli-reference -->"


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _command_section(group: Any, root: Any, name: str) -> str:
    command = group.get_command(root, name)
    assert command is not None, name
    ctx = command.context_class(command, info_name=name, parent=root)
    usage = " ".join(["sltsearch", name, *command.collect_usage_pieces(ctx)])
    lines = [f"## `sltsearch {name}`", "", (command.help or "").strip(), "", "```text", usage, "```", ""]
    rows = []
    for param in command.params:
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        rows.append(f"| `{_cell(names)}` | {_cell(help_text)} |")
    if rows:
        lines += ["| argument / option | meaning |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def render() -> str:
    """Markdown for every command of ``sltsearch``."""
    from sltsearch.cli import app

    group = typer.main.get_command(app)  # typer's own (vendored) click: its classes, not click's
    root = group.context_class(group, info_name="sltsearch")
    sections = [_command_section(group, root, name) for name in group.list_commands(root)]
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (MkDocs hook signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
