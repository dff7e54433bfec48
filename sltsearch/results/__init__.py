"""Results of a search: the ticket table (Parquet), Pareto fronts, hypervolume, selection and plots."""

from sltsearch.results.pareto import hypervolume, pareto_front, parse_objectives
from sltsearch.results.store import TicketStore, load_tickets
from sltsearch.results.tickets import accuracy_floor, load_runs, ok_rows, unique_tickets

__all__ = [
    "TicketStore",
    "accuracy_floor",
    "hypervolume",
    "load_runs",
    "load_tickets",
    "ok_rows",
    "parse_objectives",
    "pareto_front",
    "unique_tickets",
]
