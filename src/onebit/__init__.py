"""onebit: PyTorch-native binarized neural networks, trained with published methods, run with bitwise kernels."""

from . import bitpack, kernels, nn, quantizers
from .binarize import BinarizeConfig, binarize_, get_config
from . import bitdot, methods, regularizers, sparsity
from . import models
from .checkpoint import load_checkpoint, save_checkpoint
from .summary import ModelSummary, summary
from . import export
from .engine import Engine
from .pack import pack_

export_model = export.export  # onebit.export stays the subpackage; onebit.export.export(model, x) -> bytes

__version__ = "0.1.0"

__all__ = [
    "BinarizeConfig",
    "Engine",
    "ModelSummary",
    "__version__",
    "binarize_",
    "bitdot",
    "bitpack",
    "export",
    "export_model",
    "get_config",
    "kernels",
    "load_checkpoint",
    "methods",
    "models",
    "nn",
    "pack_",
    "quantizers",
    "regularizers",
    "save_checkpoint",
    "sparsity",
    "summary",
]
