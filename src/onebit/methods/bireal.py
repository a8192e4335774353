"""Bi-Real Net: ApproxSign and a real-valued shortcut around every binary conv.

Liu, Wu, Luo, Yang, Liu, Cheng, "Bi-Real Net: Enhancing the Performance of 1-bit CNNs with Improved
Representational Capability and Advanced Training Algorithm", ECCV 2018 (arXiv 1808.00278).
Code: liuzechun/Bi-Real-net (PyTorch port: detached scale, STE through clamp(w, -1, 1)).
"""

from __future__ import annotations

from .base import Method
from .registry import METHODS

PAPER = ("Liu, Wu, Luo, Yang, Liu, Cheng, 'Bi-Real Net: Enhancing the Performance of 1-bit CNNs with Improved "
         "Representational Capability and Advanced Training Algorithm', ECCV 2018 (arXiv 1808.00278)")


@METHODS.register("bireal")
def bireal() -> Method:
    """Unit: BN(BinConv(ApproxSign(x))) + x; downsample AvgPool2d(2) -> real 1x1 conv -> BN;
    weights alpha_o sign(w) with alpha_o detached (the PyTorch port)."""
    return Method(
        method="bireal", paper=PAPER,
        input_quantizer="approx_sign",
        weight_quantizer={"name": "xnor_weight", "clip_value": 1.0, "detach_scale": True},
        shortcut="per_conv", downsample="avgpool_conv", activation="none",
        recipe={  # the PyTorch from-scratch recipe (methods.md 2.3)
            "optimizer": "adam", "lr": 1e-3, "batch_size": 512, "lr_schedule": "linear", "epochs": 256,
            "weight_decay": 0.0, "weight_decay_rule": "reactnet", "augmentation": "random_resized_crop(0.08)",
        },
    )
