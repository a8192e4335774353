"""DyBNN: dynamic channel-wise thresholds (DySign) and dynamic PReLU shifts (DyPReLU) on ReActNet.

Zhang, Su, Feng, Lu, Pietikäinen, Liu, "Dynamic Binary Neural Network by learning channel-wise
thresholds", ICASSP 2022 (arXiv 2110.05185); extended in "Boosting Binary Neural Networks via Dynamic
Thresholds Learning" (arXiv 2211.02292). No code released: the hyper function is onebit's
reconstruction (GAP -> FC(C/16) -> ReLU -> FC, last layer zero-initialised; methods.md 5.2-5.3).
"""

from __future__ import annotations

from .base import Method
from .reactnet import reactnet
from .registry import METHODS

PAPER = ("Zhang, Su, Feng, Lu, Pietikainen, Liu, 'Dynamic Binary Neural Network by learning channel-wise "
         "thresholds', ICASSP 2022 (arXiv 2110.05185)")

MODIFIES = {
    "input_quantizer": {"name": "dysign", "reduction": 16, "statistic": "mean", "bound": "none",
                        "detach_input": False},
    "activation": "dyprelu",
    "activation_options": {"reduction": 16},
}


@METHODS.register("dybnn")
def dybnn() -> Method:
    """ReActNet with every RSign replaced by DySign and every RPReLU by DyPReLU (reduction 16)."""
    return reactnet().modified_by("dybnn", PAPER, MODIFIES)
