"""Results of a search: the ticket table (Parquet), Pareto fronts, hypervolume and plots."""

from sltsearch.results.pareto import hypervolume, pareto_front
from sltsearch.results.store import TicketStore, load_tickets

__all__ = ["TicketStore", "hypervolume", "load_tickets", "pareto_front"]
