"""Search drivers. Every backend calls the same `run_trial` and writes the same results."""

from sltsearch.search.space import to_distributions

__all__ = ["to_distributions"]
