"""Elastic-Link: add the gated real-valued input of every binary conv to its output.

Hu, Wu, Tan, Lu, Zeng, Wu, "Elastic-Link for Binarized Neural Network", AAAI 2022 (arXiv 2112.10149).
No code released: the module is onebit's reconstruction (:class:`onebit.nn.ElasticLink`, methods.md 7.2).
"""

from __future__ import annotations

from .base import Method
from .bireal import bireal
from .registry import METHODS

PAPER = "Hu, Wu, Tan, Lu, Zeng, Wu, 'Elastic-Link for Binarized Neural Network', AAAI 2022 (arXiv 2112.10149)"

MODIFIES = {
    "elastic_link": {"gate": "channel", "gate_init": 1.0, "squeeze": "mean", "expand": "tile", "where": "all"},
}


@METHODS.register("elastic-link")
def elastic_link() -> Method:
    """Y = BN(BinConv(sign X)) + gamma ⊙ P_s(T(X)) around every binary conv (Squeeze/Expand for channel
    changes, average pooling for stride, gamma per output channel, init 1); on the Bi-Real base."""
    return bireal().modified_by("elastic-link", PAPER, MODIFIES)
