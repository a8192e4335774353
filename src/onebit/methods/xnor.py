"""XNOR-Net: per-output-channel scaled binary weights, sign activations.

Rastegari, Ordonez, Redmon, Farhadi, "XNOR-Net: ImageNet Classification Using Binary Convolutional
Neural Networks", ECCV 2016 (arXiv 1603.05279). Code: jiecaoyu/XNOR-Net-PyTorch.
"""

from __future__ import annotations

from .base import Method
from .registry import METHODS

PAPER = ("Rastegari, Ordonez, Redmon, Farhadi, 'XNOR-Net: ImageNet Classification Using Binary "
         "Convolutional Neural Networks', ECCV 2016 (arXiv 1603.05279)")


@METHODS.register("xnor")
def xnor() -> Method:
    """w_b = alpha_o sign(w), alpha_o = mean |w_o| with the magnitude-aware gradient; activations sign
    with STE 1[|x| <= 1]; blocks BN -> binarize -> binary conv -> ReLU (pre_norm, no post-norm).
    The optional activation scale map K is not implemented (methods.md 2.2)."""
    return Method(
        method="xnor", paper=PAPER,
        input_quantizer={"name": "ste_sign", "clip_value": 1.0},
        weight_quantizer={"name": "xnor_weight", "clip_value": 1.0, "detach_scale": False},
        shortcut="none", activation="relu", pre_norm=True, post_norm=False,
        recipe={"weight_decay_rule": "all"},  # the recipe is not in the spec; use a baseline's
    )
