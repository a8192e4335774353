"""onebit: PyTorch-native binarized neural networks, trained with published methods, run with bitwise kernels."""

from . import bitpack, kernels

__version__ = "0.1.0"

__all__ = ["__version__", "bitpack", "kernels"]
