"""Data sources: MNIST, Fashion-MNIST, IDX files and image files, as uint8 arrays."""

from .datasets import DATASETS, default_data_dir, load_dataset
from .idx import IDXError, read_idx, write_idx

__all__ = ["DATASETS", "IDXError", "default_data_dir", "load_dataset", "read_idx", "write_idx"]
