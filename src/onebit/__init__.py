"""onebit: PyTorch-native binarized neural networks, trained with published methods, run with bitwise kernels."""

from . import bitpack, kernels, nn, quantizers
from .binarize import BinarizeConfig, binarize_, get_config
from . import bitdot, methods, regularizers, sparsity
from .checkpoint import load_checkpoint, save_checkpoint
from .summary import ModelSummary, summary

__version__ = "0.1.0"

__all__ = [
    "BinarizeConfig",
    "ModelSummary",
    "__version__",
    "binarize_",
    "bitdot",
    "bitpack",
    "get_config",
    "kernels",
    "load_checkpoint",
    "methods",
    "nn",
    "quantizers",
    "regularizers",
    "save_checkpoint",
    "sparsity",
    "summary",
]
