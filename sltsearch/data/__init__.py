"""Dataset registry: embedded sets (digits, mnist1d) and on-disk sets read from a local root.

Nothing is ever downloaded. Each builder returns `DataSplits` with fixed train/val/test splits.
"""

from sltsearch.data.base import DataSplits, make_loader, stratified_split
from sltsearch.data.registry import DATASETS, build_data, register_dataset

__all__ = ["DATASETS", "DataSplits", "build_data", "make_loader", "register_dataset", "stratified_split"]
