"""Loss terms of binary methods: the BNN+ regularizers and SBNN's expected-connections penalty.

* BNN+ (Darabi et al., arXiv 1812.11800): R1(w, alpha) = sum |alpha - |w||, R2(w, alpha) = sum (alpha - |w|)^2,
  J = L + lambda sum_l R(W_l, alpha_l), with trainable alpha per layer or per output filter.
* SBNN (Schiavone, Galati, Zuluaga, ECML PKDD 2023, arXiv 2306.13515; code robustml-eurecom/SBNN):
  p = fraction of positive latent weights over all binary layers, h = ReLU(p - EC),
  lambda = gamma L / (h (1 - gamma)) without gradient, J = L + lambda h (0 when h <= tol).

Every term has ``penalty(task_loss)`` and is callable as ``term(loss) -> loss + penalty(loss)``;
:class:`RegularizerSet` sums the terms a method names (``method.regularizer(model)``).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .nn import QuantizedLayerMixin
from .registry import Registry

__all__ = [
    "REGULARIZERS", "BnnPlusRegularizer", "ExpectedConnections", "RegularizerSet", "add_regularization",
    "binary_layers", "bnn_plus_penalty", "build_regularizers", "check_regularizers", "connection_ratio",
]

KINDS = ("l1", "l2")
GRANULARITIES = ("channel", "layer")

REGULARIZERS: Registry[Callable[..., nn.Module]] = Registry("regularizer")


def binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) for every quantized layer whose weights are binary (weight precision 1)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, QuantizedLayerMixin) and m.weight_quantizer is not None and m.weight_precision == 1]


def bnn_plus_penalty(w: torch.Tensor, alpha: torch.Tensor | float, kind: str = "l2") -> torch.Tensor:
    """R1 = sum |alpha - |w|| (``"l1"``) or R2 = sum (alpha - |w|)^2 (``"l2"``); alpha broadcasts against w.

    Gradients: dR1/dw = -sign(alpha - |w|) sign(w), dR1/dalpha = sum sign(alpha - |w|);
    dR2/dw = -2 (alpha - |w|) sign(w), dR2/dalpha = 2 sum (alpha - |w|).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    d = alpha - w.abs()
    return d.abs().sum() if kind == "l1" else (d * d).sum()


def _quantizer_scale(layer: nn.Module) -> torch.Tensor | None:
    """The layer's trainable weight scale (BNN+ ``scaled_sign``), broadcast to its weight, or None."""
    q = layer.weight_quantizer
    q = getattr(q, "inner", q)  # a pruning wrapper keeps the quantizer in ``inner``
    return q.scale_like(layer.weight) if hasattr(q, "scale_like") else None


def add_regularization(loss: torch.Tensor, model: nn.Module, lam: float, kind: str = "l2") -> torch.Tensor:
    """``loss + lam * sum_l R(W_l, alpha_l)`` over the binary layers of ``model`` (BNN+).

    alpha_l is the layer's trainable scale when its weight quantizer has one (``scaled_sign``), else 1
    (the fixed +-1 regularizer); use :class:`BnnPlusRegularizer` for trainable alphas on other layers.
    """
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    total = loss.new_zeros(())
    for _, layer in binary_layers(model):
        alpha = _quantizer_scale(layer)
        total = total + bnn_plus_penalty(layer.weight, 1.0 if alpha is None else alpha, kind)
    return loss + lam * total


