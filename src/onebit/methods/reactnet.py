"""ReActNet: RSign (learnable per-channel thresholds), RPReLU, ReActNet blocks, two-step training.

Liu, Shen, Savvides, Cheng, "ReActNet: Towards Precise Binary Neural Network with Generalized Activation
Functions", ECCV 2020 (arXiv 2003.03488). Code: liuzechun/ReActNet.
"""

from __future__ import annotations

from .base import Method
from .registry import METHODS

PAPER = ("Liu, Shen, Savvides, Cheng, 'ReActNet: Towards Precise Binary Neural Network with Generalized "
         "Activation Functions', ECCV 2020 (arXiv 2003.03488)")


@METHODS.register("reactnet")
def reactnet() -> Method:
    """x_b = sign(x - alpha_c) (ApproxSign gradient), y = PReLU_beta(x - gamma_c) + zeta_c, weights
    alpha_o sign(w) with alpha_o detached; a real shortcut around every binary conv. Use
    :class:`onebit.nn.ReActNetBlock` (ReActNet-A) or :class:`onebit.nn.BinaryBasicBlock` (ReActNet-18)."""
    return Method(
        method="reactnet", paper=PAPER,
        input_quantizer="rsign",
        weight_quantizer={"name": "xnor_weight", "clip_value": 1.0, "detach_scale": True},
        shortcut="per_conv", downsample="avgpool_conv", activation="rprelu",
        recipe={  # methods.md 2.4
            "two_step": True, "optimizer": "adam", "lr_schedule": "linear", "epochs_per_step": 128,
            "lr": {"mobilenet": 1.25e-3, "resnet": 2.5e-3}, "batch_size": {"mobilenet": 256, "resnet": 512},
            "weight_decay": {"step1": 1e-5, "step2": 0.0}, "weight_decay_rule": "reactnet",
            "distillation": {"teacher": "resnet34", "loss": "soft_cross_entropy"},
            "augmentation": "random_resized_crop(0.08)+lighting(0.1)+flip",
        },
    )
