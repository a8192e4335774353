"""Si-BNN: {0, +1} activations with trainable backward thresholds, XNOR-scaled +-1 weights.

Wang, He, Cheng, "Toward Accurate Binarized Neural Networks With Sparsity for Mobile Application",
IEEE TNNLS 2022 (doi 10.1109/TNNLS.2022.3173498); extends Wang, He, Li, Zhao, Cheng,
"Sparsity-Inducing Binarized Neural Networks", AAAI 2020. Code: peiswang/SiBNN (ResNet-18).

Inference uses the AND + popcount inner product of {0,1} activations with +-1 weights,
:func:`bitwise_dot` (= :func:`onebit.bitdot.dot_01_pm1`): a . w = popcount(A) - 2 popcount(A AND B)
with activation bit 1 = active and weight bit 1 = -1 (DESIGN.md section 3).
"""

from __future__ import annotations

from ..bitdot import dot_01_pm1 as bitwise_dot
from .base import Method
from .registry import METHODS

__all__ = ["bitwise_dot", "si_bnn"]

PAPER = ("Wang, He, Cheng, 'Toward Accurate Binarized Neural Networks With Sparsity for Mobile Application', "
         "IEEE TNNLS 2022 (doi 10.1109/TNNLS.2022.3173498); Wang, He, Li, Zhao, Cheng, 'Sparsity-Inducing "
         "Binarized Neural Networks', AAAI 2020")


@METHODS.register("si-bnn")
def si_bnn() -> Method:
    """a = H(s_c (x - b_c)) with pass-band -0.3 < s_c (x - b_c) < 1.0; w_b = alpha_o sign(w) with the
    authors' weight gradient; unit BN -> binarize -> binary conv -> BN -> + shortcut, no activation;
    real downsample 1x1 conv -> BN -> AvgPool; latent weights clamped to [-1, 1]; zero padding (exact
    for {0,1} activations)."""
    return Method(
        method="si-bnn", paper=PAPER,
        input_quantizer={"name": "si_heaviside", "lower": -0.3, "upper": 1.0, "positive_scale": False},
        weight_quantizer={"name": "sibnn_weight", "gradient": "code"},
        pad_value=0.0, shortcut="per_conv", downsample="conv_avgpool", activation="none",
        pre_norm=True, post_norm=True, latent_clip=1.0,
        recipe={  # ResNet-18 / ImageNet, methods.md 3.5
            "optimizer": "adam", "lr": 1e-3, "lr_schedule": "cosine_per_iteration", "epochs": 100,
            "batch_size": 256, "weight_decay": 1e-5, "weight_decay_rule": "all_but_thresholds",
            "loss": "cross_entropy", "init": "normal(0, 1/fan_in)", "head_relu": True, "two_step": False,
        },
    )
