"""Exported tickets: write one ticket of a run as a folder, load it back as a model, re-measure it.

Named ``ticket_io`` (not ``export``) so that the package never shadows the function ``sltsearch.export``.
"""

from sltsearch.ticket_io.bundle import TicketFileError
from sltsearch.ticket_io.export import ExportResult, export_ticket
from sltsearch.ticket_io.load import Evaluation, TicketInfo, evaluate_ticket, load_ticket
from sltsearch.ticket_io.nir_check import ConsumerEvaluation, SplitAgreement, evaluate_in_consumer

__all__ = [
    "ConsumerEvaluation",
    "Evaluation",
    "ExportResult",
    "TicketFileError",
    "SplitAgreement",
    "TicketInfo",
    "evaluate_in_consumer",
    "evaluate_ticket",
    "export_ticket",
    "load_ticket",
]
