"""onebit: PyTorch-native binarized neural networks, trained with published methods, run with bitwise kernels."""

from . import bitpack, kernels, nn, quantizers
from .binarize import BinarizeConfig, binarize_, get_config
from .checkpoint import load_checkpoint, save_checkpoint
from .summary import ModelSummary, summary

__version__ = "0.1.0"

__all__ = [
    "BinarizeConfig",
    "ModelSummary",
    "__version__",
    "binarize_",
    "bitpack",
    "get_config",
    "kernels",
    "load_checkpoint",
    "nn",
    "quantizers",
    "save_checkpoint",
    "summary",
]
