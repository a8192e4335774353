"""SBNN: weights in a general binary domain {alpha, beta} = tau sign(w) + phi, and its closed form.

Schiavone, Galati, Zuluaga, "Binary domain generalization for sparsifying binary neural networks",
ECML PKDD 2023 (arXiv 2306.13515); code robustml-eurecom/SBNN. The authors' code learns one scalar
pair (tau, phi) per binarized layer; the closed form (least squares, methods.md 4.3) converts or
initialises from full-precision weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import Quantizer
from .ede import ede_sign
from .registry import QUANTIZERS
from .sign import ste_sign

__all__ = ["DomainFit", "DomainWeight", "domain_fit", "domain_quantize"]

STES = ("identity", "clip", "ede")
INITS = ("constant", "closed_form")


@dataclass
class DomainFit:
    """A least-squares fit of w by two values: ``alpha`` where ``mask`` is True, ``beta`` elsewhere."""

    alpha: torch.Tensor
    beta: torch.Tensor
    mask: torch.Tensor
    error: torch.Tensor  # sum of squared errors

    @property
    def tau(self) -> torch.Tensor:
        return (self.alpha - self.beta) / 2

    @property
    def phi(self) -> torch.Tensor:
        return (self.alpha + self.beta) / 2

    @property
    def values(self) -> torch.Tensor:
        return torch.where(self.mask, self.alpha, self.beta)

    @property
    def density(self) -> float:
        """Fraction of alpha (1-) bits."""
        return float(self.mask.float().mean()) if self.mask.numel() else 0.0


def domain_fit(w: torch.Tensor, mask: torch.Tensor | None = None) -> DomainFit:
    """Closed-form least squares for a fixed assignment: alpha* = mean{w : mask}, beta* = mean{w : ~mask}.

    Derivation [D]: sum_i (w_i - q_i)^2 splits into one sum per group, each minimised by the group mean.
    ``mask`` defaults to sign(w) = +1 (w >= 0), the assignment SBNN's quantizer uses. An empty group
    takes the other group's mean (any value is optimal there), which gives tau = 0.
    """
    w64 = w.detach().to(torch.float64)
    mask = (w64 >= 0) if mask is None else mask.to(torch.bool)
    if mask.shape != w.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from weight shape {tuple(w.shape)}")
    ones, zeros = w64[mask], w64[~mask]
    mean = w64.mean() if w64.numel() else w64.new_zeros(())
    alpha = ones.mean() if ones.numel() else (zeros.mean() if zeros.numel() else mean)
    beta = zeros.mean() if zeros.numel() else alpha
    error = ((w64 - torch.where(mask, alpha, beta)) ** 2).sum()
    dtype = w.dtype if w.is_floating_point() else torch.float32
    return DomainFit(alpha.to(dtype), beta.to(dtype), mask, error.to(dtype))


def _split_errors(sorted_w: torch.Tensor) -> torch.Tensor:
    """SSE of the split "top k -> alpha, rest -> beta" for k = 0..n (sorted ascending input).

    SSE(k) = sum w^2 - S_top(k)^2 / k - S_bot(k)^2 / (n - k), an empty group contributing 0.
    """
    n = sorted_w.numel()
    csum = torch.cat([sorted_w.new_zeros(1), sorted_w.cumsum(0)])  # csum[j] = sum of the j smallest
    total = csum[-1]
    k = torch.arange(n + 1, dtype=sorted_w.dtype)
    s_bot, s_top = csum[n - k.long()], total - csum[n - k.long()]
    top = torch.where(k > 0, s_top ** 2 / k.clamp(min=1), torch.zeros_like(k))
    bot = torch.where(k < n, s_bot ** 2 / (n - k).clamp(min=1), torch.zeros_like(k))
    return (sorted_w ** 2).sum() - top - bot


def domain_quantize(w: torch.Tensor, density: float | None = None) -> DomainFit:
    """The closed-form quantizer of ``w`` into a binary domain {alpha, beta} (alpha >= beta).

    * ``density=None``: the optimal two-level quantizer (least squares over every assignment). In 1-D
      the optimal two clusters are separated by a threshold, so it is the best of the n + 1 splits
      "top k weights -> alpha" of the sorted weights (exact 1-D 2-means) [D].
    * ``density=p``: exactly k = round(p n) alpha-bits. For a fixed k and S = sum over the alpha group,
      SSE = sum w^2 - S^2/k - (T - S)^2/(n - k) is concave in S with its maximum at S = kT/n, and
      alpha >= beta means S >= kT/n, so the minimum is at the largest S: the top-k weights [D].

    Returns a :class:`DomainFit` (``alpha``, ``beta``, ``mask`` of alpha positions, ``error``).
    """
    if density is not None and not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1] (fraction of alpha-bits), got {density}")
    flat = w.detach().reshape(-1).to(torch.float64)
    n = flat.numel()
    if n == 0:
        raise ValueError("cannot quantize an empty tensor")
    order = torch.argsort(flat, stable=True)
    if density is None:
        k = int(torch.argmin(_split_errors(flat[order])))
    else:
        k = int(math.floor(density * n + 0.5))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[n - k:]] = True  # k = 0 selects nothing
    return domain_fit(w, mask.reshape(w.shape))


@QUANTIZERS.register("domain_weight")
class DomainWeight(Quantizer):
    """w_q = tau sign(w) + phi in {beta, alpha}: alpha = phi + tau (sign +1), beta = phi - tau (sign -1).

    tau, phi: learnable scalars per layer (init 1 and 0: the plain +-1 BNN at init); they get the
    ordinary gradients dL/dtau = sum g sign(w), dL/dphi = sum g. The pseudo-gradient of sign(w) is
    ``ste="identity"`` (1; the authors' CIFAR-100 code), ``"clip"`` (1[|w| <= 1]; ImageNet code) or
    ``"ede"`` (IR-Net EDE with ``t``; CIFAR-10 code). ``init="closed_form"`` sets (tau, phi) from the
    least-squares fit of the layer's weights (:func:`domain_fit`) whenever the layer's weight is set.
    No per-channel scale: the BatchNorm after the conv absorbs it.

    ``beta="zero"``: SBNN's sparse domain {0, alpha}: phi is tied to tau, so w_q = tau (sign(w) + 1) =
    2 tau 1[w >= 0] (alpha = 2 tau, beta = 0; dL/dtau = sum g (sign(w) + 1)); the 0-bits are zeros,
    which the engine skips and the file can leave out (``onebit.sparsity``, sbgemm.h).
    """

    name = "domain_weight"
    domain = "ab"

    def __init__(self, ste: str = "identity", init: str = "constant", t: float = 1.0, beta: str = "learned") -> None:
        super().__init__()
        if beta not in ("learned", "zero"):
            raise ValueError(f"beta must be 'learned' or 'zero', got {beta!r}")
        self.beta_zero = beta == "zero"
        if ste not in STES:
            raise ValueError(f"ste must be one of {list(STES)}, got {ste!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        if not t > 0:
            raise ValueError(f"t must be > 0, got {t}")
        self.ste, self.init, self.t = ste, init, float(t)
        self.uses_ede = ste == "ede"
        self.tau = nn.Parameter(torch.tensor(1.0))
        self.phi = nn.Parameter(torch.tensor(0.0))

    def signs(self, w: torch.Tensor) -> torch.Tensor:
        if self.ste == "identity":
            return ste_sign(w, math.inf)
        if self.ste == "clip":
            return ste_sign(w, 1.0)
        return ede_sign(w, self.t)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.tau * self.signs(w) + (self.tau if self.beta_zero else self.phi)

    def values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, beta) = (phi + tau, phi - tau); (2 tau, 0) with beta="zero"."""
        phi = self.tau if self.beta_zero else self.phi
        return phi + self.tau, phi - self.tau

    @torch.no_grad()
    def set_values(self, alpha: float | torch.Tensor, beta: float | torch.Tensor) -> None:
        """Set (tau, phi) from the two domain values."""
        alpha, beta = torch.as_tensor(alpha, dtype=self.tau.dtype), torch.as_tensor(beta, dtype=self.tau.dtype)
        if self.beta_zero and float(beta) != 0.0:
            raise ValueError(f"this domain has beta = 0 (beta='zero'), got beta = {float(beta)}")
        self.tau.copy_((alpha - beta) / 2)
        self.phi.copy_((alpha + beta) / 2)

    @torch.no_grad()
    def init_from_weight(self, weight: torch.Tensor) -> None:
        if self.init != "closed_form":
            return
        if self.beta_zero:  # least squares of w ~ alpha 1[w >= 0]: alpha = the mean of the w >= 0
            ones = weight[weight >= 0]
            if ones.numel():
                self.set_values(ones.mean(), 0.0)
            return
        fit = domain_fit(weight)
        if 0 < int(fit.mask.sum()) < fit.mask.numel():  # a one-group fit would give tau = 0 (no gradient)
            self.set_values(fit.alpha, fit.beta)

    def hparams(self) -> dict[str, Any]:
        return {"ste": self.ste, "init": self.init, "t": self.t, **({"beta": "zero"} if self.beta_zero else {})}