@REGULARIZERS.register("bnn+")
class BnnPlusRegularizer(nn.Module):
    """lambda sum_l R(W_l, alpha_l) over the binary layers of a model (BNN+ R1/R2).

    alpha_l is the layer's own trainable scale when its weight quantizer has one (``scaled_sign``, which
    then also gets this term's gradient); otherwise this module holds a trainable alpha for the layer
    (per output filter or per layer, init mean |w|) — add ``regularizer.parameters()`` to the optimizer.
    This is how BNN+'s regularizer combines with SBNN's domain weights.
    """

    def __init__(self, model: nn.Module, kind: str = "l2", lam: float = 1e-6, granularity: str = "channel") -> None:
        super().__init__()
        self.validate(kind, lam, granularity)
        self.kind, self.lam, self.granularity = kind, float(lam), granularity
        self._layers = binary_layers(model)  # a plain list: the layers stay owned by the model
        self.alphas = nn.ParameterDict()
        for i, (_, layer) in enumerate(self._layers):
            if _quantizer_scale(layer) is None:
                w = layer.weight.detach()
                init = w.abs().mean() if granularity == "layer" else w.abs().reshape(w.shape[0], -1).mean(1)
                self.alphas[f"layer{i}"] = nn.Parameter(init.clone())

    @staticmethod
    def validate(kind: str = "l2", lam: float = 1e-6, granularity: str = "channel") -> None:
        """Raise ValueError for invalid options (also used to check a method config without a model)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
        if not (isinstance(lam, (int, float)) and lam >= 0):
            raise ValueError(f"lam must be a number >= 0, got {lam!r}")

    def _alpha(self, i: int, layer: nn.Module) -> torch.Tensor:
        key = f"layer{i}"
        if key not in self.alphas:
            return _quantizer_scale(layer)
        a = self.alphas[key]
        return a if a.dim() == 0 else a.reshape(-1, *([1] * (layer.weight.dim() - 1)))

    def penalty(self, task_loss: torch.Tensor | None = None) -> torch.Tensor:
        terms = [bnn_plus_penalty(layer.weight, self._alpha(i, layer), self.kind)
                 for i, (_, layer) in enumerate(self._layers)]
        return self.lam * torch.stack(terms).sum() if terms else torch.zeros(())

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss + self.penalty(loss)


def connection_ratio(layers: list[tuple[str, nn.Module]] | nn.Module, ste_factor: float = 0.5) -> torch.Tensor:
    """p = (number of latent weights with sign +1, i.e. w >= 0) / N over the binary layers, with a
    straight-through gradient dp/dw_i = ste_factor / N (0.5 in the authors' CIFAR code, 1 in ImageNet's)."""
    if isinstance(layers, nn.Module):
        layers = binary_layers(layers)
    weights = [layer.weight for _, layer in layers]
    if not weights:
        raise ValueError("no binary layers to count connections in")
    n = sum(w.numel() for w in weights)
    count = sum((w.detach() >= 0).sum() for w in weights).to(weights[0].dtype)
    s = sum(w.sum() for w in weights)
    return count / n + ste_factor * (s - s.detach()) / n


@REGULARIZERS.register("expected_connections")
class ExpectedConnections(nn.Module):
    """SBNN's global sparsity penalty with its self-scaling weight.

    h = ReLU(p - ec) with p = :func:`connection_ratio`; penalty = lambda h with
    lambda = gamma L_task / (h (1 - gamma)) computed without gradient, so its value is
    gamma / (1 - gamma) L_task, and its gradient pushes every latent weight down by lambda ste_factor / N
    until p <= ec. Zero when h <= tol (1e-4 in the CIFAR code, 1e-5 in ImageNet's). ec = 0.5 is the plain BNN.
    """

    def __init__(self, model: nn.Module, ec: float = 0.1, gamma: float = 0.02, tol: float = 1e-4,
                 ste_factor: float = 0.5) -> None:
        super().__init__()
        self.validate(ec, gamma, tol, ste_factor)
        self.ec, self.gamma, self.tol, self.ste_factor = float(ec), float(gamma), float(tol), float(ste_factor)
        self._layers = binary_layers(model)
        if not self._layers:
            raise ValueError("expected_connections needs a model with binary layers")

    @staticmethod
    def validate(ec: float = 0.1, gamma: float = 0.02, tol: float = 1e-4, ste_factor: float = 0.5) -> None:
        """Raise ValueError for invalid options (also used to check a method config without a model)."""
        if not 0.0 < ec <= 1.0:
            raise ValueError(f"ec (expected connections, the target fraction of +1 weights) must be in (0, 1], got {ec}")
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        if not tol >= 0 or not ste_factor > 0:
            raise ValueError(f"need tol >= 0 and ste_factor > 0, got tol={tol}, ste_factor={ste_factor}")

    def penalty(self, task_loss: torch.Tensor) -> torch.Tensor:
        h = torch.relu(connection_ratio(self._layers, self.ste_factor) - self.ec)
        if float(h.detach()) <= self.tol or self.gamma == 0.0:
            return task_loss.new_zeros(())
        lam = (self.gamma * task_loss / (h * (1.0 - self.gamma))).detach()
        return lam * h

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss + self.penalty(loss)


class RegularizerSet(nn.Module):
    """The loss terms of a method: ``total = task_loss + sum of each term's penalty(task_loss)``."""

    def __init__(self, terms: dict[str, nn.Module]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)

    def penalty(self, task_loss: torch.Tensor) -> torch.Tensor:
        return sum((term.penalty(task_loss) for term in self.terms.values()), task_loss.new_zeros(()))

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss + self.penalty(loss)


def check_regularizers(spec: dict[str, dict[str, Any]]) -> None:
    """Validate a ``{name: options}`` spec without a model (unknown names or options raise ValueError)."""
    if not isinstance(spec, dict):
        raise ValueError(f"regularizers must be a dict {{name: options}}, got {type(spec).__name__}")
    for name, options in spec.items():
        cls = REGULARIZERS[name]
        if not isinstance(options, dict):
            raise ValueError(f"options of regularizer {name!r} must be a dict, got {type(options).__name__}")
        try:
            cls.validate(**options)
        except TypeError as exc:
            raise ValueError(f"bad options for regularizer {name!r}: {exc}") from None


def build_regularizers(spec: dict[str, dict[str, Any]], model: nn.Module) -> RegularizerSet:
    """``{"bnn+": {...}, "expected_connections": {...}}`` -> a :class:`RegularizerSet` over ``model``."""
    check_regularizers(spec)
    return RegularizerSet({name: REGULARIZERS[name](model, **options) for name, options in spec.items()})
