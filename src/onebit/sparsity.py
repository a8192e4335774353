"""Sparse binary weights: SBNN's closed-form domain conversion, magnitude pruning, and a sparsity report.

SBNN (Schiavone, Galati, Zuluaga, "Binary domain generalization for sparsifying binary neural
networks", ECML PKDD 2023, arXiv 2306.13515) stores a layer's weights as bits b in {0, 1} with
w = beta + (alpha - beta) b; when the 1-bits are rare, only they cost work and memory (methods.md 4.6):
y = (alpha - beta) conv(x, b) + beta S(x), S = the all-ones box sum shared by every output channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .quantizers import DomainFit, DomainWeight, Quantizer, domain_fit, domain_quantize
from .regularizers import binary_layers

__all__ = [
    "DomainFit", "LayerSparsity", "MaskedWeight", "SparsityReport", "domain_fit", "domain_quantize",
    "magnitude_prune_", "restore_masks_", "sparsity_report", "to_domain_",
]

FILLS = ("zero", "beta")
SCOPES = ("layer", "global")
GRANULARITIES = ("weight", "block")
# The engine's skip unit (csrc/include/onebit/sbgemm.h): 8 output channels x one 64-bit word of input
# channels at one tap. A block that is all zero costs neither memory (the file's mask_index /
# mask_words encoding) nor work (sbgemm visits only live words).
BLOCK_ROWS, BLOCK_COLS = 8, 64
FLOAT_BITS = 32
ENCODINGS = ("best", "dense", "bitmask", "index", "kernel")


def _unwrap(q: Quantizer | None) -> Quantizer | None:
    return q.inner if isinstance(q, MaskedWeight) else q


@torch.no_grad()
def to_domain_(model: nn.Module, density: float | None = None, ste: str | None = None) -> dict[str, DomainFit]:
    """Convert every binary layer of ``model`` to SBNN domain weights with the closed form, in place.

    * ``density=None``: keep each layer's bits (sign of the latent weight) and set (alpha, beta) to the
      least-squares values for them (:func:`domain_fit`) — converting a trained BNN, or initialising.
    * ``density=p``: re-assign the bits to the top round(p n) latent weights of each layer
      (:func:`domain_quantize`) and shift the latent weights by the split threshold so that
      sign(w) = +1 exactly on those (ties at the split can land on either side).

    The weight quantizer becomes a :class:`DomainWeight` (keeping an existing one's ``ste``, else
    ``ste`` or "identity"). Returns the fit per layer name.
    """
    fits = {}
    for name, layer in binary_layers(model):
        w = layer.weight
        old = _unwrap(layer.weight_quantizer)
        if density is None:
            fit = domain_fit(w)
        else:
            fit = domain_quantize(w, density)
            ones, zeros = w[fit.mask], w[~fit.mask]
            if ones.numel() and zeros.numel():
                w.sub_((zeros.max() + ones.min()) / 2)
            elif zeros.numel():
                w.sub_(zeros.max() + 1.0)  # no 1-bits: all latent weights negative
            else:
                w.sub_(ones.min())  # all 1-bits: all latent weights >= 0
        quantizer = old if isinstance(old, DomainWeight) else DomainWeight(ste=ste or "identity")
        quantizer.to(device=w.device)
        quantizer.set_values(fit.alpha, fit.beta)
        layer.weight_quantizer = quantizer
        fits[name] = fit
    return fits


class MaskedWeight(Quantizer):
    """A weight quantizer with a fixed pruning mask: q(w) = inner(w) where mask, else the fill value.

    ``fill="zero"``: pruned weights are 0 (a magnitude-pruned BNN: values {-alpha, 0, +alpha});
    ``fill="beta"``: pruned weights take the domain's 0-bit value beta (SBNN domains stay two-valued and
    pruning only removes 1-bits). The mask is a buffer (saved in the state dict); pruned weights get no
    gradient. Not in the registry: it wraps a quantizer around a mask, which a spec cannot carry.
    """

    name = "masked"

    def __init__(self, inner: Quantizer, mask: torch.Tensor, fill: str = "zero") -> None:
        super().__init__()
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {list(FILLS)}, got {fill!r}")
        if fill == "beta" and not isinstance(inner, DomainWeight):
            raise ValueError("fill='beta' needs a domain_weight quantizer (SBNN); use fill='zero' otherwise")
        self.inner = inner
        self.precision, self.domain = inner.precision, inner.domain
        self.register_buffer("mask", mask.to(torch.bool))
        # The fill is state (0: zero, 1: beta), so that a checkpoint alone rebuilds the layer (restore_masks_).
        self.register_buffer("fill_code", torch.tensor(FILLS.index(fill), dtype=torch.uint8))

    @property
    def fill(self) -> str:
        return FILLS[int(self.fill_code)]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = self.inner(w)
        if self.fill == "zero":
            return q * self.mask.to(q.dtype)
        return torch.where(self.mask, q, self.inner.values()[1])

    def init_from_weight(self, weight: torch.Tensor) -> None:
        self.inner.init_from_weight(weight)

    def hparams(self) -> dict[str, Any]:
        return {"inner": self.inner.to_config(), "fill": self.fill}


@torch.no_grad()
def restore_masks_(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Wrap the binary layers of ``model`` whose entries in ``state_dict`` carry a pruning mask
    (``<layer>.weight_quantizer.mask``) in :class:`MaskedWeight`, so that ``model.load_state_dict``
    then loads a pruned checkpoint. Returns the names of the layers wrapped (already wrapped ones are
    left as they are)."""
    wrapped = []
    for name, layer in binary_layers(model):
        prefix = f"{name}.weight_quantizer." if name else "weight_quantizer."
        if prefix + "mask" not in state_dict or isinstance(layer.weight_quantizer, MaskedWeight):
            continue
        code = state_dict.get(prefix + "fill_code")
        fill = FILLS[int(code)] if code is not None and 0 <= int(code) < len(FILLS) else "zero"
        layer.weight_quantizer = MaskedWeight(layer.weight_quantizer, state_dict[prefix + "mask"], fill)
        wrapped.append(name)
    return wrapped


