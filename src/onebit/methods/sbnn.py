"""SBNN (binary domain generalization): weights in {alpha, beta} = tau sign(w) + phi, sparsified by the
expected-connections penalty.

Schiavone, Galati, Zuluaga, "Binary domain generalization for sparsifying binary neural networks",
ECML PKDD 2023 (arXiv 2306.13515). Code: robustml-eurecom/SBNN. A modifier: it changes the weight
quantizer of a base (default ReActNet-18 style, the authors' CIFAR-100 setting) and adds the penalty.
Closed form, pruning and the sparsity report: :mod:`onebit.sparsity`.
"""

from __future__ import annotations

from .base import Method
from .reactnet import reactnet
from .registry import METHODS

PAPER = ("Schiavone, Galati, Zuluaga, 'Binary domain generalization for sparsifying binary neural networks', "
         "ECML PKDD 2023 (arXiv 2306.13515)")

MODIFIES = {
    "weight_quantizer": {"name": "domain_weight", "ste": "identity", "init": "constant"},
    # (EC, gamma) = (0.05, 0.05) from the authors' CIFAR-100 sweep; EC = 0.5 disables the penalty
    "regularizers": {"expected_connections": {"ec": 0.05, "gamma": 0.05, "tol": 1e-4, "ste_factor": 0.5}},
    "latent_clip": 1.5,
    "recipe": {  # CIFAR-100, methods.md 4.5
        "two_step": False, "distillation": None, "optimizer": "adam", "lr": 1e-3, "lr_schedule": "cosine",
        "epochs": 300, "batch_size": 512, "weight_decay": 0.0, "weight_decay_rule": "none", "mixup": 1.0,
    },
}


@METHODS.register("sbnn")
def sbnn() -> Method:
    """w_q = tau sign(w) + phi (per-layer tau, phi; identity STE), global expected-connections penalty,
    latent weights clamped to [-1.5, 1.5]; on a ReActNet-18-style base (RSign, RPReLU, per-conv shortcut)."""
    return reactnet().modified_by("sbnn", PAPER, MODIFIES)
