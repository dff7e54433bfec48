"""Search drivers. Every backend calls the same `run_trial` and writes the same results."""

from sltsearch.search.space import suggest_params, to_distributions

__all__ = ["suggest_params", "to_distributions"]