def _prune_scores(layer: nn.Module, fill: str, granularity: str = "weight") -> torch.Tensor:
    # zero fill: prune the smallest |w|. beta fill: 1-bits are w >= 0 and pruning turns the weakest
    # into 0-bits, so score by w itself (negative weights are already 0-bits and go first, harmlessly).
    w = layer.weight.detach()
    s = w.abs() if fill == "zero" else w
    return _block_means(s) if granularity == "block" else s


def _block_means(s: torch.Tensor) -> torch.Tensor:
    """Each weight's score replaced by the mean over its block: BLOCK_ROWS output channels x BLOCK_COLS
    input channels (of one group) at one tap; edge blocks are smaller. Same shape as ``s``."""
    co, ci = s.shape[:2]
    t = s.reshape(co, ci, -1).permute(2, 0, 1)                  # (taps, C_out, C_in/groups)
    po, pi = (-co) % BLOCK_ROWS, (-ci) % BLOCK_COLS
    sums = torch.nn.functional.pad(t, (0, pi, 0, po))
    counts = torch.nn.functional.pad(torch.ones_like(t), (0, pi, 0, po))
    shape = (t.shape[0], (co + po) // BLOCK_ROWS, BLOCK_ROWS, (ci + pi) // BLOCK_COLS, BLOCK_COLS)
    means = sums.reshape(shape).sum(dim=(2, 4)) / counts.reshape(shape).sum(dim=(2, 4))
    full = means.repeat_interleave(BLOCK_ROWS, 1).repeat_interleave(BLOCK_COLS, 2)[:, :co, :ci]
    return full.permute(1, 2, 0).reshape(s.shape)


@torch.no_grad()
def magnitude_prune_(model: nn.Module, sparsity: float, *, scope: str = "layer",
                     fill: str | None = None, granularity: str = "weight") -> dict[str, float]:
    """Prune the binary layers of ``model`` to a target ``sparsity`` by latent-weight magnitude, in place.

    The lowest-scoring fraction ``sparsity`` of weights (per layer, or over all binary layers with
    ``scope="global"``) is masked (:class:`MaskedWeight`). ``fill`` defaults to ``"beta"`` for SBNN
    domain weights (realised sparsity of 0-bits >= target) and ``"zero"`` otherwise (zeros = target).
    Pruning again replaces the previous mask. Returns the realised sparsity per layer (see
    :func:`sparsity_report`).

    ``granularity="block"`` scores and prunes whole blocks of 8 output channels x 64 input channels at
    one tap (by the block's mean score): the structure the engine skips and the file stores compactly.
    An unstructured mask at 75 % sparsity is neither smaller nor faster there (almost no 64-bit word
    is all zero, and no encoding beats its entropy of 0.81 bit per weight).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}, got {scope!r}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    layers = binary_layers(model)
    fills = {name: fill or ("beta" if isinstance(_unwrap(layer.weight_quantizer), DomainWeight) else "zero")
             for name, layer in layers}
    scores = {name: _prune_scores(layer, fills[name], granularity) for name, layer in layers}
    if scope == "global" and layers:
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        k = int(math.floor(sparsity * flat.numel()))
        threshold = torch.kthvalue(flat, k).values if k > 0 else None
    for name, layer in layers:
        s = scores[name]
        if scope == "layer":
            k = int(math.floor(sparsity * s.numel()))
            threshold = torch.kthvalue(s.reshape(-1), k).values if k > 0 else None
        mask = torch.ones_like(s, dtype=torch.bool) if threshold is None else s > threshold
        layer.weight_quantizer = MaskedWeight(_unwrap(layer.weight_quantizer), mask, fills[name])
    report = sparsity_report(model)
    return {entry.name: entry.sparsity for entry in report.layers}


@dataclass
class LayerSparsity:
    """Sparsity and storage of one binary layer's quantized weights (sizes in bits).

    ``encoding``: "binary" (two values per row) or "ternary" (zeros present: pruned). ``nnz``: the
    1-bits of the minority encoding (``flipped`` when the encoded value is the sign -1 / beta side) or
    the non-zeros. Storage: ``dense`` (1 bit per weight; 2 for ternary), ``bitmask`` (mask + one sign bit
    per non-zero; equals dense for binary), ``index`` (ceil(log2 n) bits per 1-bit, + a sign bit if
    ternary), ``kernel`` (convs with k > 1: one bit per (C_out, C_in) kernel saying "non-empty", then k
    bits for each non-empty kernel; SBNN's kernel skipping), each plus ``scale_bits`` (32-bit values).
    """

    name: str
    numel: int
    nnz: int
    encoding: str
    flipped: bool
    dense_bits: int
    bitmask_bits: int
    index_bits: int
    kernel_bits: int | None
    scale_bits: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / self.numel if self.numel else 0.0

    @property
    def sizes(self) -> dict[str, int]:
        """Total bits per encoding (weights + scales)."""
        out = {"dense": self.dense_bits, "bitmask": self.bitmask_bits, "index": self.index_bits}
        if self.kernel_bits is not None:
            out["kernel"] = self.kernel_bits
        return {k: v + self.scale_bits for k, v in out.items()}

    @property
    def best(self) -> str:
        sizes = self.sizes
        return min(sizes, key=sizes.get)


def _layer_sparsity(name: str, layer: nn.Module) -> LayerSparsity:
    q = layer.quantized_weight().detach()
    n = q.numel()
    values = torch.unique(q)
    ternary = bool((q == 0).any()) and values.numel() > 2
    if ternary:
        bits = q != 0
        flipped = False
    else:
        threshold = (values.max() + values.min()) / 2 if values.numel() <= 2 else q.new_zeros(())
        bits = q > threshold
        flipped = int(bits.sum()) * 2 > n
        bits = ~bits if flipped else bits
    nnz = int(bits.sum())
    index = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    dense = 2 * n if ternary else n
    bitmask = n + nnz if ternary else n
    index_bits = nnz * (index + (1 if ternary else 0))
    kernel_bits = None
    if q.dim() == 4 and q.shape[2] * q.shape[3] > 1:
        k = q.shape[2] * q.shape[3]
        nonempty = int(bits.reshape(q.shape[0] * q.shape[1], k).any(dim=1).sum())
        kernel_bits = q.shape[0] * q.shape[1] + nonempty * k + (nnz if ternary else 0)
    scale_bits = FLOAT_BITS * int((values != 0).sum())
    return LayerSparsity(name, n, nnz, "ternary" if ternary else "binary", flipped, dense, bitmask, index_bits,
                         kernel_bits, scale_bits)


@dataclass
class SparsityReport:
    layers: list[LayerSparsity] = field(default_factory=list)

    @property
    def sparsity(self) -> float:
        """Overall fraction of 0-bits / zeros over all binary weights."""
        n = sum(layer.numel for layer in self.layers)
        return 1.0 - sum(layer.nnz for layer in self.layers) / n if n else 0.0

    def memory_bytes(self, encoding: str = "best") -> float:
        """Total bytes with one encoding for every layer ("kernel" falls back to bitmask where it does
        not apply), or each layer's smallest (``"best"``)."""
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; valid: {list(ENCODINGS)}")
        total = 0
        for layer in self.layers:
            sizes = layer.sizes
            key = layer.best if encoding == "best" else (encoding if encoding in sizes else "bitmask")
            total += sizes[key]
        return total / 8

    def table(self) -> str:
        head = f"{'Layer':<28} {'Weights':>9} {'1-bits':>9} {'Sparsity':>9} {'Dense KiB':>10} {'Best KiB':>9} Best"
        lines = [head, "-" * len(head)]
        for layer in self.layers:
            sizes = layer.sizes
            lines.append(f"{layer.name:<28} {layer.numel:>9,} {layer.nnz:>9,} {100 * layer.sparsity:>8.2f}% "
                         f"{sizes['dense'] / 8192:>10.2f} {sizes[layer.best] / 8192:>9.2f} {layer.best}")
        lines.append("-" * len(head))
        lines.append(f"Sparsity {100 * self.sparsity:.2f}%; dense {self.memory_bytes('dense') / 1024:.2f} KiB, "
                     f"best sparse encoding {self.memory_bytes('best') / 1024:.2f} KiB")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@torch.no_grad()
def sparsity_report(model: nn.Module) -> SparsityReport:
    """Realised sparsity of every binary layer's quantized weights and the memory of dense and sparse encodings."""
    return SparsityReport([_layer_sparsity(name, layer) for name, layer in binary_layers(model)])
