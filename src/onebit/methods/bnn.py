"""BNN: sign activations and weights with the straight-through estimator, clipped latent weights.

Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, "Binarized Neural Networks: Training Deep Neural Networks
with Weights and Activations Constrained to +1 or -1", arXiv 1602.02830 (2016); Hubara et al.,
"Binarized Neural Networks", NeurIPS 2016. Code: MatthieuCourbariaux/BinaryNet (Theano),
itayhubara/BinaryNet.pytorch.
"""

from __future__ import annotations

from .base import Method
from .registry import METHODS

PAPER = ("Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, 'Binarized Neural Networks: Training Deep Neural "
         "Networks with Weights and Activations Constrained to +1 or -1', arXiv 1602.02830, 2016 (NeurIPS 2016)")


@METHODS.register("bnn")
def bnn() -> Method:
    """q(x) = sign(x), STE 1[|x| <= 1] for activations and weights; latent weights clipped to [-1, 1]."""
    return Method(
        method="bnn", paper=PAPER,
        input_quantizer={"name": "ste_sign", "clip_value": 1.0},
        weight_quantizer={"name": "ste_sign", "clip_value": 1.0},
        shortcut="none", activation="none", latent_clip=1.0,
        recipe={  # the Theano CIFAR-10 recipe (methods.md 2.1)
            "optimizer": "adam", "lr": 1e-3, "lr_schedule": "exponential", "lr_final": 3e-7, "epochs": 500,
            "batch_size": 50, "loss": "squared_hinge", "weight_decay": 0.0, "weight_decay_rule": "none",
            "bn_momentum": 0.1, "bn_eps": 1e-4, "lr_scale": "glorot",
        },
    )
