"""`sltsearch` command line: typer commands over the Python API, rich tables and progress.

The commands live by job (`search`: run, validate, repair, spaces, schema, models, dashboard; `tickets`:
pareto, energy, export, evaluate), the tables in `tables`, the progress display in `display`, and how a
command prints and ends on bad input in `output`. They are registered here, in the order ``--help`` lists them.
Bad input ends with one line on stderr naming the problem and the fix, exit code 2, no traceback.
"""

from __future__ import annotations

import sys

import typer

from sltsearch.cli import search, tickets

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Search for sparse, energy-efficient spiking lottery tickets.",
)
app.command()(search.run)
app.command()(search.validate)
app.command()(tickets.pareto)
app.command()(search.repair)
app.command()(search.spaces)
app.command()(search.schema)
app.command()(search.models)
app.command()(tickets.energy)
app.command("export")(tickets.export_cmd)
app.command("evaluate")(tickets.evaluate_cmd)
app.command()(search.dashboard)


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C outside a command (while starting up): one line, no traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)
