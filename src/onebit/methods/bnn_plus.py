"""BNN+: SignSwish pseudo-gradient, trainable scales, and regularizers that pull weights to +-alpha.

Darabi, Belbahri, Courbariaux, Partovi Nia, "BNN+: Improved Binary Network Training", arXiv 1812.11800
(2018; v3 "Regularized Binary Network Training"). No official code: SignSwish follows larq's
``SwishSign``; alpha granularity (per filter), init (mean |w|) and lambda are onebit's defaults
(methods.md 6, 9.11) — sweep lambda.
"""

from __future__ import annotations

from .base import Method
from .bnn import bnn
from .registry import METHODS

PAPER = ("Darabi, Belbahri, Courbariaux, Partovi Nia, 'BNN+: Improved Binary Network Training', "
         "arXiv 1812.11800, 2018")

MODIFIES = {
    "input_quantizer": {"name": "swish_sign", "beta": 5.0},
    "weight_quantizer": {"name": "scaled_sign", "granularity": "channel", "init": "mean_abs", "clip_value": 1.0},
    "regularizers": {"bnn+": {"kind": "l2", "lam": 1e-6, "granularity": "channel"}},
}


@METHODS.register("bnn+")
def bnn_plus() -> Method:
    """Activations sign with the SignSwish gradient (beta = 5 fixed; ``learnable_swish_sign`` or
    :func:`onebit.quantizers.set_swish_beta_` for trainable or scheduled beta); weights alpha_o sign(w)
    with trainable alpha_o; loss + lambda sum R2(w, alpha); on the BNN base."""
    return bnn().modified_by("bnn+", PAPER, MODIFIES)
